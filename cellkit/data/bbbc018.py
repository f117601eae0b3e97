"""Lab 06's data: BBBC018, human HT29 colon-cancer cells with 14 diverse morphologies.

BBBC018 (Broad Bioimage Benchmark Collection) holds 56 fields of view, 4 from each
of 14 samples, each 512x512 pixels, imaged in three channels with one file per
channel: Hoechst 33342 (``DNA``, the nucleus), phospho-histone H3 (``pH3``,
cells in mitosis) and phalloidin (``actin``, the cytoplasm).  The archive
``BBBC018_v1_images.zip`` names its files ``<wellidx>-<channel>.DIB``, where
``wellidx`` is a five-digit well index and ``channel`` is ``DNA``, ``actin`` or
``pH3``.  The four fields of a sample carry four *consecutive* well indices, so
the loader sorts the indices and cuts them into runs of 4 consecutive numbers
(:func:`group_wells`): a sample is named by its first well index and its fields
are numbered 1 to 4 in order.  Splitting the index as 4 + 1 digits (the lab's
source report names its morphologies ``0933x`` and ``1357x``) agrees only while
a run stays inside one decade: ``03997 03998 03999 04000`` is one sample, not
two.  Any
other naming, for example ``plateA_f1_d0.tif`` for DNA, ``_d1`` for pH3 and
``_d2`` for actin, is read by passing a ``pattern`` and a ``channels`` mapping
to :func:`load_bbbc018`.

The ``.DIB`` files come from a Cellomics ArrayScan.  Their layout, as read by
CellProfiler 1.0 (``CPsubfunctions/CPimread.m``) and by Bio-Formats
(``components/formats-gpl/src/loci/formats/in/CellomicsReader.java``): no ``BM``
file header; a 52-byte header whose first 40 bytes follow the Windows
BITMAPINFOHEADER (little-endian: header length 40 at byte 0, width at 4, height
at 8, planes at 12, bits per pixel 16 at 14, compression at 16); then, from byte
52, ``planes`` planes of ``width x height`` little-endian ``uint16`` pixels,
top row first, no row padding.  The cameras are 12-bit (values 0-4095).
Pillow decodes 16-bit bitmaps as RGB555 colour, which scrambles the intensities,
so :func:`read_dib` parses them itself; ordinary bitmaps (with a ``BM`` header)
go to Pillow.  TIFF and PNG files are read by :func:`cellkit.data.io.read_image`.

:func:`make_synthetic` writes a synthetic copy in the same layout with 14 planted
morphologies; two of them (samples ``09331`` and ``13571``) differ *only* in
staining intensity and cell density, like the pair the original could not separate.
"""

from __future__ import annotations

import csv
import re
import struct
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy import ndimage

from cellkit.data import synth
from cellkit.data.io import IMAGE_SUFFIXES, read_image, to_float01
from cellkit.errors import DataError

NAME = "bbbc018"
IMAGE_FOLDER = "BBBC018_v1_images"
CHANNELS = {"DNA": "DNA", "pH3": "pH3", "actin": "actin"}
"""Default channel mapping: file-name token -> channel name, in the order of the channel axis."""
DEFAULT_PATTERN = r"(?P<well>\d{5})-(?P<channel>DNA|actin|pH3)\.(?i:dib|bmp|tif|tiff|png)"
"""The real BBBC018 naming, ``<5-digit well index>-<channel>.DIB``; samples are runs of consecutive indices."""
FIELDS_PER_SAMPLE = 4
DIB_HEADER_BYTES = 52
"""Pixels of a Cellomics DIB start here (a 40-byte BITMAPINFOHEADER and 12 more bytes)."""
OVERLAPPING_PAIR = ("09331", "13571")
"""The two synthetic samples that differ only in staining intensity and cell density."""
_DIB_SUFFIXES = (".dib",)


# --------------------------------------------------------------------------- reading


