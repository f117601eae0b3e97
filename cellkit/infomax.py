"""Deep InfoMax for cell images: local and global encoders, the masked mutual-information loss, prior matching.

Deep InfoMax (Hjelm et al., ICLR 2019) trains an encoder without labels by
making the *global* code of an image predictable from each of its *local*
feature-map vectors: a discriminator scores (local, global) pairs, positive pairs
should score high and negative pairs low.  Lab 06 follows a variant built for
microscopy (HT29 cells, BBBC018):

* batches are 5-D, ``B x N x C x H x W``: B samples (wells), N fields of view each;
* a *positive* pair is a local vector and a global code of the **same sample**,
  from any of its fields; a *negative* pair comes from two **different samples**;
* local vectors that fall on background (a pooled foreground mask) are left out;
* a prior discriminator pushes the global code towards a uniform prior.

Functions here are the reference implementations the lab's checks compare
against (:func:`pair_masks`, :func:`masked_jsd_loss`, its NumPy twin
:func:`masked_jsd_loss_numpy`, :func:`masked_infonce_loss`), the encoder
builder :func:`conv_encoder`, the trainer :class:`InfoMax` (a Keras model whose
``compute_loss`` holds the objective, so that ``fit`` works on TensorFlow and
JAX), and sliding-window inference (:func:`sliding_windows`, :func:`embed_fields`).
Model code uses ``keras.ops`` only.
"""

from __future__ import annotations

import numpy as np
import keras
from keras import layers, ops

ESTIMATORS = ("jsd", "infonce")


# --------------------------------------------------------------------------- pairs and losses


def pair_masks(sample_ids):
    """Return ``(positive, negative)``: (M, M) float masks of same-sample and different-sample pairs.

    ``positive[i, j]`` is 1 where image ``i`` (its local vectors) and image ``j``
    (its global code) come from the same sample, whatever their fields of view;
    ``negative`` is its complement.  Works on NumPy arrays and backend tensors.

    Examples
    --------
    >>> pos, neg = pair_masks(np.array([0, 0, 1]))
    >>> np.asarray(pos).astype(int).tolist()
    [[1, 1, 0], [1, 1, 0], [0, 0, 1]]
    """
    ids = ops.convert_to_tensor(sample_ids)
    if len(ids.shape) != 1:
        raise ValueError(f"sample_ids: shape {tuple(ids.shape)}, expected a 1-D array of one id per image")
    same = ops.cast(ops.equal(ops.expand_dims(ids, 1), ops.expand_dims(ids, 0)), "float32")
    return same, 1.0 - same


def sample_ids_for(batch: int, fields: int):
    """Return the sample index of each image of a flattened ``B x N`` batch: ``[0]*N + [1]*N + ...``."""
    return np.repeat(np.arange(batch, dtype="int32"), fields)


def _scores(local, global_):
    # score[m, p, k] = <local vector p of image m, global code of image k>: the "encode-and-dot" discriminator
    return ops.einsum("mpe,ke->mpk", local, global_)


def _check_loss_inputs(local, global_, sample_ids, local_mask):
    if len(local.shape) != 3:
        raise ValueError(f"local: shape {tuple(local.shape)}, expected (images, locations, features)")
    if len(global_.shape) != 2 or global_.shape[-1] != local.shape[-1]:
        raise ValueError(f"global_: shape {tuple(global_.shape)}, expected (images, {local.shape[-1]})")
    if tuple(local_mask.shape) != tuple(local.shape[:2]):
        raise ValueError(f"local_mask: shape {tuple(local_mask.shape)}, expected (images, locations) = "
                         f"{tuple(local.shape[:2])}")
    if tuple(sample_ids.shape) != (local.shape[0],):
        raise ValueError(f"sample_ids: shape {tuple(sample_ids.shape)}, expected ({local.shape[0]},)")


