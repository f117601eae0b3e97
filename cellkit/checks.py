"""Checks for student work that explain, in words, what is wrong without handing out the answer.

The graded tests of every lab and the inline checks call these functions.  Each
raises :class:`CheckFailed` (an ``AssertionError``, so otter-grader and pytest
treat it as a failed test) whose message says what was found and what looks
wrong, and, where the caller gives one, a hint at the likely mistake::

    expected 1,121,062 parameters, got 3,277,030: is the first convolution strided?

A check on something the student builds (a model, a shape) may name the target,
since building it is the task.  A check on an answer the student works out
(a parameter count, a p-value, an accuracy) never prints the expected value: it
says "too high" or "too low", and recognises common mistakes
(:func:`conv_param_mistakes`, :func:`dense_param_mistakes`), so that the check
teaches the calculation instead of replacing it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class CheckFailed(AssertionError):
    """A check on student work failed; the message says why in words."""


def _fail(message: str, hint: str | None = None):
    raise CheckFailed(message + (f": {hint}" if hint else ""))


def _is_model(model, what: str = "model"):
    import keras

    if not isinstance(model, keras.Model):
        _fail(f"expected {what} to be a keras.Model, got {type(model).__name__}"
              + (" (did you run the cell that builds it?)" if model is None or model is Ellipsis else ""))
    if not model.built:
        _fail(f"{what} is not built yet: give it an Input shape or call it on a batch first")


def check_defined(value, name: str):
    """Fail when ``value`` is missing (``None``) or still the ``...`` placeholder."""
    if value is None or value is Ellipsis:
        _fail(f"{name} is not defined yet: replace the ... in its cell and run the cell")


def check_param_count(model, expected: int, *, trainable_only: bool = False, hint: str | None = None):
    """Fail unless ``model`` has exactly ``expected`` parameters (all, or trainable only)."""
    _is_model(model)
    got = int(sum(np.prod(w.shape) for w in (model.trainable_weights if trainable_only else model.weights)))
    if got != expected:
        kind = "trainable parameters" if trainable_only else "parameters"
        _fail(f"expected {expected:,} {kind}, got {got:,}", hint)


def layer_param_counts(model) -> list[tuple[str, str, int]]:
    """Return ``(layer name, layer class, parameter count)`` for each layer of ``model``, in order."""
    return [(layer.name, type(layer).__name__, int(layer.count_params()) if layer.built else 0)
            for layer in model.layers]


def check_layer_params(model, expected: Sequence[int], *, hint: str | None = None):
    """Fail unless the layers that have parameters have exactly these counts, in order."""
    _is_model(model)
    got = [(n, c, p) for n, c, p in layer_param_counts(model) if p > 0]
    counts = [p for _, _, p in got]
    if len(counts) != len(expected):
        _fail(f"expected {len(expected)} layers with parameters ({', '.join(f'{e:,}' for e in expected)}), "
              f"found {len(counts)} ({', '.join(f'{n}: {p:,}' for n, _, p in got)})", hint)
    for i, ((name, cls, p), e) in enumerate(zip(got, expected)):
        if p != e:
            _fail(f"layer {i + 1} with parameters ({name}, {cls}) has {p:,} parameters, expected {e:,}", hint)


def check_layer_types(model, expected: Sequence[str], *, ignore: Sequence[str] = ("InputLayer",),
                      hint: str | None = None):
    """Fail unless the model's layer classes are ``expected``, in order (input layers ignored)."""
    _is_model(model)
    got = [type(layer).__name__ for layer in model.layers if type(layer).__name__ not in ignore]
    if list(got) != list(expected):
        first = next((i for i, (a, b) in enumerate(zip(got, expected)) if a != b), min(len(got), len(expected)))
        found = got[first] if first < len(got) else "nothing"
        want = expected[first] if first < len(expected) else "nothing"
        _fail(f"expected the layers {' -> '.join(expected)}, found {' -> '.join(got)} "
              f"(first difference at position {first + 1}: {found} instead of {want})", hint)


def check_output_shape(model, expected: Sequence, *, hint: str | None = None):
    """Fail unless the model's output shape (batch axis excluded) is ``expected``."""
    _is_model(model)
    got = tuple(model.output_shape[1:]) if not isinstance(model.output_shape, list) else None
    if got != tuple(expected):
        _fail(f"expected output shape {tuple(expected)} (without the batch axis), got {got}", hint)


def check_shape(array, expected: Sequence, *, name: str = "array", hint: str | None = None):
    """Fail unless ``array`` has shape ``expected`` (``None`` entries match any size)."""
    check_defined(array, name)
    shape = tuple(np.shape(array))
    ok = len(shape) == len(expected) and all(e is None or e == s for e, s in zip(expected, shape))
    if not ok:
        want = "(" + ", ".join("any" if e is None else str(e) for e in expected) + ")"
        _fail(f"expected {name} to have shape {want}, got {shape}", hint)


def _direction(got: float, want: float) -> str:
    return "too high" if got > want else "too low"


def check_close(actual, expected, *, name: str = "value", rtol: float = 1e-5, atol: float = 1e-6,
                hint: str | None = None):
    """Fail unless ``actual`` matches ``expected`` elementwise within the tolerances.

    The message names the first element that is off and whether it is too high or too low,
    never the expected value itself.
    """
    check_defined(actual, name)
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    if a.shape != e.shape:
        _fail(f"expected {name} to have shape {e.shape}, got {a.shape}", hint)
    close = np.isclose(a, e, rtol=rtol, atol=atol, equal_nan=True)
    if not close.all():
        if a.ndim == 0:
            got, want, where = float(a), float(e), ""
        else:
            idx = tuple(int(i) for i in np.argwhere(~close)[0])
            got, want, where = float(a[idx]), float(e[idx]), f" at index {idx} (and {int((~close).sum()) - 1:,} more)"
        what = "is NaN" if np.isnan(got) else f"= {got:.6g} is {_direction(got, want)}" if np.isfinite(want) else (
            f"= {got:.6g}, expected a non-finite value")
        _fail(f"{name} differs from the reference{where}: {what}", hint)


