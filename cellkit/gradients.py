"""Gradients of a function with respect to its input, on every Keras backend.

Keras 3 has no backend-neutral ``gradient`` op: TensorFlow records with
``tf.GradientTape``, JAX transforms functions (``jax.vjp``), PyTorch uses
autograd.  This module is the ONLY place in cellkit with backend-specific code;
Grad-CAM and the saliency maps of the labs call :func:`value_and_gradients`.
"""

from __future__ import annotations

import keras
import numpy as np


def value_and_gradients(fn, inputs):
    """Return ``(fn(inputs), d sum(fn(inputs)) / d inputs)`` as NumPy arrays.

    Parameters
    ----------
    fn : callable
        Maps one tensor to a tensor using ``keras.ops`` or Keras layers and models
        (in inference mode).  Summing its output gives the scalar that is
        differentiated, so ``fn`` should return the per-sample scores of interest
        (one per row: the rows are independent, so each row's gradient is its own).
    inputs : array-like
        The point at which to differentiate (float).

    Returns
    -------
    value, gradients : numpy.ndarray
        ``gradients`` has the shape of ``inputs``.
    """
    backend = keras.backend.backend()
    x = np.asarray(inputs, dtype="float32")
    if backend == "tensorflow":
        import tensorflow as tf

        xt = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            value = fn(xt)
            total = tf.reduce_sum(value)
        grads = tape.gradient(total, xt)
        if grads is None:
            raise ValueError("fn's output does not depend on its input: no gradient")
        return value.numpy(), grads.numpy()
    if backend == "jax":
        import jax
        import jax.numpy as jnp

        value, vjp = jax.vjp(fn, jnp.asarray(x))
        (grads,) = vjp(jnp.ones_like(value))
        return np.asarray(value), np.asarray(grads)
    if backend == "torch":
        import torch

        xt = torch.tensor(x, requires_grad=True, device=keras.src.backend.torch.core.get_device())
        value = fn(xt)
        value.sum().backward()
        return value.detach().cpu().numpy(), xt.grad.detach().cpu().numpy()
    raise NotImplementedError(f"value_and_gradients: backend {backend!r} is not supported "
                              "(expected tensorflow, jax or torch)")


def gradients_wrt_input(model, inputs, class_index, *, output=None, input_key=None):
    """Return ``d score / d input`` of ``model`` for class ``class_index`` (per sample), as a NumPy array.

    Parameters
    ----------
    model : callable
        A Keras model or layer (called with ``training=False``).
    inputs : array or dict of arrays
        The model's input; with a dict, ``input_key`` names the entry to differentiate
        and the other entries are held fixed.
    class_index : int or array of int
        The class whose score is explained, one for all samples or one per sample.
    output : str, optional
        When the model returns a dict, the entry holding the scores (e.g. ``"logits"``).
    """
    if isinstance(inputs, dict):
        if input_key not in inputs:
            raise ValueError(f"input_key={input_key!r}: expected one of {sorted(inputs)}")
        fixed = {k: np.asarray(v, np.float32) for k, v in inputs.items() if k != input_key}
        x = inputs[input_key]

        def call(v):
            return model({**fixed, input_key: v}, training=False)
    else:
        x = inputs

        def call(v):
            return model(v, training=False)

    n = len(x)
    classes = np.broadcast_to(np.asarray(class_index), (n,))

    def score(v):
        out = call(v)
        out = out[output] if output is not None else out
        mask = keras.ops.one_hot(keras.ops.convert_to_tensor(classes), keras.ops.shape(out)[-1])
        return keras.ops.sum(out * keras.ops.cast(mask, out.dtype), axis=-1)

    _, grads = value_and_gradients(score, x)
    return grads


__all__ = ["value_and_gradients", "gradients_wrt_input"]