def masked_jsd_loss(local, global_, sample_ids, local_mask):
    """Return the Jensen-Shannon mutual-information loss over foreground local vectors (a scalar tensor).

    With scores ``s = <local, global>`` for every (local vector, global code) pair,
    the Jensen-Shannon MI estimate is ``E_pos[-softplus(-s)] - E_neg[softplus(s)]``;
    the loss is its negative, ``E_pos[softplus(-s)] + E_neg[softplus(s)]``.  Both
    expectations are means over the pairs whose local vector lies on foreground
    (``local_mask`` 1): background locations take no part.

    Parameters
    ----------
    local : tensor, shape (M, P, E)
        P local vectors of each of the M images.
    global_ : tensor, shape (M, E)
        One global code per image.
    sample_ids : tensor, shape (M,)
        The sample of each image; same id = positive pair.
    local_mask : tensor, shape (M, P)
        1 where the local vector lies on foreground, 0 on background.
    """
    local, global_ = ops.convert_to_tensor(local), ops.convert_to_tensor(global_)
    sample_ids, local_mask = ops.convert_to_tensor(sample_ids), ops.cast(local_mask, local.dtype)
    _check_loss_inputs(local, global_, sample_ids, local_mask)
    s = _scores(local, global_)
    pos, neg = pair_masks(sample_ids)
    w = ops.expand_dims(local_mask, -1)
    wpos = w * ops.cast(ops.expand_dims(pos, 1), local.dtype)
    wneg = w * ops.cast(ops.expand_dims(neg, 1), local.dtype)
    e_pos = ops.sum(wpos * ops.softplus(-s)) / ops.maximum(ops.sum(wpos), 1.0)
    e_neg = ops.sum(wneg * ops.softplus(s)) / ops.maximum(ops.sum(wneg), 1.0)
    return e_pos + e_neg


def masked_jsd_loss_numpy(local, global_, sample_ids, local_mask) -> float:
    """Return :func:`masked_jsd_loss` computed with plain NumPy loops over pairs (the tests' reference)."""
    local, global_ = np.asarray(local, np.float64), np.asarray(global_, np.float64)
    sample_ids, local_mask = np.asarray(sample_ids), np.asarray(local_mask, np.float64)
    m, p, _ = local.shape
    softplus = lambda z: np.logaddexp(0.0, z)  # noqa: E731
    pos_sum = pos_n = neg_sum = neg_n = 0.0
    for i in range(m):
        for loc in range(p):
            if local_mask[i, loc] == 0:
                continue
            for k in range(m):
                s = float(local[i, loc] @ global_[k])
                if sample_ids[i] == sample_ids[k]:
                    pos_sum += local_mask[i, loc] * softplus(-s)
                    pos_n += local_mask[i, loc]
                else:
                    neg_sum += local_mask[i, loc] * softplus(s)
                    neg_n += local_mask[i, loc]
    return pos_sum / max(pos_n, 1.0) + neg_sum / max(neg_n, 1.0)


def masked_infonce_loss(local, global_, sample_ids, local_mask):
    """Return the InfoNCE loss over foreground local vectors (a scalar tensor).

    For each foreground local vector and each of its positive global codes, the
    positive competes against all negative codes of that vector:
    ``-log(exp(s_pos) / (exp(s_pos) + sum_neg exp(s_neg)))``, averaged.
    Arguments as in :func:`masked_jsd_loss`.
    """
    local, global_ = ops.convert_to_tensor(local), ops.convert_to_tensor(global_)
    sample_ids, local_mask = ops.convert_to_tensor(sample_ids), ops.cast(local_mask, local.dtype)
    _check_loss_inputs(local, global_, sample_ids, local_mask)
    s = _scores(local, global_)
    pos, neg = pair_masks(sample_ids)
    pos = ops.cast(ops.expand_dims(pos, 1), local.dtype)
    neg = ops.cast(ops.expand_dims(neg, 1), local.dtype)
    neg_lse = ops.logsumexp(s + (neg - 1.0) * 1e9, axis=-1, keepdims=True)
    per_pair = ops.logaddexp(s, neg_lse) - s
    w = ops.expand_dims(local_mask, -1) * pos
    return ops.sum(w * per_pair) / ops.maximum(ops.sum(w), 1.0)


def reverse_gradient(x):
    """Return ``x`` unchanged in the forward pass with its gradient negated (``stop_gradient(2x) - x``).

    An adversarial term then needs one optimiser: the discriminator descends its
    loss while the encoder, behind the reversal, ascends it.
    """
    return ops.stop_gradient(2.0 * x) - x


def prior_loss(real_logits, fake_logits):
    """Return the prior discriminator's binary cross-entropy: prior samples labelled 1, encoded codes 0."""
    return ops.mean(ops.softplus(-real_logits)) + ops.mean(ops.softplus(fake_logits))


