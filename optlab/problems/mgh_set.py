"""The 18 unconstrained minimization problems of Moré, Garbow and Hillstrom.

J. J. Moré, B. S. Garbow and K. E. Hillstrom, "Testing unconstrained optimization
software", ACM Transactions on Mathematical Software 7(1), 1981, pp. 17–41 (MGH below).
Each problem is a sum of squares ``f(x) = sum_i f_i(x)^2`` of the residuals the paper
lists, at the dimension and from the standard start it gives, with the minimum value
``f*`` it reports. Where MGH's ``f*`` is rounded (six digits), a run counts as solved
when ``f - f* <= 1e-6 max(1, |f*|)``, the test the benchmarks use (:func:`solved`).

>>> problem = mgh("rosenbrock")
>>> problem.n, round(float(problem.fun(problem.x0)), 4), problem.f_star
(2, 24.2, 0.0)

``mgh(name, n=...)`` picks another size for the problems whose dimension is free
(variably dimensioned, Watson, the penalties, trigonometric, extended Rosenbrock and
Powell, Chebyquad); their ``f*`` is then known for the sizes MGH tabulates and ``nan``
otherwise. The functions are pure JAX functions of a flat float vector: ``jax.grad``,
``jax.hessian`` and Hessian-vector products apply, and ``jax.vmap`` batches them over
starts.
"""

from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from optlab.problems.suite import Problem


def solved(value, f_star: float, tol: float = 1e-6):
    """Whether ``value`` is within ``tol * max(1, |f*|)`` of the minimum value ``f*``."""
    return value - f_star <= tol * max(1.0, abs(f_star))


def iterations_to_solve(values, f_star: float, tol: float = 1e-6) -> int | None:
    """The first ``k`` whose ``values[k]`` is :func:`solved`, or None: iterations to solve,
    read off a run's history of objective values."""
    hits = np.flatnonzero(solved(np.asarray(values), f_star, tol))
    return int(hits[0]) if hits.size else None


def _sum_of_squares(residuals: Callable[[jax.Array], jax.Array]) -> Callable:
    def fun(x: jax.Array) -> jax.Array:
        r = residuals(x)
        return jnp.sum(r * r)

    fun.residuals = residuals
    return fun


def _index(m: int, dtype) -> jax.Array:
    return jnp.arange(1, m + 1, dtype=dtype)


def _helical_valley(x):
    x1, x2, x3 = x[0], x[1], x[2]
    theta = jnp.arctan(x2 / x1) / (2 * jnp.pi) + jnp.where(x1 < 0, 0.5, 0.0)
    return jnp.stack([10 * (x3 - 10 * theta), 10 * (jnp.sqrt(x1**2 + x2**2) - 1), x3])


def _biggs_exp6(x):
    t = 0.1 * _index(13, x.dtype)
    y = jnp.exp(-t) - 5 * jnp.exp(-10 * t) + 3 * jnp.exp(-4 * t)
    return x[2] * jnp.exp(-t * x[0]) - x[3] * jnp.exp(-t * x[1]) + x[5] * jnp.exp(-t * x[4]) - y


_GAUSSIAN_Y = np.array([0.0009, 0.0044, 0.0175, 0.0540, 0.1295, 0.2420, 0.3521, 0.3989,
                        0.3521, 0.2420, 0.1295, 0.0540, 0.0175, 0.0044, 0.0009])


def _gaussian(x):
    t = (8 - _index(15, x.dtype)) / 2
    return x[0] * jnp.exp(-x[1] * (t - x[2]) ** 2 / 2) - _GAUSSIAN_Y


def _powell_badly_scaled(x):
    return jnp.stack([1e4 * x[0] * x[1] - 1, jnp.exp(-x[0]) + jnp.exp(-x[1]) - 1.0001])


def _box_3d(x):
    t = 0.1 * _index(10, x.dtype)
    return (jnp.exp(-t * x[0]) - jnp.exp(-t * x[1])
            - x[2] * (jnp.exp(-t) - jnp.exp(-10 * t)))


def _variably_dimensioned(x):
    weighted = jnp.sum(_index(x.shape[0], x.dtype) * (x - 1))
    return jnp.concatenate([x - 1, jnp.stack([weighted, weighted**2])])