def read_dib(path) -> np.ndarray:
    """Return the grey pixels of a Cellomics ``.DIB`` (or an ordinary ``BM`` bitmap) as a 2-D array.

    A Cellomics DIB (no ``BM`` file header, header length 40, 16 bits per pixel;
    the layout is in this module's docstring) is parsed here and returned as
    ``uint16``, top row first; when it holds several planes, the first one.
    A file that starts with ``BM`` is an ordinary Windows bitmap and goes to
    Pillow; a colour result whose channels are equal is reduced to one channel.

    Raises
    ------
    DataError
        The file is too short, has another header length or bit depth, is
        compressed, or holds fewer pixel bytes than its header says.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}")
    raw = path.read_bytes()
    if raw[:2] == b"BM":  # an ordinary bitmap file (8-bit grey, 24-bit colour): Pillow decodes it correctly
        return _grey(read_image(path), path)
    if len(raw) < DIB_HEADER_BYTES:
        raise DataError(f"{path}: {len(raw)} bytes, too short for the {DIB_HEADER_BYTES}-byte Cellomics DIB header; "
                        f"the file may be truncated")
    header_size, width, height, planes, bits, compression = struct.unpack_from("<IiiHHI", raw, 0)
    if header_size != 40:
        raise DataError(f"{path}: header length {header_size}, expected 40 (a Cellomics DIB)")
    if bits != 16:
        raise DataError(f"{path}: {bits} bits per pixel, expected 16 (a Cellomics DIB)")
    if compression != 0:
        raise DataError(f"{path}: compression {compression}, expected 0 (uncompressed); compressed DIBs are not read")
    if width <= 0 or height <= 0:
        raise DataError(f"{path}: size {width}x{height} in the header, expected positive width and height")
    need = DIB_HEADER_BYTES + 2 * width * height * max(planes, 1)
    if len(raw) < need:
        raise DataError(f"{path}: {len(raw):,} bytes, expected at least {need:,} for {max(planes, 1)} plane(s) of "
                        f"{width}x{height} 16-bit pixels after the {DIB_HEADER_BYTES}-byte header; the file is truncated")
    pixels = np.frombuffer(raw, dtype="<u2", count=width * height, offset=DIB_HEADER_BYTES)
    return pixels.reshape(height, width).astype(np.uint16)


def _grey(image: np.ndarray, path) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[-1] in (3, 4):
        rgb = image[..., :3]
        if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
            return rgb[..., 0]
        raise DataError(f"{path}: a colour image (shape {image.shape}) where one grey channel was expected")
    raise DataError(f"{path}: shape {image.shape}, expected one grey channel (H, W)")


def read_channel(path) -> np.ndarray:
    """Return one channel file (``.DIB``/``.BMP``, ``.tif``/``.tiff`` or ``.png``) as a 2-D array in its stored dtype."""
    path = Path(path)
    if path.suffix.lower() in _DIB_SUFFIXES:
        return read_dib(path)
    return _grey(read_image(path), path)


def group_wells(wells, *, fields_per_sample: int = FIELDS_PER_SAMPLE) -> dict:
    """Return ``{well index: (sample, field)}``: sorted well indices cut into runs of consecutive numbers.

    The fields of one sample carry consecutive well indices.  The sorted indices
    are split where a number is skipped, and each run is cut into blocks of
    ``fields_per_sample``; a sample is named by the first well index of its
    block, its fields are ``"1"``, ``"2"``, ... in order.  A run crossing a decade
    stays one sample, which reading the index as 4 + 1 digits would split.

    Parameters
    ----------
    wells : iterable of str
        Well indices as written in the file names (digits, e.g. ``"03997"``); repeats are ignored.
    fields_per_sample : int
        Fields of view per sample (BBBC018: 4).

    Raises
    ------
    DataError
        A run of consecutive indices is not a whole number of samples.

    Examples
    --------
    >>> group_wells(["03997", "03998", "03999", "04000"])["04000"]
    ('03997', '4')
    """
    wells = sorted(set(wells), key=int)
    if fields_per_sample < 1:
        raise ValueError(f"fields_per_sample={fields_per_sample}: expected at least 1")
    bad = [w for w in wells if not w.isdigit()]
    if bad:
        raise ValueError(f"wells: {bad[:3]} are not well indices; expected strings of digits")
    runs, run = [], []
    for w in wells:
        if run and int(w) != int(run[-1]) + 1:
            runs.append(run)
            run = []
        run.append(w)
    if run:
        runs.append(run)
    out = {}
    for run in runs:
        if len(run) % fields_per_sample:
            raise DataError(f"well indices {run[0]}-{run[-1]}: a run of {len(run)} consecutive indices, expected a "
                            f"multiple of {fields_per_sample} (one index per field of view); is a file missing?")
        for start in range(0, len(run), fields_per_sample):
            for k, w in enumerate(run[start:start + fields_per_sample]):
                out[w] = (run[start], str(k + 1))
    return out


def find_fields(folder, *, pattern: str = DEFAULT_PATTERN, channels: dict | None = None,
                fields_per_sample: int = FIELDS_PER_SAMPLE) -> dict:
    """Return ``{sample: {field: {channel: path}}}`` for the channel files under ``folder``.

    Parameters
    ----------
    folder : str or pathlib.Path
        Searched recursively for image files.
    pattern : str
        A regular expression matched against each file name (the whole name), with
        the named group ``channel`` and either ``well`` (a well index; samples and
        fields then come from :func:`group_wells`, the real BBBC018 naming) or
        ``sample`` and ``field``.
    channels : dict, optional
        File-name token -> channel name, e.g. ``{"d0": "DNA", "d1": "pH3", "d2": "actin"}``;
        default :data:`CHANNELS`.  Files whose token is not in the mapping are ignored.
    fields_per_sample : int
        With a ``well`` group: fields of view per sample.

    Raises
    ------
    ValueError
        ``pattern`` lacks the named groups.
    DataError
        The folder holds no image, no file name matches ``pattern``, or the well indices do not form whole samples.
    """
    channels = dict(CHANNELS if channels is None else channels)
    if not channels:
        raise ValueError("channels: expected a non-empty mapping of file-name token to channel name")
    regex = re.compile(pattern)
    groups = set(regex.groupindex)
    if "channel" not in groups or not ("well" in groups or {"sample", "field"} <= groups):
        raise ValueError(f"pattern={pattern!r}: expected the named groups channel and either well, or sample and "
                         f"field (found {', '.join(sorted(groups)) or 'none'})")
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"BBBC018 image folder not found: {folder}")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES + _DIB_SUFFIXES
                   and not p.name.startswith("."))
    if not files:
        raise DataError(f"{folder}: no image files (.DIB, .BMP, .tif, .png) found; expected {IMAGE_FOLDER}/<wellidx>-<channel>.DIB")
    matches = [(path, m) for path in files if (m := regex.fullmatch(path.name)) and m["channel"] in channels]
    if not matches:
        shown = ", ".join(p.name for p in files[:3])
        raise DataError(f"{folder}: none of the {len(files):,} image files matches the pattern {pattern!r} with channel "
                        f"tokens {sorted(channels)} (first files: {shown}); pass pattern= and channels= for your naming")
    if "well" in groups:
        where = group_wells([m["well"] for _, m in matches], fields_per_sample=fields_per_sample)
    found: dict = defaultdict(lambda: defaultdict(dict))
    for path, m in matches:
        sample, field = where[m["well"]] if "well" in groups else (m["sample"], m["field"])
        name = channels[m["channel"]]
        slot = found[sample][field]
        if name in slot:
            raise DataError(f"two files for sample {sample}, field {field}, channel {name}: {slot[name]} and {path}")
        slot[name] = path
    return {s: dict(f) for s, f in sorted(found.items())}


def load_bbbc018(folder, *, pattern: str = DEFAULT_PATTERN, channels: dict | None = None) -> tuple[np.ndarray, dict]:
    """Return ``(images, meta)``: every field as float32 in [0, 1], shaped (samples, fields, channels, H, W).

    Parameters
    ----------
    folder : str or pathlib.Path
        A folder holding the channel files anywhere below it (e.g. the dataset root with ``BBBC018_v1_images/``).
    pattern, channels
        See :func:`find_fields`; the order of ``channels`` is the order of the channel axis.

    Returns
    -------
    images : numpy.ndarray
        float32, shape ``(S, F, C, H, W)``, integers divided by their dtype's maximum (the scaling is in ``meta``).
    meta : dict
        ``samples`` (S sample ids, sorted), ``fields`` (F field ids per sample, sorted), ``channels``
        (C names), ``files`` (S x F x C paths), ``scaling`` (a sentence), ``dtype`` (stored pixel dtype).

    Raises
    ------
    DataError
        A field lacks a channel file, samples have different numbers of fields, or the
        images differ in size or dtype; the message names the file or the sample.
    """
    channels = dict(CHANNELS if channels is None else channels)
    names = list(dict.fromkeys(channels.values()))
    found = find_fields(folder, pattern=pattern, channels=channels)
    counts = {s: len(f) for s, f in found.items()}
    if len(set(counts.values())) != 1:
        shown = ", ".join(f"{s}: {n}" for s, n in counts.items())
        raise DataError(f"samples have different numbers of fields of view ({shown}); expected the same number for "
                        f"every sample (BBBC018 has 4): is a file missing or misnamed?")
    stack, paths, first, dtype = [], [], None, None
    for sample, fields in found.items():
        for field, chans in sorted(fields.items()):
            lacking = [c for c in names if c not in chans]
            if lacking:
                have = ", ".join(p.name for p in chans.values())
                raise DataError(f"sample {sample}, field {field}: no file for channel(s) {', '.join(lacking)} "
                                f"(found {have}); expected one file per channel {', '.join(names)}")
            for c in names:
                image = read_channel(chans[c])
                if first is None:
                    first, dtype, origin = image.shape, image.dtype, chans[c]
                if image.shape != first:
                    raise DataError(f"{chans[c]}: size {image.shape}, expected {first} like {origin}")
                if image.dtype != dtype:
                    raise DataError(f"{chans[c]}: dtype {image.dtype}, expected {dtype} like {origin}")
                stack.append(image)
                paths.append(str(chans[c]))
    s, f, c = len(found), next(iter(counts.values())), len(names)
    raw = np.stack(stack).reshape(s, f, c, *first)
    images, scaling = to_float01(raw, name=str(folder))
    meta = {
        "samples": list(found),
        "fields": [sorted(found[k]) for k in found],
        "channels": names,
        "files": np.array(paths, dtype=object).reshape(s, f, c),
        "scaling": scaling,
        "dtype": str(dtype),
    }
    return images, meta


def load_ground_truth(folder) -> dict:
    """Return ``{sample: morphology}`` from a synthetic copy's ``ground_truth.csv`` (the morphology names)."""
    path = Path(folder) / "ground_truth.csv"
    if not path.is_file():
        raise DataError(f"{path}: no ground truth here; only synthetic copies have one (real BBBC018 samples are "
                        f"each their own morphology, so use the sample id as the label)")
    with open(path, newline="") as fh:
        return {row["sample"]: row["morphology"] for row in csv.DictReader(fh)}


