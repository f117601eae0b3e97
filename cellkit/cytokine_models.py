"""Lab 03's models (two CNNs, a frozen ViT-B/32 with three heads) and a trainer of many per-cytokine models at once.

Reference architectures (trainable parameters, on 64x64x1 inputs):

=================  ==========  =====================================================
model              trainable   layers
=================  ==========  =====================================================
wide CNN           3,936,674   conv 3x3 32, flatten, dense 32, dense 2
deeper CNN           519,010   conv 32/pool/conv 64/pool/conv 128/pool/conv 256,
                               flatten, dense 32, dense 2
ViT head "linear"        769   frozen ViT-B/32 class token (768) -> dense 1 sigmoid
ViT head "mlp256"    240,129   dense 256-128-64-32 (LeakyReLU 0.2) -> dense 1
ViT head "mlp512"    568,321   dense 512-256-128-64-32 (LeakyReLU 0.2) -> dense 1
=================  ==========  =====================================================

**Many models in one step.**  The experiment trains one model per cytokine (per
fold, per augmentation): hundreds of small, independent models.  Fitting them
one by one pays Python, tracing and small-batch overheads hundreds of times.
:func:`build_branched` holds ``K`` independent copies of an architecture as
*branches* of one Keras model that share nothing: for the CNNs, branch ``k`` is a
stand-alone CNN (a sub-model named ``branch_k``) that sees only input channel
``k``, its own image; for the ViT heads, dense layers are :class:`BranchDense`
(one kernel per branch, one batched matrix product for all).  The output has one
slot per branch.  :class:`BranchBatches` feeds branch ``k`` only its own
cytokine's wells and labels, and :class:`BranchEarlyStopping` stops and restores
each branch on its own.  The loss is the mean of the branches' losses, so branch
``k``'s gradient is exactly its own model's gradient divided by ``K`` (Adam is
invariant to that constant scale up to its epsilon).  Semantics stay one model per
cytokine; :func:`branch_weights` / :func:`set_branch_weights` move weights
between a branch and a stand-alone model, and the tests check that a branch
computes exactly what the stand-alone model computes.

(Why not one grouped convolution, ``Conv2D(groups=K)``?  It computes the same
thing, but TensorFlow's CPU kernel for grouped convolutions is about 30 times
slower than ``K`` ordinary ones: measured while building this lab.)

The one difference from fitting models separately: every branch takes the same
number of steps per epoch (enough for the largest training set), so a branch
with fewer wells cycles through its own wells more than once per epoch.
"""

from __future__ import annotations

import math
import time

import keras
import numpy as np

VIT_PRESET = "vit_base_patch32_224_imagenet21k"
VIT_B32 = dict(patch_size=32, num_layers=12, num_heads=12, hidden_dim=768, mlp_dim=3072)
"""ViT-B/32: 32x32 patches, 12 transformer layers, 12 heads, width 768, MLP 3072 (the preset's architecture)."""

PARAMS = {"wide": 3_936_674, "deeper": 519_010, "linear": 769, "mlp256": 240_129, "mlp512": 568_321}
"""Trainable parameters of each model (the ViT heads: trainable part on top of the frozen backbone)."""
HEADS = {"linear": (), "mlp256": (256, 128, 64, 32), "mlp512": (512, 256, 128, 64, 32)}
CNN_KINDS = ("wide", "deeper")


# --- stand-alone reference models ----------------------------------------------------------------------------

def build_wide_cnn(input_shape=(64, 64, 1), name: str = "wide_cnn"):
    """Return the wide CNN (conv 3x3 32, flatten, dense 32 ReLU, dense 2 logits): 3,936,674 parameters."""
    layers = keras.layers
    return keras.Sequential([keras.Input(shape=input_shape), layers.Conv2D(32, 3, activation="relu"),
                             layers.Flatten(), layers.Dense(32, activation="relu"), layers.Dense(2)], name=name)


def build_deeper_cnn(input_shape=(64, 64, 1), name: str = "deeper_cnn"):
    """Return the deeper CNN (4 convolutions 32-64-128-256 with 3 poolings, dense 32, dense 2): 519,010 parameters."""
    layers = keras.layers
    return keras.Sequential([
        keras.Input(shape=input_shape),
        layers.Conv2D(32, 3, activation="relu"), layers.MaxPooling2D(2),
        layers.Conv2D(64, 3, activation="relu"), layers.MaxPooling2D(2),
        layers.Conv2D(128, 3, activation="relu"), layers.MaxPooling2D(2),
        layers.Conv2D(256, 3, activation="relu"),
        layers.Flatten(), layers.Dense(32, activation="relu"), layers.Dense(2),
    ], name=name)


