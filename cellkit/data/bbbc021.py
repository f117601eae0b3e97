"""Lab 02's data: the BBBC021 mechanism-of-action teaching subset, its loader and a synthetic twin.

The real subset (registered as ``bbbc021_statpred2019``) is one folder per
mechanism of action (MoA) holding ``bbbc021v1_<n>.png`` files, 256x256 RGB,
8-bit, with F-actin, beta-tubulin and DNA as the red, green and blue channels
(channel 0 shows the cell edges, channel 2 the compact nuclei).
:func:`load_bbbc021` reads that layout wherever it lies (the cache, a copy on
Google Drive, or the synthetic folder) and checks every image.

The folder holds no treatment metadata, yet images of one treatment (compound
and concentration: 3 wells x 4 fields) are strongly correlated.  The file
numbers come in runs of one MoA whose lengths are all multiples of 4, so
:func:`number_runs` treats each run of consecutive numbers within one MoA as
one *treatment group*: an inference, not documented by the source, that lets a
grouped split keep treatments apart.

:func:`make_synthetic` writes the same layout with six planted phenotypes a
biologist would recognise, nuisance variation (cell density, brightness, focus,
plate-to-plate shifts, a per-treatment signature) and ``ground_truth.csv``
naming each image's compound, concentration, treatment, plate, well and field.
Its file numbers follow the same convention (one run per treatment), so the
loader finds the treatment groups the same way on both sources.
"""

from __future__ import annotations

import csv
import dataclasses
import re
from pathlib import Path

import numpy as np
from scipy import ndimage

from cellkit.data import synth
from cellkit.atomic import atomic_path
from cellkit.data.io import read_image
from cellkit.errors import DataError

DATASET = "bbbc021_statpred2019"
MOA_CLASSES = ("Cholesterol_lowering", "DNA_damage", "DNA_replication", "Eg5_inhibitors",
               "Kinase_inhibitors", "Protein_synthesis")
"""The six MoA folders, in the (alphabetical) order Keras assigns class indices."""
REAL_COUNTS = {"Cholesterol_lowering": 72, "DNA_damage": 108, "DNA_replication": 96, "Eg5_inhibitors": 144,
               "Kinase_inhibitors": 144, "Protein_synthesis": 96}
"""Images per MoA in the real subset (660 in all)."""
IMAGE_SHAPE = (256, 256, 3)
CHANNELS = ("F-actin", "beta-tubulin", "DNA")
"""What the red, green and blue channels show (channel 0, 1, 2): actin outlines the cells, DNA the nuclei."""
FILE_PATTERN = re.compile(r"^bbbc021v1_(\d+)\.png$")
GROUND_TRUTH = "ground_truth.csv"


@dataclasses.dataclass(frozen=True)
class MoAImages:
    """The images of one copy of the dataset, as :func:`load_bbbc021` returns them.

    Attributes
    ----------
    images : numpy.ndarray
        ``(n, 256, 256, 3)`` uint8, channels F-actin / beta-tubulin / DNA (red, green, blue).
    labels : numpy.ndarray
        ``(n,)`` int64 class indices into ``class_names``.
    class_names : tuple of str
        The MoA folder names, in class-index order.
    paths : tuple of str
        Each image's path relative to the folder, ``<MoA>/bbbc021v1_<n>.png``.
    numbers : numpy.ndarray
        The ``<n>`` of each file name.
    groups : numpy.ndarray
        ``(n,)`` int64 treatment-group ids (see :func:`number_runs`).
    folder : pathlib.Path
        Where the images were read from.
    """

    images: np.ndarray
    labels: np.ndarray
    class_names: tuple
    paths: tuple
    numbers: np.ndarray
    groups: np.ndarray
    folder: Path

    def __len__(self) -> int:
        return len(self.labels)

    def counts(self) -> dict:
        """Return the number of images per class name."""
        return {name: int(np.sum(self.labels == i)) for i, name in enumerate(self.class_names)}