# --------------------------------------------------------------------------- writing


def write_dib(path, image: np.ndarray) -> Path:
    """Return ``path`` after writing a 2-D uint16 image as a Cellomics DIB (52-byte header, rows top first)."""
    image = np.asarray(image)
    if image.ndim != 2 or image.dtype != np.uint16:
        raise ValueError(f"image: shape {image.shape} dtype {image.dtype}, expected a 2-D uint16 array")
    h, w = image.shape
    pixels = np.ascontiguousarray(image, "<u2").tobytes()
    header = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 16, 0, len(pixels), 0, 0, 0, 0)
    header += bytes(DIB_HEADER_BYTES - len(header))
    from cellkit.atomic import atomic_path

    with atomic_path(path, suffix=".DIB") as tmp:
        Path(tmp).write_bytes(header + pixels)
    return Path(path)


# Fourteen morphologies: nucleus radius (px), irregularity, elongation, mitotic fraction, actin texture scale (px),
# actin strength, cells per 512x512 field, staining gain, cytoplasm/nucleus size ratio.
_FIELDS = ("nucleus_radius", "irregularity", "elongation", "mitotic_fraction", "actin_scale", "actin_strength",
           "cells_per_field", "gain", "cytoplasm_ratio")
MORPHOLOGIES = {
    "0073": ("small round", (6, 0.05, 1.0, 0.05, 1.5, 0.6, 130, 1.0, 2.0)),
    "0112": ("large round", (13, 0.05, 1.0, 0.05, 1.5, 0.6, 60, 1.0, 1.8)),
    "0245": ("elongated", (8, 0.10, 3.0, 0.05, 3.0, 0.7, 90, 1.0, 2.2)),
    "0381": ("mitotic arrest", (8, 0.10, 1.0, 0.60, 1.5, 0.6, 90, 1.0, 1.8)),
    "0433": ("irregular nuclei", (9, 0.55, 1.2, 0.05, 1.5, 0.6, 80, 1.0, 2.0)),
    "0586": ("spread, strong actin", (8, 0.10, 1.0, 0.05, 4.0, 1.0, 50, 1.0, 3.2)),
    "0642": ("fine actin texture", (8, 0.10, 1.0, 0.05, 0.7, 1.0, 90, 1.0, 2.2)),
    "0719": ("sparse", (8, 0.10, 1.0, 0.05, 1.5, 0.6, 25, 1.0, 2.0)),
    "0857": ("crowded small", (5, 0.15, 1.3, 0.10, 1.0, 0.5, 220, 1.0, 1.6)),
    "0933": ("dim sparse (pair A)", (9, 0.15, 1.3, 0.10, 2.0, 0.7, 60, 0.65, 2.0)),
    "1077": ("giant nuclei", (17, 0.20, 1.1, 0.02, 2.0, 0.6, 30, 1.0, 1.6)),
    "1198": ("elongated mitotic", (7, 0.10, 2.2, 0.35, 2.5, 0.7, 100, 1.0, 2.0)),
    "1357": ("bright dense (pair B)", (9, 0.15, 1.3, 0.10, 2.0, 0.7, 110, 1.0, 2.0)),
    "1402": ("weak actin, round", (10, 0.05, 1.0, 0.10, 1.5, 0.15, 80, 1.0, 1.5)),
}
"""Key -> (morphology name, parameters in the order of ``_FIELDS``); the sample's wells are ``<key>1`` to ``<key>4``
(sample id ``<key>1``); 0933 and 1357 differ only in gain and density."""