def pool_mask(masks, factor: int, threshold: float = 0.5):
    """Return ``(M, P)`` foreground flags of the local vectors: ``masks`` (M, H, W) average-pooled by ``factor``.

    A local vector counts as foreground when at least ``threshold`` of the pixels
    it covers are foreground.
    """
    masks = ops.cast(ops.convert_to_tensor(masks), "float32")
    if len(masks.shape) != 3:
        raise ValueError(f"masks: shape {tuple(masks.shape)}, expected (images, H, W)")
    pooled = ops.average_pool(ops.expand_dims(masks, -1), factor, strides=factor, padding="valid")
    flags = ops.cast(pooled >= threshold, "float32")
    return ops.reshape(flags, (-1, pooled.shape[1] * pooled.shape[2]))


# --------------------------------------------------------------------------- encoders


def conv_encoder(input_shape=(64, 64, 3), *, filters=(32, 64, 128), code_dim: int = 64, batchnorm: bool = True,
                 pooling: str = "max", name: str = "encoder") -> keras.Model:
    """Return an encoder ``image (H, W, C) -> [local feature map (H/4, W/4, filters[-2]), global code (code_dim,)]``.

    Local encoder: ``len(filters) - 1`` blocks of 3x3 convolution (+ batch
    normalisation) + ReLU + 2x2 pooling.  Global encoder: one more strided block,
    a global pooling, a dense layer with a sigmoid (codes in [0, 1], matched to a
    uniform prior).  ``pooling="max"`` uses max-pooling everywhere (the original);
    ``"average"`` uses average pooling, which keeps how *much* signal there is
    (density), not only the strongest response.
    """
    if pooling not in ("max", "average"):
        raise ValueError(f"pooling={pooling!r}: expected 'max' or 'average'")
    if len(filters) < 2:
        raise ValueError(f"filters={filters!r}: expected at least two filter counts (local blocks + global block)")
    pool = layers.MaxPooling2D if pooling == "max" else layers.AveragePooling2D
    inputs = keras.Input(shape=input_shape, name="image")
    x = inputs
    for i, f in enumerate(filters[:-1]):
        x = layers.Conv2D(f, 3, padding="same", use_bias=not batchnorm, name=f"local_conv{i + 1}")(x)
        if batchnorm:
            x = layers.BatchNormalization(name=f"local_bn{i + 1}")(x)
        x = layers.ReLU(name=f"local_relu{i + 1}")(x)
        if i < 2:
            x = pool(2, name=f"local_pool{i + 1}")(x)
    local = x
    x = layers.Conv2D(filters[-1], 3, strides=2, padding="same", use_bias=not batchnorm, name="global_conv")(x)
    if batchnorm:
        x = layers.BatchNormalization(name="global_bn")(x)
    x = layers.ReLU(name="global_relu")(x)
    x = (layers.GlobalMaxPooling2D if pooling == "max" else layers.GlobalAveragePooling2D)(name="global_pool")(x)
    code = layers.Dense(code_dim, activation="sigmoid", name="global_code")(x)
    return keras.Model(inputs, [local, code], name=name)


def _mlp(width: int, name: str, conv: bool):
    make = (lambda units, **kw: layers.Conv2D(units, 1, **kw)) if conv else layers.Dense
    return keras.Sequential([make(width, activation="relu"), make(width)], name=name)


