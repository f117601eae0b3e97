"""Scoring 'interesting frame' curves against planted events: ROC AUC and precision at the top frames.

A curve gives one score per frame of a video (attention importance, attention variance,
or the plain frame-difference baseline).  The synthetic videos of lab 05 list, in
``ground_truth.csv``, the frames at which something happens (a division, a turn, a speed
burst, a death, a cell entering).  A frame counts as an *event frame* when it lies within
``tolerance`` frames of a planted event; the scores then ask two questions:

* :func:`roc_auc`: how often a random event frame outscores a random quiet frame (0.5: chance);
* :func:`precision_at_k`: which fraction of the ``k`` highest-scoring frames are event frames.
"""

from __future__ import annotations

import numpy as np


def event_labels(events, video: str, n_frames: int, *, tolerance: int = 1, event: str | None = None) -> np.ndarray:
    """Return a boolean array (n_frames,) that is True within ``tolerance`` frames of an event of ``video``.

    Parameters
    ----------
    events : list of dict
        Rows with ``video``, ``frame`` and ``event`` (see :func:`cellkit.data.migration.read_events`).
    event : str, optional
        Keep only events of this type.
    """
    if not isinstance(tolerance, (int, np.integer)) or tolerance < 0:
        raise ValueError(f"tolerance={tolerance!r}: expected a non-negative integer number of frames")
    labels = np.zeros(int(n_frames), bool)
    for row in events:
        if row["video"] == video and (event is None or row["event"] == event):
            f = int(row["frame"])
            labels[max(0, f - tolerance): f + tolerance + 1] = True
    return labels


def _clean(scores, labels):
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel()
    if s.shape != y.shape:
        raise ValueError(f"scores has {s.size} values but labels {y.size}: expected one label per frame")
    if y.dtype != bool and not np.isin(y, (0, 1)).all():
        raise ValueError("labels: expected booleans or 0/1 (1 = event frame)")
    keep = np.isfinite(s)
    return s[keep], y[keep].astype(bool)


def roc_auc(scores, labels) -> float:
    """Return the area under the ROC curve of ``scores`` for the binary ``labels`` (NaN scores dropped).

    Computed as the Mann-Whitney statistic: the probability that a random positive frame scores
    higher than a random negative one, ties counting one half.  NaN when a class is empty.
    """
    from scipy.stats import rankdata

    s, y = _clean(scores, labels)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(s)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def precision_at_k(scores, labels, k: int) -> float:
    """Return the fraction of event frames among the ``k`` highest-scoring frames (ties broken by earlier frame)."""
    s, y = _clean(scores, labels)
    if not isinstance(k, (int, np.integer)) or not 1 <= k <= len(s):
        raise ValueError(f"k={k!r}: expected an integer between 1 and the {len(s)} scored frames")
    top = np.argsort(-s, kind="stable")[:k]
    return float(y[top].mean())


def frame_difference(video) -> np.ndarray:
    """Return the baseline curve: mean absolute change of each frame from the previous one (frame 0 gets NaN)."""
    v = np.asarray(video, dtype=np.float64)
    if v.ndim < 2:
        raise ValueError(f"video: shape {v.shape}, expected (T, ...) frames")
    diff = np.abs(np.diff(v, axis=0)).reshape(len(v) - 1, -1).mean(axis=1)
    return np.concatenate([[np.nan], diff])


def evaluate(curves: dict, events, *, tolerance: int = 1, k: int | None = None, event_types=None):
    """Return a table (pandas DataFrame) of ROC AUC and precision at the top ``k`` per curve and event type.

    Parameters
    ----------
    curves : dict
        ``{model name: {video name: per-frame scores}}``; the frames of all videos are pooled.
    events : list of dict
        The planted events.
    tolerance : int
        Frames within this distance of an event count as event frames.
    k : int, optional
        Top frames for the precision; default the number of event frames pooled (so that a
        perfect ranking scores 1).
    event_types : sequence of str, optional
        Default every type present in ``events``; ``"any"`` (every event) is always added.

    Returns
    -------
    pandas.DataFrame
        Columns ``model, event, auc, precision_at_k, k, event_frames, frames``.
    """
    import pandas as pd

    types = list(event_types) if event_types is not None else sorted({e["event"] for e in events})
    rows = []
    for model, per_video in curves.items():
        for kind in ["any"] + types:
            scores, labels = [], []
            for video, curve in per_video.items():
                curve = np.asarray(curve, dtype=np.float64)
                scores.append(curve)
                labels.append(event_labels(events, video, len(curve), tolerance=tolerance,
                                           event=None if kind == "any" else kind))
            s, y = _clean(np.concatenate(scores), np.concatenate(labels))
            kk = k if k is not None else max(1, int(y.sum()))
            rows.append(dict(model=model, event=kind, auc=roc_auc(s, y),
                             precision_at_k=precision_at_k(s, y, min(kk, len(s))), k=min(kk, len(s)),
                             event_frames=int(y.sum()), frames=len(s)))
    return pd.DataFrame(rows)


def position_prior(n_frames: int, kind: str = "centre") -> np.ndarray:
    """Return a null curve that knows only where a frame sits in its video.

    Parameters
    ----------
    kind : {"centre", "index"}
        ``"centre"``: closeness to the middle of the video, ``-|t - (T - 1) / 2|`` (a score of this kind
        wins when events avoid the ends of the videos, as they did in an earlier version of lab 05);
        ``"index"``: the frame number itself (wins when events come late).
    """
    if not isinstance(n_frames, (int, np.integer)) or n_frames < 1:
        raise ValueError(f"n_frames={n_frames!r}: expected a positive integer")
    t = np.arange(n_frames, dtype=np.float64)
    if kind == "centre":
        return -np.abs(t - (n_frames - 1) / 2)
    if kind == "index":
        return t
    raise ValueError(f"kind={kind!r}: expected 'centre' or 'index'")


def bootstrap_auc(per_video: dict, events, *, tolerance: int = 1, n_boot: int = 1000, seed: int = 0,
                  level: float = 0.95) -> tuple[float, float, float]:
    """Return ``(auc, low, high)``: pooled ROC AUC of a curve and a bootstrap interval over videos.

    Videos are resampled with replacement (frames of one video are not independent: neighbours
    share an event's label and the same cells), the pooled AUC recomputed each time, and the
    ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles returned.  Few videos give a wide, coarse interval.

    Parameters
    ----------
    per_video : dict
        ``{video name: per-frame scores}`` (NaN frames are dropped).
    """
    if not 0 < level < 1:
        raise ValueError(f"level={level}: expected a number between 0 and 1")
    if not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise ValueError(f"n_boot={n_boot!r}: expected a positive integer")
    names = list(per_video)
    if not names:
        raise ValueError("per_video: expected at least one video")
    scores = [np.asarray(per_video[v], dtype=np.float64) for v in names]
    labels = [event_labels(events, v, len(c), tolerance=tolerance) for v, c in zip(names, scores)]
    auc = roc_auc(np.concatenate(scores), np.concatenate(labels))
    g = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        pick = g.integers(0, len(names), size=len(names))
        boots.append(roc_auc(np.concatenate([scores[i] for i in pick]), np.concatenate([labels[i] for i in pick])))
    boots = np.asarray(boots)
    boots = boots[np.isfinite(boots)]
    if len(boots) == 0:
        return auc, float("nan"), float("nan")
    low, high = np.quantile(boots, [(1 - level) / 2, (1 + level) / 2])
    return auc, float(low), float(high)


__all__ = ["event_labels", "roc_auc", "precision_at_k", "frame_difference", "position_prior", "bootstrap_auc",
           "evaluate"]
