"""Lab 05's data: time-lapse videos of migrating cells, read from the layouts microscopes and challenges use.

Two real layouts are read, wherever they lie:

* a **folder of single-frame TIFFs** ordered by the time index at the end of the file
  name: the Cell Tracking Challenge's ``01/t000.tif, t001.tif, ...`` or the Usiigaci
  example's ``20180101ef002xy01t01.tif ... t37.tif`` (natural order: ``t2`` before ``t10``);
* **one multi-page TIFF stack** (pages are frames).

Frames may be 8- or 16-bit and of any size; :func:`fit_frames` crops them to a square
and resizes them to the size a model wants, and :func:`make_sequences` cuts a video
into fixed-length overlapping sequences.  :func:`make_synthetic` writes videos of
migrating cells in the Cell Tracking Challenge layout, with planted events (a division,
a sudden turn, a speed burst, a cell dying, a cell entering the field) whose frame
indices are listed in ``ground_truth.csv``.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np

from cellkit.data import io, synth
from cellkit.errors import DataError

EVENT_TYPES = ("division", "turn", "burst", "death", "entry")
"""The planted event types of the synthetic videos, in the words of ``ground_truth.csv``."""

FRAME_DTYPES = (np.uint8, np.uint16)
_TIME = re.compile(r"t(\d+)$", re.IGNORECASE)
_SKIP_FOLDER = re.compile(r"_(GT|ST|RES)$", re.IGNORECASE)
# Label images and masks (segmentations, tracking annotations) share the TIFF format but are not videos.
_NOT_FRAMES = re.compile(r"mask|label|(^|[_\-.])seg|man_track|_(GT|ST|RES)$", re.IGNORECASE)
CHANNELS = {"red": 0, "green": 1, "blue": 2}
"""Named channels of an RGB(A) frame; :func:`read_frames` takes one of them (phase contrast saved as RGB repeats it)."""


# ---------------------------------------------------------------- reading real layouts

def time_index(path) -> int:
    """Return the time index at the end of a frame's file name (``t007.tif`` -> 7, ``...xy01t12.tif`` -> 12).

    Raises
    ------
    DataError
        The name does not end in ``t`` followed by digits.
    """
    stem = Path(path).stem
    m = _TIME.search(stem)
    if not m:
        raise DataError(f"{path}: cannot parse a time index from the file name; expected a name ending in "
                        f"'t' and the frame number, like t000.tif or 20180101ef002xy01t01.tif")
    return int(m.group(1))


def list_frames(folder) -> list[Path]:
    """Return the TIFF frames of a folder in time order (natural sort on the time index in their names).

    Raises
    ------
    FileNotFoundError
        The folder does not exist.
    DataError
        No TIFF in the folder, a name without a time index, or two files with the same index.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"video folder not found: {folder}")
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in io.TIFF_SUFFIXES
             and not p.name.startswith(".") and not _NOT_FRAMES.search(p.stem)]
    if not files:
        raise DataError(f"{folder}: no frames found; expected single-frame TIFFs named by time index "
                        f"(t000.tif, t001.tif, ...)")
    indexed = sorted((time_index(p), p) for p in files)
    seen: dict[int, Path] = {}
    for t, p in indexed:
        if t in seen:
            raise DataError(f"{folder}: frames {seen[t].name} and {p.name} have the same time index {t}")
        seen[t] = p
    return [p for _, p in indexed]


def _take_channel(image: np.ndarray, channel, where: str, frame_ndim: int = 2) -> np.ndarray:
    """Return the grey frame(s) of ``image``: itself when grey, its named channel when RGB(A)."""
    if image.ndim == frame_ndim + 1 and image.shape[-1] in (3, 4):
        if channel is None:
            raise DataError(f"{where}: shape {image.shape} is a colour (RGB) image; pass channel='red', 'green' or "
                            f"'blue' to read one channel as the grey frame (phase contrast saved as RGB repeats the "
                            f"same values in each)")
        if channel not in CHANNELS:
            raise ValueError(f"channel={channel!r}: expected one of {', '.join(CHANNELS)}")
        return image[..., CHANNELS[channel]]
    return image


def _check_frame(image: np.ndarray, where: str, channel=None) -> np.ndarray:
    image = _take_channel(image, channel, where)
    if image.dtype not in FRAME_DTYPES:
        raise DataError(f"{where}: pixel dtype {image.dtype}; expected an 8- or 16-bit grey frame (uint8 or uint16)")
    if image.ndim != 2:
        raise DataError(f"{where}: shape {image.shape}; expected one grey 2-D frame (H, W)")
    return image


