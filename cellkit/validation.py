"""Honest validation: splits that keep correlated images apart, repeated runs and grouped cross-validation.

Images of one treatment (same compound, same concentration, neighbouring wells
and fields) share much more than their mechanism of action: a model can
recognise the treatment instead of the phenotype.  A random image-level split
puts images of one treatment on both sides and so overstates accuracy;
:func:`grouped_split` keeps every treatment on one side.  A single training run
is one draw from a noisy process (initial weights, shuffling, the split), so a
change to a model is judged by :func:`repeated_scores` over several seeds and
summarised by :func:`mean_and_spread`, or by :func:`grouped_kfold`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


def _as_1d(values, name: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name}: expected a non-empty 1-D array, got shape {arr.shape}")
    return arr


def _check_fraction(val_fraction):
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction={val_fraction!r}: expected a fraction strictly between 0 and 1")


def random_split(labels, val_fraction: float = 0.25, *, seed: int = 0, stratify: bool = True):
    """Return ``(train_idx, val_idx)``: a random image-level split, stratified by class by default.

    Each class contributes ``round(val_fraction * n_class)`` images (at least one,
    at most all but one) to the validation set.  Images of one treatment can land
    on both sides: this is the split that overstates accuracy.
    """
    labels = _as_1d(labels, "labels")
    _check_fraction(val_fraction)
    g = np.random.default_rng(seed)
    if not stratify:
        order = g.permutation(len(labels))
        n_val = int(np.clip(round(val_fraction * len(labels)), 1, len(labels) - 1))
        return np.sort(order[n_val:]), np.sort(order[:n_val])
    val = []
    for k in np.unique(labels):
        idx = g.permutation(np.flatnonzero(labels == k))
        n_val = int(np.clip(round(val_fraction * len(idx)), 1, max(len(idx) - 1, 1)))
        val.extend(idx[:n_val])
    val = np.sort(np.array(val, dtype=np.int64))
    train = np.setdiff1d(np.arange(len(labels)), val)
    return train, val


def grouped_split(groups, labels=None, val_fraction: float = 0.25, *, seed: int = 0):
    """Return ``(train_idx, val_idx)`` with every group (treatment) wholly on one side.

    Parameters
    ----------
    groups : array of hashable
        The treatment (or plate, or compound) of each image.
    labels : array of int, optional
        The class of each image.  When given, the split is stratified: within each
        class, ``round(val_fraction * n_groups)`` of its groups (at least one, and at
        least one left for training) go to validation, so every class is on both
        sides.  Each group must then hold a single class.
    val_fraction : float
        Fraction of the groups (of each class) held out.
    seed : int
        Seed of the random choice of groups.

    Raises
    ------
    ValueError
        Bad arguments, a group spanning two classes, or a class with a single group.
    """
    groups = _as_1d(groups, "groups")
    _check_fraction(val_fraction)
    g = np.random.default_rng(seed)
    if labels is None:
        names = np.unique(groups)
        if len(names) < 2:
            raise ValueError("groups: at least two groups are needed to keep them apart")
        n_val = int(np.clip(round(val_fraction * len(names)), 1, len(names) - 1))
        held = g.permutation(names)[:n_val]
    else:
        labels = _as_1d(labels, "labels")
        if labels.shape != groups.shape:
            raise ValueError(f"labels and groups: {len(labels)} labels but {len(groups)} groups")
        held = []
        for k in np.unique(labels):
            names = np.unique(groups[labels == k])
            if len(names) < 2:
                raise ValueError(f"class {k!r} has a single group ({names[0]!r}): it cannot be on both sides "
                                 f"of a grouped split")
            n_val = int(np.clip(round(val_fraction * len(names)), 1, len(names) - 1))
            held.extend(g.permutation(names)[:n_val])
        mixed = [grp for grp in np.unique(groups) if len(np.unique(labels[groups == grp])) > 1]
        if mixed:
            raise ValueError(f"groups {mixed[:3]} hold images of more than one class; expected one class per group")
    is_val = np.isin(groups, np.asarray(held))
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def keras_directory_split(paths, labels, val_fraction: float = 0.25):
    """Return ``(train_idx, val_idx)`` as Keras's ``ImageDataGenerator(validation_split=...)`` splits a folder.

    ``flow_from_directory(subset="validation")`` takes, in each class folder, the
    **first** ``int(val_fraction * n)`` files in sorted file-name order (string
    order: ``bbbc021v1_10.png`` comes before ``bbbc021v1_9.png``); ``subset="training"``
    takes the rest.  This is the split of the original Uppsala lab.  (``model.fit``'s
    own ``validation_split`` is another rule: the *last* fraction of the arrays.)

    Parameters
    ----------
    paths : sequence of str
        Each image's path; only the file name (after the last ``/``) is used for the order.
    labels : array of int
        Each image's class (its folder).
    """
    labels = _as_1d(labels, "labels")
    _check_fraction(val_fraction)
    names = [str(p).replace("\\", "/").rsplit("/", 1)[-1] for p in paths]
    if len(names) != len(labels):
        raise ValueError(f"paths and labels: {len(names)} paths but {len(labels)} labels")
    val = []
    for k in np.unique(labels):
        idx = np.flatnonzero(labels == k)
        ordered = idx[np.argsort([names[i] for i in idx], kind="stable")]
        val.extend(ordered[:int(val_fraction * len(idx))])
    val = np.sort(np.array(val, dtype=np.int64))
    return np.setdiff1d(np.arange(len(labels)), val), val


def shared_groups(train_idx, val_idx, groups) -> list:
    """Return the groups that have images on both sides of a split (empty for a grouped split)."""
    groups = np.asarray(groups)
    both = set(groups[np.asarray(train_idx, dtype=np.int64)].tolist()) & set(
        groups[np.asarray(val_idx, dtype=np.int64)].tolist())
    return sorted(both)


def grouped_kfold(groups, labels=None, k: int = 4, *, seed: int = 0) -> list:
    """Return ``k`` pairs ``(train_idx, val_idx)``: each group is in exactly one validation fold.

    With ``labels``, the groups of each class are dealt round-robin (after a seeded
    shuffle) over the folds, so each fold holds every class that has at least ``k``
    groups.
    """
    groups = _as_1d(groups, "groups")
    if not isinstance(k, (int, np.integer)) or k < 2:
        raise ValueError(f"k={k!r}: expected an integer of at least 2")
    g = np.random.default_rng(seed)
    fold_of = {}
    pools = [np.unique(groups)] if labels is None else [np.unique(groups[np.asarray(labels) == c])
                                                        for c in np.unique(labels)]
    start = 0
    for names in pools:
        for i, name in enumerate(g.permutation(names)):
            fold_of[name] = (start + i) % k
        start += len(names)
    if len(fold_of) < k:
        raise ValueError(f"k={k}: only {len(fold_of)} groups, expected at least k")
    fold = np.array([fold_of[x] for x in groups.tolist()])
    return [(np.flatnonzero(fold != f), np.flatnonzero(fold == f)) for f in range(k)]


def mean_and_spread(scores) -> tuple[float, float]:
    """Return ``(mean, sample standard deviation)`` of repeated scores (``ddof=1``; 0.0 for one score).

    Examples
    --------
    >>> mean_and_spread([0.70, 0.80, 0.75])
    (0.75, 0.05)
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 1 or scores.size == 0 or not np.all(np.isfinite(scores)):
        raise ValueError(f"scores: expected a non-empty 1-D array of finite numbers, got {scores!r}")
    spread = float(np.std(scores, ddof=1)) if scores.size > 1 else 0.0
    return round(float(np.mean(scores)), 12), round(spread, 12)


