"""Reading and writing microscopy images: TIFF (multi-page, multi-channel), PNG, BMP.

Every reader names the file in its error, and :func:`to_float01` states the
scaling it applies, so a student always knows what the numbers mean.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cellkit.atomic import atomic_path
from cellkit.errors import DataError

TIFF_SUFFIXES = (".tif", ".tiff")
PIL_SUFFIXES = (".png", ".bmp", ".dib", ".jpg", ".jpeg")
IMAGE_SUFFIXES = TIFF_SUFFIXES + PIL_SUFFIXES


def read_image(path, *, key=None) -> np.ndarray:
    """Return the pixels of one image file as a NumPy array in its stored dtype.

    Parameters
    ----------
    path : str or pathlib.Path
        A ``.tif``/``.tiff`` (read with tifffile: all pages, or page ``key``), or a
        ``.png``/``.bmp``/``.dib``/``.jpg`` (read with Pillow).
    key : int or slice, optional
        For a multi-page TIFF, the page(s) to read; default all.

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` for a grey image, ``(H, W, C)`` for colour, ``(pages, H, W[, C])`` for a stack.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    DataError
        The file is empty, truncated or not an image of a supported format.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}")
    suffix = path.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise DataError(f"{path}: unsupported image type {suffix!r}; expected one of {', '.join(IMAGE_SUFFIXES)}")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty (0 bytes); expected a {suffix} image")
    try:
        if suffix in TIFF_SUFFIXES:
            import tifffile

            return np.asarray(tifffile.imread(path, key=key))
        if suffix == ".png" and _png_is_16bit_colour(path):
            # Pillow decodes 48/64-bit colour PNGs as 8-bit, dropping the low byte without a word
            import imagecodecs

            return np.asarray(imagecodecs.png_decode(path.read_bytes()))
        from PIL import Image

        with Image.open(path) as im:
            im.load()
            return np.asarray(im)
    except (OSError, ValueError, SyntaxError, IndexError, EOFError) as exc:
        raise DataError(f"{path}: cannot decode the image ({exc}); the file may be truncated or corrupt, "
                        f"delete it and run again (a real dataset's file is fetched again, a synthetic copy "
                        f"is generated again)") from exc


def _png_is_16bit_colour(path: Path) -> bool:
    """Return whether a PNG's header says 16 bits per sample in colour (RGB or RGBA): what Pillow truncates."""
    with open(path, "rb") as fh:
        head = fh.read(26)
    # signature (8 bytes), IHDR length and type (8), width and height (8), then bit depth and colour type
    return len(head) == 26 and head[12:16] == b"IHDR" and head[24] == 16 and head[25] in (2, 6)


def write_png(path, image: np.ndarray) -> Path:
    """Return ``path`` after writing an 8- or 16-bit grey or RGB image as PNG, atomically."""
    from PIL import Image

    image = np.asarray(image)
    if image.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"image dtype {image.dtype}: expected uint8 or uint16 for a PNG")
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[-1] not in (3, 4)):
        raise ValueError(f"image shape {image.shape}: expected (H, W), (H, W, 3) or (H, W, 4)")
    with atomic_path(path, suffix=".png") as tmp:
        Image.fromarray(image).save(tmp, format="PNG")
    return Path(path)


def write_tiff(path, image: np.ndarray, **kwargs) -> Path:
    """Return ``path`` after writing ``image`` as TIFF, atomically.

    Grey data by default: a 3-D array is written as pages along axis 0 (frames of a
    video, or channels), not guessed to be RGB; pass ``photometric="rgb"`` for colour.
    """
    import tifffile

    kwargs.setdefault("photometric", "minisblack")

    with atomic_path(path, suffix=".tif") as tmp:
        tifffile.imwrite(tmp, np.asarray(image), **kwargs)
    return Path(path)


def to_float01(image: np.ndarray, *, name: str = "image") -> tuple[np.ndarray, str]:
    """Return ``(image as float32 in [0, 1], a sentence stating the scaling applied)``.

    Integers are divided by their dtype's maximum (uint8: 255, uint16: 65535), so
    that intensities stay comparable between images; floats already in [0, 1]
    are kept.  Other floats are rejected: min-max scaling is a modelling choice
    the lab makes explicitly (see :func:`minmax_scale`), not a silent default.
    """
    image = np.asarray(image)
    if np.issubdtype(image.dtype, np.integer):
        if image.dtype.kind == "i" and image.size and image.min() < 0:
            raise DataError(f"{name}: signed integers with negative values; expected unsigned pixel values")
        top = np.iinfo(image.dtype).max
        return (image.astype(np.float32) / np.float32(top)), f"{image.dtype} divided by {top:,}"
    if np.issubdtype(image.dtype, np.floating):
        if image.size and (np.nanmin(image) < 0 or np.nanmax(image) > 1):
            raise DataError(f"{name}: float pixels in [{np.nanmin(image):.3g}, {np.nanmax(image):.3g}]; "
                            "expected [0, 1] (use cellkit.data.io.minmax_scale to rescale)")
        return image.astype(np.float32), "float already in [0, 1], unchanged"
    if image.dtype == bool:
        return image.astype(np.float32), "boolean mask as 0.0 / 1.0"
    raise DataError(f"{name}: pixel dtype {image.dtype}; expected an unsigned integer or float type")


def minmax_scale(image: np.ndarray, axis=None, eps: float = 1e-12) -> np.ndarray:
    """Return ``image`` min-max scaled to [0, 1] (over ``axis``; all axes by default) as float32."""
    image = np.asarray(image, dtype=np.float32)
    lo = image.min(axis=axis, keepdims=True)
    hi = image.max(axis=axis, keepdims=True)
    return (image - lo) / np.maximum(hi - lo, eps)


def validate_image(image: np.ndarray, *, name: str = "image", shape=None, dtype=None, channels=None) -> np.ndarray:
    """Return ``image`` unchanged after checking its shape, dtype and channel count.

    Parameters
    ----------
    shape : tuple, optional
        Expected shape; ``None`` entries match any size.
    dtype : numpy dtype or sequence of them, optional
    channels : int, optional
        Expected size of the last axis.

    Raises
    ------
    DataError
        Naming ``name`` and what was expected.
    """
    image = np.asarray(image)
    if shape is not None:
        ok = image.ndim == len(shape) and all(e is None or e == a for e, a in zip(shape, image.shape))
        if not ok:
            want = "x".join("any" if e is None else str(e) for e in shape)
            raise DataError(f"{name}: shape {image.shape}, expected {want}")
    if dtype is not None:
        allowed = [np.dtype(d) for d in (dtype if isinstance(dtype, (list, tuple)) else [dtype])]
        if image.dtype not in allowed:
            raise DataError(f"{name}: dtype {image.dtype}, expected {' or '.join(map(str, allowed))}")
    if channels is not None:
        found = image.shape[-1] if image.ndim == 3 else 1
        if found != channels:
            raise DataError(f"{name}: {found} channel(s) (shape {image.shape}), expected {channels}")
    return image


def list_images(folder, *, suffixes=IMAGE_SUFFIXES, recursive: bool = True) -> list[Path]:
    """Return the sorted image files under ``folder``.

    Raises
    ------
    FileNotFoundError
        The folder does not exist.
    DataError
        The folder holds no image of the given types.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder not found: {folder}")
    pattern = "**/*" if recursive else "*"
    files = sorted(p for p in folder.glob(pattern) if p.is_file() and p.suffix.lower() in suffixes
                   and not p.name.startswith("."))
    if not files:
        raise DataError(f"{folder}: no images found (looked for {', '.join(suffixes)}); is this the right folder?")
    return files
