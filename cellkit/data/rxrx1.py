"""Lab 04's data: RxRx1 (Recursion), six-channel images of siRNA-perturbed cells, and a synthetic twin.

The real layout, under a root folder (the ``rxrx1/`` of the public archives)::

    <root>/metadata.csv
    <root>/images/<experiment>/Plate<p>/<well>_s<site>_w<channel>.png   (w1..w6, 512x512, 8-bit)

``metadata.csv`` has one row per site with the columns of :data:`METADATA_COLUMNS`.
An experiment (``HUVEC-01``, ``RPE-03``...) holds one cell type; the six channels
are the stains of Recursion's Cell-Painting-like assay (:data:`CHANNELS`).

:class:`RxRx1Sequence` streams six-channel stacks batch by batch (a
``keras.utils.PyDataset``), so any subset of experiments, plates and siRNA
classes can be used without loading it all into memory.
:func:`make_synthetic` writes the same layout with planted effects: each siRNA
class changes one known channel in one known compartment, controls have no or a
strong effect, and every experiment and plate has its own gain, background and
illumination (the batch effects RxRx1 was designed to expose).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from cellkit.data import synth
from cellkit.data.io import read_image, write_png
from cellkit.errors import DataError

CHANNELS = ("nuclei", "endoplasmic_reticulum", "actin", "nucleoli", "mitochondria", "golgi")
"""The stain of channel w1..w6 (Hoechst, concanavalin A, phalloidin, SYTO14, MitoTracker, WGA)."""

CELL_TYPES = ("HEPG2", "HUVEC", "RPE", "U2OS")
"""The four cell types of RxRx1, spelled as in ``metadata.csv``; the one-hot order of the loader."""

METADATA_COLUMNS = ("site_id", "well_id", "cell_type", "dataset", "experiment", "plate", "well", "site",
                    "well_type", "sirna", "sirna_id")
WELL_TYPES = ("treatment", "negative_control", "positive_control")
REGIONS = ("nucleus", "perinuclear", "cytoplasm", "periphery")
"""The compartments a synthetic siRNA class can change (the ``region`` of ``ground_truth.csv``)."""

LAYOUT = ("<root>/metadata.csv (columns " + ", ".join(METADATA_COLUMNS) + ") and "
          "<root>/images/<experiment>/Plate<p>/<well>_s<site>_w<channel>.png, channels w1-w6, 8-bit PNG")


# ---------------------------------------------------------------- reading the layout

def image_path(root, experiment: str, plate: int, well: str, site: int, channel: int) -> Path:
    """Return the path of one channel image of one site in the RxRx1 layout."""
    return Path(root) / "images" / str(experiment) / f"Plate{int(plate)}" / f"{well}_s{int(site)}_w{int(channel)}.png"


def read_metadata(root, *, present_only: bool = True, verbose: bool = True):
    """Return ``<root>/metadata.csv`` as a pandas DataFrame, one row per site (only sites on disk by default).

    Parameters
    ----------
    root : path
        The dataset root.
    present_only : bool
        Keep only the sites whose six channel files are under ``<root>/images`` (see
        :func:`filter_present`): a subset of experiments or plates on disk works with the full
        ``metadata.csv``.  ``False`` returns every row of the file.
    verbose : bool
        Print how many sites were dropped because their files are not on disk.

    Raises
    ------
    DataError
        The file is missing, empty, or lacks some of :data:`METADATA_COLUMNS` (named); or none of
        its sites has its files on disk.
    """
    import pandas as pd

    path = Path(root) / "metadata.csv"
    if not path.is_file():
        raise DataError(f"{path}: metadata file not found; expected the RxRx1 layout {LAYOUT}")
    try:
        table = pd.read_csv(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read the CSV ({exc}); expected columns {', '.join(METADATA_COLUMNS)}") from exc
    missing = [c for c in METADATA_COLUMNS if c not in table.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}; expected {', '.join(METADATA_COLUMNS)}")
    if table.empty:
        raise DataError(f"{path}: no rows; expected one row per site")
    for column in ("plate", "site"):
        numbers = pd.to_numeric(table[column], errors="coerce")
        bad = table.loc[numbers.isna() | (numbers != numbers.round()), column]
        if len(bad):
            raise DataError(f"{path}: column {column!r} must hold whole numbers; row(s) "
                            f"{', '.join(str(i + 2) for i in bad.index[:3])} hold {', '.join(map(repr, bad.head(3)))}")
        table[column] = numbers.astype(int)
    if not present_only:
        return table
    present = filter_present(table, root)
    if present.empty:
        raise DataError(f"{path}: none of its {len(table):,} sites has its six channel files under "
                        f"{Path(root) / 'images'}; expected the layout {LAYOUT}")
    if verbose and len(present) < len(table):
        print(f"metadata.csv lists {len(table):,} sites; {len(present):,} have their six files on disk "
              f"({present['experiment'].nunique()} experiments, {present.groupby(['experiment', 'plate']).ngroups} "
              f"plates): the other {len(table) - len(present):,} are skipped")
    return present


def filter_present(metadata, root):
    """Return the rows of ``metadata`` whose six channel files exist under ``<root>/images``, index reset.

    Each plate folder is listed once (not one ``stat`` per file), so this is quick on the
    125,510 sites of the full ``metadata.csv`` even on a network drive.
    """
    listings = {}
    keep = np.zeros(len(metadata), bool)
    for i, (experiment, plate, well, site) in enumerate(zip(metadata["experiment"], metadata["plate"],
                                                            metadata["well"], metadata["site"])):
        key = (str(experiment), int(plate))
        if key not in listings:
            folder = Path(root) / "images" / key[0] / f"Plate{key[1]}"
            listings[key] = set(p.name for p in folder.iterdir()) if folder.is_dir() else set()
        names = listings[key]
        keep[i] = all(f"{well}_s{int(site)}_w{c}.png" in names for c in range(1, 7))
    return metadata[keep].reset_index(drop=True)


def select(metadata, *, experiments=None, dataset=None, well_types=None, sirna_ids=None, cell_types=None,
           plates=None):
    """Return the rows of ``metadata`` that match every given filter (``None`` keeps all), index reset."""
    keep = np.ones(len(metadata), bool)
    for column, wanted in (("experiment", experiments), ("dataset", dataset), ("well_type", well_types),
                           ("sirna_id", sirna_ids), ("cell_type", cell_types), ("plate", plates)):
        if wanted is None:
            continue
        wanted = [wanted] if isinstance(wanted, (str, int, np.integer)) else list(wanted)
        keep &= metadata[column].isin(wanted).to_numpy()
    return metadata[keep].reset_index(drop=True)


def extract_subset(archive, dest, *, experiments=None, cell_types=None, plates=None, prefix: str = "rxrx1/") -> Path:
    """Return ``dest`` after extracting a subset of RxRx1 from the images archive (and ``metadata.csv`` if it holds one).

    The images come only as one 49 GB zip; a course or a laptop rarely needs all 51
    experiments.  This extracts the members under ``<prefix>images/<experiment>/Plate<p>/``
    of the chosen experiments (``"HUVEC-01"``...), cell types (``"HUVEC"``: every experiment
    of that type) and plates (1-4), each ``None`` meaning all.  Put ``metadata.csv`` (from the
    small metadata archive, or :func:`cellkit.data.fetch`) in ``dest``: :func:`read_metadata`
    keeps the sites whose files are there.

    Raises
    ------
    DataError
        ``archive`` is not a zip, or no member matches the choice (the experiments found are named).
    """
    import shutil
    import zipfile

    dest = Path(dest)
    wanted_experiments = None if experiments is None else {str(e) for e in np.atleast_1d(experiments)}
    wanted_types = None if cell_types is None else {str(t) for t in np.atleast_1d(cell_types)}
    wanted_plates = None if plates is None else {int(p) for p in np.atleast_1d(plates)}
    seen, written = set(), 0
    try:
        zf = zipfile.ZipFile(archive)
    except (OSError, zipfile.BadZipFile) as exc:
        raise DataError(f"{archive}: cannot open as a zip archive ({exc}); expected rxrx1-images.zip") from exc
    with zf:
        for info in zf.infolist():
            if info.is_dir() or not info.filename.startswith(prefix):
                continue
            rel = info.filename[len(prefix):]
            parts = rel.split("/")
            if rel == "metadata.csv":
                pass
            elif len(parts) == 4 and parts[0] == "images" and parts[2].startswith("Plate"):
                experiment, plate = parts[1], int(parts[2][len("Plate"):])
                seen.add(experiment)
                if ((wanted_experiments is not None and experiment not in wanted_experiments)
                        or (wanted_types is not None and experiment.split("-")[0] not in wanted_types)
                        or (wanted_plates is not None and plate not in wanted_plates)):
                    continue
                written += 1
            else:
                continue
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)
    if written == 0:
        raise DataError(f"{archive}: no image matches experiments={experiments!r}, cell_types={cell_types!r}, "
                        f"plates={plates!r}; the archive holds {len(seen)} experiments "
                        f"({', '.join(sorted(seen)[:8])}{' ...' if len(seen) > 8 else ''})")
    return dest


def load_site(root, row, *, image_size: int | None = None, crop: int | None = None, crop_offset=None) -> np.ndarray:
    """Return the six channels of one site as a uint8 array of shape (H, W, 6).

    Parameters
    ----------
    root : path
        The dataset root (holding ``images/``).
    row : mapping
        A metadata row (needs ``experiment``, ``plate``, ``well``, ``site``).
    image_size : int, optional
        Resize the square site to ``image_size x image_size`` after cropping: smaller sizes by
        area averaging (:func:`downsample`: each output pixel is the mean of the input pixels it
        covers, so puncta such as nucleoli and mitochondria are not aliased), larger ones bilinearly.
    crop : int, optional
        Cut a ``crop x crop`` window first, at ``crop_offset`` (row, col) or centred.

    Raises
    ------
    DataError
        A channel file is missing, not a grey 8-bit image, or differs in size from channel 1.
    """
    planes = []
    for channel in range(1, 7):
        path = image_path(root, row["experiment"], row["plate"], row["well"], row["site"], channel)
        if not path.is_file():
            raise DataError(f"{path}: channel w{channel} ({CHANNELS[channel - 1]}) of site "
                            f"{row.get('site_id', '?')} is missing; every site needs w1-w6")
        plane = read_image(path)
        if plane.ndim != 2 or plane.dtype != np.uint8:
            raise DataError(f"{path}: shape {plane.shape} dtype {plane.dtype}, expected a grey 8-bit (H, W) image")
        if planes and plane.shape != planes[0].shape:
            raise DataError(f"{path}: size {plane.shape}, but channel w1 of this site is {planes[0].shape}; "
                            "all six channels must have the same size")
        planes.append(plane)
    stack = np.stack(planes, axis=-1)
    if crop is not None:
        h, w = stack.shape[:2]
        if crop > min(h, w):
            raise ValueError(f"crop={crop}: larger than the site ({h}x{w})")
        top, left = crop_offset if crop_offset is not None else ((h - crop) // 2, (w - crop) // 2)
        stack = stack[top:top + crop, left:left + crop]
    if image_size is not None and stack.shape[0] != image_size:
        stack = downsample(stack, image_size)
    return stack


def downsample(stack, size: int) -> np.ndarray:
    """Return the uint8 (H, W, C) ``stack`` resized to ``size x size``: area-averaged when smaller, bilinear when larger.

    Area averaging (PIL's ``BOX`` filter; a plain block mean when ``size`` divides the side)
    makes each output pixel the mean of the input area it covers: a bright dot smaller than
    one output pixel dims instead of vanishing or flickering, as it can with bilinear
    sampling of every k-th pixel (aliasing).
    """
    from PIL import Image

    stack = np.asarray(stack)
    if stack.ndim != 3 or stack.dtype != np.uint8:
        raise ValueError(f"stack: shape {stack.shape} dtype {stack.dtype}, expected a uint8 (H, W, C) array")
    if int(size) < 1:
        raise ValueError(f"size={size!r}: expected a positive number of pixels")
    h, w, c = stack.shape
    size = int(size)
    if h % size == 0 and w % size == 0:
        blocks = stack.reshape(size, h // size, size, w // size, c).astype(np.float32)
        return np.round(blocks.mean(axis=(1, 3))).astype(np.uint8)
    method = Image.BOX if size < min(h, w) else Image.BILINEAR
    return np.stack([np.asarray(Image.fromarray(stack[..., k]).resize((size, size), method)) for k in range(c)],
                    axis=-1)


def _import_pydataset():
    import keras

    return keras.utils.PyDataset


class RxRx1Sequence(_import_pydataset()):
    """Batches of ``({"image": (B, H, W, 6) float32 in [0, 1], "cell_type": (B, 4) one-hot}, labels)``.

    Images are read from disk batch by batch, never all at once (unless ``cache``).
    Every random choice of batch ``i`` in epoch ``e`` (flips, rotations, augmentation) comes
    from its own stream, seeded by ``(seed, e, i)``, and the order of epoch ``e`` from
    ``(seed, e)``: two sequences made with the same arguments yield the same batches, in any
    order of access and with any number of ``workers``.

    Parameters
    ----------
    root : path
        The dataset root.
    metadata : DataFrame
        The sites to stream (e.g. from :func:`select`).
    classes : sequence of int
        The ``sirna_id`` values to classify, in label order: label ``i`` is ``classes[i]``.
        Sites of other siRNAs are dropped unless ``labelled=False``.
    batch_size : int
    image_size, crop : int, optional
        Passed to :func:`load_site`.
    shuffle : bool
        A new order each epoch (seeded).
    seed : int
    labelled : bool
        ``False``: yield only the inputs (for prediction on unlabelled sites).
    augment : callable, optional
        ``augment(images, labels, sample_weight, rng) -> (images, labels, sample_weight)``
        applied to each training batch (e.g. :class:`cellkit.semisupervised.CutMixAugment`);
        ``sample_weight`` is None when the sequence has no weights, ``rng`` the batch's stream.
    flip : bool
        Random flips and 90-degree rotations of each image (seeded): cells have no preferred orientation.
    labels : array of int, optional
        An explicit label index per row (e.g. pseudo-labels for unlabelled sites), instead of
        looking ``sirna_id`` up in ``classes``; every row is kept.
    cache : bool or dict
        Keep each decoded (and resized) site in memory as uint8 after its first read, so that
        later epochs do not decode PNGs again (``H x W x 6`` bytes a site: 14 kB at 48x48,
        393 kB at 256x256).  Pass one dict to several sequences to share it (keys are
        ``(site_id, image_size, crop)``).
    **kwargs
        Passed to ``keras.utils.PyDataset`` (``workers``, ``use_multiprocessing``, ``max_queue_size``).

    Attributes
    ----------
    labels : ndarray of int
        The label index of each site (``-1`` for a site outside ``classes``).
    sample_weights : ndarray of float or None
        Per-site loss weights; when set, batches carry them as a third element.
    """

    def __init__(self, root, metadata, classes, *, batch_size: int = 32, image_size: int | None = None,
                 crop: int | None = None, shuffle: bool = False, seed: int = 0, labelled: bool = True,
                 augment=None, flip: bool = False, labels=None, cache: bool = False, **kwargs):
        super().__init__(**kwargs)
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size}: expected a positive integer")
        classes = [int(c) for c in classes]
        if not classes or len(set(classes)) != len(classes):
            raise ValueError(f"classes={classes!r}: expected distinct sirna_id values")
        lookup = {c: i for i, c in enumerate(classes)}
        if labels is not None:
            labels = np.asarray(labels, dtype=np.int64)
            if labels.shape != (len(metadata),) or labels.min(initial=0) < 0 or labels.max(initial=0) >= len(classes):
                raise ValueError(f"labels: expected {len(metadata)} class indices in 0..{len(classes) - 1}")
        else:
            labels = np.array([lookup.get(int(s), -1) for s in metadata["sirna_id"]], dtype=np.int64)
        if labelled:
            metadata, labels = metadata[labels >= 0].reset_index(drop=True), labels[labels >= 0]
        if len(metadata) == 0:
            raise ValueError("metadata: no site left after selecting the classes; check the sirna_id values")
        unknown = sorted(set(metadata["cell_type"]) - set(CELL_TYPES))
        if unknown:
            raise DataError(f"metadata: unknown cell type(s) {unknown}; expected {', '.join(CELL_TYPES)}")
        self.root, self.metadata, self.classes = Path(root), metadata.reset_index(drop=True), classes
        self.labels = labels
        self.batch_size, self.image_size, self.crop = batch_size, image_size, crop
        self.shuffle, self.labelled, self.augment, self.flip = shuffle, labelled, augment, flip
        self.seed, self.epoch = int(seed), 0
        self.sample_weights = None
        self._cache = cache if isinstance(cache, dict) else ({} if cache else None)
        self._rows = self.metadata[["experiment", "plate", "well", "site", "site_id"]].to_dict("records")
        self._cell_types = self.cell_type_onehot(self.metadata)
        self._order = self._epoch_order()

    def _epoch_order(self) -> np.ndarray:
        n = len(self.metadata)
        return np.random.default_rng([self.seed, self.epoch]).permutation(n) if self.shuffle else np.arange(n)

    @property
    def num_classes(self) -> int:
        """Return the number of classes."""
        return len(self.classes)

    def __len__(self):
        return int(np.ceil(len(self.metadata) / self.batch_size))

    def cell_type_onehot(self, rows) -> np.ndarray:
        """Return the (n, 4) one-hot cell-type codes of the given metadata rows."""
        codes = np.array([CELL_TYPES.index(t) for t in rows["cell_type"]])
        return np.eye(len(CELL_TYPES), dtype=np.float32)[codes]

    def site(self, position: int) -> np.ndarray:
        """Return the uint8 (H, W, 6) stack of the site in row ``position`` of :attr:`metadata` (cached if asked)."""
        row = self._rows[position]
        key = (row["site_id"], self.image_size, self.crop)
        if self._cache is not None and key in self._cache:
            return self._cache[key]
        stack = load_site(self.root, row, image_size=self.image_size, crop=self.crop)
        if self._cache is not None:
            self._cache[key] = stack
        return stack

    def __getitem__(self, index):
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} out of range (0..{len(self) - 1})")
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        idx = self._order[index * self.batch_size:(index + 1) * self.batch_size]
        images = np.stack([self.site(int(i)) for i in idx]).astype(np.float32) / 255.0
        if self.flip:
            flips, turns = rng.uniform(size=len(idx)) < 0.5, rng.integers(4, size=len(idx))
            images = np.stack([np.rot90(im[:, ::-1] if f else im, k=int(k)) for im, f, k in zip(images, flips, turns)])
        inputs = {"image": images, "cell_type": self._cell_types[idx]}
        if not self.labelled:
            return (inputs,)
        labels = np.eye(self.num_classes, dtype=np.float32)[self.labels[idx]]
        weights = None if self.sample_weights is None else np.asarray(self.sample_weights, np.float32)[idx]
        if self.augment is not None:
            inputs["image"], labels, weights = self.augment(inputs["image"], labels, weights, rng)
        if weights is not None:
            return inputs, labels, weights
        return inputs, labels

    def on_epoch_end(self):
        self.epoch += 1
        self._order = self._epoch_order()


def load_arrays(sequence: RxRx1Sequence):
    """Return ``(images, cell_types, labels)`` of every site of ``sequence`` in order (for small evaluation sets)."""
    images = np.stack([sequence.site(i) for i in range(len(sequence.metadata))])
    return images.astype(np.float32) / 255.0, sequence.cell_type_onehot(sequence.metadata), sequence.labels.copy()


def read_ground_truth(root):
    """Return ``<root>/ground_truth.csv`` of a synthetic copy: the channel and region each siRNA changes."""
    import pandas as pd

    path = Path(root) / "ground_truth.csv"
    if not path.is_file():
        raise DataError(f"{path}: not found; only synthetic copies (cellkit.data.rxrx1.make_synthetic) have a ground truth")
    return pd.read_csv(path)


def plot_sites(images, titles, *, title: str = "Six channels per site"):
    """Return a figure with one row per site (N, H, W, 6) and one column per channel, each titled by its stain."""
    import matplotlib.pyplot as plt

    images = np.asarray(images)
    n = len(images)
    fig, axes = plt.subplots(n, 6, figsize=(9.5, 1.65 * n + 0.6), squeeze=False)
    for i in range(n):
        for c in range(6):
            ax = axes[i, c]
            ax.imshow(images[i, ..., c], cmap="gray", vmin=0, vmax=max(float(images[..., c].max()), 1e-6))
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(f"w{c + 1} {CHANNELS[c]}", fontsize=8)
        axes[i, 0].set_ylabel(titles[i], fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- the synthetic twin

# Base morphology of each cell type: cells per site, cell and nucleus radius as a fraction of the
# image side, elongation, irregularity and relative stain brightness (w1..w6).
_MORPHOLOGY = {
    "HEPG2": dict(cells=14, cell_r=0.09, nuc_r=0.55, elong=1.2, irregular=0.25,
                  stain=(1.0, 0.8, 0.5, 0.9, 0.9, 0.6)),
    "HUVEC": dict(cells=7, cell_r=0.13, nuc_r=0.35, elong=3.0, irregular=0.15,
                  stain=(0.9, 0.7, 0.9, 0.7, 0.7, 0.7)),
    "RPE": dict(cells=9, cell_r=0.11, nuc_r=0.42, elong=1.4, irregular=0.10,
                stain=(0.8, 0.9, 0.7, 0.8, 0.6, 0.8)),
    "U2OS": dict(cells=5, cell_r=0.17, nuc_r=0.33, elong=1.6, irregular=0.35,
                 stain=(0.9, 0.6, 0.8, 0.6, 0.8, 0.9)),
}

# (channel 1..6, region) pairs where the stain has signal, so a change there is visible.
_EFFECT_SITES = ((5, "cytoplasm"), (2, "perinuclear"), (4, "nucleus"), (3, "periphery"), (6, "perinuclear"),
                 (1, "nucleus"), (5, "perinuclear"), (3, "cytoplasm"), (2, "cytoplasm"), (6, "periphery"))


def _compartments(shape, cell_type: str, g: np.random.Generator):
    """Return boolean masks (nucleus, nucleoli, perinuclear, cytoplasm, periphery, golgi) of one field of view."""
    from scipy import ndimage

    m = _MORPHOLOGY[cell_type]
    side = shape[0]
    n = max(2, int(round(m["cells"] * g.uniform(0.8, 1.2))))
    radius = m["cell_r"] * side
    centres = synth.place_points(n, shape, g, min_distance=1.2 * radius, margin=0.0)
    cells = np.zeros(shape, bool)
    masks = {k: np.zeros(shape, bool) for k in ("nucleus", "nucleoli", "perinuclear", "golgi")}
    for centre in centres:
        angle = g.uniform(0, np.pi)
        cell = synth.blob(shape, centre, radius * g.uniform(0.85, 1.15), g, irregularity=m["irregular"],
                          elongation=m["elong"], angle=angle)
        nuc_r = radius * m["nuc_r"]
        nucleus = synth.ellipse(shape, centre, (nuc_r * 1.15, nuc_r * 0.9), angle) & cell
        ring = synth.ellipse(shape, centre, (nuc_r * 1.9, nuc_r * 1.6), angle) & cell & ~nucleus
        off = centre + 1.25 * nuc_r * np.array([np.sin(angle + 1.0), np.cos(angle + 1.0)])
        golgi = synth.ellipse(shape, off, (nuc_r * 0.55, nuc_r * 0.35), angle + 1.0) & cell & ~nucleus
        for _ in range(int(g.integers(1, 4))):
            spot = centre + g.normal(0, nuc_r * 0.35, 2)
            masks["nucleoli"] |= synth.ellipse(shape, spot, (nuc_r * 0.22, nuc_r * 0.22)) & nucleus
        cells |= cell
        masks["nucleus"] |= nucleus
        masks["perinuclear"] |= ring
        masks["golgi"] |= golgi
    inner = ndimage.binary_erosion(cells, iterations=max(1, side // 64))
    masks["periphery"] = cells & ~inner
    masks["cytoplasm"] = cells & ~masks["nucleus"]
    masks["perinuclear"] &= ~masks["nucleus"]
    return masks


def _render(shape, cell_type: str, effects, g: np.random.Generator) -> list[np.ndarray]:
    """Return the six noise-free stain signals (float, ~[0, 1]) of one site with ``effects`` applied.

    ``effects`` is a list of ``(channel 1..6, region, factor)``: the signal of that channel is
    multiplied by ``factor`` inside that region.
    """
    masks = _compartments(shape, cell_type, g)
    f = {k: v.astype(np.float32) for k, v in masks.items()}
    chromatin = synth.texture(shape, g, scale=1.0)
    fibres = synth.texture(shape, g, scale=0.7)
    puncta = synth.texture(shape, g, scale=0.6) ** 2
    er = synth.texture(shape, g, scale=1.2)
    stain = _MORPHOLOGY[cell_type]["stain"]
    signals = [
        f["nucleus"] * (0.55 + 0.45 * chromatin),
        f["perinuclear"] * (0.5 + 0.5 * er) + 0.25 * f["cytoplasm"] * er,
        0.75 * f["periphery"] + 0.3 * f["cytoplasm"] * fibres,
        0.9 * f["nucleoli"] + 0.2 * f["nucleus"] + 0.1 * f["cytoplasm"],
        f["cytoplasm"] * (0.15 + 0.85 * puncta),
        0.9 * f["golgi"] + 0.3 * f["periphery"] + 0.1 * f["perinuclear"],
    ]
    signals = [s * b for s, b in zip(signals, stain)]
    for channel, region, factor in effects:
        signals[channel - 1] = signals[channel - 1] * np.where(masks[region], factor, 1.0).astype(np.float32)
    return signals


def _well_names(n: int, g: np.random.Generator) -> list[str]:
    """Return ``n`` distinct 384-well names (rows B-O, columns 02-23, as RxRx1 uses), in random order."""
    names = [f"{r}{c:02d}" for r in "BCDEFGHIJKLMNO" for c in range(2, 24)]
    return [names[i] for i in g.permutation(len(names))[:n]]


def make_synthetic(dest, *, fast: bool, seed: int) -> None:
    """Write a synthetic RxRx1 copy into ``dest``: ``metadata.csv``, ``images/`` and ``ground_truth.csv``.

    Full mode: 128x128 sites (the real ones are 512x512), 12 siRNA classes, four cell types with four
    experiments each (two ``train``, two ``test``), two plates per experiment, three wells per class
    and plate, two sites per well.  Fast mode: 48x48 sites, 4 classes, two ``train`` experiments and one ``test``
    experiment per cell type, one plate, two wells per class.  Both modes have one negative control
    (``EMPTY``, no effect) and one positive control (a strong effect) per plate, in two wells each.

    Each treatment class changes one channel in one compartment (brighter or dimmer, with a
    well-to-well penetrance); the positive control makes the Golgi/membrane stain (w6) four times brighter at the cell periphery.  Each experiment
    has its own per-channel gain and background, each plate a further gain and its own
    illumination gradient: the batch effects a model must see through on held-out experiments.
    ``ground_truth.csv`` lists ``sirna, sirna_id, well_type, channel, channel_name, region, factor``.
    """
    dest = Path(dest)
    if not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed={seed!r}: expected an integer")
    g = np.random.default_rng([int(seed), 4])
    side = 48 if fast else 128
    n_classes = 4 if fast else 12
    experiments_per_type = 3 if fast else 4
    plates = 1 if fast else 2
    wells_per_class = 2 if fast else 3
    shape = (side, side)

    truth = []
    for k in range(n_classes):
        channel, region = _EFFECT_SITES[k % len(_EFFECT_SITES)]
        factor = 2.5 if k % 2 == 0 else 0.3
        truth.append(dict(sirna=f"s{100001 + 17 * k}", sirna_id=k, well_type="treatment", channel=channel,
                          channel_name=CHANNELS[channel - 1], region=region, factor=factor))
    truth.append(dict(sirna="s999001", sirna_id=n_classes, well_type="positive_control", channel=6,
                      channel_name=CHANNELS[5], region="periphery", factor=4.0))
    truth.append(dict(sirna="EMPTY", sirna_id=n_classes + 1, well_type="negative_control", channel=0,
                      channel_name="none", region="none", factor=1.0))

    rows = []
    for cell_type in CELL_TYPES:
        for e in range(experiments_per_type):
            experiment = f"{cell_type}-{e + 1:02d}"
            dataset = "train" if e < experiments_per_type - max(1, experiments_per_type // 2) else "test"
            exp_gain = np.exp(g.normal(0, 0.15, 6))
            exp_background = g.uniform(0.01, 0.08, 6)
            for plate in range(1, plates + 1):
                plate_gain = exp_gain * np.exp(g.normal(0, 0.08, 6))
                light = synth.illumination(shape, g, strength=0.35)
                plan = [t for t in truth for _ in range(wells_per_class if t["well_type"] == "treatment" else 2)]
                wells = _well_names(len(plan), g)
                for well, t in zip(wells, plan):
                    penetrance = g.uniform(0.7, 1.0)
                    effects = [] if t["channel"] == 0 else [
                        (t["channel"], t["region"], float(t["factor"]) ** penetrance)]
                    for site in (1, 2):
                        signals = _render(shape, cell_type, effects, g)
                        folder = dest / "images" / experiment / f"Plate{plate}"
                        folder.mkdir(parents=True, exist_ok=True)
                        for c, signal in enumerate(signals):
                            img = synth.fluorescence(signal, g, gain=0.8 * plate_gain[c], background=exp_background[c],
                                                     blur=0.7, photons=150.0, read_noise=0.01, illumination_field=light)
                            write_png(folder / f"{well}_s{site}_w{c + 1}.png", synth.to_uint8(img))
                        rows.append(dict(site_id=f"{experiment}_{plate}_{well}_{site}",
                                         well_id=f"{experiment}_{plate}_{well}", cell_type=cell_type, dataset=dataset,
                                         experiment=experiment, plate=plate, well=well, site=site,
                                         well_type=t["well_type"], sirna=t["sirna"], sirna_id=t["sirna_id"]))
    dest.mkdir(parents=True, exist_ok=True)
    with open(dest / "metadata.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(METADATA_COLUMNS))
        writer.writeheader()
        writer.writerows(rows)
    with open(dest / "ground_truth.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(truth[0]))
        writer.writeheader()
        writer.writerows(truth)


__all__ = ["CHANNELS", "CELL_TYPES", "METADATA_COLUMNS", "REGIONS", "LAYOUT", "image_path", "read_metadata",
           "filter_present", "select", "extract_subset", "load_site", "downsample", "RxRx1Sequence", "load_arrays",
           "plot_sites", "read_ground_truth", "make_synthetic"]
