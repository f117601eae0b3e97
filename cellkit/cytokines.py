"""Lab 03's reference pipeline: cytokine labels, per-cytokine balancing, two-fold CV, scores and 'predictable' calls.

Each function is the reference implementation that the lab's hidden tests compare
a student's version against:

* :func:`binarise` - producer (1) / non-producer (0) with scikit-learn's
  ``KBinsDiscretizer`` (2 bins, ``kmeans`` strategy: see its docstring for why);
* :func:`modelable_cytokines` - drop cytokines with 7 or fewer producing wells;
* :func:`balance` - per cytokine, keep every producer and as many randomly drawn
  non-producers; :func:`balanced_sets` drops cytokines left with fewer than 15 wells;
* :func:`two_fold_splits` - the cross-validation protocol (stratified 2-fold);
* :func:`flip_augment` / :data:`AUGMENTATIONS` - flips only (horizontal, vertical, transpose);
* :func:`classification_scores`, :func:`call_predictable`, :func:`score_calls`;
* :func:`image_statistics` / :func:`baseline_cross_validate` - a simple baseline (logistic
  regression on a dozen hand-made image statistics) under the same protocol, to ask whether
  the images carry a signal the CNNs miss.
"""

from __future__ import annotations

import numpy as np

MIN_PRODUCERS = 8
"""A cytokine is modelled only with at least 8 producing wells (the original drops 7 or fewer)."""
MIN_WELLS = 15
"""A cytokine is modelled only with at least 15 wells left after balancing."""
THRESHOLD = 0.65
"""A cytokine is 'predictable' when precision and recall are both at least 0.65."""

FLIPS = ("h", "v", "t")
AUGMENTATIONS = {"none": (), "h": ("h",), "v": ("v",), "t": ("t",), "hvt": ("h", "v", "t")}
"""Augmentation strategies compared in the lab: no augmentation, each flip alone, all three flips."""


def _as_1d(values, name):
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or values.size < 2:
        raise ValueError(f"{name}: shape {values.shape}, expected a 1-D array of at least 2 values")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{name}: {int(np.sum(~np.isfinite(values)))} value(s) are NaN or infinite; "
                         "expected finite log10 fold changes")
    return values


def binarise(values, *, strategy: str = "kmeans"):
    """Return ``(labels, edge)``: 1 for producing wells, 0 for the others, and the bin edge between them.

    scikit-learn's ``KBinsDiscretizer(n_bins=2, encode="ordinal", strategy=...)`` splits
    one cytokine's values in two bins; the upper bin is "producer".

    Why ``kmeans``: producers form a second, skewed mode far above the non-producers'
    peak at 0.  One-dimensional 2-means puts the edge halfway between the two modes'
    centres, wherever they lie, so it finds a 4:1 split as readily as 1:1.
    ``quantile`` would force half the wells to be producers whatever the biology;
    ``uniform`` cuts the range in half, so a single extreme well moves the edge.

    Parameters
    ----------
    values : array-like, shape (n_wells,)
        One cytokine's log10 fold changes.
    strategy : {"kmeans", "uniform", "quantile"}

    Returns
    -------
    labels : numpy.ndarray of int64, shape (n_wells,)
    edge : float
        The value that separates the two bins.
    """
    from sklearn.preprocessing import KBinsDiscretizer

    values = _as_1d(values, "values")
    if strategy not in ("kmeans", "uniform", "quantile"):
        raise ValueError(f"strategy={strategy!r}: expected 'kmeans', 'uniform' or 'quantile'")
    if np.ptp(values) == 0:
        return np.zeros(values.size, np.int64), float(values[0])
    kwargs = {"quantile_method": "averaged_inverted_cdf"} if strategy == "quantile" else {}
    binner = KBinsDiscretizer(n_bins=2, encode="ordinal", strategy=strategy, **kwargs)
    labels = binner.fit_transform(values[:, None])[:, 0].astype(np.int64)
    edges = binner.bin_edges_[0]
    return labels, float(edges[1]) if len(edges) == 3 else float(values.max())


def binarise_table(table, *, strategy: str = "kmeans"):
    """Return ``(labels, edges)``: a 0/1 DataFrame like ``table`` and a Series of bin edges, one per cytokine."""
    import pandas as pd

    labels, edges = {}, {}
    for name in table.columns:
        labels[name], edges[name] = binarise(table[name].to_numpy(), strategy=strategy)
    return pd.DataFrame(labels, index=table.index), pd.Series(edges, name="edge")