def build_vit_head(kind: str = "linear", n_features: int = 768, name: str | None = None):
    """Return a classification head for the frozen ViT's 768 class-token features (sigmoid output).

    ``"linear"``: dense 1 (769 parameters); ``"mlp256"``: dense 256-128-64-32 with
    LeakyReLU(0.2) then dense 1 (240,129); ``"mlp512"``: 512-256-128-64-32 (568,321).
    """
    if kind not in HEADS:
        raise ValueError(f"kind={kind!r}: expected one of {', '.join(HEADS)}")
    stack = [keras.Input(shape=(n_features,))]
    for units in HEADS[kind]:
        stack += [keras.layers.Dense(units), keras.layers.LeakyReLU(negative_slope=0.2)]
    stack.append(keras.layers.Dense(1, activation="sigmoid"))
    return keras.Sequential(stack, name=name or f"vit_head_{kind}")


def vit_patch_grid(image_size: int, patch_size: int = 32) -> tuple[int, int]:
    """Return ``(patches per side, tokens)``: a ViT sees (size/patch)^2 patches plus one class token.

    >>> vit_patch_grid(64)
    (2, 5)
    >>> vit_patch_grid(224)
    (7, 50)
    """
    if image_size % patch_size:
        raise ValueError(f"image_size={image_size}: expected a multiple of patch_size={patch_size}")
    side = image_size // patch_size
    return side, side * side + 1


def interpolate_position_embeddings(embeddings, grid: int, *, class_tokens: int = 1) -> np.ndarray:
    """Return position embeddings ``(class_tokens + grid**2, d)`` resized from a pre-trained ``(class_tokens + g**2, d)``.

    The class token's embedding is kept; the ``g x g`` grid of patch embeddings is
    resized to ``grid x grid`` by linear interpolation (``scipy.ndimage.zoom``, order 1),
    what the original's ``vit_keras`` did when asked for ``image_size=64``
    (``apply_embedding_weights``): 7x7 -> 2x2 for ViT-B/32 at 64x64.

    >>> interpolate_position_embeddings(np.zeros((50, 8)), 2).shape
    (5, 8)
    """
    from scipy import ndimage

    emb = np.asarray(embeddings, np.float32)
    if emb.ndim == 3 and emb.shape[0] == 1:
        emb = emb[0]
    if emb.ndim != 2:
        raise ValueError(f"embeddings: shape {emb.shape}, expected (positions, width)")
    token, flat = emb[:class_tokens], emb[class_tokens:]
    side = int(round(np.sqrt(len(flat))))
    if side * side != len(flat):
        raise ValueError(f"embeddings: {len(flat)} patch positions do not form a square grid")
    if not isinstance(grid, (int, np.integer)) or grid < 1:
        raise ValueError(f"grid={grid!r}: expected a positive integer (patches per side)")
    resized = ndimage.zoom(flat.reshape(side, side, -1), (grid / side, grid / side, 1), order=1)
    return np.concatenate([token, resized.reshape(grid * grid, -1)]).astype(np.float32)


def transfer_vit_weights(source, target) -> int:
    """Copy every weight of ViT backbone ``source`` into ``target`` (same architecture, other image size), in place.

    Weights of equal shape are copied; the position embeddings, whose number depends
    on the image size, are interpolated (:func:`interpolate_position_embeddings`).
    Returns the number of weight arrays copied or interpolated (all of them).
    """
    if len(source.weights) != len(target.weights):
        raise ValueError(f"source has {len(source.weights)} weights, target {len(target.weights)}: "
                         "expected the same ViT architecture")
    done = 0
    for s, t in zip(source.weights, target.weights):
        value = keras.ops.convert_to_numpy(s)
        if tuple(s.shape) != tuple(t.shape):
            if not t.path.endswith("position_embedding/embeddings"):
                raise ValueError(f"weight {t.path}: shape {tuple(s.shape)} in the source, {tuple(t.shape)} in the "
                                 "target; only the position embeddings may differ")
            grid = int(round(np.sqrt(t.shape[0] - 1)))
            value = interpolate_position_embeddings(value, grid)
        t.assign(value)
        done += 1
    return done


