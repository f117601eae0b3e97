"""Lab 02's models: the LeNet-inspired CNN of the Uppsala lab, an improved variant, and a transfer-learning model.

The reference :func:`build_lenet` is the network students write in lab 02
(1,121,062 parameters, 1,216 in the first convolution); the graded checks
compare against :data:`LENET_LAYER_PARAMS`.  :func:`build_improved` keeps LeNet's
convolutions and adds augmentation (flips and 90-degree rotations), per-image
standardisation and batch normalisation, and replaces the 1,049,600-parameter
dense layer by global average pooling; :func:`build_feature_extractor` and
:func:`build_head` do transfer learning from a ``keras.applications`` backbone
(ImageNet weights when available).
Every model uses ``keras.layers`` and ``keras.ops`` only, so it runs on the
TensorFlow and JAX backends.
"""

from __future__ import annotations

import keras
import numpy as np

INPUT_SHAPE = (256, 256, 3)
N_CLASSES = 6
LENET_PARAMS = 1_121_062
LENET_LAYER_PARAMS = (1_216, 12_832, 51_264, 1_049_600, 6_150)
"""Parameters of the layers that have any, in order: three convolutions, two dense layers."""
LENET_LAYER_TYPES = ("Conv2D", "MaxPooling2D", "Conv2D", "MaxPooling2D", "Conv2D", "MaxPooling2D", "Flatten",
                     "Dense", "Dense")
LENET_SHAPES = ((128, 128, 16), (64, 64, 16), (64, 64, 32), (16, 16, 32), (16, 16, 64), (4, 4, 64), (1024,),
                (1024,), (6,))
"""Output shape of each layer (batch axis excluded), in the order of :data:`LENET_LAYER_TYPES`."""


def _check_input(input_shape, n_classes):
    if len(tuple(input_shape)) != 3 or any(int(d) < 1 for d in input_shape):
        raise ValueError(f"input_shape={input_shape!r}: expected (height, width, channels)")
    if not isinstance(n_classes, (int, np.integer)) or n_classes < 2:
        raise ValueError(f"n_classes={n_classes!r}: expected an integer of at least 2")


def build_lenet(input_shape=INPUT_SHAPE, n_classes: int = N_CLASSES, *, name: str = "lenet_moa"):
    """Return the (uncompiled) LeNet-inspired CNN of the Uppsala 2019 lab.

    ====================  ==========================================  ===========
    layer                 settings                                    output
    ====================  ==========================================  ===========
    Conv2D                16 filters, 5x5, stride 2, same, ReLU       128x128x16
    MaxPooling2D          2                                           64x64x16
    Conv2D                32 filters, 5x5, stride 1, same, ReLU       64x64x32
    MaxPooling2D          4                                           16x16x32
    Conv2D                64 filters, 5x5, stride 1, same, ReLU       16x16x64
    MaxPooling2D          4                                           4x4x64
    Flatten                                                           1,024
    Dense                 1,024 units, ReLU                           1,024
    Dense                 ``n_classes`` units, softmax                6
    ====================  ==========================================  ===========

    With the defaults it has 1,121,062 parameters, 1,216 (5 x 5 x 3 x 16 + 16) in the first layer.
    """
    _check_input(input_shape, n_classes)
    layers = keras.layers
    return keras.Sequential([
        keras.Input(shape=tuple(input_shape)),
        layers.Conv2D(16, 5, strides=2, padding="same", activation="relu"),
        layers.MaxPooling2D(2),
        layers.Conv2D(32, 5, padding="same", activation="relu"),
        layers.MaxPooling2D(4),
        layers.Conv2D(64, 5, padding="same", activation="relu"),
        layers.MaxPooling2D(4),
        layers.Flatten(),
        layers.Dense(1024, activation="relu"),
        layers.Dense(n_classes, activation="softmax"),
    ], name=name)


def conv_params(kernel: int, c_in: int, c_out: int, bias: bool = True) -> int:
    """Return the parameter count of a ``kernel x kernel`` Conv2D from ``c_in`` to ``c_out`` channels."""
    return kernel * kernel * c_in * c_out + (c_out if bias else 0)


def dense_params(n_in: int, n_out: int, bias: bool = True) -> int:
    """Return the parameter count of a Dense layer from ``n_in`` inputs to ``n_out`` units."""
    return n_in * n_out + (n_out if bias else 0)