def number_runs(numbers, labels) -> np.ndarray:
    """Return a group id per image: images whose file numbers form one unbroken run within one class share an id.

    Sorting all images by file number, a new group starts wherever the class
    changes or a number is skipped.  On the real subset this gives 44 groups of
    4 to 36 images, which we take as treatments (or blocks of treatments of the
    same MoA).

    Parameters
    ----------
    numbers : array of int
        The ``<n>`` of each ``bbbc021v1_<n>.png``.
    labels : array of int
        The class of each image, same length.

    Examples
    --------
    >>> number_runs([0, 1, 2, 3, 5, 6], [0, 0, 1, 1, 1, 1]).tolist()
    [0, 0, 1, 1, 2, 2]
    """
    numbers = np.asarray(numbers, dtype=np.int64)
    labels = np.asarray(labels, dtype=np.int64)
    if numbers.ndim != 1 or numbers.shape != labels.shape:
        raise ValueError(f"numbers and labels: expected two 1-D arrays of one length, got shapes "
                         f"{numbers.shape} and {labels.shape}")
    if len(np.unique(numbers)) != len(numbers):
        raise ValueError("numbers: expected unique file numbers, found repeats")
    order = np.argsort(numbers, kind="stable")
    n, lab = numbers[order], labels[order]
    new = np.ones(len(n), dtype=bool)
    new[1:] = (lab[1:] != lab[:-1]) | (n[1:] != n[:-1] + 1)
    groups = np.empty(len(n), dtype=np.int64)
    groups[order] = np.cumsum(new) - 1
    return groups


def list_moa_files(folder, class_names=MOA_CLASSES) -> list[tuple[str, int, int]]:
    """Return ``(relative path, class index, file number)`` for every image of the layout, checked for form.

    Raises
    ------
    DataError
        The folder or a class folder is missing or empty, or a file's name is not ``bbbc021v1_<n>.png``.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: folder not found; expected one sub-folder per MoA "
                        f"({', '.join(class_names)}) holding bbbc021v1_<n>.png files")
    missing = [c for c in class_names if not (folder / c).is_dir()]
    if missing:
        found = sorted(p.name for p in folder.iterdir() if p.is_dir())
        raise DataError(f"{folder}: MoA folder(s) {', '.join(missing)} missing (found: {', '.join(found) or 'none'}); "
                        f"expected one sub-folder per MoA: {', '.join(class_names)}")
    entries = []
    for k, name in enumerate(class_names):
        files = sorted(p for p in (folder / name).iterdir() if p.is_file() and not p.name.startswith("."))
        if not files:
            raise DataError(f"{folder / name}: empty MoA folder; expected bbbc021v1_<n>.png images")
        for p in files:
            m = FILE_PATTERN.match(p.name)
            if not m:
                raise DataError(f"{p}: unexpected file name; expected bbbc021v1_<n>.png")
            entries.append((f"{name}/{p.name}", k, int(m.group(1))))
    return entries


def load_bbbc021(folder, *, class_names=MOA_CLASSES, per_class: int | None = None, seed: int = 0,
                 verbose: bool = True) -> MoAImages:
    """Return the images, labels, class names, paths and treatment groups of the layout under ``folder``.

    Parameters
    ----------
    folder : str or pathlib.Path
        The folder holding one sub-folder per MoA (``cellkit.data.dataset_path(...)`` returns it).
    class_names : sequence of str
        The MoA folders to read; their order fixes the class indices.
    per_class : int, optional
        Keep at most this many images per class, taking treatment groups in a
        random order (seeded), at most a third of the sample from any one group, so
        that a small sample (fast mode) spans at least three treatments per class
        where the class has them, and a grouped split holds out about a quarter of
        it.  Default: every image.
    seed : int
        Seed of that sample.
    verbose : bool
        Print the counts.

    Raises
    ------
    DataError
        A folder is missing or empty, or an image is corrupt, not 256x256, not RGB, or not 8-bit;
        the file and the expectation are named.
    """
    if per_class is not None and (not isinstance(per_class, (int, np.integer)) or per_class < 1):
        raise ValueError(f"per_class={per_class!r}: expected a positive integer or None")
    class_names = tuple(class_names)
    entries = list_moa_files(folder, class_names)
    paths = [e[0] for e in entries]
    labels = np.array([e[1] for e in entries], dtype=np.int64)
    numbers = np.array([e[2] for e in entries], dtype=np.int64)
    groups = number_runs(numbers, labels)
    keep = np.arange(len(entries))
    if per_class is not None:
        keep = _sample_by_group(labels, groups, per_class, seed)
    folder = Path(folder)
    images = np.empty((len(keep),) + IMAGE_SHAPE, dtype=np.uint8)
    for j, i in enumerate(keep):
        images[j] = check_moa_image(read_image(folder / paths[i]), folder / paths[i])
    data = MoAImages(images=images, labels=labels[keep], class_names=class_names,
                     paths=tuple(paths[i] for i in keep), numbers=numbers[keep], groups=groups[keep],
                     folder=folder)
    if verbose:
        counts = ", ".join(f"{k} {v}" for k, v in data.counts().items())
        print(f"Loaded {len(data)} images of {len(np.unique(data.groups))} treatment groups from {folder}: {counts}")
    return data


def check_moa_image(image: np.ndarray, path) -> np.ndarray:
    """Return ``image`` after checking it is 256x256 RGB uint8; the error names ``path``."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise DataError(f"{path}: pixel type {image.dtype}, expected uint8 (8-bit PNG)")
    if image.ndim != 3 or image.shape[-1] != 3:
        raise DataError(f"{path}: shape {image.shape}, expected 256x256x3 (RGB: F-actin, beta-tubulin, DNA)")
    if image.shape != IMAGE_SHAPE:
        raise DataError(f"{path}: shape {image.shape}, expected {IMAGE_SHAPE[0]}x{IMAGE_SHAPE[1]}x3")
    return image


