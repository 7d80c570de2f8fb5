"""Classic test functions with known minimizers (or with a documented lack of one).

* :func:`rosenbrock` -- ``sum_i 100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2``, the n-D extension
  of the 2-D banana (Rosenbrock 1960); minimizer ``(1, ..., 1)``.
* :func:`newton_cycle` -- ``x^4/4 - x^2 + 2x + (y - 1)^2``. Newton's method from ``(0, 2)``
  fixes ``y = 1`` in one step while ``x`` jumps ``0 -> 1 -> 0 -> ...``: ``f_xx = 3x^2 - 2``
  is negative at ``x = 0`` and positive at ``x = 1``, and the two Newton steps are exact
  opposites. The minimizer is ``x*`` the real root of ``x^3 - 2x + 2 = 0``, ``y* = 1``.

The 2-D functions of the first-order exercises, each a pure function of a vector of
length 2 (``x = (x, y)``), are collected with their minimizers in :data:`TEST_FUNCTIONS`:

* :func:`bowl` -- ``x^2 + y^2``; minimizer ``(0, 0)``.
* :func:`mult` -- ``sin(sqrt(x^2 + y^2))``. No unique minimizer: the global minima
  (value -1) are the circles ``r = 3pi/2 + 2pi k``, ``k = 0, 1, ...``; the origin is a
  local minimum (value 0, the tip of a cone).
* :func:`monkey_saddle` -- ``x^3 + 3xy^2``, the formula of the exercise. Unbounded below,
  no minimizer: the origin is a degenerate critical point (gradient and Hessian vanish)
  with ``f < 0`` on the whole half-plane ``x < 0``. (The textbook monkey saddle is
  ``x^3 - 3xy^2``, with three descending valleys; this one has one descending side.)
* :func:`matyas` -- ``0.26 (x^2 + y^2) - 0.48 xy``; minimizer ``(0, 0)``, a long valley
  along ``x = y`` (Hessian eigenvalues 0.04 and 1).
* :func:`easom` -- ``-cos x cos y exp(-((x - pi)^2 + (y - pi)^2))``; minimizer
  ``(pi, pi)``, value -1, inside a basin ``(pi/2, 3pi/2)^2`` on an almost flat plateau.
* :func:`rosenbrock` in two dimensions; minimizer ``(1, 1)``.

Each :class:`TestFunction` says how the distance to its minimizers is measured, so a
study can count iterations until ``distance(x_k) < threshold`` uniformly.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

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


def bowl(x: jax.Array) -> jax.Array:
    """``x^2 + y^2`` of ``x = (x, y)``."""
    return x[0] ** 2 + x[1] ** 2


def _radius(x: jax.Array) -> jax.Array:
    """``sqrt(x^2 + y^2)``, with gradient 0 instead of NaN at the origin.

    The square root has no derivative at 0; the inner ``where`` keeps its NaN out of the
    backward pass, and 0 is a subgradient of every function of the radius that is used
    here (the cone tip of :func:`mult` is a local minimum).
    """
    squared = x[0] ** 2 + x[1] ** 2
    positive = squared > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, squared, 1.0)), 0.0)


def mult(x: jax.Array) -> jax.Array:
    """``sin(sqrt(x^2 + y^2))``: a local minimum at the origin, global minima on circles."""
    return jnp.sin(_radius(x))


def monkey_saddle(x: jax.Array) -> jax.Array:
    """``x^3 + 3xy^2``: critical point at the origin, unbounded below (see the module doc)."""
    return x[0] ** 3 + 3.0 * x[0] * x[1] ** 2


def matyas(x: jax.Array) -> jax.Array:
    """Matyas's function ``0.26 (x^2 + y^2) - 0.48 xy``."""
    return 0.26 * (x[0] ** 2 + x[1] ** 2) - 0.48 * x[0] * x[1]


def easom(x: jax.Array) -> jax.Array:
    """Easom's function ``-cos x cos y exp(-((x - pi)^2 + (y - pi)^2))``."""
    return -jnp.cos(x[0]) * jnp.cos(x[1]) * jnp.exp(-((x[0] - jnp.pi) ** 2 + (x[1] - jnp.pi) ** 2))


MULT_MINIMUM_RADIUS = 1.5 * math.pi  # the innermost circle of global minima of mult


def _distance_to_point(point: tuple[float, float]) -> Callable[[jax.Array], jax.Array]:
    def distance(x: jax.Array) -> jax.Array:
        return jnp.linalg.norm(x - jnp.asarray(point, x.dtype))

    return distance


def _mult_distance(x: jax.Array) -> jax.Array:
    """Distance from ``x`` to the nearest circle of minima ``r = 3pi/2 + 2pi k``, ``k >= 0``."""
    radius = jnp.linalg.norm(x)
    k = jnp.maximum(jnp.round((radius - MULT_MINIMUM_RADIUS) / (2.0 * jnp.pi)), 0.0)
    return jnp.abs(radius - (MULT_MINIMUM_RADIUS + 2.0 * jnp.pi * k))


def _circle(radius: float, points: int = 256) -> np.ndarray:
    angles = np.linspace(0.0, 2.0 * np.pi, points)
    return radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)


class TestFunction(NamedTuple):
    """A 2-D test function with what a study needs to measure progress and to draw it.

    ``distance(x)`` is the Euclidean distance from ``x`` to the set of global
    minimizers: to the point ``minimizer`` when there is one; for :func:`mult` to the
    nearest circle of minima, ``|r - (3pi/2 + 2pi k)|``; for :func:`monkey_saddle`, which
    has no minimizer, to the saddle point (the origin), where the desired outcome is to
    leave it, not to approach it.
    """

    name: str
    fn: Callable[[jax.Array], jax.Array]  # scalar function of a vector of length 2
    distance: Callable[[jax.Array], jax.Array]  # see the class docstring
    # (2,) the unique global minimizer; (k, 2) points on a curve of global minimizers
    # (mult: the circle r = 3pi/2); None when there is no minimizer (monkey saddle).
    minimizer: np.ndarray | None
    minimum: float | None  # the global minimum value; None when unbounded below
    domain: tuple[float, float, float, float]  # (x_min, x_max, y_min, y_max) for plots


_ORIGIN = (0.0, 0.0)

TEST_FUNCTIONS: dict[str, TestFunction] = {
    function.name: function
    for function in (
        TestFunction(
            "bowl", bowl, _distance_to_point(_ORIGIN), np.zeros(2), 0.0, (-7, 7, -7, 7)
        ),
        TestFunction(
            "mult", mult, _mult_distance, _circle(MULT_MINIMUM_RADIUS), -1.0, (-7, 7, -7, 7)
        ),
        TestFunction(
            "monkey_saddle", monkey_saddle, _distance_to_point(_ORIGIN), None, None, (-5, 5, -5, 5)
        ),
        TestFunction(
            "matyas", matyas, _distance_to_point(_ORIGIN), np.zeros(2), 0.0, (-5, 5, -5, 5)
        ),
        TestFunction(
            "easom",
            easom,
            _distance_to_point((math.pi, math.pi)),
            np.full(2, math.pi),
            -1.0,
            (-0.5, 6.5, -0.5, 6.5),
        ),
        TestFunction(
            "rosenbrock",
            rosenbrock,
            _distance_to_point((1.0, 1.0)),
            np.ones(2),
            0.0,
            (-2, 2, -1, 3),
        ),
    )
}