@keras.saving.register_keras_serializable(package="cellkit")
class RandomRot90(keras.layers.Layer):
    """Rotate each image of a batch by a random multiple of 90 degrees during training.

    Microscopy fields have no "up": a rotated field is as likely as the original,
    and a 90-degree rotation, unlike an arbitrary angle, needs no interpolation
    and leaves no empty corners.  Square images only; identity at inference.

    Parameters
    ----------
    seed : int, optional
        Seed of the layer's random generator.
    """

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape):
        if len(input_shape) != 4 or input_shape[1] != input_shape[2]:
            raise ValueError(f"RandomRot90: input shape {input_shape}, expected square images (batch, n, n, channels)")
        self.built = True

    def call(self, inputs, training=None):
        if not training:
            return inputs
        ops = keras.ops
        k = keras.random.randint((ops.shape(inputs)[0],), 0, 4, seed=self.seed_generator)
        t = ops.transpose(inputs, (0, 2, 1, 3))
        # the four rotations of every image, then a one-hot pick of one per image
        rotations = ops.stack([inputs, ops.flip(t, axis=1), ops.flip(ops.flip(inputs, axis=1), axis=2),
                               ops.flip(t, axis=2)], axis=1)
        pick = ops.reshape(ops.one_hot(k, 4, dtype=inputs.dtype), (-1, 4, 1, 1, 1))
        return ops.sum(rotations * pick, axis=1)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


def augmentation(seed: int | None = None, *, name: str = "augmentation"):
    """Return the augmentation block: random horizontal and vertical flips, then random 90-degree rotations.

    Together they give the 8 symmetries of the square (the dihedral group), none of
    which changes what a field of cells shows.  Active only while training.
    """
    return keras.Sequential([
        keras.layers.RandomFlip("horizontal_and_vertical", seed=seed),
        RandomRot90(seed=None if seed is None else seed + 1),
    ], name=name)


@keras.saving.register_keras_serializable(package="cellkit")
class PerImageStandardization(keras.layers.Layer):
    """Standardise each channel of each image to mean 0 and standard deviation 1 (in training and at inference).

    Exposure, staining and plate differ from image to image; a network that sees
    raw intensities can learn them as if they were biology, and a treatment it has
    never seen may come from a brighter plate.  Batch normalisation does not
    remove such shifts: at inference it applies one fixed affine map per channel,
    learnt over the training set, to every image.  This layer divides out each
    image's own per-channel mean and spread, so only relative patterns (shapes,
    textures, which cells are bright) remain.  It learns nothing.

    Parameters
    ----------
    epsilon : float
        Added to the standard deviation, so that a blank channel stays finite.
    """

    def __init__(self, epsilon: float = 1e-3, **kwargs):
        super().__init__(**kwargs)
        if not epsilon > 0:
            raise ValueError(f"epsilon={epsilon!r}: expected a positive number")
        self.epsilon = float(epsilon)

    def call(self, inputs):
        ops = keras.ops
        mean = ops.mean(inputs, axis=(1, 2), keepdims=True)
        std = ops.std(inputs, axis=(1, 2), keepdims=True)
        return (inputs - mean) / (std + self.epsilon)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


BN_MOMENTUM = 0.9
"""Momentum of the batch normalisations' running statistics in :func:`build_improved`.  Keras's default, 0.99,
averages over about 100 training steps; lab 02 trains for 8 steps per epoch, so at 0.99 the statistics used at
inference lag far behind the weights (on the real dev half the validation accuracy stayed at chance for the first
6 epochs).  At 0.9 they follow the last ~10 steps."""

IMPROVED_PARAMS = 66_038
"""Parameters of :func:`build_improved` with the defaults (65,814 trainable: the batch normalisations' running
means and variances are not trained)."""