def build_vit_backbone(image_size: int = 64, *, pretrained: bool = True, verbose: bool = True):
    """Return ``(backbone, description)``: a frozen ViT-B/32 ``keras_hub.models.ViTBackbone`` for ``image_size`` inputs.

    At 64x64 (the original's ``image_size=64``) the backbone cuts 2 x 2 patches of
    32 x 32 pixels and adds a class token: 5 tokens.  With ``pretrained``, the
    ImageNet-21k preset ``vit_base_patch32_224_imagenet21k`` (made for 224x224: 7 x 7
    patches) is loaded and its weights copied into the backbone built for
    ``image_size``, the 49 position embeddings of the patches interpolated to the new
    grid (:func:`transfer_vit_weights`), as ``vit_keras`` did.  When the preset cannot
    be loaded (offline, no Kaggle cache) or ``pretrained`` is False, the same
    architecture (:data:`VIT_B32`) has **random weights**, and the description says so.
    """
    import keras_hub

    side, tokens = vit_patch_grid(image_size, VIT_B32["patch_size"])
    shape = (image_size, image_size, 3)
    source, why = None, "asked for random weights"
    if pretrained:
        try:
            source = keras_hub.models.ViTBackbone.from_preset(VIT_PRESET)
        except Exception as exc:  # offline, no Kaggle credentials, ...: say so and go on
            why = f"the preset could not be loaded ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})"
    if source is not None:
        config = {**source.get_config(), "image_shape": shape}
        config.pop("name", None)
        backbone = keras_hub.models.ViTBackbone.from_config(config)
        transfer_vit_weights(source, backbone)
        del source
        desc = (f"ViT-B/32 with PRETRAINED ImageNet-21k weights ({VIT_PRESET}, position embeddings interpolated "
                f"from 7x7 to {side}x{side} patches), frozen")
    else:
        backbone = keras_hub.models.ViTBackbone(image_shape=shape, **VIT_B32)
        desc = f"ViT-B/32 architecture with RANDOM weights ({why}), frozen"
    backbone.trainable = False
    desc += f"; input {image_size}x{image_size}x3 = {side}x{side} patches + 1 class token = {tokens} tokens"
    if verbose:
        print(desc)
    return backbone, desc


def vit_features(backbone, images, *, batch_size: int = 32) -> np.ndarray:
    """Return the frozen backbone's class-token features ``(n, 768)`` of grey ``images`` ``(n, H, W)`` in [0, 1].

    The single channel is repeated to three (RGB), the images are resized
    (bilinear) to the backbone's input size only if they differ from it (at 64x64 they
    are fed as they are) and scaled to [-1, 1], the range the ImageNet-21k ViT presets
    were trained on.
    """
    ops = keras.ops
    images = np.asarray(images, np.float32)
    if images.ndim != 3:
        raise ValueError(f"images: shape {images.shape}, expected (n, H, W) grey images")
    size = backbone.input_shape[1]
    out = []
    for start in range(0, len(images), batch_size):
        chunk = images[start:start + batch_size]
        n = len(chunk)
        if n < batch_size:  # pad the last batch: one input shape, one compilation
            chunk = np.concatenate([chunk, np.zeros((batch_size - n,) + chunk.shape[1:], np.float32)])
        x = ops.convert_to_tensor(chunk[:, :, :, None])
        x = ops.repeat(x, 3, axis=-1)
        if x.shape[1] != size:
            x = ops.image.resize(x, (size, size), interpolation="bilinear")
        # predict_on_batch: one compiled forward pass (JAX: jit, TensorFlow: tf.function) instead of eager ops
        tokens = backbone.predict_on_batch(x * 2.0 - 1.0)
        out.append(np.asarray(ops.convert_to_numpy(tokens))[:n, 0, :])
    return np.concatenate(out) if out else np.zeros((0, VIT_B32["hidden_dim"]), np.float32)


def build_vit_classifier(backbone, head):
    """Return frozen backbone + class token + ``head`` as one model (only the head's weights train)."""
    inputs = keras.Input(shape=backbone.input_shape[1:])
    tokens = backbone(inputs, training=False)
    class_token = keras.layers.Lambda(lambda t: t[:, 0, :], name="class_token")(tokens)
    return keras.Model(inputs, head(class_token), name=f"vit_b32_{head.name}")


# --- many independent models in one: branches ------------------------------------------------------------------

@keras.saving.register_keras_serializable(package="cellkit")
class BranchGlorotUniform(keras.initializers.Initializer):
    """Glorot-uniform per branch: the limit uses one branch's fan-in and fan-out, not those of the (K, f, units) stack."""

    def __init__(self, seed=None):
        self.seed = seed

    def __call__(self, shape, dtype=None):
        limit = math.sqrt(6.0 / (shape[-2] + shape[-1]))
        return keras.random.uniform(shape, -limit, limit, dtype=dtype, seed=self.seed)

    def get_config(self):
        return {"seed": self.seed}


@keras.saving.register_keras_serializable(package="cellkit")
class BranchDense(keras.layers.Layer):
    """K independent dense layers: input ``(batch, K, f)`` -> output ``(batch, K, units)``, one kernel per branch."""

    def __init__(self, units, activation=None, **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)
        self.activation = keras.activations.get(activation)

    def build(self, input_shape):
        k, f = input_shape[-2], input_shape[-1]
        self.kernel = self.add_weight(name="kernel", shape=(k, f, self.units), initializer=BranchGlorotUniform(),
                                      trainable=True)
        self.bias = self.add_weight(name="bias", shape=(k, self.units), initializer="zeros", trainable=True)

    def call(self, x):
        return self.activation(keras.ops.einsum("bkf,kfu->bku", x, self.kernel) + self.bias)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        return {**super().get_config(), "units": self.units,
                "activation": keras.activations.serialize(self.activation)}