def channel_summary(images) -> dict:
    """Return per-channel intensity and shape statistics of uint8 images, averaged over the images.

    The figures used to compare the synthetic twin with the real images
    (data/README.md).  For each channel name of :data:`CHANNELS`:
    ``background`` (10th percentile), ``median``, ``p99`` (99th percentile) and
    ``mean`` of the pixel values, then three shape measures of the *stained*
    pixels, those above a fifth of the way from background to the 99.5th
    percentile after a 1.5-pixel Gaussian blur: ``stained_fraction`` (their share
    of the image), ``objects`` (connected objects of at least 10 pixels) and
    ``object_px`` (their median size).  DNA, confined to compact nuclei inside the
    cells, stains the smallest share of the image in many small objects; actin and
    tubulin fill whole cells, which touch in large clusters.

    Parameters
    ----------
    images : array
        ``(n, H, W, 3)`` or one ``(H, W, 3)`` uint8 image.
    """
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4 or images.shape[-1] != len(CHANNELS) or images.dtype != np.uint8:
        raise ValueError(f"images: shape {images.shape} and dtype {images.dtype}, expected (n, H, W, 3) uint8")
    keys = ("background", "median", "p99", "mean", "stained_fraction", "objects", "object_px")
    out = {}
    for c, name in enumerate(CHANNELS):
        rows = []
        for im in images[..., c].astype(np.float32):
            lo, mid, p99 = np.percentile(im, [10, 50, 99])
            smooth = ndimage.gaussian_filter(im, 1.5)
            s_lo, s_top = np.percentile(smooth, [10, 99.5])
            mask = smooth > s_lo + 0.2 * (s_top - s_lo)
            sizes = np.bincount(ndimage.label(mask)[0].ravel())[1:]
            sizes = sizes[sizes >= 10]
            rows.append((lo, mid, p99, im.mean(), mask.mean(), sizes.size, np.median(sizes) if sizes.size else 0.0))
        out[name] = {k: float(v) for k, v in zip(keys, np.mean(rows, axis=0))}
    return out


