"""ArcFace (additive angular margin) for classifying perturbations, and the composite loss of lab 04.

ArcFace (Deng et al. 2019) normalises both the embedding ``x`` and each class
template ``w_j`` so that the logit of class ``j`` is ``s cos(theta_j)``, then adds
an angular margin ``m`` to the angle of the true class: its logit becomes
``s cos(theta_y + m)``.  A sample is only classified with a low loss when it lies
``m`` radians closer to its own template than the others: classes become compact
and far apart.  Sharma and Krishnamurthi (the study lab 04 follows) train with

    L = c L_arc + (1 - c) L_softmax,    s = 30, m = 0.5, c = 0.2,

because ArcFace alone oscillated; the plain softmax head stabilises training.

:class:`ArcMarginHead` computes the cosines (``keras.ops`` only);
:func:`arc_margin_logits` applies the margin given the labels;
:class:`ArcFaceClassifier` overrides ``compute_loss`` (not ``train_step``), so the
same model trains on TensorFlow, JAX and PyTorch.  ``*_reference`` functions are
plain NumPy versions that the tests compare against.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import layers, ops

DEFAULT_SCALE = 30.0
DEFAULT_MARGIN = 0.5
DEFAULT_MIX = 0.2


def _check_margin(scale, margin):
    if not scale > 0:
        raise ValueError(f"scale={scale!r}: expected a positive number (the paper uses 30)")
    if not 0 <= margin < math.pi / 2:
        raise ValueError(f"margin={margin!r}: expected an angle in radians in [0, pi/2) (the paper uses 0.5)")


# ---------------------------------------------------------------- NumPy references

def cosine_reference(embeddings, kernel) -> np.ndarray:
    """Return ``cos(theta)`` between each embedding (rows of (n, d)) and each class template (columns of (d, k))."""
    x = np.asarray(embeddings, np.float64)
    w = np.asarray(kernel, np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    w = w / np.maximum(np.linalg.norm(w, axis=0, keepdims=True), 1e-12)
    return x @ w


def arc_margin_logits_reference(cosine, labels, *, scale: float = DEFAULT_SCALE, margin: float = DEFAULT_MARGIN,
                                easy_margin: bool = False) -> np.ndarray:
    """Return the ArcFace logits ``s * cos(theta + m)`` for the true class and ``s * cos(theta)`` elsewhere (NumPy).

    ``labels`` are one-hot (or soft) rows; a soft label blends the two logits.  Where
    ``theta + m`` would pass pi the cosine stops decreasing, so the usual fix is applied:
    with ``easy_margin`` the margin is only used where ``cos(theta) > 0``; otherwise,
    where ``cos(theta) <= cos(pi - m)``, the logit is ``cos(theta) - m sin(m)`` (the
    CosFace-like linear continuation of the original implementation).
    """
    _check_margin(scale, margin)
    cos = np.clip(np.asarray(cosine, np.float64), -1.0, 1.0)
    y = np.asarray(labels, np.float64)
    sin = np.sqrt(np.clip(1.0 - cos ** 2, 0.0, 1.0))
    phi = cos * math.cos(margin) - sin * math.sin(margin)
    if easy_margin:
        phi = np.where(cos > 0, phi, cos)
    else:
        phi = np.where(cos > math.cos(math.pi - margin), phi, cos - math.sin(math.pi - margin) * margin)
    return scale * (y * phi + (1.0 - y) * cos)


def softmax_cross_entropy_reference(labels, logits) -> np.ndarray:
    """Return the per-sample cross-entropy ``-sum_k y_k log softmax(z)_k`` (NumPy, stable)."""
    z = np.asarray(logits, np.float64)
    z = z - z.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return -(np.asarray(labels, np.float64) * log_p).sum(axis=1)


def composite_loss_reference(labels, softmax_logits, cosine, *, mix: float = DEFAULT_MIX,
                             scale: float = DEFAULT_SCALE, margin: float = DEFAULT_MARGIN,
                             easy_margin: bool = False, sample_weight=None) -> float:
    """Return ``mix * L_arc + (1 - mix) * L_softmax`` averaged over the batch (NumPy reference).

    ``sample_weight`` (one per sample) weights each sample's loss; the sum is divided
    by the batch size, as Keras's ``"sum_over_batch_size"`` reduction does.
    """
    arc = softmax_cross_entropy_reference(labels, arc_margin_logits_reference(
        cosine, labels, scale=scale, margin=margin, easy_margin=easy_margin))
    soft = softmax_cross_entropy_reference(labels, softmax_logits)
    per_sample = mix * arc + (1.0 - mix) * soft
    if sample_weight is not None:
        per_sample = per_sample * np.asarray(sample_weight, np.float64)
    return float(per_sample.sum() / len(per_sample))


# ---------------------------------------------------------------- keras.ops versions

def arc_margin_logits(cosine, labels, *, scale: float = DEFAULT_SCALE, margin: float = DEFAULT_MARGIN,
                      easy_margin: bool = False):
    """Return the ArcFace logits (a tensor) from cosines and one-hot labels; see :func:`arc_margin_logits_reference`."""
    _check_margin(scale, margin)
    cos = ops.clip(cosine, -1.0, 1.0)
    labels = ops.cast(labels, cos.dtype)
    sin = ops.sqrt(ops.clip(1.0 - cos * cos, 1e-7, 1.0))  # not 0: the gradient of sqrt at 0 is infinite
    phi = cos * math.cos(margin) - sin * math.sin(margin)
    if easy_margin:
        phi = ops.where(cos > 0, phi, cos)
    else:
        phi = ops.where(cos > math.cos(math.pi - margin), phi, cos - math.sin(math.pi - margin) * margin)
    return scale * (labels * phi + (1.0 - labels) * cos)


def composite_loss(labels, softmax_logits, cosine, *, mix: float = DEFAULT_MIX, scale: float = DEFAULT_SCALE,
                   margin: float = DEFAULT_MARGIN, easy_margin: bool = False, sample_weight=None):
    """Return the scalar composite loss ``mix * L_arc + (1 - mix) * L_softmax`` (``keras.ops``)."""
    if not 0.0 <= mix <= 1.0:
        raise ValueError(f"mix={mix!r}: expected the weight c of the ArcFace term in [0, 1] (the paper uses 0.2)")
    labels = ops.cast(labels, "float32")
    arc_logits = arc_margin_logits(cosine, labels, scale=scale, margin=margin, easy_margin=easy_margin)
    arc = keras.losses.categorical_crossentropy(labels, arc_logits, from_logits=True)
    soft = keras.losses.categorical_crossentropy(labels, softmax_logits, from_logits=True)
    per_sample = mix * arc + (1.0 - mix) * soft
    if sample_weight is not None:
        per_sample = per_sample * ops.cast(ops.reshape(sample_weight, (-1,)), per_sample.dtype)
    return ops.sum(per_sample) / ops.cast(ops.shape(per_sample)[0], per_sample.dtype)


@keras.saving.register_keras_serializable(package="cellkit")
class ArcMarginHead(layers.Layer):
    """A layer returning ``cos(theta)`` between the L2-normalised embeddings and the normalised class templates.

    Its weight ``kernel`` (d, num_classes) holds one template per class.  The margin
    needs the labels, so it is applied in the loss (:func:`arc_margin_logits`);
    at prediction time ``scale * cos(theta)`` are the logits.

    Parameters
    ----------
    num_classes : int
    scale, margin : float
        ``s`` and ``m`` of ArcFace, kept here so that the model and its loss agree.
    easy_margin : bool
        See :func:`arc_margin_logits_reference`.
    """

    def __init__(self, num_classes: int, scale: float = DEFAULT_SCALE, margin: float = DEFAULT_MARGIN,
                 easy_margin: bool = False, **kwargs):
        super().__init__(**kwargs)
        if int(num_classes) < 2:
            raise ValueError(f"num_classes={num_classes!r}: expected at least 2 classes")
        _check_margin(scale, margin)
        self.num_classes, self.scale, self.margin, self.easy_margin = int(num_classes), float(scale), float(margin), bool(easy_margin)

    def build(self, input_shape):
        self.kernel = self.add_weight(name="kernel", shape=(int(input_shape[-1]), self.num_classes),
                                      initializer="glorot_uniform", trainable=True)

    def call(self, embeddings):
        x = embeddings / ops.maximum(ops.norm(embeddings, axis=-1, keepdims=True), 1e-12)
        w = self.kernel / ops.maximum(ops.norm(self.kernel, axis=0, keepdims=True), 1e-12)
        return ops.matmul(x, w)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.num_classes,)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes, "scale": self.scale,
                "margin": self.margin, "easy_margin": self.easy_margin}


@keras.saving.register_keras_serializable(package="cellkit")
class ArcFaceClassifier(keras.Model):
    """Backbone -> global average pooling -> [features, cell-type one-hot] -> 1,024-d embedding -> two heads.

    Inputs are ``{"image": (B, H, W, C), "cell_type": (B, T)}``; outputs a dict with
    ``"logits"`` (the softmax head, ``W x + b``), ``"cosine"`` (the ArcFace head) and
    ``"embedding"``.  Training minimises :func:`composite_loss` with weight ``mix`` on the
    ArcFace term: ``mix=0`` is the plain softmax baseline, ``mix=0.2`` the paper's loss.

    Parameters
    ----------
    backbone : keras.Model
        Maps images to feature maps (B, h, w, k); its last output is what Grad-CAM explains.
    num_classes : int
    embedding_dim : int
        1,024 in the paper.
    mix, scale, margin, easy_margin
        The loss settings (``c``, ``s``, ``m``).
    """

    def __init__(self, backbone, num_classes: int, *, embedding_dim: int = 1024, mix: float = DEFAULT_MIX,
                 scale: float = DEFAULT_SCALE, margin: float = DEFAULT_MARGIN, easy_margin: bool = False,
                 dropout: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= mix <= 1.0:
            raise ValueError(f"mix={mix!r}: expected the weight c of the ArcFace term in [0, 1]")
        if isinstance(backbone, dict):
            backbone = keras.saving.deserialize_keras_object(backbone)
        self.backbone = backbone
        self.num_classes, self.embedding_dim = int(num_classes), int(embedding_dim)
        self.mix, self.dropout_rate = float(mix), float(dropout)
        self.pool = layers.GlobalAveragePooling2D(name="gap")
        self.concat = layers.Concatenate(name="with_cell_type")
        self.dropout = layers.Dropout(dropout, name="dropout")
        self.embed = layers.Dense(embedding_dim, name="embedding")
        self.softmax_head = layers.Dense(num_classes, name="softmax_head")
        self.arc_head = ArcMarginHead(num_classes, scale, margin, easy_margin, name="arc_head")
        self.accuracy_metric = keras.metrics.CategoricalAccuracy(name="accuracy")

    def head(self, features, cell_type, training=False):
        """Return the output dict from backbone feature maps (B, h, w, k) and cell-type codes (used by Grad-CAM)."""
        pooled = self.concat([self.pool(features), ops.cast(cell_type, features.dtype)])
        embedding = self.embed(self.dropout(pooled, training=training))
        return {"logits": self.softmax_head(embedding), "cosine": self.arc_head(embedding), "embedding": embedding}

    def call(self, inputs, training=False):
        return self.head(self.backbone(inputs["image"], training=training), inputs["cell_type"], training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        loss = composite_loss(y, y_pred["logits"], y_pred["cosine"], mix=self.mix, scale=self.arc_head.scale,
                              margin=self.arc_head.margin, easy_margin=self.arc_head.easy_margin,
                              sample_weight=sample_weight)
        for extra in self.losses:  # e.g. weight regularisers in the backbone
            loss = loss + ops.sum(extra)
        return loss

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        self.accuracy_metric.update_state(y, y_pred["logits"])
        return self.get_metrics_result()

    def predict_proba(self, inputs, *, head: str = "softmax", batch_size: int = 64) -> np.ndarray:
        """Return class probabilities (NumPy) from the ``"softmax"`` head or the ``"arc"`` head (softmax of s cos).

        The model is called directly on chunks of ``batch_size`` (no compiled predict
        function), so calling this between ``fit`` epochs costs no retracing.
        """
        if head not in ("softmax", "arc"):
            raise ValueError(f"head={head!r}: expected 'softmax' or 'arc'")
        n = len(inputs["image"])
        chunks = []
        for start in range(0, n, batch_size):
            out = self({k: np.asarray(v[start:start + batch_size], np.float32) for k, v in inputs.items()},
                       training=False)
            z = out["logits"] if head == "softmax" else self.arc_head.scale * out["cosine"]
            chunks.append(ops.convert_to_numpy(z))
        z = np.concatenate(chunks).astype(np.float64)
        z = z - z.max(axis=1, keepdims=True)
        p = np.exp(z)
        return p / p.sum(axis=1, keepdims=True)

    def get_config(self):
        return {**super().get_config(), "backbone": keras.saving.serialize_keras_object(self.backbone),
                "num_classes": self.num_classes, "embedding_dim": self.embedding_dim, "mix": self.mix,
                "scale": self.arc_head.scale, "margin": self.arc_head.margin,
                "easy_margin": self.arc_head.easy_margin, "dropout": self.dropout_rate}


# ---------------------------------------------------------------- backbones

def small_cnn(input_shape, *, widths=(32, 64, 96), name: str = "small_cnn") -> keras.Model:
    """Return a small CNN backbone (conv-BN-ReLU blocks with max-pooling) mapping images to feature maps.

    Fast mode's stand-in for DenseNet: the same model and code path, at a size that trains on a CPU.
    Batch normalisation uses momentum 0.9 (Keras's default is 0.99), so that its running
    statistics settle within the few hundred steps of a short run.
    """
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = inputs
    for i, width in enumerate(widths):
        x = layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"conv{i + 1}")(x)
        x = layers.BatchNormalization(momentum=0.9, name=f"bn{i + 1}")(x)
        x = layers.Activation("relu", name=f"relu{i + 1}")(x)
        if i < len(widths) - 1:
            x = layers.MaxPooling2D(2, name=f"pool{i + 1}")(x)
    return keras.Model(inputs, x, name=name)


def densenet121_backbone(input_shape, *, imagenet: bool = True, verbose: bool = True) -> keras.Model:
    """Return ``keras.applications.DenseNet121`` (no top) for images with any number of channels.

    The paper uses DenseNet-161, which ``keras.applications`` does not provide; DenseNet121 is
    its smaller sibling (same dense blocks, growth rate 32 instead of 48).  With ``imagenet``,
    the ImageNet weights are loaded when Keras can find or download them, and the first
    convolution is extended from 3 to C channels by repeating the RGB filters and scaling
    them by 3/C (so a grey input gives the same activations as before).  When the weights
    cannot be had (offline), the random initialisation is kept and this is printed.
    """
    input_shape = tuple(input_shape)
    channels = input_shape[-1]
    model = keras.applications.DenseNet121(include_top=False, weights=None, input_shape=input_shape)
    if not imagenet:
        if verbose:
            print("DenseNet121 backbone: random initial weights (imagenet=False)")
        return model
    try:
        rgb = keras.applications.DenseNet121(include_top=False, weights="imagenet",
                                             input_shape=input_shape[:-1] + (3,))
    except Exception as exc:  # offline: keras raises several kinds of network error
        if verbose:
            print(f"DenseNet121 backbone: ImageNet weights unavailable ({type(exc).__name__}: {str(exc)[:120]}); "
                  "using RANDOM initial weights")
        return model
    for target, source in zip(model.layers, rgb.layers):
        weights = source.get_weights()
        if weights and weights[0].ndim == 4 and weights[0].shape[2] == 3 and channels != 3:
            kernel = weights[0]
            weights[0] = np.concatenate([kernel] * (channels // 3 + 1), axis=2)[:, :, :channels] * (3.0 / channels)
        if weights:
            target.set_weights(weights)
    if verbose:
        print(f"DenseNet121 backbone: ImageNet weights, first convolution extended from 3 to {channels} channels")
    return model


def build_backbone(kind: str, input_shape, *, imagenet: bool = True, verbose: bool = True,
                   widths=(32, 64, 96)) -> keras.Model:
    """Return the backbone called ``kind`` (``"densenet121"`` or ``"small"``) for ``input_shape`` (H, W, C).

    ``widths`` are the small CNN's filters per block (ignored by DenseNet121).
    """
    if kind == "densenet121":
        return densenet121_backbone(input_shape, imagenet=imagenet, verbose=verbose)
    if kind == "small":
        return small_cnn(input_shape, widths=widths)
    raise ValueError(f"kind={kind!r}: expected 'densenet121' or 'small'")


__all__ = ["ArcMarginHead", "ArcFaceClassifier", "arc_margin_logits", "composite_loss", "cosine_reference",
           "arc_margin_logits_reference", "softmax_cross_entropy_reference", "composite_loss_reference",
           "small_cnn", "densenet121_backbone", "build_backbone"]