@keras.saving.register_keras_serializable(package="cellkit")
class InfoMax(keras.Model):
    """Deep InfoMax trainer around an encoder: ``fit`` on dicts of 5-D image batches, masks and prior samples.

    Parameters
    ----------
    encoder : keras.Model
        Maps ``(H, W, C)`` images to ``[local feature map, global code]`` (see :func:`conv_encoder`).
    embed_dim : int
        Width of the space where local vectors and global codes are compared (dot product).
    estimator : {"jsd", "infonce"}
        The mutual-information estimator.
    prior_weight : float
        Weight of the prior-matching term (0 switches it off).
    mask_threshold : float
        Fraction of foreground pixels a local vector needs to take part.
    mi_loss : callable, optional
        ``f(local, global_, sample_ids, local_mask) -> scalar`` replacing the estimator's
        reference loss (a student's own :func:`masked_jsd_loss`); not saved by ``get_config``.

    Notes
    -----
    ``fit`` takes ``x = {"images": (B, N, C, H, W), "masks": (B, N, H, W), "prior": (B*N, code_dim)}``,
    one distinct sample per row of a batch.  Calling the model returns a dict with
    the global ``code`` (B, N, code_dim) and what the loss needs.
    """

    def __init__(self, encoder, *, embed_dim: int = 64, estimator: str = "jsd", prior_weight: float = 0.1,
                 mask_threshold: float = 0.5, mi_loss=None, **kwargs):
        super().__init__(**kwargs)
        if estimator not in ESTIMATORS:
            raise ValueError(f"estimator={estimator!r}: expected one of {', '.join(ESTIMATORS)}")
        if isinstance(encoder, dict):
            encoder = keras.saving.deserialize_keras_object(encoder)
        self.encoder = encoder
        self.embed_dim, self.estimator = int(embed_dim), estimator
        self.prior_weight, self.mask_threshold = float(prior_weight), float(mask_threshold)
        self.mi_loss = mi_loss
        self.local_head = _mlp(self.embed_dim, "local_head", conv=True)
        self.global_head = _mlp(self.embed_dim, "global_head", conv=False)
        self.prior_discriminator = keras.Sequential(
            [layers.Dense(64, activation="relu"), layers.Dense(32, activation="relu"), layers.Dense(1)],
            name="prior_discriminator")
        # the two terms of the objective, logged separately: a falling total can hide an encoder losing to the prior
        self.mi_tracker = keras.metrics.Mean(name="mi_loss")
        self.prior_tracker = keras.metrics.Mean(name="prior_loss")

    def call(self, inputs, training=False):
        images = inputs["images"] if isinstance(inputs, dict) else inputs
        b, n, c, h, w = images.shape
        flat = ops.transpose(ops.reshape(images, (-1, c, h, w)), (0, 2, 3, 1))
        fmap, code = self.encoder(flat, training=training)
        local = self.local_head(fmap, training=training)
        out = {
            "code": ops.reshape(code, (-1, n, code.shape[-1])),
            "local": ops.reshape(local, (-1, local.shape[1] * local.shape[2], self.embed_dim)),
            "global": self.global_head(code, training=training),
            "fake_logits": self.prior_discriminator(reverse_gradient(code), training=training),
        }
        if isinstance(inputs, dict) and "prior" in inputs:
            out["real_logits"] = self.prior_discriminator(inputs["prior"], training=training)
        return out

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """Return the InfoMax objective: the masked MI loss plus ``prior_weight`` x the prior loss.

        Both terms are also logged on their own (``mi_loss`` and ``prior_loss`` in the
        history).  The prior loss is the prior discriminator's cross-entropy, which the
        discriminator lowers and the encoder (behind the gradient reversal) raises; it
        sits near ``2 log 2 = 1.386`` when the discriminator cannot tell codes from prior
        draws, and falls when the discriminator wins.
        """
        images, masks = x["images"], x["masks"]
        b, n, _, h, _ = images.shape
        factor = h // int(round(np.sqrt(y_pred["local"].shape[1])))
        local_mask = pool_mask(ops.reshape(masks, (-1, masks.shape[-2], masks.shape[-1])), factor,
                               self.mask_threshold)
        ids = ops.repeat(ops.arange(b if b is not None else ops.shape(images)[0]), n)
        mi = self.mi_loss or (masked_jsd_loss if self.estimator == "jsd" else masked_infonce_loss)
        mi_term = mi(y_pred["local"], y_pred["global"], ids, local_mask)
        loss = mi_term
        self.mi_tracker.update_state(mi_term)
        if "real_logits" in y_pred:
            prior_term = prior_loss(y_pred["real_logits"], y_pred["fake_logits"])
            self.prior_tracker.update_state(prior_term)
            if self.prior_weight:
                loss = loss + self.prior_weight * prior_term
        return loss

    def get_config(self):
        return {**super().get_config(), "encoder": keras.saving.serialize_keras_object(self.encoder),
                "embed_dim": self.embed_dim, "estimator": self.estimator, "prior_weight": self.prior_weight,
                "mask_threshold": self.mask_threshold}


