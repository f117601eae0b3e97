"""Pseudo-labelling with a ramped weight, and CutMix with label mixing (lab 04).

Pseudo-labelling (Lee 2013) trains on unlabelled images with the model's own
arg-max predictions as labels, weighted by ``alpha(t)``:

    L = mean_labelled loss + alpha(t) * mean_unlabelled loss(pseudo-labels),
    alpha(t) = 0 for t <= T1, alpha_f (t - T1) / (T2 - T1) for T1 <= t <= T2, alpha_f for t >= T2.

(The seed paper prints the middle piece without the factor ``alpha_f``; its text says the
weight "attains its final value alpha_f at T2", which is what is implemented.)

CutMix (Yun et al. 2019) pastes a box of image B into image A and mixes the labels by
area: with ``lambda ~ Beta(1, 1)`` the box covers ``1 - lambda`` of the image and the
label is ``lambda y_A + (1 - lambda) y_B``.  :func:`cutmix_pair` mixes one pair in a given
box; :func:`cutmix_batch` mixes a batch, drawing each image's partner among the rows of the
same sample weight, so that CutMix never mixes a labelled site with an unlabelled one (whose
label is a placeholder before ``T1`` and a pseudo-label weighted by ``alpha(t)`` after).
"""

from __future__ import annotations

import numpy as np


def alpha_schedule(t, t1: float, t2: float, alpha_final: float) -> np.ndarray | float:
    """Return the pseudo-label weight ``alpha(t)``: 0 up to ``t1``, linear to ``alpha_final`` at ``t2``, then flat.

    ``t`` may be a number or an array (epochs or steps).
    """
    if not t2 > t1:
        raise ValueError(f"t1={t1!r}, t2={t2!r}: expected t1 < t2")
    if alpha_final < 0:
        raise ValueError(f"alpha_final={alpha_final!r}: expected a non-negative weight")
    t = np.asarray(t, dtype=np.float64)
    out = alpha_final * np.clip((t - t1) / (t2 - t1), 0.0, 1.0)
    return float(out) if out.ndim == 0 else out


def pseudo_labels(probabilities) -> np.ndarray:
    """Return one-hot pseudo-labels: 1 at the arg-max of each row of predicted probabilities (float32)."""
    p = np.asarray(probabilities)
    if p.ndim != 2:
        raise ValueError(f"probabilities: shape {p.shape}, expected (n, num_classes)")
    return np.eye(p.shape[1], dtype=np.float32)[np.argmax(p, axis=1)]


def pseudo_label_weights(n_labelled: int, n_unlabelled: int, alpha: float) -> np.ndarray:
    """Return per-sample loss weights so that a batch mean equals ``mean_labelled + alpha * mean_unlabelled``.

    For ``N`` labelled then ``M`` unlabelled samples, the labelled ones weigh
    ``(N + M) / N`` and the unlabelled ones ``alpha (N + M) / M``; Keras divides the
    weighted sum by ``N + M``, which gives exactly the loss of the pseudo-label paper.
    """
    if n_labelled < 1 or n_unlabelled < 0:
        raise ValueError(f"n_labelled={n_labelled}, n_unlabelled={n_unlabelled}: expected N >= 1 and M >= 0")
    total = n_labelled + n_unlabelled
    w = np.full(total, total / n_labelled, np.float32)
    if n_unlabelled:
        w[n_labelled:] = alpha * total / n_unlabelled
    return w


