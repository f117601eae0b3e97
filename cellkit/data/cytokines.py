"""Lab 03's data: one 64x64 image per well of a 384-well plate and 51 cytokine measurements per well.

The layout (the one an imaging + cytokine-profiling experiment produces)::

    <folder>/
        images/A01.tif ... images/P24.tif   one 64x64 grey TIFF per well (384 files)
        cytokines.csv                       column ``well`` + one column per cytokine (51):
                                            log10 fold change against the mean of the
                                            negative-control wells, median-centred to 0

The original data (Plott, 2023: human white blood cells stained with
Concanavalin-A, 51 cytokines) is not public.  :func:`make_synthetic` writes the
same layout with a planted ground truth: a known subset of cytokines is driven
by what the images show (cell size, clumping, elongation, density), the rest are
unrelated to the images, and ``ground_truth.csv`` says which is which, so the
lab can score its own "predictable" calls.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from cellkit.data import synth
from cellkit.data.io import read_image, write_tiff
from cellkit.errors import DataError

ROWS = "ABCDEFGHIJKLMNOP"
N_COLS = 24
WELLS = tuple(f"{r}{c:02d}" for r in ROWS for c in range(1, N_COLS + 1))
"""The 384 wells, row by row: A01, A02, ..., P24."""
PLATES = {96: ("ABCDEFGH", 12), 384: (ROWS, N_COLS)}
"""Plate formats a user's plate may have: wells -> (row letters, columns)."""
MIN_PLATE_WELLS = 16
"""Fewest wells a plate may have: one cytokine needs 8 producers and 8 non-producers (15 balanced wells, 2 folds)."""

IMAGE_SIZE = 64
TABLE = "cytokines.csv"
IMAGE_DIR = "images"
GROUND_TRUTH = "ground_truth.csv"
WELL_FEATURES = "ground_truth_wells.csv"
FEATURES = ("size", "clumping", "elongation", "density")
EFFECTS = {"size": 0.35, "elongation": 2.0, "clumping": 2.5, "density": 0.5, "noise_strong": 0.25,
           "noise_moderate": 0.5, "radius": 5.0, "pellet": 6.0, "states": 2.0, "state_sd": 0.5, "radial": 0.2, "stretch": 1.0}
"""How the synthetic plate's latent features show in the images, and how noisy the driven cytokines are.

Each feature ``f`` of a well is a *state* (low 20 %, middle 60 %, high 20 %: ``states`` times -1, 0 or +1) plus
``state_sd`` times a standard normal, so the producers of a driven cytokine (about the top or bottom 20 %) differ
from the other wells by a whole state, not by a sliver of a continuous scale.  In the images (rendered at 128x128,
then reduced to 64x64): cell radius ``radius x exp(size * f)`` pixels at 128x128; axis ratio
``1 + elongation * sigmoid(1.5 f)``, a cell stretched along its axis (semi-axes radius x ratio and radius, as a
spreading, polarised cell; ``stretch`` 0 would keep its area) and pointing to the middle of the field (angle noise
``radial`` radians); clumped fraction ``sigmoid(clumping * f)``, the clumped cells gathered in one aggregate near the middle
(its centre ``pellet`` pixels, one standard deviation, from the middle), as cells settle in the bottom of a well; cells per well
``26 exp(density * f)``.  These field-scale patterns (an aggregate in the middle, cells aligned to it, the field's
coverage) sit at the same place in every well, which a CNN with a dense layer on ~77 training wells can learn; the
first version of the plate (cell size x exp(0.2 f), uniformly scattered clumps, elongation at constant area,
continuous features) was visible
to hand-made statistics but not to the CNNs (3 of 14 drivers found in full mode).  A driven cytokine's score is its
driver plus ``noise_strong`` (10 cytokines) or ``noise_moderate`` (4) times a standard normal."""

