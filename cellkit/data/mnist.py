"""Lab 01's data: MNIST handwritten digits, or the offline substitute bundled with scikit-learn.

MNIST comes from Keras's own loader (``keras.datasets.mnist``, which checks its
hash).  Where it cannot be reached (CI, an offline laptop) the synthetic source
gives the 1,797 real handwritten digits that ship with scikit-learn (8x8 pixels,
16 grey levels, from the UCI "Optical Recognition of Handwritten Digits" set),
upsampled to MNIST's format: each digit is resized to 20x20 and centred in a
28x28 frame, as MNIST's digits are.  The substitute is announced, never silent.

Offline with a copy of MNIST: ``load_digits(config, path=...)`` reads a user's
``mnist.npz`` (checked against Keras's SHA-256, :data:`MNIST_NPZ_SHA256`) or
the four idx files of the original distribution (gzipped or not; checked for
form: magic numbers, counts and 28x28 size).  A copy at Keras's own cache
place (``~/.keras/datasets/mnist.npz``) is checked the same way *before* Keras
sees it, because Keras deletes a cached file whose hash differs.  The user's
files are only ever read.
"""

from __future__ import annotations

import numpy as np

import gzip
import hashlib
import os
from pathlib import Path

from cellkit.config import Config, get_config
from cellkit.errors import DataError, DataUnavailableError

MNIST_NPZ_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
"""SHA-256 of Keras's ``mnist.npz`` (the hash ``keras.datasets.mnist.load_data`` checks)."""
IDX_FILES = {"x_train": "train-images-idx3-ubyte", "y_train": "train-labels-idx1-ubyte",
             "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte"}
"""The four files of the original MNIST distribution (optionally ending in ``.gz``)."""
_COUNTS = {"x_train": 60_000, "y_train": 60_000, "x_test": 10_000, "y_test": 10_000}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_idx(path) -> np.ndarray:
    """Return the array stored in one MNIST idx file (``.gz`` or plain), checking its header.

    Raises
    ------
    DataError
        The file is not an idx file of unsigned bytes, or is truncated; the message names it.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise DataError(f"{path}: cannot be read as an MNIST idx file ({exc})") from exc
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08 or data[3] not in (1, 3):
        raise DataError(f"{path}: not an MNIST idx file of unsigned bytes (expected the magic number "
                        f"0x00000801 for labels or 0x00000803 for images)")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    start = 4 + 4 * ndim
    if len(data) - start != int(np.prod(dims)):
        raise DataError(f"{path}: {len(data) - start:,} data bytes, expected {int(np.prod(dims)):,} for shape "
                        f"{tuple(dims)} (truncated or damaged file)")
    return np.frombuffer(data, np.uint8, offset=start).reshape(dims)


def read_mnist(path):
    """Return ``(x_train, y_train), (x_test, y_test)`` from a user's copy of MNIST, checked, never modified.

    Parameters
    ----------
    path : str or Path
        ``mnist.npz`` (as Keras stores it; its SHA-256 must be :data:`MNIST_NPZ_SHA256`),
        or a folder holding ``mnist.npz`` or the four idx files of :data:`IDX_FILES`
        (each optionally gzipped).

    Raises
    ------
    DataError
        Nothing usable at ``path``, a hash that differs (the message gives both
        hashes), or idx files of the wrong form.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        if (path / "mnist.npz").is_file():
            path = path / "mnist.npz"
        else:
            files = {key: next((path / (stem + ext) for ext in ("", ".gz") if (path / (stem + ext)).is_file()), None)
                     for key, stem in IDX_FILES.items()}
            missing = [IDX_FILES[k] for k, f in files.items() if f is None]
            if missing:
                raise DataError(f"{path}: neither mnist.npz nor {', '.join(missing)}[.gz] found; expected mnist.npz "
                                f"or the four idx files {', '.join(IDX_FILES.values())} (each optionally .gz)")
            arrays = {key: read_idx(f) for key, f in files.items()}
            _check_arrays(arrays, path)
            return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])
    if not path.is_file():
        raise DataError(f"{path}: no such file or folder; expected mnist.npz or a folder with the four idx files")
    got = _sha256(path)
    if got != MNIST_NPZ_SHA256:
        raise DataError(f"{path}: SHA-256 {got}, expected {MNIST_NPZ_SHA256} (Keras's mnist.npz); the file is "
                        f"another version or damaged. It was left untouched; download it again from "
                        f"https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz")
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in _COUNTS}
    _check_arrays(arrays, path)
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])