def repeated_scores(score: Callable[[int], float], seeds: Sequence[int]) -> np.ndarray:
    """Return ``score(seed)`` for each seed, as an array: one training run per seed.

    ``score`` trains a fresh model with every random choice seeded by ``seed``
    (weights, shuffling, augmentation, dropout) and returns its validation score.
    """
    seeds = list(seeds)
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds={seeds!r}: expected a non-empty list of distinct seeds")
    return np.array([float(score(int(s))) for s in seeds])


def describe_scores(name: str, scores) -> str:
    """Return a line like ``improved: 0.812 +/- 0.031 (mean +/- SD over 3 seeds: 0.78, 0.83, 0.83)``."""
    mean, sd = mean_and_spread(scores)
    shown = ", ".join(f"{s:.2f}" for s in np.asarray(scores))
    return f"{name}: {mean:.3f} +/- {sd:.3f} (mean +/- SD over {len(scores)} seed(s): {shown})"


def plot_scores(results: dict, *, chance: float | None = None, title: str = "Validation accuracy over seeds",
                ylabel: str = "validation accuracy"):
    """Return a figure of each model's repeated scores (dots) with their mean and +/- 1 SD bar."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(5.5, 1.6 + 1.4 * len(results)), 3.6))
    for i, (name, scores) in enumerate(results.items()):
        scores = np.asarray(scores, dtype=float)
        mean, sd = mean_and_spread(scores)
        ax.errorbar(i, mean, yerr=sd, fmt="s", color="black", capsize=6, zorder=3)
        ax.scatter(np.full(len(scores), i) + np.linspace(-0.12, 0.12, len(scores)), scores, alpha=0.7, zorder=2)
    if chance is not None:
        ax.axhline(chance, ls="--", color="grey", label=f"chance ({chance:.2f})")
        ax.legend(loc="lower right")
    ax.set_xticks(range(len(results)), list(results))
    ax.set_xlim(-0.6, len(results) - 0.4)
    ax.set_ylim(0, 1.02)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


__all__ = ["random_split", "grouped_split", "keras_directory_split", "shared_groups", "grouped_kfold", "mean_and_spread", "repeated_scores",
           "describe_scores", "plot_scores"]