def build_branched(kind: str, n_branches: int, *, n_features: int = 768, image_size: int = 64):
    """Return one Keras model holding ``n_branches`` independent copies of model ``kind``.

    Parameters
    ----------
    kind : {"wide", "deeper", "linear", "mlp256", "mlp512"}
        A CNN (input ``(batch, S, S, K)``: branch ``k``'s image in channel ``k``, fed to
        its own stand-alone CNN, a sub-model named ``branch_k``; output ``(batch, K, 2)``
        logits) or a ViT head (input ``(batch, K, 768)``; :class:`BranchDense` layers,
        one kernel per branch; output ``(batch, K, 1)`` sigmoid).
    n_branches : int
        ``K``; the model has exactly ``K`` times the stand-alone model's parameters.
    """
    layers = keras.layers
    if not isinstance(n_branches, (int, np.integer)) or n_branches < 1:
        raise ValueError(f"n_branches={n_branches!r}: expected a positive integer")
    k = int(n_branches)
    if kind in CNN_KINDS:
        inputs = keras.Input(shape=(image_size, image_size, k))
        branches = []
        for b in range(k):  # branch b: its own stand-alone CNN on channel b (its own image)
            cnn = build_single(kind, image_size=image_size)
            cnn.name = f"branch_{b}"
            branches.append(cnn(inputs[..., b:b + 1]))
        outputs = keras.ops.stack(branches, axis=1)
    elif kind in HEADS:
        inputs = keras.Input(shape=(k, n_features))
        x = inputs
        for units in HEADS[kind]:
            x = layers.LeakyReLU(negative_slope=0.2)(BranchDense(units)(x))
        outputs = BranchDense(1, activation="sigmoid")(x)
    else:
        raise ValueError(f"kind={kind!r}: expected one of {', '.join(CNN_KINDS + tuple(HEADS))}")
    return keras.Model(inputs, outputs, name=f"{kind}_x{k}")


def build_single(kind: str, *, image_size: int = 64, n_features: int = 768):
    """Return the stand-alone model of ``kind`` (the architecture one branch of :func:`build_branched` holds)."""
    if kind == "wide":
        return build_wide_cnn((image_size, image_size, 1))
    if kind == "deeper":
        return build_deeper_cnn((image_size, image_size, 1))
    return build_vit_head(kind, n_features)


def _branch_model(model, k: int):
    """Return the sub-model of branch ``k`` (CNN kinds) or None (ViT heads, built of :class:`BranchDense`)."""
    try:
        return model.get_layer(f"branch_{k}")
    except ValueError:
        return None


def _dense_layers(model):
    return [layer for layer in model.layers if isinstance(layer, BranchDense)]


def branch_weights(model, k: int) -> list:
    """Return branch ``k``'s weights of a branched model, shaped as the stand-alone model's ``get_weights()``."""
    sub = _branch_model(model, k)
    if sub is not None:
        return sub.get_weights()
    return [w[k] for layer in _dense_layers(model) for w in layer.get_weights()]


def set_branch_weights(model, k: int, weights) -> None:
    """Set branch ``k`` of a branched model to ``weights`` (a stand-alone model's ``get_weights()``), in place."""
    weights = [np.asarray(w) for w in weights]
    sub = _branch_model(model, k)
    if sub is not None:
        if len(weights) != len(sub.weights):
            raise ValueError(f"weights: {len(weights)} array(s), expected the stand-alone model's {len(sub.weights)}")
        sub.set_weights(weights)
        return
    expected = 2 * len(_dense_layers(model))
    if len(weights) != expected:
        raise ValueError(f"weights: {len(weights)} array(s), expected the stand-alone model's {expected}")
    for layer in _dense_layers(model):
        current = layer.get_weights()
        for w in current:
            w[k] = weights.pop(0)
        layer.set_weights(current)