def _check_arrays(arrays, path):
    for key, n in _COUNTS.items():
        shape = (n, 28, 28) if key.startswith("x") else (n,)
        if arrays[key].shape != shape:
            raise DataError(f"{path}: {key} has shape {arrays[key].shape}, expected {shape}")
    if max(arrays["y_train"].max(), arrays["y_test"].max()) > 9:
        raise DataError(f"{path}: labels above 9; expected digits 0-9")


def keras_cache_file() -> Path:
    """Return where ``keras.datasets.mnist.load_data`` keeps ``mnist.npz`` (``$KERAS_HOME/datasets``)."""
    home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
    return home / "datasets" / "mnist.npz"


def upsample_digits(images: np.ndarray, size: int = 20, frame: int = 28) -> np.ndarray:
    """Return 8x8 digit images (values 0-16) as ``frame x frame`` uint8 images with the digit in a ``size`` box.

    Bilinear resampling (scipy.ndimage.zoom, order 1) to ``size x size``, then
    zero padding to ``frame x frame``, then scaling to 0-255.
    """
    from scipy import ndimage

    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 3 or images.shape[1:] != (8, 8):
        raise ValueError(f"images: shape {images.shape}, expected (n, 8, 8)")
    zoomed = np.stack([ndimage.zoom(im, size / 8.0, order=1) for im in images])
    pad = (frame - size) // 2
    out = np.zeros((len(images), frame, frame), np.float32)
    out[:, pad:pad + size, pad:pad + size] = zoomed
    return np.clip(np.round(out / 16.0 * 255), 0, 255).astype(np.uint8)


def load_digits(config: Config | None = None, *, path=None, verbose: bool = True):
    """Return ``(x_train, y_train), (x_test, y_test), description`` for lab 01.

    ``x`` are uint8 arrays of shape (n, 28, 28) and ``y`` int labels 0-9.  With
    ``config.source == "real"`` this is MNIST (60,000 / 10,000 images); with
    ``"synthetic"`` the scikit-learn digits upsampled to 28x28 (1,437 / 360,
    stratified with the config's seed).  Fast mode keeps 2,000 / 500 MNIST images
    or all of the small substitute, so the same code runs either way.

    ``path`` (real source only) points at your own copy: ``mnist.npz`` or a
    folder with it or with the four idx files (see :func:`read_mnist`); nothing
    is downloaded then.

    Raises
    ------
    DataUnavailableError
        MNIST was asked for and cannot be downloaded.
    DataError
        The copy at ``path`` (or in Keras's cache) is not MNIST: the message names
        the file and the expected SHA-256; the file is left as it is.
    """
    config = config or get_config()
    if path is not None and config.source != "real":
        raise ValueError(f"path={str(path)!r} is a copy of real MNIST, but the source is {config.source!r}; "
                         "set CELLKIT_SOURCE=real (or leave path out for the offline substitute)")
    if config.source == "real":
        cached = keras_cache_file()
        if path is not None:
            (x_train, y_train), (x_test, y_test) = read_mnist(path)
            where = str(path)
        elif cached.is_file():  # check it ourselves: Keras would delete a file whose hash differs
            (x_train, y_train), (x_test, y_test) = read_mnist(cached)
            where = str(cached)
        else:
            import keras

            try:
                (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
            except Exception as exc:  # keras raises several kinds of network error
                raise DataUnavailableError(
                    f"cannot reach the MNIST download of keras.datasets.mnist ({type(exc).__name__}: {exc}); "
                    "if you have mnist.npz (SHA-256 " + MNIST_NPZ_SHA256 + ") or the four idx files, pass their "
                    "place: load_digits(config, path=...); or choose the offline substitute "
                    "(CELLKIT_SOURCE=synthetic: scikit-learn's real handwritten digits, upsampled to 28x28)"
                ) from exc
            where = "keras.datasets.mnist"
        description = f"REAL MNIST ({where}): 28x28 grey handwritten digits"
        if config.fast:
            x_train, y_train, x_test, y_test = x_train[:2000], y_train[:2000], x_test[:500], y_test[:500]
    else:
        from sklearn.datasets import load_digits as sk_digits
        from sklearn.model_selection import train_test_split

        digits = sk_digits()
        x = upsample_digits(digits.images)
        y = digits.target.astype(np.int64)
        x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, stratify=y,
                                                            random_state=config.seed % 2**32)
        description = ("OFFLINE SUBSTITUTE for MNIST: scikit-learn's 1,797 real handwritten digits (8x8, 16 grey "
                       "levels) upsampled to 20x20 and centred in 28x28 like MNIST")
    if verbose:
        print(f"Data source: {description}\n  train {x_train.shape}, test {x_test.shape}, dtype {x_train.dtype}")
    return (x_train, y_train), (x_test, y_test), description
