"""Classic smooth test functions with known minimizers.

* :func:`rosenbrock` -- ``sum_i 100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2``, the n-D extension
  of the 2-D banana (Rosenbrock 1960); minimizer ``(1, ..., 1)``.
* :func:`newton_cycle` -- ``x^4/4 - x^2 + 2x + (y - 1)^2``. Newton's method from ``(0, 2)``
  fixes ``y = 1`` in one step while ``x`` jumps ``0 -> 1 -> 0 -> ...``: ``f_xx = 3x^2 - 2``
  is negative at ``x = 0`` and positive at ``x = 1``, and the two Newton steps are exact
  opposites. The minimizer is ``x*`` the real root of ``x^3 - 2x + 2 = 0``, ``y* = 1``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

ROSENBROCK_START = (3.22, 13.37)  # the seed study's starting point


def rosenbrock(x: jax.Array) -> jax.Array:
    """n-D Rosenbrock function (n >= 2) of a flat vector."""
    if x.ndim != 1 or x.shape[0] < 2:
        raise ValueError(f"rosenbrock needs a vector of length >= 2, got shape {x.shape}")
    return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def rosenbrock_minimizer(n: int) -> jax.Array:
    return jnp.ones(n, jnp.result_type(float))


def rosenbrock_starts(n: int, seeds: int, low: float = -2.0, high: float = 2.0) -> jax.Array:
    """``seeds`` random starting points, uniform in ``[low, high]^n``, shape ``(seeds, n)``.

    Drawn with ``np.random.default_rng(seed)`` per seed, so each start depends on its seed
    only.
    """
    if not isinstance(n, int) or n < 2:
        raise ValueError(f"rosenbrock needs n >= 2, got {n!r}")
    starts = [np.random.default_rng(s).uniform(low, high, size=n) for s in range(seeds)]
    return jnp.asarray(np.stack(starts))


def newton_cycle(x: jax.Array) -> jax.Array:
    """``x^4/4 - x^2 + 2x + (y - 1)^2`` of ``x = (x, y)``."""
    return x[0] ** 4 / 4.0 - x[0] ** 2 + 2.0 * x[0] + (x[1] - 1.0) ** 2


def newton_cycle_minimizer() -> jax.Array:
    roots = np.roots([1.0, 0.0, -2.0, 2.0])
    real = roots[np.abs(roots.imag) < 1e-12].real
    return jnp.asarray([real[0], 1.0])