class BranchBatches(keras.utils.PyDataset):
    """Batches for a branched model: branch ``k`` gets only its own samples and labels.

    ``source`` holds every input once, as ``(views, wells, ...)`` (views: the
    original and its flips); a branch's samples are ``(view, well)`` pairs.  For
    training (``train=True``) each branch's samples are reshuffled every epoch and
    cycled to fill ``steps`` batches; for prediction they are padded (the padding
    is cut off by :func:`predict_branches`).
    """

    def __init__(self, source, samples, labels=None, *, batch_size=32, train=True, seed=0):
        super().__init__()
        self.source = source
        self.samples = [np.asarray(s, dtype=np.int64).reshape(-1, 2) for s in samples]
        self.labels = None if labels is None else [np.asarray(y) for y in labels]
        self.batch_size = int(batch_size)
        self.train = train
        self.seed = seed
        self.epoch = 0
        longest = max(len(s) for s in self.samples)
        self.steps = max(1, math.ceil(longest / self.batch_size))
        self._order()

    def _order(self):
        total = self.steps * self.batch_size
        self.order = []
        for k, s in enumerate(self.samples):
            if self.train:
                g = np.random.default_rng([self.seed, self.epoch, k])
                reps = math.ceil(total / len(s))
                idx = np.concatenate([g.permutation(len(s)) for _ in range(reps)])[:total]
            else:
                idx = np.resize(np.arange(len(s)), total)
            self.order.append(idx)

    def __len__(self):
        return self.steps

    def __getitem__(self, i):
        sl = slice(i * self.batch_size, (i + 1) * self.batch_size)
        xs, ys = [], []
        for k, s in enumerate(self.samples):
            pick = s[self.order[k][sl]]
            xs.append(self.source[pick[:, 0], pick[:, 1]])
            if self.labels is not None:
                ys.append(self.labels[k][self.order[k][sl]])
        axis = -1 if self.source.ndim == 4 else 1  # images: channel k; features: slot k
        x = np.stack(xs, axis=axis).astype(np.float32)
        if self.labels is None or not self.train:
            return (x,)
        return x, np.stack(ys, axis=1).astype(np.float32)

    def on_epoch_end(self):
        if self.train:
            self.epoch += 1
            self._order()


def predict_branches(model, source, samples, *, batch_size: int = 64) -> list:
    """Return one array of outputs per branch (its own samples only, padding removed)."""
    data = BranchBatches(source, samples, batch_size=batch_size, train=False)
    # predict_on_batch reuses one compiled function and skips fit/predict's per-call set-up
    out = np.concatenate([keras.ops.convert_to_numpy(model.predict_on_batch(data[i][0])) for i in range(len(data))])
    return [out[:len(s), k] for k, s in enumerate(data.samples)]  # out: (steps * batch, K, outputs)


@keras.saving.register_keras_serializable(package="cellkit")
class BranchLosses(keras.metrics.Metric):
    """Each branch's own training loss: a vector of ``K`` mean cross-entropies over the batches since the last reset.

    Computed inside the training step from the forward pass that the step makes anyway
    (what Keras's running ``loss`` is for a lone model), so early stopping needs no
    extra pass over the training wells.  ``from_logits``: two logits per branch (the
    CNNs, sparse categorical cross-entropy) or one sigmoid output (the ViT heads, binary).
    """

    def __init__(self, n_branches, from_logits, name="branch_losses", **kwargs):
        super().__init__(name=name, **kwargs)
        self.n_branches, self.from_logits = int(n_branches), bool(from_logits)
        self.total = self.add_variable(shape=(self.n_branches,), initializer="zeros", name="total")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        if self.from_logits:  # y_true (batch, K), y_pred (batch, K, 2)
            losses = keras.losses.sparse_categorical_crossentropy(y_true, y_pred, from_logits=True)
        else:  # y_true, y_pred (batch, K, 1)
            losses = keras.losses.binary_crossentropy(y_true, y_pred)
        self.total.assign_add(keras.ops.mean(keras.ops.cast(losses, self.total.dtype), axis=0))
        self.count.assign_add(keras.ops.cast(1, self.count.dtype))

    def result(self):
        return self.total / keras.ops.maximum(self.count, 1)

    def reset_state(self):
        self.total.assign(keras.ops.zeros((self.n_branches,), self.total.dtype))
        self.count.assign(keras.ops.cast(0, self.count.dtype))

    def get_config(self):
        return {**super().get_config(), "n_branches": self.n_branches, "from_logits": self.from_logits}