def modelable_cytokines(labels, *, min_producers: int = MIN_PRODUCERS) -> list:
    """Return the cytokines (columns of the 0/1 ``labels``) with at least ``min_producers`` producing wells."""
    counts = labels.sum(axis=0)
    return [c for c in labels.columns if int(counts[c]) >= min_producers]


def balance(labels, *, seed: int) -> np.ndarray:
    """Return the sorted positions of a balanced set: every minority-class well and as many random majority wells.

    Normally producers are the minority, so non-producers are randomly down-sampled
    to the number of producers.

    Parameters
    ----------
    labels : array-like of 0/1, shape (n_wells,)
        One cytokine's labels.
    seed : int
        Fixes which majority wells are kept.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.isin(labels, (0, 1)).all():
        raise ValueError(f"labels: expected a 1-D array of 0/1, got shape {labels.shape} with values "
                         f"{np.unique(labels)[:5]}")
    ones, zeros = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    minority, majority = (ones, zeros) if len(ones) <= len(zeros) else (zeros, ones)
    rng = np.random.default_rng(seed)
    kept = rng.choice(majority, size=len(minority), replace=False)
    return np.sort(np.concatenate([minority, kept]))


def balanced_sets(labels, *, seed: int, min_producers: int = MIN_PRODUCERS, min_wells: int = MIN_WELLS,
                  max_per_class: int | None = None) -> dict:
    """Return ``{cytokine: positions of its balanced wells}`` for the cytokines that survive both rules.

    Each cytokine is balanced on its own (its own random draw, seeded by ``seed`` and
    its column number), so that no model can see another cytokine's selection.
    ``max_per_class`` (fast mode) then keeps at most that many random wells of each
    class, after the ``min_wells`` rule.
    """
    if max_per_class is not None and max_per_class < 2:
        raise ValueError(f"max_per_class={max_per_class!r}: expected None or at least 2")
    sets = {}
    for i, name in enumerate(labels.columns):
        if name not in modelable_cytokines(labels[[name]], min_producers=min_producers):
            continue
        y = labels[name].to_numpy()
        positions = balance(y, seed=seed * 1000 + i)
        if len(positions) < min_wells:
            continue
        if max_per_class is not None:
            g = np.random.default_rng([seed, i, 1])
            positions = np.sort(np.concatenate([g.permutation(positions[y[positions] == c])[:max_per_class]
                                                for c in (0, 1)]))
        sets[name] = positions
    return sets


def two_fold_splits(positions, labels, *, seed: int):
    """Return two ``(train, test)`` pairs of well positions: a stratified 2-fold split of one cytokine's wells.

    Every well is tested exactly once, each fold keeps the 1:1 class balance, and
    the two folds swap roles.

    Parameters
    ----------
    positions : array-like of int
        The cytokine's balanced wells (from :func:`balance`).
    labels : array-like of 0/1
        The labels of *all* wells; ``labels[positions]`` are this cytokine's.
    seed : int
        Fixes the shuffle.
    """
    from sklearn.model_selection import StratifiedKFold

    positions = np.asarray(positions)
    labels = np.asarray(labels)
    y = labels[positions]
    if min(np.sum(y == 0), np.sum(y == 1)) < 2:
        raise ValueError(f"labels: each class needs at least 2 wells for 2-fold CV, got {np.bincount(y, minlength=2)}")
    folds = StratifiedKFold(n_splits=2, shuffle=True, random_state=seed % 2**32)
    return [(positions[tr], positions[te]) for tr, te in folds.split(positions, y)]


def protocol_folds(labels, sets, *, splitter, seed: int = 0):
    """Yield ``(cytokine, fold, train, test, y_all)`` for every cytokine and fold of the lab's protocol.

    The one place that fixes which wells each model trains and is tested on (cytokine
    ``i`` is split with ``seed + i``), shared by the CNNs, the ViT heads and the baseline,
    so that every model of the lab is scored on the same folds.

    Parameters
    ----------
    labels : pandas.DataFrame
        0/1 labels of every well (rows) for each cytokine (columns).
    sets : dict
        ``{cytokine: balanced well positions}`` (from :func:`balanced_sets`).
    splitter : callable
        ``splitter(positions, labels_of_all_wells, seed=...)`` -> two ``(train, test)`` pairs.
    """
    for ci, (name, positions) in enumerate(sets.items()):
        if name not in labels:
            raise KeyError(f"sets: cytokine {name!r} is not a column of labels")
        y_all = labels[name].to_numpy()
        for fold, (train, test) in enumerate(splitter(positions, y_all, seed=seed + ci)):
            yield name, fold, np.asarray(train), np.asarray(test), y_all

def flip(images, kind: str) -> np.ndarray:
    """Return ``images`` (n, H, W[, C]) flipped: ``"h"`` left-right, ``"v"`` up-down, ``"t"`` transposed."""
    images = np.asarray(images)
    if kind == "h":
        return images[:, :, ::-1]
    if kind == "v":
        return images[:, ::-1]
    if kind == "t":
        return np.swapaxes(images, 1, 2)
    raise ValueError(f"kind={kind!r}: expected 'h', 'v' or 't'")


def flip_augment(images, labels, flips=()):
    """Return ``(images, labels)`` with one flipped copy of every image per flip in ``flips`` appended.

    Only flips: a rotation by an angle that is not a multiple of 90 degrees leaves
    empty corners and moves the vignetting, artefacts a model could learn.
    """
    images, labels = np.asarray(images), np.asarray(labels)
    bad = [f for f in flips if f not in FLIPS]
    if bad:
        raise ValueError(f"flips={flips!r}: expected a subset of {FLIPS}")
    return (np.concatenate([images] + [flip(images, f) for f in flips]),
            np.concatenate([labels] * (1 + len(flips))))


def classification_scores(y_true, y_pred) -> dict:
    """Return ``{"precision", "recall", "f1"}`` of the producer class (1), 0 where undefined."""
    from sklearn.metrics import precision_recall_fscore_support

    p, r, f, _ = precision_recall_fscore_support(np.asarray(y_true), np.asarray(y_pred), labels=[1],
                                                 average=None, zero_division=0)
    return {"precision": float(p[0]), "recall": float(r[0]), "f1": float(f[0])}


def call_predictable(precision, recall, *, threshold: float = THRESHOLD):
    """Return True where both precision and recall reach ``threshold`` (elementwise for arrays)."""
    return (np.asarray(precision) >= threshold) & (np.asarray(recall) >= threshold)


def score_calls(called, truth) -> dict:
    """Return the precision and recall of 'predictable' calls against the ground truth.

    Parameters
    ----------
    called, truth : mapping or pandas.Series of bool, indexed by cytokine
        The lab's calls and the planted truth; only cytokines present in both count.

    Returns
    -------
    dict
        ``tp``, ``fp``, ``fn``, ``tn``, ``precision`` (of the calls; 0 with no call) and ``recall``.
    """
    names = [c for c in dict(called) if c in dict(truth)]
    c = np.array([bool(dict(called)[n]) for n in names])
    t = np.array([bool(dict(truth)[n]) for n in names])
    tp, fp, fn = int(np.sum(c & t)), int(np.sum(c & ~t)), int(np.sum(~c & t))
    return {"n": len(names), "tp": tp, "fp": fp, "fn": fn, "tn": int(np.sum(~c & ~t)),
            "precision": tp / (tp + fp) if tp + fp else 0.0, "recall": tp / (tp + fn) if tp + fn else 0.0}


STATISTICS = ("mean", "std", "bright_fraction", "dim_fraction", "edge_strength",
              "objects", "object_area", "largest_object", "bright_objects", "bright_object_area",
              "largest_bright_object", "object_elongation")
"""The columns of :func:`image_statistics`."""


def _regions(image, threshold):
    """Return ``(labels, count, areas)`` of the connected regions of ``image > threshold`` (areas ``[0]`` if none)."""
    from scipy import ndimage as ndi

    lab, n = ndi.label(image > threshold)
    area = np.bincount(lab.ravel(), minlength=n + 1)[1:].astype(np.float64)
    return lab, n, area if n else np.zeros(1)


def _elongations(lab, n):
    """Return the axis ratio of each of the ``n`` labelled regions, from its 2x2 coordinate covariance."""
    from scipy import ndimage as ndi

    index = np.arange(1, n + 1)
    rows, cols = np.indices(lab.shape)
    mean_r, mean_c = ndi.mean(rows, lab, index), ndi.mean(cols, lab, index)
    var_r = ndi.mean(rows * rows, lab, index) - mean_r ** 2
    var_c = ndi.mean(cols * cols, lab, index) - mean_c ** 2
    cov = ndi.mean(rows * cols, lab, index) - mean_r * mean_c
    half_trace, det_root = (var_r + var_c) / 2, np.sqrt(((var_r - var_c) / 2) ** 2 + cov ** 2)
    return np.sqrt((half_trace + det_root) / np.maximum(half_trace - det_root, 1e-3))


def image_statistics(images):
    """Return a table of 12 hand-made statistics per image (one row per image, columns :data:`STATISTICS`).

    Brightness (mean, spread, fraction of pixels above 0.5 and 0.3), edges (mean
    absolute difference of neighbouring rows), and the connected regions above 0.3
    (cells and clumps) and 0.5 (bright membranes): their number, mean and largest
    area, and the mean elongation (axis ratio) of the regions of at least 5 pixels.
    Meant for min-max scaled images in [0, 1].

    Parameters
    ----------
    images : array-like, shape (n, H, W)
        Single-channel images.
    """
    import pandas as pd

    images = np.asarray(images, dtype=np.float64)
    if images.ndim != 3 or images.shape[0] == 0:
        raise ValueError(f"images: expected a non-empty (n, H, W) stack of single-channel images, "
                         f"got shape {images.shape}")
    rows = []
    for image in images:
        lab, n_dim, area_dim = _regions(image, 0.3)
        _, n_bright, area_bright = _regions(image, 0.5)
        big = _elongations(lab, n_dim)[area_dim >= 5] if n_dim else np.zeros(0)
        rows.append((image.mean(), image.std(), (image > 0.5).mean(), (image > 0.3).mean(),
                     np.abs(np.diff(image, axis=0)).mean(), n_dim, area_dim.mean(), area_dim.max(),
                     n_bright, area_bright.mean(), area_bright.max(), big.mean() if big.size else 1.0))
    return pd.DataFrame(rows, columns=list(STATISTICS), dtype=float)


def baseline_cross_validate(statistics, labels, sets, *, splitter, seed: int = 0):
    """Return ``(results, predictions)`` of a logistic regression per cytokine on image statistics.

    The same protocol as the CNNs (:func:`cellkit.cytokine_models.cross_validate`):
    one model per cytokine and fold, trained on the fold's balanced wells only, the
    statistics standardised on the training fold; the ``augmentation`` is ``"none"``.
    The output has the CNNs' layout, so :func:`cellkit.cytokine_models.pooled_scores`
    pools it the same way.

    Parameters
    ----------
    statistics : pandas.DataFrame or array-like, shape (wells, features)
        One row per well, e.g. from :func:`image_statistics`.
    labels : pandas.DataFrame
        0/1 labels of every well (rows) for each cytokine (columns).
    sets : dict
        ``{cytokine: balanced well positions}``.
    splitter : callable
        See :func:`protocol_folds`.
    """
    import pandas as pd
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.asarray(statistics, dtype=np.float64)
    if x.ndim != 2 or len(x) != len(labels):
        raise ValueError(f"statistics: expected one row per well ({len(labels)} rows, 2-D), got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("statistics: contains NaN or infinite values")
    rows, predictions = [], {}
    for name, fold, train, test, y_all in protocol_folds(labels, sets, splitter=splitter, seed=seed):
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
        y_pred = model.fit(x[train], y_all[train]).predict(x[test])
        predictions[(name, "none", fold)] = (test, y_all[test], y_pred)
        rows.append(dict(model="baseline", cytokine=name, augmentation="none", fold=fold, n_train=len(train),
                         n_test=len(test), **classification_scores(y_all[test], y_pred)))
    results = pd.DataFrame(rows).sort_values(["cytokine", "fold"]).reset_index(drop=True)
    return results, predictions


__all__ = ["MIN_PRODUCERS", "MIN_WELLS", "THRESHOLD", "FLIPS", "AUGMENTATIONS", "binarise", "binarise_table",
           "modelable_cytokines", "balance", "balanced_sets", "two_fold_splits", "flip", "flip_augment",
           "protocol_folds", "classification_scores", "call_predictable", "score_calls", "STATISTICS",
           "image_statistics", "baseline_cross_validate"]