def _watson(x):
    n = x.shape[0]
    t = _index(29, x.dtype) / 29
    powers = t[:, None] ** jnp.arange(n, dtype=x.dtype)[None, :]  # t_i^(j-1), j = 1..n
    derivative = powers[:, :-1] @ (jnp.arange(1, n, dtype=x.dtype) * x[1:])
    value = powers @ x
    return jnp.concatenate([derivative - value**2 - 1, jnp.stack([x[0], x[1] - x[0] ** 2 - 1])])


def _penalty_1(x):
    return jnp.concatenate([math.sqrt(1e-5) * (x - 1), jnp.sum(x**2)[None] - 0.25])


def _penalty_2(x):
    n = x.shape[0]
    a = math.sqrt(1e-5)
    i = _index(n, x.dtype)[1:]  # 2..n
    y = jnp.exp(i / 10) + jnp.exp((i - 1) / 10)
    pairs = a * (jnp.exp(x[1:] / 10) + jnp.exp(x[:-1] / 10) - y)
    tail = a * (jnp.exp(x[1:] / 10) - jnp.exp(-0.1))  # i = n+1..2n-1: x_{i-n+1}
    weighted = jnp.sum((n - _index(n, x.dtype) + 1) * x**2) - 1
    return jnp.concatenate([(x[0] - 0.2)[None], pairs, tail, weighted[None]])


def _brown_badly_scaled(x):
    return jnp.stack([x[0] - 1e6, x[1] - 2e-6, x[0] * x[1] - 2])


def _brown_dennis(x):
    t = _index(20, x.dtype) / 5
    return (x[0] + t * x[1] - jnp.exp(t)) ** 2 + (x[2] + x[3] * jnp.sin(t) - jnp.cos(t)) ** 2


def _gulf(x):
    t = _index(99, x.dtype) / 100
    y = 25 + (-50 * jnp.log(t)) ** (2 / 3)
    return jnp.exp(-jnp.abs(y - x[1]) ** x[2] / x[0]) - t


def _trigonometric(x):
    n = x.shape[0]
    return n - jnp.sum(jnp.cos(x)) + _index(n, x.dtype) * (1 - jnp.cos(x)) - jnp.sin(x)


def _extended_rosenbrock(x):
    odd, even = x[0::2], x[1::2]
    return jnp.stack([10 * (even - odd**2), 1 - odd], axis=1).reshape(-1)


def _extended_powell(x):
    a, b, c, d = x[0::4], x[1::4], x[2::4], x[3::4]
    return jnp.stack([a + 10 * b, math.sqrt(5) * (c - d), (b - 2 * c) ** 2,
                      math.sqrt(10) * (a - d) ** 2], axis=1).reshape(-1)


def _beale(x):
    y = jnp.array([1.5, 2.25, 2.625], x.dtype)
    return y - x[0] * (1 - x[1] ** _index(3, x.dtype))


def _wood(x):
    x1, x2, x3, x4 = x[0], x[1], x[2], x[3]
    return jnp.stack([10 * (x2 - x1**2), 1 - x1, math.sqrt(90) * (x4 - x3**2), 1 - x3,
                      math.sqrt(10) * (x2 + x4 - 2), (x2 - x4) / math.sqrt(10)])


def _chebyquad(x):
    n = x.shape[0]
    # T_i(2x - 1), the Chebyshev polynomials shifted to [0, 1], by their recurrence.
    u = 2 * x - 1
    polynomials = [jnp.ones_like(u), u]
    for _ in range(2, n + 1):
        polynomials.append(2 * u * polynomials[-1] - polynomials[-2])
    i = np.arange(1, n + 1, dtype=np.float64)
    y = np.where(i % 2 == 0, -1.0 / np.maximum(i**2 - 1, 1.0), 0.0)
    return jnp.stack([jnp.mean(p) for p in polynomials[1:]]) - y