class BranchEarlyStopping(keras.callbacks.Callback):
    """Early stopping per branch: each branch keeps its own best weights (lowest training loss) and patience.

    The monitored value is each branch's training loss of the epoch, ``logs["branch_losses"]``
    (a vector, one value per branch: the mean over the epoch's batches of its own
    cross-entropy, measured by :class:`BranchLosses` during the training steps), what the
    original's ``EarlyStopping(monitor="loss", patience=3)`` watched for a lone model:
    the test fold is never used to choose weights.  Training stops when every branch
    has gone ``patience`` epochs without improving; then each branch is restored to its
    best epoch.
    """

    def __init__(self, *, patience=3):
        super().__init__()
        self.patience = patience

    def on_train_begin(self, logs=None):
        k = self.model.output_shape[1]
        self.best = np.full(k, np.inf)
        self.best_epoch = np.zeros(k, int)
        self.wait = np.zeros(k, int)
        self.best_weights = [None] * k
        self.epochs_run = 0

    def on_epoch_end(self, epoch, logs=None):
        if not logs or "branch_losses" not in logs:
            raise ValueError("logs: expected 'branch_losses', each branch's training loss of the epoch "
                             "(compile the model with compile_branched)")
        losses = np.asarray(logs["branch_losses"], dtype=np.float64).reshape(-1)
        if len(losses) != len(self.best):
            raise ValueError(f"logs['branch_losses']: {len(losses)} value(s), expected one per branch ({len(self.best)})")
        self.epochs_run = epoch + 1
        improved = [k for k, loss in enumerate(losses) if loss < self.best[k]]
        # ViT heads: read the stacked (K, ...) weights once per epoch, not once per improved branch
        # (branch_weights copies every branch's kernel to return one: K branches made it K^2)
        stacked = None
        if improved and _branch_model(self.model, 0) is None:
            stacked = [w for layer in _dense_layers(self.model) for w in layer.get_weights()]
        for k, loss in enumerate(losses):
            if k in improved:
                self.best[k], self.best_epoch[k], self.wait[k] = loss, epoch + 1, 0
                self.best_weights[k] = ([w[k].copy() for w in stacked] if stacked is not None
                                        else branch_weights(self.model, k))
            else:
                self.wait[k] += 1
        if np.all(self.wait >= self.patience):
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if _branch_model(self.model, 0) is None:  # ViT heads: write all branches' best weights in one go
            layers = _dense_layers(self.model)
            current = [layer.get_weights() for layer in layers]
            for k, best in enumerate(self.best_weights):
                if best is None:
                    continue
                flat = iter(best)
                for arrays in current:
                    for w in arrays:
                        w[k] = next(flat)
            for layer, arrays in zip(layers, current):
                layer.set_weights(arrays)
            return
        for k, w in enumerate(self.best_weights):
            if w is not None:
                set_branch_weights(self.model, k, w)


@keras.saving.register_keras_serializable(package="cellkit")
class FusedAdam(keras.optimizers.Adam):
    """Keras's Adam, with TensorFlow's fused kernel (``ResourceApplyAdam``) for each variable's update on TensorFlow.

    The same update as :class:`keras.optimizers.Adam` (``m``, ``v``, bias-corrected step,
    epsilon added to ``sqrt(v)``), but one pass over each variable instead of about ten
    element-wise operations: for the wide CNN's 3.9 million weights a branch, Keras's
    update was about a third of a training step on the CPU (measured: 344 ms a step
    with Adam, 227 ms with SGD, 8 branches).  Other backends (and AMSGrad) use Keras's
    update; JAX compiles the whole step with XLA, which fuses it anyway.
    """

    def update_step(self, gradient, variable, learning_rate):
        if keras.backend.backend() != "tensorflow" or self.amsgrad:
            return super().update_step(gradient, variable, learning_rate)
        import tensorflow as tf

        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        index = self._get_variable_index(variable)
        m, v = self._momentums[index], self._velocities[index]
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle, m=m.handle, v=v.handle,
            beta1_power=tf.pow(tf.cast(self.beta_1, dtype), step), beta2_power=tf.pow(tf.cast(self.beta_2, dtype), step),
            lr=tf.cast(learning_rate, dtype), beta1=tf.cast(self.beta_1, dtype), beta2=tf.cast(self.beta_2, dtype),
            epsilon=tf.cast(self.epsilon, dtype), grad=tf.cast(gradient, dtype), use_locking=False)


def compile_branched(kind: str, n_branches: int, *, image_size: int = 64, n_features: int = 768,
                     learning_rate: float = 1e-3, seed: int = 0):
    """Return a compiled branched model whose optimizer is built and whose fresh state is remembered.

    :func:`reset_branched` later puts the model back into a fresh state (new initial
    weights, zeroed optimizer) without compiling again, so that one traced training
    step serves every chunk of models: tracing is what costs most when the models are small.
    """
    keras.utils.set_random_seed(seed)
    model = build_branched(kind, n_branches, image_size=image_size, n_features=n_features)
    model.set_weights(glorot_weights(model, seed))  # the same initialiser as every later reset
    loss = (keras.losses.SparseCategoricalCrossentropy(from_logits=True) if kind in CNN_KINDS
            else keras.losses.BinaryCrossentropy())
    # XLA on TensorFlow/CPU compiles many CNN branches slowly (measured: 2-3x the plain graph's first epoch), but
    # halves the CPU time of a ViT head's step (mlp512, 16 branches: 112 -> 52 ms a step, for about 2 s of
    # compilation once); JAX always compiles.  The metric: each branch's own training loss, for its early stopping.
    model.compile(optimizer=FusedAdam(learning_rate), loss=loss,
                  metrics=[BranchLosses(n_branches, from_logits=kind in CNN_KINDS)],
                  jit_compile=keras.backend.backend() != "tensorflow" or kind not in CNN_KINDS)
    model.optimizer.build(model.trainable_variables)
    # the optimizer's fresh state, for reset_branched (set past Keras's attribute tracking: plain arrays)
    object.__setattr__(model, "_cellkit_fresh_optimizer",
                       [keras.ops.convert_to_numpy(v) for v in model.optimizer.variables])
    return model