def sample_box(shape, lam: float, generator) -> tuple[int, int, int, int]:
    """Return a CutMix box ``(top, left, height, width)`` covering about ``1 - lam`` of an image of ``shape`` (H, W).

    The box has sides ``H sqrt(1 - lam)``, ``W sqrt(1 - lam)`` around a uniform random centre,
    clipped to the image (as in the CutMix paper's code); the exact area follows from the clipped box.
    """
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam={lam!r}: expected a mixing weight in [0, 1]")
    g = np.random.default_rng(generator) if not isinstance(generator, np.random.Generator) else generator
    h, w = int(shape[0]), int(shape[1])
    cut_h, cut_w = int(h * np.sqrt(1.0 - lam)), int(w * np.sqrt(1.0 - lam))
    cy, cx = int(g.integers(h)), int(g.integers(w))
    top, bottom = np.clip(cy - cut_h // 2, 0, h), np.clip(cy + cut_h // 2, 0, h)
    left, right = np.clip(cx - cut_w // 2, 0, w), np.clip(cx + cut_w // 2, 0, w)
    return int(top), int(left), int(bottom - top), int(right - left)


def cutmix_pair(image_a, label_a, image_b, label_b, box):
    """Return ``(mixed image, mixed label)``: ``box`` of ``image_b`` pasted into ``image_a``, labels mixed by area.

    Parameters
    ----------
    image_a, image_b : array (H, W, C)
    label_a, label_b : array (K,)
        One-hot (or soft) labels.
    box : (top, left, height, width)
        The pasted region, in pixels.

    Returns
    -------
    mixed : array (H, W, C)
        ``M * image_a + (1 - M) * image_b`` with ``M = 0`` inside the box.
    label : array (K,)
        ``lam * label_a + (1 - lam) * label_b`` with ``lam = 1 - box area / (H W)``.
    """
    a, b = np.asarray(image_a), np.asarray(image_b)
    if a.shape != b.shape or a.ndim != 3:
        raise ValueError(f"image_a, image_b: shapes {a.shape} and {b.shape}, expected two equal (H, W, C) arrays")
    top, left, height, width = (int(v) for v in box)
    h, w = a.shape[:2]
    if top < 0 or left < 0 or height < 0 or width < 0 or top + height > h or left + width > w:
        raise ValueError(f"box={tuple(box)}: expected (top, left, height, width) inside the {h}x{w} image")
    mixed = a.copy()
    mixed[top:top + height, left:left + width] = b[top:top + height, left:left + width]
    lam = 1.0 - height * width / (h * w)
    label = lam * np.asarray(label_a, np.float64) + (1.0 - lam) * np.asarray(label_b, np.float64)
    return mixed, label.astype(np.float32)


def cutmix_batch(images, labels, *, sample_weight=None, seed=None):
    """Return ``(images, labels, sample_weight)`` of a batch after CutMix, partners drawn within groups of equal weight.

    Each image ``i`` draws ``lambda ~ Beta(1, 1)``, a box (:func:`sample_box`) and a partner
    ``j``, and becomes :func:`cutmix_pair` of the two.  The partner is another row **with the same
    sample weight**: labelled rows mix with labelled rows, pseudo-labelled rows (weight
    ``alpha(t) (N + M) / M``) with pseudo-labelled rows, and rows of weight 0 (unlabelled sites
    before ``T1``, whose label is a placeholder) are left as they are.  So no placeholder label
    ever reaches the loss with a non-zero weight, and a pseudo-label keeps its weight ``alpha(t)``
    through CutMix.  The weights are mixed by ``lambda`` as well,
    ``w = lambda w_i + (1 - lambda) w_j``, which leaves them unchanged inside a group.

    ``keras.layers.CutMix`` would draw partners from the whole batch and knows nothing of
    sample weights: it would paste held-out sites, labels and all, into labelled ones.

    Parameters
    ----------
    images : array (B, H, W, C)
    labels : array (B, K)
        One-hot (or soft) labels.
    sample_weight : array (B,), optional
        None: the whole batch is one group.
    seed : int or numpy Generator
        The random stream (a Generator is used as is, so a caller can keep one stream).

    Returns
    -------
    images, labels : arrays (float32)
    sample_weight : array (float32) or None
    """
    images, labels = np.asarray(images, np.float32), np.asarray(labels, np.float32)
    if images.ndim != 4 or labels.ndim != 2 or len(images) != len(labels):
        raise ValueError(f"images, labels: shapes {images.shape} and {labels.shape}, expected (B, H, W, C) and (B, K)")
    g = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    weights = np.ones(len(images), np.float32) if sample_weight is None else np.asarray(sample_weight, np.float32)
    if weights.shape != (len(images),):
        raise ValueError(f"sample_weight: shape {weights.shape}, expected ({len(images)},)")
    out_images, out_labels, out_weights = images.copy(), labels.copy(), weights.copy()
    for value in np.unique(weights):
        members = np.flatnonzero(weights == value)
        if value == 0 or len(members) < 2:
            continue  # weight 0: placeholder labels stay out of every mix
        for i in members:
            j = int(g.choice(members[members != i]))
            box = sample_box(images.shape[1:3], float(g.beta(1.0, 1.0)), g)
            out_images[i], out_labels[i] = cutmix_pair(images[i], labels[i], images[j], labels[j], box)
            lam = 1.0 - box[2] * box[3] / (images.shape[1] * images.shape[2])
            out_weights[i] = lam * weights[i] + (1.0 - lam) * weights[j]
    return out_images, out_labels, (None if sample_weight is None else out_weights)


class CutMixAugment:
    """A picklable ``augment(images, labels, sample_weight, rng)`` for :class:`cellkit.data.rxrx1.RxRx1Sequence`.

    Applies :func:`cutmix_batch` (partners within groups of equal weight) with probability
    ``probability`` per batch, drawing from the batch's own random stream ``rng`` (or, when
    called without one, from a stream seeded by ``seed``).
    """

    def __init__(self, *, probability: float = 0.5, seed: int = 0):
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"probability={probability!r}: expected a value in [0, 1]")
        self.probability = probability
        self._rng = np.random.default_rng(seed)

    def __call__(self, images, labels, sample_weight=None, rng=None):
        rng = self._rng if rng is None else rng
        if len(images) < 2 or rng.uniform() >= self.probability:
            return images, labels, sample_weight
        return cutmix_batch(images, labels, sample_weight=sample_weight, seed=rng)


__all__ = ["alpha_schedule", "pseudo_labels", "pseudo_label_weights", "sample_box", "cutmix_pair", "cutmix_batch",
           "CutMixAugment"]
