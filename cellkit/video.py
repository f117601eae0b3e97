"""Models of time-lapse videos: a CNN frame encoder, an LSTM with attention, a DCGAN-style decoder, a conv transformer.

The models follow the NIDCR project "what would machine learning mark as interesting in
cell-migration videos" (lab 05):

* :func:`frame_encoder`: strided convolutions with **group normalisation** that turn one
  frame into a feature vector; :func:`normalisation_leak` shows why batch normalisation
  fails once the frames of a sequence share the batch axis;
* :func:`frame_decoder`: a DCGAN-style generator (dense -> 4x4 map -> transposed convolutions)
  from a summary vector to a frame;
* :func:`attention_lstm`: encoder on every frame, an LSTM over the features, attention over
  the frames (dot, concat or location) and the decoder generating the **next (last) frame** from
  the attended summary; outputs ``{"frame", "attention"}``;
* :func:`conv_transformer`: the same encoder and decoder around causal self-attention,
  predicting every next frame at once with **teacher forcing** (the true previous frames are
  the inputs) and a **causal mask** (position t sees frames 0..t only); outputs
  ``{"frames", "attention"}``.

Model code is ``keras`` / ``keras.layers`` / ``keras.ops`` only.
"""

from __future__ import annotations

import math

import numpy as np

import keras
from keras import layers, ops

from cellkit.attention import ATTENTIONS


def _norm(kind: str, channels: int, groups: int):
    if kind == "group":
        g = math.gcd(channels, groups)
        return layers.GroupNormalization(groups=g)
    if kind == "batch":
        return layers.BatchNormalization()
    if kind == "none":
        return layers.Identity()
    raise ValueError(f"norm={kind!r}: expected 'group', 'batch' or 'none'")


def _check_size(frame_size: int, n_down: int):
    if not isinstance(frame_size, (int, np.integer)) or frame_size < 8 or frame_size & (frame_size - 1):
        raise ValueError(f"frame_size={frame_size!r}: expected a power of two of at least 8 (32, 64, 128)")
    if frame_size // 2 ** n_down < 1:
        raise ValueError(f"frame_size={frame_size}: too small for {n_down} strided convolutions")


def frame_encoder(frame_size: int, *, filters=(16, 32, 64), features: int = 64, norm: str = "group",
                  groups: int = 4, name: str = "frame_encoder") -> keras.Model:
    """Return a CNN mapping one ``(frame_size, frame_size, 1)`` frame to ``features`` numbers.

    Each block is a 3x3 convolution with stride 2, a normalisation (``"group"``: statistics
    over groups of channels *within one frame*; ``"batch"``: over all frames in the batch;
    ``"none"``) and a ReLU; the last map is flattened (keeping where things are) and projected.
    """
    _check_size(frame_size, len(filters))
    inp = keras.Input((frame_size, frame_size, 1))
    x = inp
    for f in filters:
        x = layers.Conv2D(f, 3, strides=2, padding="same", use_bias=norm == "none")(x)
        x = _norm(norm, f, groups)(x)
        x = layers.ReLU()(x)
    x = layers.Flatten()(x)
    out = layers.Dense(features)(x)
    return keras.Model(inp, out, name=name)