def build_improved(input_shape=INPUT_SHAPE, n_classes: int = N_CLASSES, *, dropout: float = 0.3,
                   seed: int | None = None, name: str = "lenet_improved"):
    """Return the improved LeNet: augmentation, per-image standardisation, batch normalisation, global pooling.

    ====================================  ===========================================
    block                                 why
    ====================================  ===========================================
    RandomFlip + :class:`RandomRot90`     the 8 symmetries of the square (training only)
    :class:`PerImageStandardization`      removes each image's exposure / plate level
    3 x (Conv2D 5x5 no bias, BN, ReLU,    LeNet's convolutions (16 stride 2, 32, 64) and
    MaxPooling 2, 4, 4)                   pooling; batch normalisation (momentum
                                          :data:`BN_MOMENTUM`) eases training
    GlobalAveragePooling2D                replaces Flatten + Dense(1,024): 64 numbers,
                                          the mean of each feature over the field
    Dropout, Dense ``n_classes`` softmax  390 parameters instead of 1,055,750
    ====================================  ===========================================

    With the defaults it has 66,038 parameters (:data:`IMPROVED_PARAMS`), 17 times
    fewer than the LeNet, and averaging each feature over the whole field suits
    images whose cells may sit anywhere.
    """
    _check_input(input_shape, n_classes)
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout={dropout!r}: expected a rate in [0, 1)")
    layers = keras.layers
    blocks = [keras.Input(shape=tuple(input_shape)), augmentation(seed), PerImageStandardization()]
    for filters, stride, pool in ((16, 2, 2), (32, 1, 4), (64, 1, 4)):
        blocks += [layers.Conv2D(filters, 5, strides=stride, padding="same", use_bias=False),
                   layers.BatchNormalization(momentum=BN_MOMENTUM), layers.Activation("relu"),
                   layers.MaxPooling2D(pool)]
    blocks += [layers.GlobalAveragePooling2D(), layers.Dropout(dropout, seed=seed),
               layers.Dense(n_classes, activation="softmax")]
    return keras.Sequential(blocks, name=name)


def layer_kinds(model) -> list[str]:
    """Return the class names of all layers of ``model``, looking inside nested models (input layers excluded)."""
    kinds = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            kinds += layer_kinds(layer)
        elif type(layer).__name__ != "InputLayer":
            kinds.append(type(layer).__name__)
    return kinds


def compile_classifier(model, learning_rate: float = 1e-3):
    """Return ``model`` compiled with Adam, sparse categorical cross-entropy and accuracy (the original's set-up)."""
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def to_inputs(images) -> np.ndarray:
    """Return uint8 images as float32 in [0, 1] (divided by 255, the original's ``rescale = 1/255``)."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise ValueError(f"images: dtype {images.dtype}, expected uint8")
    return images.astype(np.float32) / np.float32(255)


def train(model, x_train, y_train, x_val=None, y_val=None, *, epochs: int, batch_size: int = 32, seed: int = 0,
          verbose=0):
    """Return the ``History`` of fitting a compiled ``model`` (seeded shuffling; validation data optional)."""
    if not isinstance(epochs, (int, np.integer)) or epochs < 1:
        raise ValueError(f"epochs={epochs!r}: expected a positive integer")
    if len(x_train) != len(y_train):
        raise ValueError(f"x_train and y_train: {len(x_train)} images but {len(y_train)} labels")
    keras.utils.set_random_seed(seed)
    val = (x_val, y_val) if x_val is not None else None
    return model.fit(x_train, y_train, validation_data=val, epochs=int(epochs), batch_size=batch_size,
                     shuffle=True, verbose=verbose)


def predict_batches(model, x, batch_size: int = 32) -> np.ndarray:
    """Return ``model``'s outputs for ``x`` (class probabilities, or features), computed batch by batch.

    The model is called directly in inference mode rather than through
    ``model.predict``, which would compile it first: TensorFlow re-traces it for
    every new model of a repeated-runs experiment, and XLA (JAX) takes a minute
    to compile a ResNet50 that is used once.
    """
    if len(x) == 0:
        raise ValueError("x: expected at least one image")
    out = []
    for i in range(0, len(x), batch_size):
        batch = np.asarray(x[i:i + batch_size])
        n = len(batch)
        if n < batch_size and len(x) > batch_size:  # pad the last batch: one shape, one compilation (JAX)
            batch = np.concatenate([batch, np.zeros((batch_size - n,) + batch.shape[1:], batch.dtype)])
        out.append(keras.ops.convert_to_numpy(model(batch, training=False))[:n])
    return np.concatenate(out)


def predict_classes(model, x, batch_size: int = 32) -> np.ndarray:
    """Return the predicted class index of each image (see :func:`predict_batches`)."""
    return np.argmax(predict_batches(model, x, batch_size), axis=1)


def accuracy(y_true, y_pred) -> float:
    """Return the fraction of predictions equal to the labels."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape or y_true.size == 0:
        raise ValueError(f"y_true and y_pred: expected two non-empty arrays of one shape, got {y_true.shape} "
                         f"and {y_pred.shape}")
    return float(np.mean(y_true == y_pred))