def check_in_range(value, low: float, high: float, *, name: str = "value", hint: str | None = None):
    """Fail unless ``low <= value <= high``."""
    check_defined(value, name)
    v = float(value)
    if not (low <= v <= high):
        _fail(f"expected {name} between {low:g} and {high:g}, got {v:.4g}", hint)


def check_metric_at_least(value, threshold: float, *, name: str = "accuracy", hint: str | None = None):
    """Fail unless the metric ``value`` reaches ``threshold``."""
    check_defined(value, name)
    v = float(value)
    if not np.isfinite(v) or v < threshold:
        _fail(f"expected {name} of at least {threshold:.3g}, got {v:.3g}", hint)


def check_loss_decreases(model, x, y, *, steps: int = 20, batch_size: int | None = None, factor: float = 0.9,
                         hint: str | None = None) -> tuple[float, float]:
    """Return ``(first loss, last loss)`` after fitting a copy of ``model`` on one fixed batch; fail unless it drops.

    Over-fitting one small batch is the quickest test that a model, its loss and
    its optimiser are wired correctly: the loss must fall below ``factor`` times
    its starting value within ``steps`` steps.  The student's model is not changed.
    """
    import keras

    _is_model(model)
    if getattr(model, "optimizer", None) is None or not getattr(model, "compiled", False):
        _fail("the model is not compiled: call model.compile(optimizer=..., loss=...) first", hint)
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    clone.compile(optimizer=keras.optimizers.Adam(1e-3), loss=model.loss)
    history = clone.fit(x, y, epochs=steps, batch_size=batch_size or len(x), verbose=0, shuffle=False)
    losses = history.history["loss"]
    first, last = float(losses[0]), float(losses[-1])
    if not np.isfinite(last):
        _fail(f"the loss became {last} while fitting one batch: check the loss and the output activation", hint)
    if last > factor * first:
        _fail(f"expected the loss on one fixed batch to fall below {factor:g} x its start within {steps} steps, "
              f"it went from {first:.4g} to {last:.4g}", hint)
    return first, last


def check_answer(value, expected, *, name: str = "answer", hint: str | None = None,
                 mistakes: dict | None = None):
    """Fail unless ``value == expected`` (numbers, strings, choices); the message never shows ``expected``.

    Parameters
    ----------
    mistakes : dict, optional
        ``{wrong answer: what it suggests}`` for mistakes worth recognising, e.g. from
        :func:`conv_param_mistakes`.  A recognised answer gets its explanation; a number
        otherwise gets "too high" or "too low".
    """
    check_defined(value, name)
    numeric = isinstance(expected, (int, float, np.integer, np.floating)) and not isinstance(expected, bool)
    if numeric:
        try:
            if isinstance(value, (bool, str)):
                raise TypeError
            ok = float(value) == float(expected) and (not isinstance(expected, (int, np.integer))
                                                      or int(value) == int(expected))
        except (TypeError, ValueError, OverflowError):
            _fail(f"{name} should be a number, got {value!r}", hint)
    else:
        ok = value == expected
    if ok:
        return
    shown = f"{value:,}" if isinstance(value, (int, np.integer)) else repr(value)
    known = (mistakes or {}).get(int(value) if numeric and float(value).is_integer() else value)
    if known:
        _fail(f"{name} = {shown}: {known}", hint)
    if numeric:
        _fail(f"{name} = {shown} is {_direction(float(value), float(expected))}", hint)
    _fail(f"{name} = {shown} is not the expected answer", hint)


def conv_param_mistakes(kernel: int | tuple, in_channels: int, filters: int) -> dict[int, str]:
    """Return ``{wrong count: the likely mistake}`` for the parameter count of a 2-D convolution.

    The right count, ``kh * kw * in_channels * filters + filters``, is not in the result.

    Examples
    --------
    >>> conv_param_mistakes(3, 16, 32)[4608]
    'the biases are missing: each filter has one'
    """
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    right = kh * kw * in_channels * filters + filters
    found = {
        kh * kw * in_channels * filters: "the biases are missing: each filter has one",
        kh * kw * filters + filters: "the input channels are missing: each filter spans all of them",
        kh * in_channels * filters + filters: "the kernel counted along one side only: it is kh x kw",
        (kh + kw) * in_channels * filters + filters: "the kernel's sides were added: a kh x kw kernel has kh * kw weights",
        kh * kw * in_channels * filters + in_channels: "one bias per input channel: the biases belong to the filters",
        kh * kw * in_channels + filters: "one kernel for all filters: each filter has its own kh x kw x channels kernel",
    }
    found.pop(right, None)
    return found


def dense_param_mistakes(inputs: int, units: int) -> dict[int, str]:
    """Return ``{wrong count: the likely mistake}`` for the parameter count of a dense layer.

    Examples
    --------
    >>> dense_param_mistakes(1568, 64)[100352]
    'the biases are missing: each unit has one'
    """
    right = inputs * units + units
    found = {
        inputs * units: "the biases are missing: each unit has one",
        inputs * units + inputs: "one bias per input: the biases belong to the units",
        inputs + units: "the inputs and units were added: every input connects to every unit",
    }
    found.pop(right, None)
    return found
