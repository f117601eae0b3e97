"""Attention over the frames of a video, and what it says about which frames matter.

Layers (``keras.ops`` only, so they run on TensorFlow and JAX):

* :class:`DotAttention`: Luong's *dot* score ``s_i = q . h_i`` (optionally scaled by ``1/sqrt(d)``);
* :class:`ConcatAttention`: Luong's *concat* score ``s_i = v . tanh(W [q; h_i])``;
* :class:`LocationAttention`: Luong's *location* score ``s = W_a q``: the weights depend
  only on the query, i.e. on *where* in the sequence a frame sits, not on what it shows.

Each returns ``(context, weights)`` where ``weights`` (batch, T) sum to 1 over the
frames that the optional ``mask`` keeps.  Functions (NumPy in, NumPy out, except
:func:`kl_to_uniform` which takes tensors so that it can be a Keras loss):

* :func:`kl_to_uniform`: KL divergence of an attention distribution from the uniform one;
* :func:`importance`: attention normalised by its smallest value in each sequence, in log
  units (how many times more attention a frame gets than the least attended one, on a log scale;
  not an information content, which would be ``-log p``);
* :func:`frame_importance`: per-frame importance of a whole video from overlapping sequences;
* :func:`attention_variance`: a score for short subsequences, the variance of attention in them.
"""

from __future__ import annotations

import numpy as np

import keras
from keras import ops

_NEG = -1e9


def masked_softmax(scores, mask=None):
    """Return ``softmax(scores)`` over the last axis, with zero weight where ``mask`` is False.

    Rows whose mask is all False get uniform weights over all positions rather than NaN.
    """
    if mask is None:
        return ops.softmax(scores, axis=-1)
    mask = ops.cast(mask, "bool")
    any_kept = ops.any(mask, axis=-1, keepdims=True)
    mask = ops.logical_or(mask, ops.logical_not(any_kept))
    scores = ops.where(mask, scores, ops.full_like(scores, _NEG))
    weights = ops.softmax(scores, axis=-1)
    return weights * ops.cast(mask, weights.dtype)