# name: (MGH number, residuals, standard n, start(n), {n: f*}); a fixed n is a 1-tuple.
_TABLE = {
    "helical_valley": (7, _helical_valley, (3,), lambda n: [-1.0, 0.0, 0.0], {3: 0.0}),
    "biggs_exp6": (18, _biggs_exp6, (6,), lambda n: [1.0, 2.0, 1.0, 1.0, 1.0, 1.0],
                   {6: 0.0}),
    "gaussian": (9, _gaussian, (3,), lambda n: [0.4, 1.0, 0.0], {3: 1.12793e-8}),
    "powell_badly_scaled": (3, _powell_badly_scaled, (2,), lambda n: [0.0, 1.0], {2: 0.0}),
    "box_3d": (12, _box_3d, (3,), lambda n: [0.0, 10.0, 20.0], {3: 0.0}),
    "variably_dimensioned": (25, _variably_dimensioned, (10, "any"),
                             lambda n: 1 - np.arange(1, n + 1) / n, {}),
    "watson": (20, _watson, (6, "2..31"), lambda n: np.zeros(n),
               {6: 2.28767e-3, 9: 1.39976e-6, 12: 4.72238e-10}),
    "penalty_1": (23, _penalty_1, (10, "any"), lambda n: np.arange(1.0, n + 1),
                  {4: 2.24997e-5, 10: 7.08765e-5}),
    "penalty_2": (24, _penalty_2, (10, "2.."), lambda n: np.full(n, 0.5),
                  {4: 9.37629e-6, 10: 2.93660e-4}),
    "brown_badly_scaled": (4, _brown_badly_scaled, (2,), lambda n: [1.0, 1.0], {2: 0.0}),
    "brown_dennis": (16, _brown_dennis, (4,), lambda n: [25.0, 5.0, -5.0, -1.0],
                     {4: 85822.2}),
    "gulf": (11, _gulf, (3,), lambda n: [5.0, 2.5, 0.15], {3: 0.0}),
    "trigonometric": (26, _trigonometric, (10, "any"), lambda n: np.full(n, 1.0 / n), {}),
    "rosenbrock": (21, _extended_rosenbrock, (2, "even"),
                   lambda n: np.tile([-1.2, 1.0], n // 2), {}),
    "powell_singular": (22, _extended_powell, (4, "4k"),
                        lambda n: np.tile([3.0, -1.0, 0.0, 1.0], n // 4), {}),
    "beale": (5, _beale, (2,), lambda n: [1.0, 1.0], {2: 0.0}),
    "wood": (14, _wood, (4,), lambda n: [-3.0, -1.0, -3.0, -1.0], {4: 0.0}),
    "chebyquad": (35, _chebyquad, (8, "any"), lambda n: np.arange(1, n + 1) / (n + 1),
                  {**{k: 0.0 for k in (1, 2, 3, 4, 5, 6, 7, 9)}, 8: 3.51687e-3,
                   10: 6.50395e-3}),
}
# Minimum 0 at every size: the residuals vanish at (1, ..., 1), resp. 0 (MGH).
_ZERO_AT_ANY_SIZE = {"variably_dimensioned", "trigonometric", "rosenbrock", "powell_singular"}

MGH_PROBLEMS = tuple(_TABLE)  # the names, in the order of the paper's Table


def mgh(name: str, n: int | None = None) -> Problem:
    """The MGH problem ``name`` (one of :data:`MGH_PROBLEMS`) at its standard size, or at
    size ``n`` where the problem allows one."""
    if name not in _TABLE:
        raise ValueError(f"unknown MGH problem {name!r}; choose one of {', '.join(_TABLE)}")
    number, residuals, sizes, start, minima = _TABLE[name]
    standard = sizes[0]
    n = standard if n is None else n
    if not isinstance(n, int) or isinstance(n, bool):
        raise TypeError(f"n must be an int, got {n!r}")
    allowed = sizes[1] if len(sizes) > 1 else None
    valid = {None: n == standard, "any": n >= 1, "even": n >= 2 and n % 2 == 0,
             "4k": n >= 4 and n % 4 == 0, "2..31": 2 <= n <= 31, "2..": n >= 2}[allowed]
    if not valid:
        rule = {None: f"n = {standard} only", "any": "n >= 1", "even": "an even n >= 2",
                "4k": "a multiple of 4", "2..31": "2 <= n <= 31", "2..": "n >= 2"}[allowed]
        raise ValueError(f"{name} takes {rule}, got n={n}")
    f_star = 0.0 if name in _ZERO_AT_ANY_SIZE else minima.get(n, math.nan)
    return Problem(name, _sum_of_squares(residuals), np.asarray(start(n), dtype=np.float64),
                   f_star, number=number)


def mgh_problems() -> list[Problem]:
    """All 18 at their standard sizes, in the paper's order."""
    return [mgh(name) for name in MGH_PROBLEMS]