def glorot_weights(model, seed: int) -> list:
    """Return fresh initial weights for ``model``: Glorot-uniform kernels (per branch) and zero biases, as Keras's defaults.

    Drawn with NumPy (seeded), which is much quicker than building a new model to copy its weights from.
    """
    g = np.random.default_rng(seed)
    out = []
    for w in model.weights:
        shape = tuple(w.shape)
        if len(shape) == 4:  # Conv2D kernel (kh, kw, c_in, c_out)
            fan_in, fan_out = shape[0] * shape[1] * shape[2], shape[0] * shape[1] * shape[3]
        elif len(shape) in (2, 3) and not w.path.endswith("bias"):  # Dense (in, out); BranchDense (K, in, out)
            fan_in, fan_out = shape[-2], shape[-1]
        else:
            out.append(np.zeros(shape, np.float32))
            continue
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        out.append(g.uniform(-limit, limit, size=shape).astype(np.float32))
    return out


def reset_branched(model, seed: int) -> None:
    """Give every branch of ``model`` (from :func:`compile_branched`) new initial weights and a fresh optimizer, in place."""
    model.set_weights(glorot_weights(model, seed))
    for variable, value in zip(model.optimizer.variables, model._cellkit_fresh_optimizer):
        variable.assign(value)


def fit_branches(kind: str, source, train_samples, train_labels, *,
                 epochs: int, patience: int = 3, batch_size: int = 32, learning_rate: float = 1e-3, seed: int = 0,
                 model=None):
    """Return ``(model, stopper)`` after training one branched model whose branch ``k`` learns only its own data.

    ``source`` is ``(views, wells, S, S)`` images for the CNNs or ``(views, wells, 768)``
    features for the ViT heads; ``train_samples[k]`` the ``(view, well)`` pairs of
    branch ``k`` and ``train_labels[k]`` their 0/1 labels.  ``model``: a model from
    :func:`compile_branched` with as many branches, reset and reused (no new compilation).
    """
    if model is None:
        model = compile_branched(kind, len(train_samples), image_size=source.shape[-1] if source.ndim == 4 else 64,
                                 n_features=source.shape[-1], learning_rate=learning_rate, seed=seed)
    else:
        if model.output_shape[1] != len(train_samples):
            raise ValueError(f"model: {model.output_shape[1]} branches, expected {len(train_samples)}")
        reset_branched(model, seed)
    if kind not in CNN_KINDS:
        train_labels = [np.asarray(y)[:, None] for y in train_labels]
    data = BranchBatches(source, train_samples, train_labels, batch_size=batch_size, train=True, seed=seed)
    stopper = BranchEarlyStopping(patience=patience)
    # The loop of model.fit, without its per-call set-up (data adapters, callbacks list), which costs more
    # than the training itself for a few steps of small models; train_on_batch reuses one compiled step.
    stopper.set_model(model)
    model.stop_training = False
    stopper.on_train_begin()
    for epoch in range(epochs):
        total = 0.0
        for i in range(len(data)):  # train_on_batch resets the metrics: sum each step's branch losses here
            total = total + np.asarray(model.train_on_batch(*data[i], return_dict=True)["branch_losses"])
        data.on_epoch_end()
        # every branch takes the same number of full batches, so the mean of the batch means is its epoch's mean loss
        stopper.on_epoch_end(epoch, {"branch_losses": total / len(data)})
        if model.stop_training:
            break
    stopper.on_train_end()
    return model, stopper