def per_class_accuracy(y_true, y_pred, n_classes: int) -> np.ndarray:
    """Return the accuracy within each true class (NaN for a class with no images)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    out = np.full(n_classes, np.nan)
    for k in range(n_classes):
        mask = y_true == k
        if mask.any():
            out[k] = np.mean(y_pred[mask] == k)
    return out


def fit_and_score(build, x_train, y_train, x_val, y_val, *, seed: int, epochs: int, batch_size: int = 32) -> float:
    """Return the validation accuracy of a model from ``build()``, trained with every random choice seeded by ``seed``.

    ``build`` is called after seeding, so the initial weights depend on ``seed`` too.
    """
    keras.utils.set_random_seed(seed)
    model = compile_classifier(build())
    train(model, x_train, y_train, epochs=epochs, batch_size=batch_size, seed=seed)
    return accuracy(y_val, predict_classes(model, x_val, batch_size))


def build_feature_extractor(backbone: str = "ResNet50", *, weights: str | None = "imagenet",
                            input_shape=INPUT_SHAPE, image_size: int | None = None, verbose: bool = True):
    """Return ``(extractor, weights_used)``: a frozen ``keras.applications`` backbone mapping images to features.

    The extractor takes images in [0, 1] of ``input_shape``, resizes them to
    ``image_size`` (default: no resizing), applies the backbone's own
    ``preprocess_input`` (inside the model) and average-pools the last feature map
    (2,048 features for ResNet50 and InceptionV3).  ImageNet weights are tried
    first; where they cannot be downloaded (offline) the same network is built
    with random weights and a message says so plainly: ``weights_used`` is then ``None``.

    Transfer learning by *feature extraction*: the backbone stays frozen and only a
    new head (:func:`build_head`) is trained on its features, which is cheap; the
    fine-tuning of Kensert et al. (2019) also updates the backbone.
    """
    if len(tuple(input_shape)) != 3 or input_shape[-1] != 3:
        raise ValueError(f"input_shape={input_shape!r}: expected (height, width, 3)")
    app = getattr(keras.applications, backbone, None)
    module = {"ResNet50": "resnet50", "InceptionV3": "inception_v3"}.get(backbone)
    if app is None or module is None:
        raise ValueError(f"backbone={backbone!r}: expected 'ResNet50' or 'InceptionV3'")
    preprocess = getattr(keras.applications, module).preprocess_input
    size = tuple(input_shape[:2]) if image_size is None else (int(image_size), int(image_size))
    try:
        if weights == "imagenet" and not _weights_available(module):
            raise ConnectionError("not in the Keras cache and storage.googleapis.com cannot be reached")
        base = app(include_top=False, weights=weights, input_shape=size + (3,), pooling="avg")
        used = weights
    except Exception as exc:  # no network, a proxy, a partial download: all mean no pretrained weights
        if weights is None:
            raise
        if verbose:
            print(f"ImageNet weights for {backbone} could not be loaded ({type(exc).__name__}: {str(exc)[:100]}).\n"
                  f"Falling back to RANDOM weights: this is NOT transfer learning; expect little better than chance.")
        base = app(include_top=False, weights=None, input_shape=size + (3,), pooling="avg")
        used = None
    base.trainable = False
    inputs = keras.Input(shape=tuple(input_shape))
    x = inputs if image_size is None else keras.layers.Resizing(*size)(inputs)
    x = keras.layers.Lambda(lambda t: preprocess(t * 255.0), name="preprocess")(x)
    return keras.Model(inputs, base(x, training=False), name=f"{backbone.lower()}_features"), used


def _weights_available(module: str, host: str = "storage.googleapis.com", timeout: float = 5.0) -> bool:
    """Return True when the backbone's ImageNet weights are in the Keras cache or their host can be reached."""
    import os
    import socket
    from pathlib import Path

    home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
    if any((home / "models").glob(f"{module}_weights*notop*.h5")):
        return True
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def build_head(n_features: int, n_classes: int = N_CLASSES, *, dropout: float = 0.3):
    """Return a softmax classifier (dropout, then one dense layer) for pre-computed backbone features."""
    if n_features < 1:
        raise ValueError(f"n_features={n_features!r}: expected a positive integer")
    return keras.Sequential([keras.Input(shape=(int(n_features),)), keras.layers.Dropout(dropout),
                             keras.layers.Dense(n_classes, activation="softmax")], name="transfer_head")