def read_frames(path, *, channel: str | None = None) -> np.ndarray:
    """Return a video as a ``(T, H, W)`` uint8 or uint16 array, from a folder of frames or one TIFF stack.

    Parameters
    ----------
    path : str or pathlib.Path
        A folder of single-frame TIFFs (ordered by the time index in their names), or a
        multi-page TIFF file whose pages are the frames.  Files named like masks or label
        images (``mask``, ``label``, ``seg``, ``man_track``) are not frames and are skipped.
    channel : {"red", "green", "blue"}, optional
        For RGB(A) frames: the channel read as the grey frame.  Required for colour frames
        (no silent averaging); ignored for grey ones.

    Raises
    ------
    DataError
        No frames, frames of different sizes or dtypes, a frame that is not 8- or 16-bit
        grey, a colour frame without ``channel``, or a name without a time index; the file is named.
    """
    path = Path(path)
    if path.is_file():
        stack = _take_channel(io.read_image(path), channel, str(path), frame_ndim=3)
        if stack.ndim != 3:
            raise DataError(f"{path}: shape {stack.shape}; expected a multi-page stack of grey frames (T, H, W)")
        if stack.dtype not in FRAME_DTYPES:
            raise DataError(f"{path}: pixel dtype {stack.dtype}; expected 8- or 16-bit frames (uint8 or uint16)")
        return stack
    frames = list_frames(path)
    first = _check_frame(io.read_image(frames[0]), str(frames[0]), channel)
    out = np.empty((len(frames),) + first.shape, first.dtype)
    out[0] = first
    for i, p in enumerate(frames[1:], start=1):
        image = _check_frame(io.read_image(p), str(p), channel)
        if image.shape != first.shape:
            raise DataError(f"{p}: frame size {image.shape}, but {frames[0].name} is {first.shape}; "
                            f"every frame of a video must have the same size")
        if image.dtype != first.dtype:
            raise DataError(f"{p}: dtype {image.dtype}, but {frames[0].name} is {first.dtype}")
        out[i] = image
    return out