def cross_validate(kind: str, source, labels, sets, *, splitter, augmentations=("none",), epochs: int = 30,
                   patience: int = 3, batch_size: int = 32, max_branches: int = 16, seed: int = 0,
                   verbose: bool = True):
    """Return ``(results, predictions)`` of two-fold cross-validation, one independent model per cytokine x fold x augmentation.

    Parameters
    ----------
    kind : str
        Model kind (see :func:`build_branched`).
    source : numpy.ndarray
        ``(4, wells, ...)``: view 0 the original inputs, views 1-3 flipped h, v, t
        (for the ViT heads only view 0 is needed).
    labels : pandas.DataFrame
        0/1 labels of every well (rows) for each cytokine (columns).
    sets : dict
        ``{cytokine: balanced well positions}`` (from :func:`cellkit.cytokines.balanced_sets`).
    splitter : callable
        ``splitter(positions, labels_of_all_wells, seed=...)`` -> two ``(train, test)`` pairs.
    augmentations : sequence of str
        Keys of :data:`cellkit.cytokines.AUGMENTATIONS`; flips apply to the training fold only.
    max_branches : int
        Models trained together in one branched model (memory: the wide CNN holds 3.9 M parameters a branch).

    Returns
    -------
    results : pandas.DataFrame
        One row per (cytokine, augmentation, fold): precision, recall, f1, best epoch, epochs run.
    predictions : dict
        ``{(cytokine, augmentation, fold): (test wells, y_true, y_pred)}``.
    """
    import pandas as pd

    from cellkit.cytokines import AUGMENTATIONS, FLIPS, classification_scores, protocol_folds

    jobs = []
    for name, fold, train, test, y_all in protocol_folds(labels, sets, splitter=splitter, seed=seed):
        for aug in augmentations:
            views = [0] + [1 + FLIPS.index(f) for f in AUGMENTATIONS[aug]]
            samples = np.array([(v, w) for v in views for w in train])
            jobs.append(dict(cytokine=name, augmentation=aug, fold=fold, samples=samples,
                             labels=y_all[samples[:, 1]], test=test, y_test=y_all[test]))
    jobs.sort(key=lambda j: len(j["samples"]))  # similar sizes together: fewer wasted cycles
    rows, predictions = [], {}
    start = time.perf_counter()
    width = min(max_branches, len(jobs))
    model = None
    for c0 in range(0, len(jobs), width):
        chunk = jobs[c0:c0 + width]
        padded = chunk + [chunk[-1]] * (width - len(chunk))  # the last chunk fills its spare branches with a copy
        model, stopper = fit_branches(kind, source, [j["samples"] for j in padded], [j["labels"] for j in padded],
                                      epochs=epochs, patience=patience, batch_size=batch_size, seed=seed + c0,
                                      model=model)
        outputs = predict_branches(model, source, [np.array([(0, w) for w in j["test"]]) for j in padded])
        for k, (job, out) in enumerate(zip(chunk, outputs)):
            y_pred = out.argmax(axis=-1) if out.shape[-1] == 2 else (out[:, 0] >= 0.5).astype(int)
            predictions[(job["cytokine"], job["augmentation"], job["fold"])] = (job["test"], job["y_test"], y_pred)
            rows.append(dict(model=kind, cytokine=job["cytokine"], augmentation=job["augmentation"],
                             fold=job["fold"], n_train=len(job["samples"]), n_test=len(job["test"]),
                             **classification_scores(job["y_test"], y_pred), best_epoch=int(stopper.best_epoch[k]),
                             epochs_run=int(stopper.epochs_run)))
    if verbose:
        print(f"{kind}: {len(jobs)} independent models trained in {math.ceil(len(jobs) / width)} chunk(s) of "
              f"{width} branches (one compiled step) in {time.perf_counter() - start:.1f} s")
    results = pd.DataFrame(rows).sort_values(["cytokine", "augmentation", "fold"]).reset_index(drop=True)
    return results, predictions


def pooled_scores(results_predictions):
    """Return one row per (cytokine, augmentation): the two test folds pooled (every well tested once).

    Columns: ``cytokine``, ``augmentation``, the confusion matrix of the pooled folds as
    counts (``tn``, ``fp``, ``fn``, ``tp``; producer = 1) and ``precision``, ``recall``, ``f1``.
    """
    import pandas as pd
    from sklearn.metrics import confusion_matrix

    from cellkit.cytokines import classification_scores

    _, predictions = results_predictions
    groups = {}
    for (name, aug, _fold), (_, y_true, y_pred) in predictions.items():
        t, p = groups.setdefault((name, aug), ([], []))
        t.append(y_true)
        p.append(y_pred)
    rows = []
    for (name, aug), (t, p) in groups.items():
        y_true, y_pred = np.concatenate(t), np.concatenate(p)
        (tn, fp), (fn, tp) = confusion_matrix(y_true, y_pred, labels=[0, 1])
        rows.append(dict(cytokine=name, augmentation=aug, tn=int(tn), fp=int(fp), fn=int(fn), tp=int(tp),
                         **classification_scores(y_true, y_pred)))
    return pd.DataFrame(rows).sort_values(["cytokine", "augmentation"]).reset_index(drop=True)


def flip_views(images) -> np.ndarray:
    """Return ``(4, n, H, W)``: the images and their horizontal, vertical and transposed flips (views 0-3)."""
    from cellkit.cytokines import flip

    images = np.asarray(images, np.float32)
    return np.stack([images] + [flip(images, f) for f in ("h", "v", "t")])


__all__ = ["VIT_PRESET", "VIT_B32", "PARAMS", "HEADS", "build_wide_cnn", "build_deeper_cnn", "build_vit_head",
           "vit_patch_grid", "interpolate_position_embeddings",
           "transfer_vit_weights", "build_vit_backbone", "vit_features", "build_vit_classifier", "build_branched",
           "build_single", "compile_branched", "reset_branched", "glorot_weights", "branch_weights",
           "set_branch_weights", "BranchBatches", "predict_branches", "BranchLosses", "FusedAdam", "BranchEarlyStopping", "fit_branches",
           "cross_validate", "pooled_scores", "flip_views"]