def _paste(canvas: np.ndarray, patch: np.ndarray, top: int, left: int, mode: str = "max") -> None:
    h, w = canvas.shape
    ph, pw = patch.shape
    t0, l0 = max(top, 0), max(left, 0)
    t1, l1 = min(top + ph, h), min(left + pw, w)
    if t0 >= t1 or l0 >= l1:
        return
    src = patch[t0 - top:t1 - top, l0 - left:l1 - left]
    if mode == "max":
        np.maximum(canvas[t0:t1, l0:l1], src, out=canvas[t0:t1, l0:l1])
    else:
        canvas[t0:t1, l0:l1] += src


def render_field(params: dict, size: int, generator) -> tuple[np.ndarray, dict]:
    """Return ``(channels (3, size, size) float in [0, 1] ordered DNA, pH3, actin, counts)`` for one field of view.

    Cells grow in colonies (HT29 cells clump), so large parts of each field are
    background, as in the real images.  ``counts`` gives the number of cells and
    of mitotic (pH3-positive) cells drawn.
    """
    g = synth.rng(generator)
    dna = np.zeros((size, size), np.float32)
    ph3 = np.zeros_like(dna)
    actin = np.zeros_like(dna)
    n_cells = max(1, int(round(params["cells_per_field"] * (size / 512) ** 2 * g.uniform(0.85, 1.15))))
    n_colonies = int(g.integers(1, 4))
    centres = g.uniform(0.2 * size, 0.8 * size, size=(n_colonies, 2))
    # colony spread grows with the number of cells, so that density stays the morphology's own
    spread = 0.7 * params["nucleus_radius"] * params["cytoplasm_ratio"] * np.sqrt(n_cells / n_colonies)
    points = centres[g.integers(0, n_colonies, n_cells)] + g.normal(0, spread, size=(n_cells, 2))
    points = np.clip(points, 0, size - 1)
    fibres = synth.texture((size, size), g, scale=params["actin_scale"])
    n_mitotic = 0
    for y, x in points:
        mitotic = g.uniform() < params["mitotic_fraction"]
        n_mitotic += int(mitotic)
        r = params["nucleus_radius"] * g.uniform(0.85, 1.15) * (0.7 if mitotic else 1.0)
        rc = r * params["cytoplasm_ratio"] * (0.8 if mitotic else 1.0)
        half = int(np.ceil(rc * np.sqrt(params["elongation"]) * 1.6)) + 2
        shape = (2 * half + 1, 2 * half + 1)
        angle = g.uniform(0, np.pi)
        nucleus = synth.blob(shape, (half, half), r, g, irregularity=params["irregularity"],
                             elongation=1.0 if mitotic else params["elongation"], angle=angle)
        cell = synth.blob(shape, (half, half), rc, g, irregularity=0.2,
                          elongation=1.0 if mitotic else params["elongation"], angle=angle)
        top, left = int(round(y)) - half, int(round(x)) - half
        brightness = g.uniform(0.75, 1.0) * (1.6 if mitotic else 1.0)
        _paste(dna, nucleus * np.float32(0.55 * brightness), top, left)
        _paste(ph3, nucleus * np.float32(0.8 if mitotic else 0.04), top, left)
        _paste(actin, (cell & ~nucleus) * np.float32(0.35), top, left)
    cytoplasm = actin > 0
    actin = cytoplasm * (actin * (1 - params["actin_strength"]) + params["actin_strength"] * 0.7 * fibres)
    field = synth.illumination((size, size), g, strength=0.15)
    out = np.stack([
        synth.fluorescence(params["gain"] * dna, g, background=0.03, blur=1.0, photons=400, illumination_field=field),
        synth.fluorescence(params["gain"] * ph3, g, background=0.02, blur=1.2, photons=400, illumination_field=field),
        synth.fluorescence(params["gain"] * actin, g, background=0.03, blur=1.0, photons=400,
                           illumination_field=field),
    ])
    return out.astype(np.float32), {"cells": n_cells, "mitotic": n_mitotic}


