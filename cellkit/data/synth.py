"""A small toolkit for drawing synthetic microscopy images with a known ground truth.

The per-lab generators (``cellkit.data.bbbc021``, ``cellkit.data.rxrx1`` ...)
build on these functions: place cells, draw cell-like shapes, render a stain
per channel, and add the imaging nuisances (uneven illumination, blur, shot
noise, camera offset) that make real images hard.  Every function takes a
NumPy ``Generator`` so a seed fixes the whole picture.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def rng(seed) -> np.random.Generator:
    """Return a NumPy random generator for ``seed`` (an int, a sequence of ints, or a Generator)."""
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


def grid(shape) -> tuple[np.ndarray, np.ndarray]:
    """Return the row and column coordinate arrays of an image of ``shape`` (H, W)."""
    return np.mgrid[0:shape[0], 0:shape[1]].astype(np.float32)


def ellipse(shape, center, axes, angle: float = 0.0) -> np.ndarray:
    """Return a boolean mask of a filled ellipse.

    Parameters
    ----------
    shape : (int, int)
    center : (float, float)
        Row, column of the centre.
    axes : (float, float)
        Semi-axes along the ellipse's own axes, in pixels.
    angle : float
        Rotation in radians.
    """
    rr, cc = grid(shape)
    y, x = rr - center[0], cc - center[1]
    c, s = np.cos(angle), np.sin(angle)
    u, v = x * c + y * s, -x * s + y * c
    return (u / max(axes[0], 1e-3)) ** 2 + (v / max(axes[1], 1e-3)) ** 2 <= 1.0


def blob(shape, center, radius: float, generator, *, irregularity: float = 0.15, elongation: float = 1.0,
         angle: float | None = None, harmonics: int = 5) -> np.ndarray:
    """Return a boolean mask of a cell-like star-shaped blob.

    The boundary radius is ``radius * (1 + irregularity * sum of random harmonics)``,
    stretched by ``elongation`` along ``angle``: 0 irregularity and elongation 1 give a disc.
    """
    g = rng(generator)
    rr, cc = grid(shape)
    y, x = rr - center[0], cc - center[1]
    angle = g.uniform(0, np.pi) if angle is None else angle
    c, s = np.cos(angle), np.sin(angle)
    u, v = (x * c + y * s) / np.sqrt(elongation), (-x * s + y * c) * np.sqrt(elongation)
    theta = np.arctan2(v, u)
    boundary = np.ones_like(theta)
    for k in range(2, harmonics + 2):
        boundary += irregularity / k * g.normal() * np.cos(k * theta + g.uniform(0, 2 * np.pi))
    return np.hypot(u, v) <= radius * np.clip(boundary, 0.3, None)


def place_points(n: int, shape, generator, *, min_distance: float = 0.0, margin: float = 0.0,
                 max_tries: int = 50) -> np.ndarray:
    """Return up to ``n`` random (row, col) points at least ``min_distance`` apart, as an (m, 2) array."""
    g = rng(generator)
    points: list[np.ndarray] = []
    for _ in range(n):
        for _ in range(max_tries):
            p = np.array([g.uniform(margin, shape[0] - margin), g.uniform(margin, shape[1] - margin)])
            if not points or np.min(np.linalg.norm(np.array(points) - p, axis=1)) >= min_distance:
                points.append(p)
                break
    return np.array(points, dtype=np.float32).reshape(-1, 2)


def texture(shape, generator, *, scale: float = 2.0) -> np.ndarray:
    """Return smooth random texture in [0, 1] (Gaussian-filtered noise), e.g. for actin fibres or chromatin."""
    g = rng(generator)
    t = ndimage.gaussian_filter(g.normal(size=shape).astype(np.float32), scale)
    t -= t.min()
    return t / max(float(t.max()), 1e-6)


def illumination(shape, generator, *, strength: float = 0.2) -> np.ndarray:
    """Return a smooth multiplicative illumination field around 1 (a tilted plane plus vignetting)."""
    g = rng(generator)
    rr, cc = grid(shape)
    rr = rr / max(shape[0] - 1, 1) - 0.5
    cc = cc / max(shape[1] - 1, 1) - 0.5
    tilt = g.normal(size=2) * strength
    vignette = 1 - strength * (rr ** 2 + cc ** 2)
    return (1 + tilt[0] * rr + tilt[1] * cc) * vignette


def fluorescence(signal: np.ndarray, generator, *, gain: float = 1.0, background: float = 0.02,
                 blur: float = 1.0, photons: float = 200.0, read_noise: float = 0.01,
                 illumination_field: np.ndarray | None = None) -> np.ndarray:
    """Return a float image in [0, 1] that looks like a fluorescence exposure of ``signal``.

    The imaging model is: optical blur (Gaussian, ``blur`` pixels), uneven
    illumination, gain and background offset, Poisson shot noise with ``photons``
    photons at intensity 1, and Gaussian read noise.
    """
    g = rng(generator)
    img = ndimage.gaussian_filter(np.asarray(signal, dtype=np.float32), blur) if blur > 0 else np.asarray(signal, np.float32)
    if illumination_field is not None:
        img = img * illumination_field
    img = gain * img + background
    img = g.poisson(np.clip(img, 0, None) * photons).astype(np.float32) / photons
    img += g.normal(0, read_noise, size=img.shape).astype(np.float32)
    return np.clip(img, 0, 1)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Return a [0, 1] float image as uint8 (0-255), rounding and clipping."""
    return np.clip(np.round(np.asarray(image) * 255), 0, 255).astype(np.uint8)


def to_uint16(image: np.ndarray) -> np.ndarray:
    """Return a [0, 1] float image as uint16 (0-65535), rounding and clipping."""
    return np.clip(np.round(np.asarray(image) * 65535), 0, 65535).astype(np.uint16)
