"""Multilayer perceptrons (Flax NNX), as the Keras ``Sequential`` models of the coursework.

Contract: ``MLP(sizes, ...)`` maps flat inputs ``(N, sizes[0])`` to logits
``(N, sizes[-1])`` (no softmax) through ``len(sizes) - 1`` dense layers. Every hidden
layer is ``dense -> activation -> dropout``; the output layer is dense only. Parameters
are float32 unless ``dtype`` says otherwise; kernels are Glorot-uniform by default (the
Keras default) and biases zeros. Dropout is ``nnx.Dropout``, so its key lives in the
model state; ``model.train()`` / ``model.eval()`` switch it on and off.

The coursework's networks:

* MNIST: ``MLP((784, 128, 256, 10))``, ReLU, 136,074 parameters.
* Wine: ``MLP((11, 16, 12, 8, 2), activation="leaky_relu")``, 518 parameters.
* Wine "with the learnable power activation in its third layer":
  ``MLP((11, 16, 12, 8, 2), activation=("leaky_relu", "leaky_relu", "power"))``: the
  third dense layer (12 -> 8, hidden layer index 2 counting from 0) is followed by a
  :class:`~optlab.models.activations.PowerActivation`; 519 parameters.
* The bad-initialization study: ``kernel_init=("normal", mean, std)``.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from optlab.models.activations import PowerActivation, activation_function

Initializer = Callable[..., jax.Array]

_NAMED_INITIALIZERS = {
    "glorot": nnx.initializers.glorot_uniform,  # Keras GlorotUniform
    "glorot_normal": nnx.initializers.glorot_normal,
    "he": nnx.initializers.he_normal,  # Keras HeNormal (truncated normal, variance 2 / fan_in)
    "he_uniform": nnx.initializers.he_uniform,
}


def kernel_initializer(spec: str | tuple | Initializer) -> Initializer:
    """A JAX initializer from ``spec``.

    ``spec`` is a name (``"glorot"`` = Glorot uniform, ``"glorot_normal"``, ``"he"`` = He
    normal, ``"he_uniform"``), a tuple ``("normal", mean, std)`` for ``mean + std * N(0, 1)``
    (Keras ``RandomNormal(mean, stddev)``), or an initializer ``init(key, shape, dtype)``,
    returned as it is.

    Raises:
      ValueError: an unknown name, a malformed tuple or a negative ``std``.
      TypeError: anything else.
    """
    if callable(spec):
        return spec
    if isinstance(spec, str):
        if spec not in _NAMED_INITIALIZERS:
            raise ValueError(
                f"unknown kernel_init {spec!r}; known: {sorted(_NAMED_INITIALIZERS)} "
                "or ('normal', mean, std)"
            )
        return _NAMED_INITIALIZERS[spec]()
    if isinstance(spec, tuple):
        if len(spec) != 3 or spec[0] != "normal":
            raise ValueError(f"a tuple kernel_init must be ('normal', mean, std), got {spec!r}")
        _, mean, std = spec
        if not std >= 0:
            raise ValueError(f"the std of kernel_init must be >= 0, got {std!r}")

        def normal(key, shape, dtype=jnp.float32):
            return mean + std * jax.random.normal(key, shape, dtype)

        return normal
    raise TypeError(
        f"kernel_init must be a name, ('normal', mean, std) or a callable, got {spec!r}"
    )


def check_rate(name: str, rate: float) -> None:
    """Raises ValueError unless ``0 <= rate < 1``."""
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {rate!r}")


def dropout_or_none(name: str, rate: float, rngs: nnx.Rngs) -> nnx.Dropout | None:
    """``nnx.Dropout(rate)``, or ``None`` for ``rate == 0`` so that a model without dropout
    needs no ``dropout`` key stream and carries no dropout state."""
    check_rate(name, rate)
    return nnx.Dropout(rate, rngs=rngs) if rate > 0 else None


def apply_optional(layer, x: jax.Array) -> jax.Array:
    """``layer(x)``, or ``x`` when ``layer`` is ``None``."""
    return x if layer is None else layer(x)


def _per_hidden_layer(name: str, value, count: int) -> list:
    """``value`` repeated ``count`` times, or the sequence ``value`` checked to have
    ``count`` entries (one per hidden layer)."""
    if isinstance(value, (str, float, int)) or callable(value):
        return [value] * count
    values = list(value)
    if len(values) != count:
        raise ValueError(f"{name} has {len(values)} entries for {count} hidden layers")
    return values


class MLP(nnx.Module):
    """Dense layers ``sizes[0] -> sizes[1] -> ... -> sizes[-1]``, returning logits.

    Args:
      sizes: widths, input first and number of outputs last; at least two entries.
      activation: of the hidden layers, one for all or a sequence with one per hidden
        layer; each a name (``"relu"``, ``"leaky_relu"`` (slope 0.01), ``"sigmoid"``,
        ``"tanh"``, ``"linear"``), ``"power"`` for a
        :class:`~optlab.models.activations.PowerActivation` with its own learnable
        exponent, or a function.
      dropout: rate of the dropout after each hidden layer's activation, one for all or
        one per hidden layer; 0 means no dropout layer.
      input_dropout: rate of a dropout applied to the input; 0 means none.
      kernel_init: see :func:`kernel_initializer`; Glorot uniform by default.
      dtype: of the parameters and the computation.
      rngs: ``params`` (or default) stream for the weights, ``dropout`` (or default) for
        the dropout keys.

    Raises:
      ValueError: fewer than two sizes, a non-positive size, a rate outside ``[0, 1)``, a
        per-layer sequence of the wrong length, an unknown activation or initializer.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        *,
        activation: str | Callable | Sequence[str | Callable] = "relu",
        dropout: float | Sequence[float] = 0.0,
        input_dropout: float = 0.0,
        kernel_init: str | tuple | Initializer = "glorot",
        dtype: Any = jnp.float32,
        rngs: nnx.Rngs,
    ):
        sizes = tuple(int(size) for size in sizes)
        if len(sizes) < 2 or min(sizes) < 1:
            raise ValueError(f"sizes must be at least two positive widths, got {sizes}")
        hidden_count = len(sizes) - 2
        activations = _per_hidden_layer("activation", activation, hidden_count)
        rates = _per_hidden_layer("dropout", dropout, hidden_count)
        init = kernel_initializer(kernel_init)

        self.sizes = sizes
        self.input_dropout = dropout_or_none("input_dropout", input_dropout, rngs)
        self.dense = nnx.List(
            nnx.Linear(
                fan_in, fan_out, kernel_init=init, dtype=dtype, param_dtype=dtype, rngs=rngs
            )
            for fan_in, fan_out in zip(sizes[:-1], sizes[1:])
        )
        self.activations = nnx.List(
            PowerActivation(rngs=rngs, dtype=dtype) if act == "power" else activation_function(act)
            for act in activations
        )
        self.dropouts = nnx.List(dropout_or_none("dropout", rate, rngs) for rate in rates)

    def __call__(self, x: jax.Array) -> jax.Array:
        """Logits ``(N, sizes[-1])`` of inputs ``(N, sizes[0])``; raises ValueError on
        another shape."""
        if jnp.ndim(x) != 2 or jnp.shape(x)[1] != self.sizes[0]:
            raise ValueError(f"MLP expects inputs (N, {self.sizes[0]}), got {jnp.shape(x)}")
        x = apply_optional(self.input_dropout, x)
        for dense, activation, dropout in zip(self.dense, self.activations, self.dropouts):
            x = apply_optional(dropout, activation(dense(x)))
        return self.dense[-1](x)