def frame_decoder(latent: int, frame_size: int, *, filters=(64, 32, 16), norm: str = "group", groups: int = 4,
                  residual: bool = False, name: str = "frame_decoder") -> keras.Model:
    """Return a DCGAN-style generator from a ``latent`` vector to a ``(frame_size, frame_size, 1)`` map.

    Dense -> 4x4 map -> transposed 4x4 convolutions with stride 2 (each doubling the size,
    normalised, ReLU) -> a last transposed convolution to one channel: with a sigmoid (a frame in
    [0, 1]) or, when ``residual``, linear and initialised to zero (a *change* to add to a frame,
    which starts at no change).
    """
    _check_size(frame_size, 0)
    n_up = int(round(math.log2(frame_size / 4)))
    inp = keras.Input((latent,))
    x = layers.Dense(4 * 4 * filters[0], use_bias=norm == "none")(inp)
    x = layers.Reshape((4, 4, filters[0]))(x)
    x = _norm(norm, filters[0], groups)(x)
    x = layers.ReLU()(x)
    for i in range(n_up - 1):
        f = filters[min(i + 1, len(filters) - 1)]
        x = layers.Conv2DTranspose(f, 4, strides=2, padding="same", use_bias=norm == "none")(x)
        x = _norm(norm, f, groups)(x)
        x = layers.ReLU()(x)
    if residual:
        out = layers.Conv2DTranspose(1, 4, strides=2, padding="same", kernel_initializer="zeros")(x)
    else:
        out = layers.Conv2DTranspose(1, 4, strides=2, padding="same", activation="sigmoid")(x)
    return keras.Model(inp, out, name=name)


_OUTPUTS = ("change", "frame")
_LOCAL_KERNEL = 5


def _local_change_model(frame_size: int) -> keras.Model:
    """Return a 5x5 convolution from (previous, last) frame to a change of the last one, starting at zero.

    It can smooth away pixel noise and push an edge the way it has just moved: the local part of
    next-frame prediction, which the latent summary (a few dozen numbers) cannot draw pixel by pixel.
    """
    inp = keras.Input((frame_size, frame_size, 2))
    out = layers.Conv2D(1, _LOCAL_KERNEL, padding="same", kernel_initializer="zeros")(inp)
    return keras.Model(inp, out, name="local_change")


def _local_change(previous, last, name):
    pair = layers.Concatenate(axis=-1)([previous, last])
    return _local_change_model(last.shape[1])(pair)


def attention_lstm(seq_len: int, frame_size: int, *, attention: str = "dot", features: int = 64, units: int = 64,
                   filters=(16, 32, 64), norm: str = "group", output: str = "change",
                   name: str | None = None) -> keras.Model:
    """Return the CNN-LSTM-attention model that generates the frame after ``seq_len`` input frames.

    Inputs ``(B, seq_len, S, S, 1)``; outputs ``{"frame": (B, S, S, 1), "attention": (B, seq_len)}``.
    The attention query is the LSTM's last hidden state, the values its states at every frame;
    the decoder sees Luong's attentional state ``tanh(W [context; h_last])``.

    Parameters
    ----------
    attention : {"dot", "concat", "location"}
        The attention score (see :mod:`cellkit.attention`).
    features, units : int
        Size of each frame's feature vector and of the LSTM state.
    output : {"change", "frame"}
        ``"change"`` (default): the decoder draws the *change* from the last input frame, which is
        added to it, so the untrained model copies the last frame and training can only improve on
        that; ``"frame"``: the decoder draws the whole frame (sigmoid), as in the original project,
        which must first learn to draw cells at all.
    """
    if output not in _OUTPUTS:
        raise ValueError(f"output={output!r}: expected one of {', '.join(_OUTPUTS)}")
    if attention not in ATTENTIONS:
        raise ValueError(f"attention={attention!r}: expected one of {', '.join(ATTENTIONS)}")
    if not isinstance(seq_len, (int, np.integer)) or seq_len < 2:
        raise ValueError(f"seq_len={seq_len!r}: expected at least 2 input frames")
    frames = keras.Input((seq_len, frame_size, frame_size, 1), name="frames")
    encoder = frame_encoder(frame_size, filters=filters, features=features, norm=norm)
    feats = layers.TimeDistributed(encoder, name="encode_frames")(frames)
    states, h_last, _ = layers.LSTM(units, return_sequences=True, return_state=True, name="lstm")(feats)
    layer = ATTENTIONS[attention](name=f"{attention}_attention")
    context, weights = layer(h_last, states)
    summary = layers.Dense(units, activation="tanh", name="attentional_state")(
        layers.Concatenate()([context, h_last]))
    frame = frame_decoder(units, frame_size, filters=tuple(reversed(filters)), norm=norm,
                          residual=output == "change")(summary)
    if output == "change":
        local = _local_change(frames[:, -2], frames[:, -1], "local_change")
        frame = layers.Add(name="last_plus_change")([frames[:, -1], local, frame])
    outputs = {"frame": layers.Identity(name="frame")(frame),
               "attention": layers.Identity(name="attention")(weights)}
    return keras.Model(frames, outputs, name=name or f"lstm_{attention}_attention")