def _sample_by_group(labels, groups, per_class, seed) -> np.ndarray:
    g = np.random.default_rng(seed)
    keep = []
    for k in np.unique(labels):
        idx = np.flatnonzero(labels == k)
        if len(idx) <= per_class:
            keep.extend(idx)
            continue
        # at most a third of the sample from one group: three or more groups per class, so that a grouped
        # split (a quarter of the groups, at least one) holds out about a quarter of the images, not half
        cap = max(1, per_class // 3)
        order = g.permutation(np.unique(groups[idx]))
        taken = []
        for grp in order:
            taken.extend(idx[groups[idx] == grp][:cap])
            if len(taken) >= per_class:
                break
        if len(taken) < per_class:  # too few groups for the cap: fill up from the groups already opened
            rest = [i for grp in order for i in idx[groups[idx] == grp] if i not in set(taken)]
            taken.extend(rest[:per_class - len(taken)])
        keep.extend(sorted(taken[:per_class]))
    return np.array(keep, dtype=np.int64)


def read_ground_truth(folder) -> list[dict]:
    """Return the rows of a synthetic copy's ``ground_truth.csv`` (one dict per image).

    Raises
    ------
    DataError
        The file is missing (a real copy has none).
    """
    path = Path(folder) / GROUND_TRUTH
    if not path.is_file():
        raise DataError(f"{path}: no ground truth; only synthetic copies (make_synthetic) have one")
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


# --------------------------------------------------------------------------------------------
# Synthetic generator
# --------------------------------------------------------------------------------------------

# One interphase MCF-7 cell at this scale: nucleus ~7 px, cell ~15 px in radius.
_NORMAL = dict(nuc_r=7.0, nuc_irreg=0.08, nuc_elong=1.2, cell_r=15.0, cell_elong=1.3, dna=0.55, tub=0.50,
               act=0.25, ring=0.2, speckle=0.0, fibres=0.0, mitotic=False, micronuclei=0)
PHENOTYPES = {
    # statins: larger, flatter cells with dim diffuse tubulin and a bright cortical actin ring
    "Cholesterol_lowering": dict(cell_r=18.0, cell_elong=1.1, tub=0.3, ring=0.5, act=0.25),
    # enlarged, irregular nuclei with micronuclei; large flat cells
    "DNA_damage": dict(nuc_r=11.0, nuc_irreg=0.35, nuc_elong=1.3, cell_r=21.0, dna=0.6, micronuclei=3),
    # S-phase arrest: slightly larger, bright nuclei with punctate replication foci
    "DNA_replication": dict(nuc_r=8.5, dna=0.75, speckle=0.9, cell_r=15.0),
    # mitotic arrest: small round cells, a ring of condensed DNA around a monoaster of tubulin
    "Eg5_inhibitors": dict(mitotic=True, nuc_r=5.5, cell_r=9.0, cell_elong=1.0, dna=0.9, tub=0.7, ring=0.8),
    # elongated, spindle-shaped cells with aligned actin stress fibres
    "Kinase_inhibitors": dict(cell_elong=3.2, cell_r=15.0, nuc_elong=1.6, fibres=0.9, act=0.45),
    # small, dim cells
    "Protein_synthesis": dict(nuc_r=5.5, cell_r=10.0, dna=0.33, tub=0.22, act=0.17, ring=0.12),
}
_DENSITY = {"Cholesterol_lowering": 1.0, "DNA_damage": 0.6, "DNA_replication": 0.85, "Eg5_inhibitors": 1.0,
            "Kinase_inhibitors": 0.9, "Protein_synthesis": 1.1}
_COMPOUNDS = {  # realistic names of BBBC021 compounds of each MoA
    "Cholesterol_lowering": ("mevinolin", "simvastatin"),
    "DNA_damage": ("chlorambucil", "cisplatin", "etoposide", "mitomycin C"),
    "DNA_replication": ("camptothecin", "floxuridine", "methotrexate", "mitoxantrone"),
    "Eg5_inhibitors": ("AZ-138", "AZ-C"),
    "Kinase_inhibitors": ("PP-2", "alsterpaullone", "bryostatin"),
    "Protein_synthesis": ("anisomycin", "cyclohexamide", "emetine"),
}
_CONCENTRATIONS = (0.3, 1.0, 3.0, 10.0)  # micromolar; higher: more cells show the phenotype
_CANVAS_PAD = 48  # cells are drawn on a padded canvas so that they run off the image edges
# Exposure per channel (actin, tubulin, DNA) and background, matched to the real dev images (data/README.md):
# their brightest 1% of pixels lie near 110-120 of 255 in every channel, and the 10th percentiles near 14, 17, 32
_BRIGHTNESS = np.array([0.75, 0.75, 0.5])
_BACKGROUND = np.array([0.085, 0.08, 0.15])


def synthetic_counts(fast: bool) -> dict:
    """Return the images per MoA that :func:`make_synthetic` writes: the real counts, or 16 each in fast mode."""
    return {c: 16 for c in MOA_CLASSES} if fast else dict(REAL_COUNTS)


def make_synthetic(dest: Path, *, fast: bool, seed: int, per_moa: int | None = None) -> None:
    """Write a synthetic copy of the BBBC021 subset into ``dest``, with its ground truth.

    Layout: ``dest/<MoA>/bbbc021v1_<n>.png`` (256x256 RGB uint8: F-actin, tubulin,
    DNA) and ``dest/ground_truth.csv``.  Full size has the real counts
    (72/108/96/144/144/96) in treatments of 12 images (3 wells x 4 fields);
    fast mode has 16 images per MoA in treatments of 4 (1 well x 4 fields).

    Each treatment (a compound at a concentration) shows its MoA's phenotype in
    a fraction of its cells that grows with the concentration (the others look
    untreated) and carries a signature of its own (cell size and stain tints);
    each plate shifts the brightness and background of every channel; each image
    has its own cell density, exposure, focus and illumination.  File numbers
    run consecutively within a treatment, treatments in a shuffled order with
    neighbours of different MoAs, as in the real subset.

    ``per_moa`` (a multiple of the treatment size, 4 or 12) overrides the number of
    images per MoA, for quick tests.
    """
    dest = Path(dest)
    if not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed={seed!r}: expected an integer")
    g = np.random.default_rng([int(seed), 2])
    per_treatment = 4 if fast else 12
    counts = synthetic_counts(fast)
    if per_moa is not None:
        if not isinstance(per_moa, (int, np.integer)) or per_moa < per_treatment or per_moa % per_treatment:
            raise ValueError(f"per_moa={per_moa!r}: expected a positive multiple of {per_treatment}")
        counts = {moa: int(per_moa) for moa in counts}
    wells = per_treatment // 4
    n_plates = 3 if fast else 8
    plates = [dict(gain=np.exp(g.normal(0, 0.2, 3)), background=_BACKGROUND * np.exp(g.normal(0, 0.25, 3)),
                   illum=g.uniform(0.1, 0.35)) for _ in range(n_plates)]
    treatments = []
    for moa, count in counts.items():
        n_treat = count // per_treatment
        compounds = _COMPOUNDS[moa]
        for t in range(n_treat):
            compound = compounds[t % len(compounds)]
            conc = _CONCENTRATIONS[(t // len(compounds) + (1 if fast else 0)) % len(_CONCENTRATIONS)]
            treatments.append(dict(moa=moa, compound=compound, concentration=conc))
    order = _interleave([t["moa"] for t in treatments], g)
    rows, number = [], 0
    for tid, i in enumerate(order):
        t = treatments[i]
        strength = 0.6 + 0.35 * np.log10(t["concentration"] / 0.3) / np.log10(10 / 0.3)  # 0.6 .. 0.95
        signature = dict(size=np.exp(g.normal(0, 0.06)), tint=np.exp(g.normal(0, 0.08, 3)),
                         density=np.exp(g.normal(0, 0.15)))
        well_plates = g.choice(n_plates, size=wells, replace=False)
        for w in range(wells):
            plate = int(well_plates[w])
            well = f"{'BCDEFG'[g.integers(6)]}{g.integers(2, 12):02d}"
            for field in range(1, 5):
                image, n_cells, n_pheno, blur = _draw_image(t["moa"], strength, signature, plates[plate], g)
                rel = f"{t['moa']}/bbbc021v1_{number}.png"
                (dest / t["moa"]).mkdir(parents=True, exist_ok=True)
                _write_png(dest / rel, image)
                rows.append(dict(path=rel, moa=t["moa"], compound=t["compound"],
                                 concentration_um=t["concentration"], treatment=f"T{tid:03d}",
                                 plate=f"P{plate + 1:02d}", well=well, field=field, n_cells=n_cells,
                                 n_phenotype_cells=n_pheno, blur_px=round(float(blur), 3)))
                number += 1
    with open(dest / GROUND_TRUTH, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def _interleave(moas, g) -> list[int]:
    """Return a random order of the treatments in which no two neighbours share an MoA (when possible)."""
    remaining = {m: list(g.permutation([i for i, x in enumerate(moas) if x == m])) for m in dict.fromkeys(moas)}
    order, last = [], None
    while any(remaining.values()):
        left = {m: len(v) for m, v in remaining.items() if v}
        biggest = max(left, key=left.get)
        if 2 * left[biggest] >= sum(left.values()) and biggest != last:
            m = biggest  # the largest MoA must go now, or two of its treatments would end up side by side
        else:
            choices = [m for m in left if m != last] or list(left)
            sizes = np.array([left[m] for m in choices], dtype=float)
            m = choices[g.choice(len(choices), p=sizes / sizes.sum())]
        order.append(int(remaining[m].pop()))
        last = m
    return order


def _draw_image(moa, strength, signature, plate, g):
    """Return ``(uint8 image, cells drawn, cells with the phenotype, blur)`` for one field of view."""
    size = IMAGE_SHAPE[0]
    side = size + 2 * _CANVAS_PAD
    canvas = np.zeros((3, side, side), np.float32)
    # image-wide textures, sliced per cell (much faster than one texture per cell)
    fine, smooth = synth.texture((side, side), g, scale=0.8), synth.texture((side, side), g, scale=1.8)
    textures = dict(chromatin=fine, foci=fine[::-1], tubulin=smooth, actin=smooth.T)
    n_cells = int(g.poisson(34 * _DENSITY[moa] * signature["density"]))
    centres = synth.place_points(max(n_cells, 1), (side, side), g, min_distance=14, margin=_CANVAS_PAD - 20)
    pheno = dict(_NORMAL, **PHENOTYPES[moa])
    n_pheno = 0
    for centre in centres:
        affected = g.random() < strength
        n_pheno += int(affected and _inside(centre, size))
        _draw_cell(canvas, textures, centre, pheno if affected else _NORMAL, signature["size"], g)
    canvas = canvas[:, _CANVAS_PAD:-_CANVAS_PAD, _CANVAS_PAD:-_CANVAS_PAD]
    blur = g.uniform(0.6, 2.2)
    exposure = np.exp(g.normal(0, 0.25))
    gain = (_BRIGHTNESS * exposure * plate["gain"] * signature["tint"]).astype(np.float32)[:, None, None]
    field = synth.illumination((size, size), g, strength=plate["illum"]).astype(np.float32)
    out = _expose(canvas, g, gain=gain, background=plate["background"].astype(np.float32)[:, None, None], blur=blur,
                  field=field)
    n_inside = int(sum(_inside(c, size) for c in centres))
    return synth.to_uint8(np.moveaxis(out, 0, -1)), n_inside, n_pheno, blur


def _expose(signal, g, *, gain, background, blur, field, photons=150.0, read_noise=0.008):
    """Return a (3, H, W) float image in [0, 1]: ``signal`` blurred, unevenly lit, with shot and read noise.

    The model of :func:`cellkit.data.synth.fluorescence`, for three channels at once and with
    the Gaussian approximation of shot noise (variance = mean / photons), which is ~10x faster.
    """
    img = ndimage.gaussian_filter(signal, (0, blur, blur))
    img = np.clip(gain * img * field + background, 0, None)
    noise = g.standard_normal(img.shape, dtype=np.float32)
    img += noise * np.sqrt(img / photons + read_noise ** 2)
    return np.clip(img, 0, 1)


def _write_png(path: Path, image: np.ndarray) -> None:
    """Write an RGB uint8 PNG with light compression (fast; the pixels are the same at any level)."""
    from PIL import Image

    with atomic_path(path, suffix=".png") as tmp:
        Image.fromarray(image).save(tmp, format="PNG", compress_level=1)


def _inside(centre, size) -> bool:
    r, c = centre[0] - _CANVAS_PAD, centre[1] - _CANVAS_PAD
    return 0 <= r < size and 0 <= c < size


def _radius_field(y, x, g, *, elongation, angle, irregularity, harmonics=3):
    """Return each pixel's distance from the centre divided by the shape's relative boundary radius.

    Thresholding the result at ``r`` gives a star-shaped blob of radius about ``r``
    (``irregularity`` 0 and ``elongation`` 1: a disc), so one field gives a cell
    and its inner outline.
    """
    c, s, e = float(np.cos(angle)), float(np.sin(angle)), float(np.sqrt(elongation))
    u, v = (x * c + y * s) / e, (-x * s + y * c) * e
    radius = np.hypot(u, v)
    if not irregularity:
        return radius
    theta = np.arctan2(v, u)
    boundary = np.ones_like(theta)
    for k in range(2, harmonics + 2):
        boundary += float(irregularity / k * g.normal()) * np.cos(k * theta + float(g.uniform(0, 2 * np.pi)))
    return radius / np.clip(boundary, 0.3, None)


def _draw_cell(canvas, textures, centre, p, size_factor, g) -> None:
    """Add one cell's actin, tubulin and DNA signal to ``canvas`` (3, H, W: the channels of :data:`CHANNELS`), drawing in a local patch."""
    jitter = size_factor * np.exp(g.normal(0, 0.1))
    cell_r = p["cell_r"] * jitter
    nuc_r = p["nuc_r"] * jitter
    half = int(np.ceil(cell_r * np.sqrt(p["cell_elong"]) * 1.3)) + 3
    r0, c0 = int(centre[0]) - half, int(centre[1]) - half
    if r0 < 0 or c0 < 0 or r0 + 2 * half > canvas.shape[1] or c0 + 2 * half > canvas.shape[2]:
        return
    win = (slice(r0, r0 + 2 * half), slice(c0, c0 + 2 * half))
    y = np.arange(2 * half, dtype=np.float32)[:, None] - (centre[0] - r0)
    x = np.arange(2 * half, dtype=np.float32)[None, :] - (centre[1] - c0)
    angle = g.uniform(0, np.pi)
    if p["mitotic"]:
        dist = np.hypot(y, x)
        cell = dist <= cell_r
        # condensed chromosomes in a ring around the monoaster, a bright tubulin spot in the middle
        dna = ((dist >= nuc_r * 0.45) & (dist <= nuc_r)) * (0.7 + 0.6 * textures["chromatin"][win])
        tub = cell * 0.35 + np.exp(-(dist / (0.35 * nuc_r)) ** 2) * 1.6
        act = cell * 0.3
        ring = cell & (dist >= cell_r - 2.0)
    else:
        rho = _radius_field(y, x, g, elongation=p["cell_elong"], angle=angle, irregularity=0.12)
        cell, inner = rho <= cell_r, rho <= max(cell_r - 2.5, 1.0)
        nucleus = _radius_field(y, x, g, elongation=p["nuc_elong"], angle=angle, irregularity=p["nuc_irreg"]) <= nuc_r
        dna = nucleus * (0.75 + 0.5 * textures["chromatin"][win])
        if p["speckle"]:
            dna = dna + nucleus * p["speckle"] * (textures["foci"][win] > 0.62)
        for _ in range(p["micronuclei"]):
            if g.random() < 0.6:
                a, d = g.uniform(0, 2 * np.pi), nuc_r + g.uniform(2.5, 5.0)
                dna = dna + (np.hypot(y - d * np.sin(a), x - d * np.cos(a)) <= 1.8) * 1.2
        # microtubules radiate from the centre: radial streaks modulated by a smooth texture
        theta = np.arctan2(y, x)
        streaks = 0.7 + 0.3 * np.cos(theta * int(g.integers(9, 15)) + float(g.uniform(0, 2 * np.pi)))
        tub = cell * streaks * (0.5 + 0.7 * textures["tubulin"][win]) * (1 - 0.5 * nucleus)
        act = cell * (0.5 + 0.5 * textures["actin"][win])
        if p["fibres"]:
            across = -y * float(np.sin(angle)) + x * float(np.cos(angle))
            act = act + cell * p["fibres"] * (np.cos(across * 1.4 + float(g.uniform(0, 6.3))) > 0.55)
        ring = cell & ~inner
    canvas[0][win] += p["act"] * act + p["ring"] * ring  # red: F-actin
    canvas[1][win] += p["tub"] * tub  # green: beta-tubulin
    canvas[2][win] += p["dna"] * dna  # blue: DNA


__all__ = ["DATASET", "MOA_CLASSES", "REAL_COUNTS", "IMAGE_SHAPE", "CHANNELS", "PHENOTYPES", "MoAImages",
           "number_runs", "list_moa_files", "load_bbbc021", "check_moa_image", "channel_summary", "read_ground_truth",
           "synthetic_counts", "make_synthetic"]