CYTOKINES = (
    "GM-CSF", "IFN-a2", "IFN-g", "IL-1a", "IL-1b", "IL-1RA", "IL-2", "IL-2RA", "IL-3", "IL-4", "IL-5", "IL-6",
    "IL-7", "IL-8", "IL-9", "IL-10", "IL-12p40", "IL-12p70", "IL-13", "IL-15", "IL-16", "IL-17A", "IL-18",
    "IL-22", "IL-27", "IP-10", "MCP-1", "MCP-3", "M-CSF", "MIF", "MIG", "MIP-1a", "MIP-1b", "MMP-9", "RANTES",
    "SCF", "SCGF-b", "SDF-1a", "TNF-a", "TNF-b", "TRAIL", "VEGF", "b-NGF", "CTACK", "Eotaxin", "FGF-basic",
    "G-CSF", "GRO-a", "HGF", "LIF", "PDGF-BB",
)
"""The 51 cytokine columns of the synthetic table (a typical multiplex panel)."""

LAYOUT = ("images/<well>.tif: one 64x64 grey TIFF per well used, of a 96- or 384-well plate (A01 to H12 or P24); "
          "cytokines.csv: column 'well' plus one column per cytokine (any number; the synthetic plate has 51), "
          "log10 fold change vs the negative-control mean, median-centred to 0")


def well_name(row: int, col: int) -> str:
    """Return the well name (``"A01"``) of a 0-based plate row and column (of a 384-well plate)."""
    if not (0 <= row < len(ROWS)) or not (0 <= col < N_COLS):
        raise ValueError(f"row={row}, col={col}: expected 0 <= row < 16 and 0 <= col < 24")
    return f"{ROWS[row]}{col + 1:02d}"


def plate_wells(plate: int = 384) -> tuple:
    """Return the wells of a 96- or 384-well plate, row by row (``A01``, ``A02``, ...)."""
    if plate not in PLATES:
        raise ValueError(f"plate={plate!r}: expected 96 or 384 (wells per plate)")
    rows, cols = PLATES[plate]
    return tuple(f"{r}{c:02d}" for r in rows for c in range(1, cols + 1))


def normalise_well(name, plate: int = 384) -> str:
    """Return the canonical name (``"A01"``) of a well written ``A1``, ``a01`` or ``A01``; ValueError if not on the plate."""
    import re

    rows, cols = PLATES[plate] if plate in PLATES else PLATES[384]
    m = re.fullmatch(r"\s*([A-Za-z])\s*0*(\d{1,2})\s*", str(name))
    if not m or m.group(1).upper() not in rows or not 1 <= int(m.group(2)) <= cols:
        raise ValueError(f"well {name!r}: not a well of a {plate}-well plate (expected A01 to {rows[-1]}{cols:02d})")
    return f"{m.group(1).upper()}{int(m.group(2)):02d}"


def _image_path(folder: Path, well: str):
    """Return the image of ``well`` (``A01.tif``, or ``A1.tif`` / ``.tiff``), or None."""
    short = f"{well[0]}{int(well[1:])}"
    for stem in dict.fromkeys((well, short)):
        for ext in (".tif", ".tiff"):
            path = folder / IMAGE_DIR / f"{stem}{ext}"
            if path.is_file():
                return path
    return None


