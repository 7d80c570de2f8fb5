"""Activations of the classic coursework: Leaky ReLU and the learnable power activation.

Contract:

* :func:`leaky_relu` is ``max(x, 0.01 x)``, Keras's ``LeakyReLU(0.01)`` (Keras's own
  default slope is 0.3; the coursework sets 0.01, as ``jax.nn.leaky_relu`` does).
* :func:`power_activation` is the elementwise map

      g(x) = x^n        for x > 0,
      g(x) = 0.01 x     for x <= 0,

  with exponent ``n``; :class:`PowerActivation` is the same map with a learnable scalar
  ``exponent`` (an ``nnx.Param``) drawn from ``U(1.4, 2)``.
* The exponent is kept ``>= 1.01`` by a **projection**, not a reparametrization:
  :func:`project_exponents` is an optax transformation, placed last in an
  ``optax.chain``, that shortens the update of every leaf named ``exponent`` so that
  ``n + update >= 1.01``. This mirrors the coursework's Keras constraint on the weight,
  which Keras applies after every optimizer step: the gradient is that of the
  unconstrained loss and only the step is clipped.
* :func:`activation_function` turns the names used by the models (``"relu"``,
  ``"leaky_relu"``, ``"sigmoid"``, ``"tanh"``, ``"linear"``) into functions.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax
from flax import nnx

NEGATIVE_SLOPE = 0.01  # slope of both activations for x <= 0
EXPONENT_INIT_RANGE = (1.4, 2.0)  # the exponent is drawn from U(low, high)
MIN_EXPONENT = 1.01  # the projection keeps n >= this


def leaky_relu(x: jax.Array) -> jax.Array:
    """``x`` for ``x > 0``, ``0.01 x`` otherwise (Keras ``LeakyReLU(0.01)``)."""
    return jax.nn.leaky_relu(x, negative_slope=NEGATIVE_SLOPE)


def linear(x: jax.Array) -> jax.Array:
    """The identity, Keras's ``activation=None``."""
    return x


_ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": jax.nn.relu,
    "leaky_relu": leaky_relu,
    "sigmoid": jax.nn.sigmoid,
    "tanh": jnp.tanh,
    "linear": linear,
}


def activation_function(activation: str | Callable[[jax.Array], jax.Array]):
    """The function named by ``activation`` (see the module docstring), or ``activation``
    itself when it is already callable.

    Raises:
      ValueError: an unknown name.
      TypeError: neither a string nor a callable.
    """
    if callable(activation):
        return activation
    if not isinstance(activation, str):
        raise TypeError(f"an activation must be a name or a callable, got {activation!r}")
    if activation not in _ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; known: {sorted(_ACTIVATIONS)}")
    return _ACTIVATIONS[activation]


def power_activation(x: jax.Array, exponent: jax.Array) -> jax.Array:
    """``x ** exponent`` for ``x > 0`` and ``0.01 x`` for ``x <= 0``, elementwise.

    Derivatives: ``dg/dx = n x^(n-1)`` (``0.01`` for ``x <= 0``) and
    ``dg/dn = x^n log x`` (``0`` for ``x <= 0``). The power is taken of
    ``where(x > 0, x, 1)`` (the "double where"): taking it of ``x`` itself would put
    ``0 * log(0)`` or the log of a negative number, NaN, into the gradient of the
    discarded branch, and ``where`` passes NaN cotangents on.
    """
    positive = x > 0
    safe_base = jnp.where(positive, x, jnp.ones_like(x))
    return jnp.where(positive, safe_base**exponent, NEGATIVE_SLOPE * x)


class PowerActivation(nnx.Module):
    """:func:`power_activation` with a learnable scalar ``exponent`` drawn from ``U(1.4, 2)``.

    The exponent is an ``nnx.Param`` named ``exponent``, so :func:`project_exponents`
    finds it; it is drawn from the ``params`` stream of ``rngs``. ``dtype`` is that of the
    exponent and of the computation (float32 by default, whatever ``jax_enable_x64``).
    """

    def __init__(self, *, rngs: nnx.Rngs, dtype: Any = jnp.float32):
        low, high = EXPONENT_INIT_RANGE
        self.dtype = dtype
        self.exponent = nnx.Param(jax.random.uniform(rngs.params(), (), dtype, low, high))

    def __call__(self, x: jax.Array) -> jax.Array:
        return power_activation(jnp.asarray(x, self.dtype), self.exponent[...])


def _names_exponent(path) -> bool:
    """Whether a key path has a key named ``exponent`` (a dict key or an attribute)."""
    return any(getattr(key, "key", getattr(key, "name", None)) == "exponent" for key in path)


def project_exponents(min_value: float = MIN_EXPONENT) -> optax.GradientTransformation:
    """Changes the update ``u`` of every exponent ``n`` so that ``n + u >= min_value``.

    The new update is ``min_value - n`` where ``n + u < min_value`` and ``u`` elsewhere, so
    that the step ends at the projection of ``n + u`` onto ``n >= min_value``. A leaf
    counts as an exponent when its key path has a key named ``exponent``: a dict key
    (plain dicts, ``nnx.State`` and the pure states that ``nnx.Optimizer`` passes) or an
    attribute. Other leaves pass unchanged. It must be the **last** element of an
    ``optax.chain``, so that no later transformation changes the clipped step; it keeps
    no state.

    With ``min_value / 2 <= n <= 2 min_value`` the subtraction ``min_value - n`` is exact
    (Sterbenz), so ``optax.apply_updates`` lands on ``min_value`` exactly when the
    constraint binds; farther away it may land one rounding off.

    >>> import jax.numpy as jnp, optax
    >>> opt = optax.chain(optax.sgd(1.0), project_exponents(1.01))
    >>> params = {"exponent": jnp.float32(1.2), "w": jnp.float32(0.0)}
    >>> grads = {"exponent": jnp.float32(1.0), "w": jnp.float32(1.0)}
    >>> updates, _ = opt.update(grads, opt.init(params), params)
    >>> optax.apply_updates(params, updates)["exponent"]
    Array(1.01, dtype=float32)

    Raises:
      ValueError: (at update time) when called without ``params``.
    """

    def update(updates, state, params=None):
        if params is None:
            raise ValueError("project_exponents needs params: call update(updates, state, params)")

        def project(path, update, param):
            if not _names_exponent(path):
                return update
            floor = jnp.asarray(min_value, jnp.result_type(param))
            # Steps that respect the bound are passed as they are, not recomputed as
            # (n + u) - n, which would round them.
            clipped = (floor - param).astype(jnp.result_type(update))
            return jnp.where(param + update < floor, clipped, update)

        return jax.tree.map_with_path(project, updates, params), state

    return optax.GradientTransformation(optax.init_empty_state, update)