class _FrameAttention(keras.layers.Layer):
    """Base class: ``call(query (B, D), values (B, T, D), mask (B, T))`` -> ``(context (B, D), weights (B, T))``."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True  # the mask is used in call(), and not passed on

    def compute_mask(self, *args, **kwargs):
        return None

    def scores(self, query, values):  # pragma: no cover - abstract
        raise NotImplementedError

    def call(self, query, values, mask=None):
        weights = masked_softmax(self.scores(query, values), mask)
        context = ops.sum(values * ops.expand_dims(weights, -1), axis=1)
        return context, weights

    def compute_output_shape(self, query_shape, values_shape, mask_shape=None):
        return (values_shape[0], values_shape[2]), (values_shape[0], values_shape[1])


@keras.saving.register_keras_serializable(package="cellkit")
class DotAttention(_FrameAttention):
    """Luong dot-product attention over frames: ``score_i = q . h_i`` (divided by ``sqrt(d)`` when ``scale``).

    Parameters
    ----------
    scale : bool
        Divide the scores by the square root of the feature size, as transformers do, so that
        the softmax does not saturate when the features are large.
    """

    def __init__(self, scale: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.scale = bool(scale)

    def scores(self, query, values):
        s = ops.sum(values * ops.expand_dims(query, 1), axis=-1)
        if self.scale:
            s = s / ops.sqrt(ops.cast(ops.shape(values)[-1], s.dtype))
        return s

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


@keras.saving.register_keras_serializable(package="cellkit")
class ConcatAttention(_FrameAttention):
    """Luong 'concat' attention: ``score_i = v . tanh(W_q q + W_h h_i)`` with ``units`` hidden units.

    (``W [q; h_i]`` written as two matrices, which is the same thing.)
    """

    def __init__(self, units: int = 32, **kwargs):
        super().__init__(**kwargs)
        if int(units) < 1:
            raise ValueError(f"units={units!r}: expected a positive integer")
        self.units = int(units)

    def build(self, query_shape, values_shape, mask_shape=None):
        self.w_q = self.add_weight(name="w_q", shape=(query_shape[-1], self.units), initializer="glorot_uniform")
        self.w_h = self.add_weight(name="w_h", shape=(values_shape[-1], self.units), initializer="glorot_uniform")
        self.v = self.add_weight(name="v", shape=(self.units,), initializer="glorot_uniform")

    def scores(self, query, values):
        hidden = ops.tanh(ops.expand_dims(ops.matmul(query, self.w_q), 1) + ops.matmul(values, self.w_h))
        return ops.sum(hidden * self.v, axis=-1)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@keras.saving.register_keras_serializable(package="cellkit")
class LocationAttention(_FrameAttention):
    """Luong 'location' attention: ``scores = W_a q`` (one score per position; needs a fixed sequence length).

    The weights depend on the query only, not on the frames' content: the network
    learns *which positions* to look at.  This is why, in the original project,
    sequences shifted by one frame got similar attention shapes.
    """

    def build(self, query_shape, values_shape, mask_shape=None):
        if values_shape[1] is None:
            raise ValueError("LocationAttention needs a fixed sequence length (values shape (B, T, D) with T known)")
        self.w_a = self.add_weight(name="w_a", shape=(query_shape[-1], values_shape[1]), initializer="glorot_uniform")
        self.b_a = self.add_weight(name="b_a", shape=(values_shape[1],), initializer="zeros")

    def scores(self, query, values):
        return ops.matmul(query, self.w_a) + self.b_a


ATTENTIONS = {"dot": DotAttention, "concat": ConcatAttention, "location": LocationAttention}


def kl_to_uniform(weights, mask=None, eps: float = 1e-7):
    """Return the KL divergence ``KL(a || uniform) = sum_i a_i log(a_i * T)`` of each attention row, in nats.

    Zero when attention is spread evenly over the ``T`` frames; ``log T`` when it sits
    on one frame.  Works on NumPy arrays and backend tensors (it is ``keras.ops`` only).

    Parameters
    ----------
    weights : array (..., T)
        Attention distributions (each row sums to 1).
    mask : array (..., T) of bool, optional
        Frames that count; ``T`` is then the number of kept frames of each row.
    eps : float
        Added inside the logarithm so that zero weights give 0, not NaN.

    Returns
    -------
    tensor (...)
        One divergence per row.
    """
    weights = ops.convert_to_tensor(weights)
    if mask is None:
        n = ops.cast(ops.shape(weights)[-1], weights.dtype)
        return ops.sum(weights * ops.log(weights * n + eps), axis=-1)
    keep = ops.cast(mask, weights.dtype)
    n = ops.sum(keep, axis=-1, keepdims=True)
    return ops.sum(keep * weights * ops.log(weights * n + eps), axis=-1)


@keras.saving.register_keras_serializable(package="cellkit")
def kl_to_uniform_loss(y_true, y_pred):
    """Return the mean KL divergence of the predicted attention rows from uniform (``y_true`` is ignored).

    Use it as the loss of a model's attention output, with a small ``loss_weights`` entry, so that
    attention spreads over the frames unless a frame really helps the main task.
    """
    return ops.mean(kl_to_uniform(y_pred))


def importance(weights, *, base: float = np.e, floor: float = 1e-9) -> np.ndarray:
    """Return ``log(a_i / min_j a_j)`` for each attention row: importance relative to the least attended frame.

    Dividing by the row's smallest weight removes what all frames of a sequence share,
    so that sequences whose attention is spread differently can be compared; the log puts the
    ratio on an additive scale (nats for ``base=e``, bits for ``base=2``).  This is a log-ratio of
    attention, not Shannon's information content (``-log p`` of an outcome's probability), although
    the original project called it that.  The least attended frame of each row scores 0.

    A softmax is positive in exact arithmetic, but in float32 a peaked row underflows to
    exact zeros (the transformer's attention does, in full mode); the ratio would then be
    infinite and the frame lost from every score.  Weights below ``floor`` are raised to it
    first, so a row's importance is at most ``log(1 / floor)`` (20.7 nats for 1e-9).

    Parameters
    ----------
    weights : array (..., T)
        Attention weights, non-negative and finite.
    floor : float
        Smallest weight used (positive).
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim < 1 or w.shape[-1] < 1:
        raise ValueError(f"weights: shape {w.shape}, expected (..., T) with T >= 1")
    if np.any(w < 0) or not np.all(np.isfinite(w)):
        raise ValueError("weights: expected non-negative finite attention weights (softmax outputs)")
    if not floor > 0:
        raise ValueError(f"floor={floor}: expected a positive number")
    w = np.maximum(w, floor)
    return np.log(w / w.min(axis=-1, keepdims=True)) / np.log(base)


def frame_importance(seq_importance, starts, n_frames: int) -> np.ndarray:
    """Return the importance of each frame of a video: the mean over the sequences that contain it.

    Parameters
    ----------
    seq_importance : array (n, T)
        Importance of position ``i`` of sequence ``k``, which shows frame ``starts[k] + i``.
    starts : array (n,)
        First frame of each sequence.
    n_frames : int
        Frames in the video; frames no sequence covers get NaN.
    """
    imp = np.asarray(seq_importance, dtype=np.float64)
    starts = np.asarray(starts, dtype=int)
    if imp.ndim != 2 or len(starts) != len(imp):
        raise ValueError(f"seq_importance: shape {imp.shape}, expected (n, T) with n = len(starts) = {len(starts)}")
    if starts.min() < 0 or starts.max() + imp.shape[1] > n_frames:
        raise ValueError(f"starts: sequences run past the {n_frames} frames of the video")
    total = np.zeros(n_frames)
    count = np.zeros(n_frames)
    for s, row in zip(starts, imp):
        total[s:s + len(row)] += row
        count[s:s + len(row)] += 1
    with np.errstate(invalid="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def attention_variance(curve, window: int = 3) -> np.ndarray:
    """Return, for each frame, the variance of ``curve`` over the ``window`` frames centred on it.

    A subsequence where attention jumps about scores high; one where it is flat scores 0.
    Edges use the frames available; NaN entries are ignored.
    """
    x = np.asarray(curve, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"curve: shape {x.shape}, expected one value per frame (T,)")
    if not isinstance(window, (int, np.integer)) or window < 2:
        raise ValueError(f"window={window!r}: expected an integer of at least 2 frames")
    half = window // 2
    out = np.full(len(x), np.nan)
    for t in range(len(x)):
        seg = x[max(0, t - half): t - half + window]
        seg = seg[np.isfinite(seg)]
        if len(seg) >= 2:
            out[t] = seg.var()
    return out


def curve_correlations(curves: dict, *, method: str = "spearman") -> tuple[list, np.ndarray]:
    """Return ``(names, matrix)`` of pairwise correlations between importance curves (NaNs dropped pairwise).

    Parameters
    ----------
    curves : dict of name -> array (T,)
        One importance curve per network, over the same frames.
    method : {"spearman", "pearson"}
    """
    from scipy import stats

    if method not in ("spearman", "pearson"):
        raise ValueError(f"method={method!r}: expected 'spearman' or 'pearson'")
    names = list(curves)
    arrays = [np.asarray(curves[n], dtype=np.float64) for n in names]
    if len({a.shape for a in arrays}) != 1:
        raise ValueError("curves: expected every curve to cover the same frames (same length)")
    m = np.eye(len(names))
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            ok = np.isfinite(arrays[i]) & np.isfinite(arrays[j])
            a, b = arrays[i][ok], arrays[j][ok]
            if ok.sum() < 3 or a.std() == 0 or b.std() == 0:
                r = np.nan
            else:
                r = (stats.spearmanr(a, b)[0] if method == "spearman" else stats.pearsonr(a, b)[0])
            m[i, j] = m[j, i] = r
    return names, m


__all__ = ["masked_softmax", "DotAttention", "ConcatAttention", "LocationAttention", "ATTENTIONS",
           "kl_to_uniform", "kl_to_uniform_loss", "importance", "frame_importance", "attention_variance",
           "curve_correlations"]
