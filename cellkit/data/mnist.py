"""Lab 01's data: MNIST handwritten digits, or the offline substitute bundled with scikit-learn.

MNIST comes from Keras's own loader (``keras.datasets.mnist``, which checks its
hash).  Where it cannot be reached (CI, an offline laptop) the synthetic source
gives the 1,797 real handwritten digits that ship with scikit-learn (8x8 pixels,
16 grey levels, from the UCI "Optical Recognition of Handwritten Digits" set),
upsampled to MNIST's format: each digit is resized to 20x20 and centred in a
28x28 frame, as MNIST's digits are.  The substitute is announced, never silent.
"""

from __future__ import annotations

import numpy as np

from cellkit.config import Config, get_config
from cellkit.errors import DataUnavailableError


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


def load_digits(config: Config | None = None, *, verbose: bool = True):
    """Return ``(x_train, y_train), (x_test, y_test), description`` for lab 01.

    ``x`` are uint8 arrays of shape (n, 28, 28) and ``y`` int labels 0-9.  With
    ``config.source == "real"`` this is MNIST (60,000 / 10,000 images); with
    ``"synthetic"`` the scikit-learn digits upsampled to 28x28 (1,437 / 360,
    stratified with the config's seed).  Fast mode keeps 2,000 / 500 MNIST images
    or all of the small substitute, so the same code runs either way.

    Raises
    ------
    DataUnavailableError
        MNIST was asked for and cannot be downloaded.
    """
    config = config or get_config()
    if config.source == "real":
        import keras

        try:
            (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
        except Exception as exc:  # keras raises several kinds of network error
            raise DataUnavailableError(
                f"cannot reach the MNIST download of keras.datasets.mnist ({type(exc).__name__}: {exc}); "
                "place mnist.npz in ~/.keras/datasets/, or choose the offline substitute "
                "(CELLKIT_SOURCE=synthetic: scikit-learn's real handwritten digits, upsampled to 28x28)"
            ) from exc
        description = "REAL MNIST (keras.datasets.mnist): 28x28 grey handwritten digits"
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