class InfoMaxBatches(keras.utils.PyDataset):
    """Batches for :class:`InfoMax`: B distinct samples x N fields, random crops, their masks and prior draws.

    Parameters
    ----------
    images : array (S, F, C, H, W)
        The training samples' fields, float32.
    masks : array (S, F, H, W)
        Foreground masks of the same fields.
    crop : int
        Side of the square crop taken (independently) from each field.
    batch_samples : int
        B, the number of distinct samples per batch (at most S).
    steps : int
        Batches per epoch.
    code_dim : int
        Size of the global code (for the uniform prior draws).
    seed : int
    """

    def __init__(self, images, masks, *, crop: int, batch_samples: int, steps: int, code_dim: int, seed: int,
                 **kwargs):
        super().__init__(**kwargs)
        images, masks = np.asarray(images, np.float32), np.asarray(masks, np.float32)
        if images.ndim != 5:
            raise ValueError(f"images: shape {images.shape}, expected (samples, fields, channels, H, W)")
        if masks.shape != images.shape[:2] + images.shape[3:]:
            raise ValueError(f"masks: shape {masks.shape}, expected {images.shape[:2] + images.shape[3:]}")
        if not 2 <= batch_samples <= images.shape[0]:
            raise ValueError(f"batch_samples={batch_samples}: expected between 2 and {images.shape[0]} samples")
        if crop > min(images.shape[-2:]):
            raise ValueError(f"crop={crop}: larger than the fields ({images.shape[-2]}x{images.shape[-1]})")
        self.images, self.masks, self.crop = images, masks, int(crop)
        self.batch_samples, self.steps, self.code_dim, self.seed = int(batch_samples), int(steps), int(code_dim), seed
        self.epoch = 0

    def __len__(self):
        return self.steps

    def on_epoch_end(self):
        self.epoch += 1

    def __getitem__(self, index):
        g = np.random.default_rng([self.seed, self.epoch, index])
        s, f, c, h, w = self.images.shape
        chosen = g.choice(s, self.batch_samples, replace=False)
        imgs = np.empty((self.batch_samples, f, c, self.crop, self.crop), np.float32)
        msks = np.empty((self.batch_samples, f, self.crop, self.crop), np.float32)
        for i, k in enumerate(chosen):
            for j in range(f):
                # prefer crops with some foreground, as background carries no morphology
                for _ in range(10):
                    top, left = g.integers(0, h - self.crop + 1), g.integers(0, w - self.crop + 1)
                    m = self.masks[k, j, top:top + self.crop, left:left + self.crop]
                    if m.mean() > 0.1:
                        break
                imgs[i, j] = self.images[k, j, :, top:top + self.crop, left:left + self.crop]
                msks[i, j] = m
                if g.uniform() < 0.5:  # flips: morphology does not depend on orientation
                    imgs[i, j], msks[i, j] = imgs[i, j, :, :, ::-1], msks[i, j, :, ::-1]
        prior = g.uniform(size=(self.batch_samples * f, self.code_dim)).astype(np.float32)
        return ({"images": imgs, "masks": msks, "prior": prior},)


# --------------------------------------------------------------------------- sliding-window inference


def sliding_windows(image, size: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(windows (n, C, size, size), top-left corners (n, 2))`` of a (C, H, W) image, row by row."""
    image = np.asarray(image)
    if image.ndim != 3:
        raise ValueError(f"image: shape {image.shape}, expected (channels, H, W)")
    _, h, w = image.shape
    if size > min(h, w) or size < 1 or stride < 1:
        raise ValueError(f"size={size}, stride={stride}: expected 1 <= size <= {min(h, w)} and stride >= 1")
    tops = range(0, h - size + 1, stride)
    lefts = range(0, w - size + 1, stride)
    corners = np.array([(t, l) for t in tops for l in lefts], dtype=np.int32)
    windows = np.stack([image[:, t:t + size, l:l + size] for t, l in corners])
    return windows, corners


def embed_fields(encoder, images, *, size: int, stride: int, batch_size: int = 256) -> np.ndarray:
    """Return the global codes of every sliding window of every field: shape (S, F, windows, code_dim).

    The encoder was trained on ``size x size`` crops; a full-size field gives many
    windows, hence many representations per image.
    """
    images = np.asarray(images, np.float32)
    if images.ndim != 5:
        raise ValueError(f"images: shape {images.shape}, expected (samples, fields, channels, H, W)")
    s, f = images.shape[:2]
    windows = np.stack([sliding_windows(images[i, j], size, stride)[0] for i in range(s) for j in range(f)])
    nw = windows.shape[1]
    flat = np.transpose(windows.reshape(-1, *windows.shape[2:]), (0, 2, 3, 1))
    _, codes = encoder.predict(flat, batch_size=batch_size, verbose=0)
    return np.asarray(codes).reshape(s, f, nw, -1)