def list_videos(root) -> list[Path]:
    """Return the videos under ``root``: its sub-folders holding frames (CTC's ``01``, ``02``), or its TIFF stacks.

    Annotation folders of the Cell Tracking Challenge (``01_GT``, ``01_ST``, ``*_RES``)
    and mask or label stacks (names with ``mask``, ``label``, ``seg``) are skipped: they are
    TIFFs but not videos.  A ``root`` that itself holds ``t*.tif`` frames is one video.

    Raises
    ------
    FileNotFoundError
        ``root`` does not exist.
    DataError
        Nothing under ``root`` looks like a video.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"video folder not found: {root}")
    tiffs = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in io.TIFF_SUFFIXES
                   and not _NOT_FRAMES.search(p.stem) and not p.name.startswith("."))
    if tiffs and all(_TIME.search(p.stem) for p in tiffs):
        return [root]
    videos = [p for p in sorted(root.iterdir()) if p.is_dir() and not _SKIP_FOLDER.search(p.name)
              and not _NOT_FRAMES.search(p.name) and not p.name.startswith(".")
              and any(q.suffix.lower() in io.TIFF_SUFFIXES and not _NOT_FRAMES.search(q.stem) for q in p.iterdir())]
    videos += tiffs
    if not videos:
        raise DataError(f"{root}: no video found; expected sub-folders of frames (01/t000.tif, ...), "
                        f"frames named by time index, or multi-page TIFF stacks")
    return videos


def fit_frames(frames: np.ndarray, size: int, *, mode: str = "resize", percentiles=(0.5, 99.5)) -> np.ndarray:
    """Return a video as float32 ``(T, size, size)`` in [0, 1]: centre-cropped to a square, resized, contrast-stretched.

    Parameters
    ----------
    frames : numpy.ndarray
        ``(T, H, W)`` uint8 or uint16 (any H, W).
    size : int
        Side of the output frames, in pixels.
    mode : {"resize", "crop"}
        ``"resize"`` crops the central square and shrinks it to ``size`` by **area averaging**
        (each output pixel is the mean of the input pixels it covers: Pillow's box filter), so that
        no pixel is skipped: a bilinear 1022 -> 64 px resize samples about 4 of every 256 pixels,
        keeps their photon noise and exaggerates the change from frame to frame; enlarging uses bilinear;
        ``"crop"`` only takes the central ``size x size`` window (frames must be large enough).
    percentiles : (float, float)
        The video's intensities at these percentiles map to 0 and 1 (the same for every frame
        of the video, so brightness changes over time are kept).
    """
    from scipy import ndimage

    frames = np.asarray(frames)
    if frames.ndim != 3:
        raise ValueError(f"frames: shape {frames.shape}, expected (T, H, W)")
    if frames.dtype not in FRAME_DTYPES:
        raise ValueError(f"frames: dtype {frames.dtype}, expected uint8 or uint16")
    if not isinstance(size, (int, np.integer)) or size < 4:
        raise ValueError(f"size={size!r}: expected an integer of at least 4 pixels")
    if mode not in ("resize", "crop"):
        raise ValueError(f"mode={mode!r}: expected 'resize' or 'crop'")
    t, h, w = frames.shape
    side = min(h, w) if mode == "resize" else size
    if side > min(h, w):
        raise ValueError(f"mode='crop' needs frames of at least {size}x{size}, got {h}x{w}; use mode='resize'")
    top, left = (h - side) // 2, (w - side) // 2
    x, _ = io.to_float01(frames[:, top:top + side, left:left + side])
    if side > size:
        x = np.stack([area_resize(f, size) for f in x])
    elif side < size:
        x = np.stack([ndimage.zoom(f, size / side, order=1, grid_mode=True, mode="nearest") for f in x])
    lo, hi = np.percentile(x, percentiles)
    return np.clip((x - lo) / max(hi - lo, 1e-6), 0, 1).astype(np.float32)


def area_resize(image: np.ndarray, size: int) -> np.ndarray:
    """Return a square float image shrunk to ``(size, size)`` by area averaging (Pillow's box filter).

    Each output pixel is the mean of the input area it covers (fractional pixels weighted by
    their overlap), the resampling that keeps a downsampled frame's noise and motion honest.
    """
    from PIL import Image

    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 2:
        raise ValueError(f"image: shape {image.shape}, expected one 2-D frame")
    if not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"size={size!r}: expected a positive integer")
    return np.asarray(Image.fromarray(image, mode="F").resize((size, size), Image.Resampling.BOX), dtype=np.float32)


def make_sequences(video: np.ndarray, length: int, *, stride: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(sequences (n, length, H, W, 1), start frame of each)`` cut from a ``(T, H, W)`` video.

    Windows overlap when ``stride < length``; a frame then appears in several sequences.
    """
    video = np.asarray(video, dtype=np.float32)
    if video.ndim != 3:
        raise ValueError(f"video: shape {video.shape}, expected (T, H, W)")
    if not isinstance(length, (int, np.integer)) or not 2 <= length <= len(video):
        raise ValueError(f"length={length!r}: expected an integer between 2 and the {len(video)} frames of the video")
    if not isinstance(stride, (int, np.integer)) or stride < 1:
        raise ValueError(f"stride={stride!r}: expected a positive integer")
    starts = np.arange(0, len(video) - length + 1, stride)
    seqs = np.stack([video[s:s + length] for s in starts])[..., np.newaxis]
    return seqs, starts


def load_videos(folder, size: int, *, mode: str = "resize", channel: str | None = None) -> dict[str, np.ndarray]:
    """Return every video under ``folder`` as ``{name: float32 (T, size, size)}`` (see :func:`list_videos`)."""
    return {p.stem if p.is_file() else p.name: fit_frames(read_frames(p, channel=channel), size, mode=mode)
            for p in list_videos(folder)}


def has_events(folder) -> bool:
    """Return whether ``folder`` has a ``ground_truth.csv`` of planted events (synthetic copies do, real videos not)."""
    return (Path(folder) / "ground_truth.csv").is_file()


def read_events(folder) -> list[dict]:
    """Return the planted events of ``folder/ground_truth.csv`` as dicts ``{video, frame, event, cell}``.

    Raises
    ------
    DataError
        The file is missing or lacks the columns video, frame, event.
    """
    path = Path(folder) / "ground_truth.csv"
    if not path.is_file():
        raise DataError(f"{path}: not found; planted events exist only for the synthetic videos "
                        f"(real videos have no ground truth of 'interesting' frames)")
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if rows and not {"video", "frame", "event"} <= set(rows[0]):
        raise DataError(f"{path}: expected the columns video,frame,event,cell; got {', '.join(rows[0])}")
    return [dict(video=r["video"], frame=int(r["frame"]), event=r["event"], cell=int(r.get("cell") or -1))
            for r in rows]


# ---------------------------------------------------------------- synthetic videos

def _simulate(n_frames: int, size: int, g: np.random.Generator, events: list[tuple[int, str]], strength: float = 1.0):
    """Return per-frame lists of cells (row, col, radius, elongation, angle, brightness) and the event list.

    Cells follow persistent random walks (velocity = 0.85 * previous + noise), repel
    each other softly when they touch, and change shape slowly; the planted events
    override this at their frames.  ``strength`` scales how abrupt they are (1: the lab's videos):
    the speed of a burst and of a turn or entry, how far daughter cells are pushed apart, how fast a
    dying cell shrinks.
    """
    r0 = size / 12
    n_cells = int(g.integers(4, 7))
    cells = []
    for p in synth.place_points(n_cells, (size, size), g, min_distance=3 * r0, margin=2 * r0):
        cells.append(dict(pos=p.astype(float), vel=g.normal(0, 0.4, 2) * r0 / 4, r=r0 * g.uniform(0.85, 1.15),
                          el=1.3, ang=g.uniform(0, np.pi), bright=g.uniform(0.6, 0.8), alive=True,
                          burst=0, dying=0, visible=True, shape_seed=int(g.integers(1 << 30))))
    by_frame = {f: kind for f, kind in events}
    planted = []
    history = []
    for t in range(n_frames):
        kind = by_frame.get(t)
        live = [i for i, c in enumerate(cells) if c["alive"] and c["dying"] == 0 and c["visible"]]
        if kind is not None and (live or kind == "entry"):
            if kind == "entry":
                side = int(g.integers(4))
                along = g.uniform(0.3, 0.7) * size
                pos = [(0.5 * r0, along), (size - 0.5 * r0, along), (along, 0.5 * r0), (along, size - 0.5 * r0)][side]
                inward = [(1, 0), (-1, 0), (0, 1), (0, -1)][side]
                cells.append(dict(pos=np.array(pos, float), vel=np.array(inward, float) * r0 / 3 * strength, r=r0, el=1.3,
                                  ang=0.0, bright=0.75, alive=True, burst=0, dying=0, visible=True,
                                  shape_seed=int(g.integers(1 << 30))))
                planted.append((t, kind, len(cells) - 1))
            else:
                i = int(g.choice(live))
                c = cells[i]
                if kind == "division":
                    c["r"] /= np.sqrt(2)
                    direction = np.array([np.cos(c["ang"]), np.sin(c["ang"])])
                    child = dict(c, pos=c["pos"] + direction * c["r"] * 1.2, vel=direction * r0 / 4 * strength,
                                 shape_seed=int(g.integers(1 << 30)))
                    c["pos"] = c["pos"] - direction * c["r"] * 1.2
                    c["vel"] = -direction * r0 / 4 * strength
                    cells.append(child)
                elif kind == "turn":
                    speed = max(np.linalg.norm(c["vel"]), r0 / 5) * strength
                    heading = np.arctan2(c["vel"][1], c["vel"][0]) + np.pi * g.choice([-0.75, 0.75, 1.0])
                    c["vel"] = speed * np.array([np.cos(heading), np.sin(heading)])
                elif kind == "burst":
                    c["burst"] = 3
                elif kind == "death":
                    c["dying"] = 1
                planted.append((t, kind, i))
        frame_cells = []
        for i, c in enumerate(cells):
            if not c["alive"] or not c["visible"]:
                continue
            if c["dying"]:
                c["r"] *= 0.8 ** strength
                c["bright"] = min(1.0, c["bright"] + 0.08)
                c["el"] = 1.0
                c["dying"] += 1
                if c["r"] < r0 * 0.25:
                    c["alive"] = False
            else:
                c["vel"] = 0.85 * c["vel"] + g.normal(0, r0 / 25, 2)
                for j, o in enumerate(cells):  # soft contact repulsion
                    if j != i and o["alive"] and o["visible"]:
                        d = c["pos"] - o["pos"]
                        dist = np.linalg.norm(d) + 1e-6
                        if dist < c["r"] + o["r"]:
                            c["vel"] += d / dist * r0 / 10
                step = c["vel"] * (1.0 + 3.0 * strength if c["burst"] else 1.0)
                c["burst"] = max(0, c["burst"] - 1)
                c["pos"] = c["pos"] + step
                c["ang"] = np.arctan2(c["vel"][1], c["vel"][0])
                c["el"] = float(np.clip(c["el"] + g.normal(0, 0.05), 1.0, 1.8))
                c["r"] = float(np.clip(c["r"] * np.exp(g.normal(0, 0.02)), r0 * 0.5, r0 * 1.4))
                if not (-2 * r0 < c["pos"][0] < size + 2 * r0 and -2 * r0 < c["pos"][1] < size + 2 * r0):
                    c["visible"] = False  # wandered off the field
                    continue
            frame_cells.append((i, tuple(c["pos"]), c["r"], c["el"], c["ang"], c["bright"], c["shape_seed"]))
        history.append(frame_cells)
    return history, planted


def scored_frames(n_frames: int) -> tuple[int, int]:
    """Return ``(first, last)``: the frames of a video that every lab-05 score covers (frame 0 has no previous
    frame to differ from, the last frame is never inside an input sequence)."""
    return 1, n_frames - 2


def _plan_events(n_frames: int, g: np.random.Generator, gap: int) -> list[tuple[int, str]]:
    """Return ``(frame, event)`` pairs: every event type once, in random order, at least ``gap`` frames apart.

    Every event's frame is uniform over the scored frames (:func:`scored_frames`), so a score that only
    knows where a frame sits cannot find them.  (Redrawing until the frames are ``gap`` apart would
    favour the ends of the video; instead the spacing is drawn on a circle of the scored frames and
    turned by a uniform offset, which keeps each frame's distribution exactly uniform.)
    """
    kinds = [str(k) for k in g.permutation(EVENT_TYPES)]
    first, last = scored_frames(n_frames)
    span = last - first + 1
    gap = max(1, min(gap, span // len(kinds)))
    for _ in range(10_000):
        frames = np.sort(g.integers(0, span, size=len(kinds)))
        if np.all(np.diff(np.append(frames, frames[0] + span)) >= gap):
            frames = np.sort((frames + g.integers(span)) % span) + first
            return [(int(f), k) for f, k in zip(frames, kinds)]
    raise RuntimeError(f"cannot place {len(kinds)} events {gap} frames apart in {n_frames} frames")


def _render(frame_cells, size: int, g: np.random.Generator, illum: np.ndarray) -> np.ndarray:
    signal = np.zeros((size, size), np.float32)
    for _, pos, r, el, ang, bright, shape_seed in frame_cells:
        mask = synth.blob((size, size), pos, r, np.random.default_rng(shape_seed), irregularity=0.2,
                          elongation=el, angle=ang)
        signal = np.maximum(signal, mask * bright)
    return synth.fluorescence(signal, g, blur=max(size / 96, 0.7), photons=300.0, background=0.05,
                              illumination_field=illum)


def make_synthetic(dest: Path, *, fast: bool, seed: int, strength: float = 1.0) -> None:
    """Write synthetic time-lapse videos of migrating cells in the Cell Tracking Challenge layout.

    Layout written under ``dest``: one folder per video (``01``, ``02``, ...) of 16-bit
    single-frame TIFFs ``t000.tif, t001.tif, ...``, and ``ground_truth.csv`` with the
    columns ``video,frame,event,cell``: the frame at which each planted event happens.
    Each video plants every event type of :data:`EVENT_TYPES` once, at frames drawn uniformly over the
    scored frames 1 .. T-2, at least 5 apart (fast: 4 videos of 40 frames of 64x64; full: 8 videos of
    120 frames of 128x128).
    Frames are larger than the models' input so that the reader's resize is exercised.
    ``strength`` scales how abrupt the events are (see :func:`_simulate`); the lab uses 1.
    """
    if not strength > 0:
        raise ValueError(f"strength={strength!r}: expected a positive number (1 = the lab's events)")
    dest = Path(dest)
    g = np.random.default_rng(seed)
    n_videos, n_frames, size = (4, 40, 64) if fast else (8, 120, 128)
    rows = []
    for v in range(n_videos):
        name = f"{v + 1:02d}"
        plan = _plan_events(n_frames, g, gap=5)
        history, planted = _simulate(n_frames, size, g, plan, strength)
        illum = synth.illumination((size, size), g, strength=0.15)
        folder = dest / name
        folder.mkdir(parents=True, exist_ok=True)
        for t, cells in enumerate(history):
            io.write_tiff(folder / f"t{t:03d}.tif", synth.to_uint16(_render(cells, size, g, illum)))
        rows += [(name, t, kind, cell) for t, kind, cell in planted]
    with open(dest / "ground_truth.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["video", "frame", "event", "cell"])
        w.writerows(rows)


__all__ = ["EVENT_TYPES", "CHANNELS", "time_index", "list_frames", "read_frames", "list_videos", "fit_frames",
           "area_resize", "make_sequences", "load_videos", "has_events", "read_events", "scored_frames",
           "make_synthetic"]