def load_plate(folder, *, wells=None, n_cytokines: int | None = None, plate: int | None = None):
    """Return ``(images, table)``: the well images stacked in well order and the cytokine table.

    Works for the synthetic plate (384 wells, 51 cytokines) and for a user's own plate:
    any number of cytokine columns, and any subset of the wells of a 96- or 384-well
    plate (the wells are those listed in ``cytokines.csv``, or ``wells``).

    Parameters
    ----------
    folder : str or pathlib.Path
        The dataset folder (see the module docstring for the layout).
    wells : sequence of str, optional
        The wells to read, in this order (``A1`` or ``A01``); default: every well of the
        table, in plate order (row by row).
    n_cytokines : int or None
        The number of cytokine columns expected; ``None`` (default) accepts any number.
    plate : {96, 384} or None
        The plate format; ``None``: 96 if every well fits a 96-well plate, else 384.

    Returns
    -------
    images : numpy.ndarray
        ``(n_wells, 64, 64)`` in the stored dtype (uint8 or uint16).
    table : pandas.DataFrame
        Indexed by well (canonical names ``A01``; same order as ``images``), one float column per cytokine.

    Raises
    ------
    DataError
        Missing folder, table or well images (named); a well name that is not on the plate;
        fewer than 16 wells (one cytokine needs 8 producers and 8 non-producers); no
        cytokine column; an image that is not 64x64 grey; a table without a ``well``
        column, with missing wells, missing or non-numeric cytokine values.
    """
    import pandas as pd

    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"cytokine plate folder not found: {folder}; expected the layout {LAYOUT}")
    table_path = folder / TABLE
    if not table_path.is_file():
        raise DataError(f"{table_path}: cytokine table not found; expected {LAYOUT}")
    try:
        table = pd.read_csv(table_path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{table_path}: cannot read the CSV ({exc})") from exc
    if "well" not in table.columns:
        raise DataError(f"{table_path}: no 'well' column (found {', '.join(map(str, table.columns[:5]))}...); "
                        "expected one row per well with a 'well' column such as A01")
    if plate is not None and plate not in PLATES:
        raise DataError(f"plate={plate!r}: expected 96 or 384 (wells per plate)")
    listed = [str(w) for w in table["well"]]
    if plate is None:
        try:
            [normalise_well(w, 96) for w in listed + [str(w) for w in (wells or ())]]
            plate = 96
        except ValueError:
            plate = 384
    try:
        table["well"] = [normalise_well(w, plate) for w in listed]
        wells = None if wells is None else [normalise_well(w, plate) for w in wells]
    except ValueError as exc:
        raise DataError(f"{table_path}: {exc}") from exc
    table = table.set_index("well")
    if table.index.duplicated().any():
        raise DataError(f"{table_path}: well(s) listed twice: {', '.join(table.index[table.index.duplicated()][:5])}")
    if wells is None:
        wells = [w for w in plate_wells(plate) if w in table.index]
    missing_rows = [w for w in wells if w not in table.index]
    if missing_rows:
        raise DataError(f"{table_path}: {len(missing_rows)} well(s) missing from the table "
                        f"({', '.join(missing_rows[:5])}{' ...' if len(missing_rows) > 5 else ''})")
    if table.shape[1] == 0:
        raise DataError(f"{table_path}: no cytokine column; expected the 'well' column plus one column per cytokine")
    if n_cytokines is not None and table.shape[1] != n_cytokines:
        raise DataError(f"{table_path}: {table.shape[1]} cytokine column(s), expected {n_cytokines} "
                        "(missing columns?)")
    non_numeric = [c for c in table.columns if not pd.api.types.is_numeric_dtype(table[c])]
    if non_numeric:
        raise DataError(f"{table_path}: non-numeric cytokine column(s) {', '.join(non_numeric[:5])}; "
                        "expected log10 fold changes")
    table = table.loc[list(wells)].astype(np.float64)
    empty = [c for c in table.columns if table[c].isna().any()]
    if empty:
        raise DataError(f"{table_path}: missing value(s) in cytokine column(s) {', '.join(map(str, empty[:5]))} "
                        "for the wells used; fill them, or drop those wells or columns")
    if len(wells) < MIN_PLATE_WELLS:
        raise DataError(f"{table_path}: {len(wells)} well(s); at least {MIN_PLATE_WELLS} are needed (one cytokine "
                        f"needs {MIN_PLATE_WELLS // 2} producers and as many non-producers for two folds)")
    paths = {w: _image_path(folder, w) for w in wells}
    missing_files = [w for w, path in paths.items() if path is None]
    if missing_files:
        raise DataError(f"{folder / IMAGE_DIR}: {len(missing_files)} well image(s) missing "
                        f"({', '.join(f'{w}.tif' for w in missing_files[:5])}{' ...' if len(missing_files) > 5 else ''})")
    images = []
    for w in wells:
        im = read_image(paths[w])
        if im.shape != (IMAGE_SIZE, IMAGE_SIZE):
            raise DataError(f"{paths[w]}: shape {im.shape}, expected a 64x64 grey image (the models are built for "
                            "64x64: reduce each field to 64x64 first, e.g. with skimage.transform.resize)")
        images.append(im)
    depths = {}
    for w, im in zip(wells, images):
        depths.setdefault(im.dtype, []).append(w)
    if len(depths) > 1:  # np.stack would upcast: an 8-bit well among 16-bit ones would read 257 times too dark
        shown = "; ".join(f"{dtype}: {', '.join(ws[:3])}{' ...' if len(ws) > 3 else ''} ({len(ws)} wells)"
                          for dtype, ws in depths.items())
        raise DataError(f"{folder / IMAGE_DIR}: the well images mix pixel types ({shown}); save every well with "
                        "the same bit depth, since the intensities of different depths are not comparable")
    return np.stack(images), table


def plate_folder(config, choice=None):
    """Return the folder of the plate the lab reads: your own plate, the synthetic one, or the cached real one.

    Parameters
    ----------
    config : cellkit.config.Config
        The lab's configuration (``config.source``).
    choice : None, "synthetic", or a folder
        ``None`` follows ``config.source``; ``"synthetic"`` generates the synthetic plate;
        a folder (str or Path) reads your own plate from it (source "real").

    Raises
    ------
    DataUnavailableError
        Source "real" without a folder and none in the cache: the original plate is not
        public, so the message says what to do (give a folder, or choose "synthetic").
    """
    from cellkit.data import dataset_path
    from cellkit.errors import DataUnavailableError

    if choice is not None and str(choice) != "synthetic":
        folder = Path(choice).expanduser()
        if not folder.is_dir():
            raise DataError(f"plate folder {folder} not found; expected a folder with the layout {LAYOUT}")
        print(f"Data source: YOUR plate\n  folder: {folder}")
        return folder
    if choice == "synthetic":
        config = config.replace(source="synthetic")
    try:
        return dataset_path("cytokines_wbc", config)
    except DataUnavailableError as exc:
        cached = Path(config.data_dir) / "cytokines_wbc"
        raise DataUnavailableError(
            "The original plate (Plott 2023) is not public, so the source 'real' needs YOUR plate and none was "
            f"found at {cached}. Either (a) set plate_choice = 'path/to/your/plate' in this cell (layout: {LAYOUT}), "
            f"or copy your plate to {cached}; or (b) set plate_choice = 'synthetic' to run the lab on the "
            "synthetic plate (or start with CELLKIT_SOURCE=synthetic).") from exc


def load_ground_truth(folder):
    """Return the synthetic plate's ground truth: a DataFrame indexed by cytokine (``predictable``, ``driver``...).

    Raises
    ------
    DataError
        The folder holds no ``ground_truth.csv`` (real data has none).
    """
    import pandas as pd

    path = Path(folder) / GROUND_TRUTH
    if not path.is_file():
        raise DataError(f"{path}: no ground truth here; only the synthetic plate has one")
    return pd.read_csv(path).set_index("cytokine")


# --- the synthetic plate -------------------------------------------------------------------------------------

def _draw_cell(canvas, center, radius, elongation, angle, brightness):
    """Add one membrane-stained cell (a bright ring and a dim interior) to ``canvas`` in place."""
    a, b = radius * np.sqrt(elongation), radius / np.sqrt(elongation)
    if EFFECTS["stretch"]:  # a spreading, polarised cell: stretched along its axis, not squeezed across it
        a, b = radius * elongation, radius
    half = int(np.ceil(a)) + 3
    r0, c0 = int(round(center[0])), int(round(center[1]))
    rs, re = max(r0 - half, 0), min(r0 + half + 1, canvas.shape[0])
    cs, ce = max(c0 - half, 0), min(c0 + half + 1, canvas.shape[1])
    if rs >= re or cs >= ce:
        return
    rr, cc = np.mgrid[rs:re, cs:ce].astype(np.float32)
    y, x = rr - center[0], cc - center[1]
    cos, sin = np.cos(angle), np.sin(angle)
    u, v = (x * cos + y * sin) / a, (-x * sin + y * cos) / b
    rho = np.sqrt(u * u + v * v)
    ring = np.exp(-(((rho - 1.0) * radius / 1.1) ** 2))  # Con-A paints the membrane: a ring ~1 px wide
    canvas[rs:re, cs:ce] += brightness * (ring + 0.25 * (rho < 1))


def _render_well(features, n_cells, generator, scale=2):
    """Return one 64x64 float image in [0, 1] of a well with the given latent features."""
    size = IMAGE_SIZE * scale
    g = generator
    canvas = np.zeros((size, size), np.float32)
    radius = EFFECTS["radius"] * np.exp(EFFECTS["size"] * features["size"])  # pixels at the rendering scale
    elong = 1.0 + EFFECTS["elongation"] / (1.0 + np.exp(-1.5 * features["elongation"]))
    clump_fraction = 1.0 / (1.0 + np.exp(-EFFECTS["clumping"] * features["clumping"]))
    n_clumped = g.binomial(n_cells, clump_fraction)
    centres = [g.uniform(8, size - 8, size=2) for _ in range(max(1, n_clumped // 8))]
    if EFFECTS["pellet"]:  # clumped cells settle into one aggregate near the middle of the field
        centres = [size / 2 + g.normal(0, EFFECTS["pellet"], size=2)]
    for i in range(n_cells):
        if i < n_clumped:
            base = centres[g.integers(len(centres))]
            spread = 1.6 * radius * (np.sqrt(n_clumped) / 2 if EFFECTS["pellet"] else 1.0)
            pos = base + g.normal(0, spread, size=2)
        else:
            pos = g.uniform(0, size, size=2)
        r = radius * g.uniform(0.85, 1.15)
        angle = g.uniform(0, np.pi)
        if EFFECTS["radial"]:  # elongated cells point to the middle of the well (where the aggregate forms)
            angle = np.arctan2(pos[0] - size / 2, pos[1] - size / 2) + g.normal(0, EFFECTS["radial"])
        _draw_cell(canvas, pos, r, elong * g.uniform(0.9, 1.1), angle, g.uniform(0.5, 0.8))
    field = synth.illumination((size, size), g, strength=0.35)  # vignetting: why the original avoided rotations
    image = synth.fluorescence(canvas, g, gain=0.45, background=0.04, blur=0.8, photons=300.0,
                               read_noise=0.008, illumination_field=field)
    return image.reshape(IMAGE_SIZE, scale, IMAGE_SIZE, scale).mean(axis=(1, 3))  # one field reduced to 64x64


def _cytokine_plan(generator):
    """Return one dict per cytokine: its kind (driven / unrelated / rare), driver, sign, strength, fraction."""
    g = generator
    order = g.permutation(len(CYTOKINES))
    plan = []
    for rank, idx in enumerate(order):
        name = CYTOKINES[idx]
        if rank < 14:  # driven by one image feature (planted signal)
            feature = FEATURES[rank % len(FEATURES)]
            strength = "strong" if rank < 10 else "moderate"
            plan.append(dict(cytokine=name, kind="driven", driver=feature, sign=int(g.choice([-1, 1])),
                             strength=strength, fraction=float(g.uniform(0.17, 0.25))))
        elif rank < 27:  # unrelated to the images, common enough to be modelled
            plan.append(dict(cytokine=name, kind="unrelated", driver="none", sign=0, strength="none",
                             fraction=float(g.uniform(0.15, 0.25))))
        else:  # produced by too few wells to model (dropped by the <= 7 producers rule)
            plan.append(dict(cytokine=name, kind="rare", driver="none", sign=0, strength="none",
                             fraction=float(g.integers(2, 8)) / len(WELLS)))
    return sorted(plan, key=lambda p: CYTOKINES.index(p["cytokine"]))


def make_synthetic(dest, *, fast: bool, seed: int) -> None:
    """Write a synthetic 384-well plate (images, cytokine table, ground truth) into ``dest``.

    The plate has the real layout (see the module docstring) whatever ``fast`` is:
    384 wells x 51 cytokines is cheap to write, and fast mode shrinks what the lab
    trains, not the data.  Each well has four latent image features (cell size,
    clumping, elongation, density; each a low, middle or high state plus spread, see
    :data:`EFFECTS` for how they show), about 5% of wells are nearly empty, and each
    cytokine is one of

    * ``driven`` (14): producers are the wells whose noisy driver feature is high
      (or low), about 1 in 5 wells, mostly those in the driver's high (or low) state;
      10 strong and 4 moderate;
    * ``unrelated`` (13): about 1 in 5 wells produce, at random;
    * ``rare`` (24): 2 to 7 wells produce, too few to model.

    Producers get a skewed (gamma) increase of the log10 fold change, every well gets
    assay noise, and each column is median-centred.  ``ground_truth.csv`` lists each
    cytokine's kind, driver and whether it is ``predictable`` (driven) from the images;
    ``ground_truth_wells.csv`` the latent features and producer status of each well.

    Parameters
    ----------
    dest : pathlib.Path
        An existing (empty) folder.
    fast : bool
        Accepted for the generator interface; the plate is the same in both modes.
    seed : int
        Fixes every random choice.
    """
    import pandas as pd

    dest = Path(dest)
    if not dest.is_dir():
        raise ValueError(f"dest={dest}: expected an existing folder")
    g = np.random.default_rng([seed, 3])
    n = len(WELLS)
    feats = {}
    for f in FEATURES:  # each feature: a low (20%), middle (60%) or high (20%) state of the well, plus spread
        state = g.choice([-1.0, 0.0, 1.0], size=n, p=[0.2, 0.6, 0.2])
        feats[f] = EFFECTS["states"] * state + EFFECTS["state_sd"] * g.normal(size=n)
    empty = g.random(n) < 0.05
    n_cells = np.where(empty, g.integers(0, 3, size=n), np.round(26 * np.exp(EFFECTS["density"] * feats["density"]))).astype(int)
    (dest / IMAGE_DIR).mkdir(parents=True, exist_ok=True)
    for i, well in enumerate(WELLS):
        well_features = {f: feats[f][i] for f in FEATURES}
        image = _render_well(well_features, int(n_cells[i]), np.random.default_rng([seed, 3, i]))
        write_tiff(dest / IMAGE_DIR / f"{well}.tif", synth.to_uint16(image))

    plan = _cytokine_plan(g)
    # what the images can show: an empty well shows no size, shape or clumping
    visible = {f: np.where(empty, 0.0, feats[f]) for f in FEATURES}
    visible["density"] = np.log(np.maximum(n_cells, 1) / 26) / EFFECTS["density"]
    values, producer = {}, {}
    for p in plan:
        if p["kind"] == "driven":
            noise = EFFECTS["noise_strong"] if p["strength"] == "strong" else EFFECTS["noise_moderate"]
            score = p["sign"] * visible[p["driver"]] + noise * g.normal(size=n)
            is_producer = score > np.quantile(score, 1 - p["fraction"])
        elif p["kind"] == "rare":
            is_producer = np.isin(np.arange(n), g.choice(n, size=round(p["fraction"] * n), replace=False))
        else:
            is_producer = g.random(n) < p["fraction"]
        level = g.normal(0, 0.06, size=n) + is_producer * (0.35 + g.gamma(2.0, 0.15, size=n))
        values[p["cytokine"]] = np.round(level - np.median(level), 5)
        producer[p["cytokine"]] = is_producer
    table = pd.DataFrame({"well": list(WELLS), **values})
    table.to_csv(dest / TABLE, index=False)
    truth = pd.DataFrame([dict(cytokine=p["cytokine"], predictable=p["kind"] == "driven", kind=p["kind"],
                               driver=p["driver"], sign=p["sign"], strength=p["strength"],
                               n_producers=int(producer[p["cytokine"]].sum())) for p in plan])
    truth.to_csv(dest / GROUND_TRUTH, index=False)
    wells = pd.DataFrame({"well": list(WELLS), "n_cells": n_cells, "nearly_empty": empty,
                          **{f: np.round(feats[f], 4) for f in FEATURES}})
    wells.to_csv(dest / WELL_FEATURES, index=False, quoting=csv.QUOTE_MINIMAL)


__all__ = ["WELLS", "PLATES", "CYTOKINES", "FEATURES", "LAYOUT", "well_name", "plate_wells", "normalise_well",
           "load_plate", "plate_folder", "load_ground_truth",
           "make_synthetic"]