@keras.saving.register_keras_serializable(package="cellkit")
class PositionEmbedding(keras.layers.Layer):
    """Return its input plus a learned vector per position (inputs ``(B, T, D)``, T fixed)."""

    def build(self, input_shape):
        self.table = self.add_weight(name="table", shape=(input_shape[1], input_shape[2]),
                                     initializer=keras.initializers.RandomNormal(stddev=0.02))

    def call(self, x):
        return x + self.table


@keras.saving.register_keras_serializable(package="cellkit")
class LastQueryAttention(keras.layers.Layer):
    """Return the attention of the last position over all positions, averaged over heads: ``(B, H, T, T)`` -> ``(B, T)``.

    Under a causal mask the last position is the only one that sees every frame, so its
    attention row is a distribution over the whole sequence, comparable to the LSTM's.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def compute_mask(self, *args, **kwargs):
        return None

    def call(self, scores):
        return ops.mean(scores[:, :, -1, :], axis=1)


def conv_transformer(seq_len: int, frame_size: int, *, d_model: int = 64, heads: int = 2, depth: int = 1,
                     filters=(16, 32, 64), norm: str = "group", output: str = "change",
                     name: str = "conv_transformer") -> keras.Model:
    """Return the convolutional transformer predicting frames ``1..T`` from frames ``0..T-1`` (teacher forcing).

    Inputs ``(B, seq_len, S, S, 1)``: the true frames (teacher forcing: never the model's own
    predictions during training).  Every frame is encoded by the CNN, a learned position is
    added, and ``depth`` blocks of causal multi-head self-attention (``use_causal_mask=True``:
    position t attends to frames 0..t only, so it cannot copy the frame it must predict) and a
    feed-forward layer follow.  The decoder turns each position into the *next* frame.
    Outputs ``{"frames": (B, seq_len, S, S, 1), "attention": (B, seq_len)}`` (the last position's
    attention over the sequence, from the last block, averaged over heads).  ``output="change"`` (default)
    adds the decoded change to each input frame (see :func:`attention_lstm`).
    """
    if output not in _OUTPUTS:
        raise ValueError(f"output={output!r}: expected one of {', '.join(_OUTPUTS)}")
    if d_model % heads:
        raise ValueError(f"d_model={d_model} must be divisible by heads={heads}")
    frames = keras.Input((seq_len, frame_size, frame_size, 1), name="frames")
    encoder = frame_encoder(frame_size, filters=filters, features=d_model, norm=norm)
    x = layers.TimeDistributed(encoder, name="encode_frames")(frames)
    x = PositionEmbedding(name="positions")(x)
    scores = None
    for i in range(depth):
        attended, scores = layers.MultiHeadAttention(heads, key_dim=d_model // heads, name=f"causal_attention_{i}")(
            x, x, use_causal_mask=True, return_attention_scores=True)
        x = layers.LayerNormalization(name=f"norm_a{i}")(x + attended)
        ff = layers.Dense(2 * d_model, activation="relu", name=f"ff_in_{i}")(x)
        x = layers.LayerNormalization(name=f"norm_b{i}")(x + layers.Dense(d_model, name=f"ff_out_{i}")(ff))
    decoder = frame_decoder(d_model, frame_size, filters=tuple(reversed(filters)), norm=norm,
                            residual=output == "change")
    next_frames = layers.TimeDistributed(decoder, name="decode_frames")(x)
    if output == "change":
        previous = layers.Concatenate(axis=1, name="previous_frames")([frames[:, :1], frames[:, :-1]])
        local = layers.TimeDistributed(_local_change_model(frame_size), name="local_change")(
            layers.Concatenate(axis=-1)([previous, frames]))
        next_frames = layers.Add(name="frames_plus_change")([frames, local, next_frames])
    outputs = {"frames": layers.Identity(name="frames_out")(next_frames),
               "attention": LastQueryAttention(name="attention")(scores)}
    return keras.Model(frames, outputs, name=name)


def rollout(model: keras.Model, frames: np.ndarray, steps: int) -> np.ndarray:
    """Return ``steps`` frames generated by feeding a conv transformer its own predictions (no teacher forcing).

    ``frames`` ``(seq_len, S, S, 1)`` are the true frames to start from; each step predicts the frame
    after the window and slides the window by one.
    """
    window = np.asarray(frames, np.float32).copy()
    seq_len = model.input_shape[1]
    if window.shape[0] != seq_len:
        raise ValueError(f"frames: {window.shape[0]} frames, expected the model's sequence length {seq_len}")
    out = []
    for _ in range(int(steps)):
        nxt = np.asarray(predict(model, window[None])["frames"])[0, -1]
        out.append(nxt)
        window = np.concatenate([window[1:], nxt[None]], axis=0)
    return np.stack(out)


def predict(model: keras.Model, x: np.ndarray, *, batch_size: int = 256) -> dict:
    """Return the model's outputs on ``x`` as NumPy arrays (a dict for the lab's two-output models).

    TensorFlow calls the model directly (``model.predict`` would trace a new graph for every model,
    which costs more than the small arrays of lab 05); JAX uses ``model.predict``, whose compiled
    function is cached, because eager JAX runs op by op.  The numbers are the same either way.
    """
    x = np.asarray(x, np.float32)
    if keras.backend.backend() == "jax":
        return model.predict(x, batch_size=batch_size, verbose=0)
    parts = [model(x[i:i + batch_size], training=False) for i in range(0, len(x), batch_size)]
    if isinstance(parts[0], dict):
        return {k: np.concatenate([ops.convert_to_numpy(p[k]) for p in parts]) for k in parts[0]}
    return np.concatenate([ops.convert_to_numpy(p) for p in parts])


def normalisation_leak(encoder: keras.Model, frames: np.ndarray, *, seed: int = 0) -> dict:
    """Return how much a frame's features depend on the *other* frames in the batch, for a frame encoder.

    When the frames of a sequence are folded into the batch axis (``TimeDistributed``), batch
    normalisation computes its mean and variance over all of them during training, so the
    features of frame 0 depend on frames 1, 2, ... (the future the model must predict), and at
    inference (running averages instead of batch statistics) the same frame gives other features.
    Group normalisation computes statistics inside each frame, so neither happens.

    Returns
    -------
    dict
        ``future_leak``: largest change of frame 0's features (relative to their mean size) when the
        other frames are replaced by a shuffled copy of themselves flipped upside down, in training mode;
        ``train_vs_inference``: largest relative change of all features between training and inference mode.
    """
    x = np.asarray(frames, np.float32)
    if x.ndim != 4 or len(x) < 2:
        raise ValueError(f"frames: shape {x.shape}, expected (n >= 2, S, S, 1)")
    g = np.random.default_rng(seed)
    other = x.copy()
    other[1:] = x[1:][g.permutation(len(x) - 1)][:, ::-1] * 0.5
    a = np.asarray(encoder(x, training=True))
    b = np.asarray(encoder(other, training=True))
    c = np.asarray(encoder(x, training=False))
    size = np.mean(np.abs(a)) + 1e-12
    return {"future_leak": float(np.max(np.abs(a[0] - b[0])) / size),
            "train_vs_inference": float(np.max(np.abs(a - c)) / size)}


__all__ = ["frame_encoder", "frame_decoder", "attention_lstm", "PositionEmbedding", "LastQueryAttention",
           "conv_transformer", "rollout", "predict", "normalisation_leak"]