def _describe(layer) -> str:
    """Return a short label of a layer and its settings, e.g. ``Conv 5x5, 16, s2``."""
    kind = type(layer).__name__
    if kind == "Conv2D":
        k, s = layer.kernel_size[0], layer.strides[0]
        return f"Conv {k}x{k}, {layer.filters}" + (f", s{s}" if s != 1 else "")
    if kind == "MaxPooling2D":
        return f"MaxPool {layer.pool_size[0]}"
    if kind == "Dense":
        return f"Dense {layer.units}, {layer.activation.__name__}"
    return kind


def plot_architecture(model=None, *, title: str = "The LeNet-inspired CNN for mechanism of action"):
    """Return a figure drawing each layer of ``model`` (default :func:`build_lenet`) as a block with its output shape.

    Block heights grow with the spatial size (log scale) and widths with the
    channel count, so the figure shows the image shrinking while features deepen;
    each block is labelled with its layer type, output shape and parameter count.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    model = model if model is not None else build_lenet()
    rows = [("Input", tuple(model.input_shape[1:]), 0, "Input")]
    rows += [(type(layer).__name__, tuple(layer.output.shape[1:]), int(layer.count_params()), _describe(layer))
             for layer in model.layers]
    colours = {"Input": "#dddddd", "Conv2D": "#7fb3d5", "MaxPooling2D": "#f5b041", "Flatten": "#c39bd3",
               "Dense": "#82e0aa"}
    fig, ax = plt.subplots(figsize=(1.25 * len(rows) + 1, 4.2))
    x = 0.0
    for kind, shape, params, text in rows:
        side = shape[0] if len(shape) == 3 else 1
        depth = shape[-1]
        height = 0.6 + 2.4 * np.log2(max(side, 1)) / np.log2(256) if len(shape) == 3 else 0.35 + 0.45 * np.log10(depth)
        width = 0.25 + 0.55 * np.log2(depth) / np.log2(1024)
        ax.add_patch(FancyBboxPatch((x, -height / 2), width, height, boxstyle="round,pad=0.02",
                                    fc=colours.get(kind, "#eeeeee"), ec="black", lw=0.8))
        label = "x".join(str(d) for d in shape) if len(shape) == 3 else f"{shape[0]:,}"
        ax.text(x + width / 2, height / 2 + 0.12, text, ha="center", va="bottom", fontsize=8, rotation=30)
        ax.text(x + width / 2, -height / 2 - 0.12, label, ha="center", va="top", fontsize=8)
        if params:
            ax.text(x + width / 2, -height / 2 - 0.45, f"{params:,} p", ha="center", va="top", fontsize=7,
                    color="#444444")
        x += width + 0.45
    total = int(sum(r[2] for r in rows))
    ax.set_xlim(-0.3, x)
    ax.set_ylim(-2.4, 2.6)
    ax.set_xlabel("layers, input to output (block height: image side on a log scale; width: channels)")
    ax.set_yticks([])
    ax.set_xticks([])
    ax.set_title(f"{title}: {total:,} parameters")
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    fig.tight_layout()
    return fig


__all__ = ["INPUT_SHAPE", "N_CLASSES", "LENET_PARAMS", "LENET_LAYER_PARAMS", "LENET_LAYER_TYPES", "LENET_SHAPES",
           "build_lenet", "conv_params", "dense_params", "RandomRot90", "augmentation", "PerImageStandardization",
           "BN_MOMENTUM", "IMPROVED_PARAMS", "build_improved", "layer_kinds",
           "compile_classifier", "to_inputs", "train", "predict_batches", "predict_classes", "accuracy",
           "per_class_accuracy", "fit_and_score", "build_feature_extractor", "build_head", "plot_architecture"]