def make_synthetic(dest: Path, *, fast: bool, seed: int, size: int | None = None) -> None:
    """Write a synthetic BBBC018 into ``dest``: 14 samples x 4 fields x 3 channel ``.DIB`` files, plus ground truth.

    Layout: ``BBBC018_v1_images/<key><field>-<DNA|pH3|actin>.DIB``, four consecutive
    well indices per sample (Cellomics DIBs, see :func:`write_dib`, holding 12-bit values),
    ``ground_truth.csv`` (``sample,morphology,name`` and the planted parameters)
    and ``fields.csv`` (cells and mitotic cells drawn per field).  Both modes
    write the real 512x512 fields (``fast`` is accepted for the registry's
    generator signature and changes nothing): lab 06 scores whole fields, and a
    256x256 field (the earlier fast size, about 22 cells against 86) was too
    small for the mean of its windows to tell its sample apart from the others
    (docs/performance.md, lab 06).  ``size`` (default 512) writes smaller fields
    of view at the same magnification, for quick tests.  Deterministic for a seed.
    """
    dest = Path(dest)
    size = 512 if size is None else int(size)
    if size < 64:
        raise ValueError(f"size={size}: expected a field side of at least 64 pixels")
    folder = dest / IMAGE_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    field_rows = []
    for k, (sample, (label, values)) in enumerate(MORPHOLOGIES.items()):
        params = dict(zip(_FIELDS, values))
        for field in range(1, 5):
            g = np.random.default_rng([seed, k, field])
            channels, counts = render_field(params, size, g)
            for name, image in zip(("DNA", "pH3", "actin"), channels):
                write_dib(folder / f"{sample}{field}-{name}.DIB", np.round(image * 4095).astype(np.uint16))
            field_rows.append({"sample": f"{sample}1", "field": field, **counts})
    with open(dest / "ground_truth.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["sample", "morphology", "name", *_FIELDS])
        writer.writeheader()
        for k, (sample, (label, values)) in enumerate(MORPHOLOGIES.items()):
            # the loader names a sample by its first well index, <sample>1
            writer.writerow({"sample": f"{sample}1", "morphology": k, "name": label, **dict(zip(_FIELDS, values))})
    with open(dest / "fields.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["sample", "field", "cells", "mitotic"])
        writer.writeheader()
        writer.writerows(field_rows)
