"""Performance profiles (Dolan and Moré, 2002) and data profiles (Moré and Wild, 2009),
computed from recorded runs.

A comparison of solvers on a problem set starts from one number per problem and solver:
the cost (iterations, evaluations, seconds) at which the solver first passed the
convergence test, or ``inf`` where it never did. The test is Moré and Wild's,

    f(x) <= f_L + tol * (f(x0) - f_L),

the run has closed ``1 - tol`` of the gap between the start's value and ``f_L``, the
lowest value known for the problem (:func:`lowest_values`). :func:`costs_to_solve` reads
these costs off histories such as :class:`optlab.minimize`'s, so no solver runs again to
draw a profile.

- The performance profile of solver ``s`` is ``rho_s(tau)``, the fraction of problems on
  which its cost is within a factor ``tau`` of the best solver's. ``rho_s(1)`` is the
  fraction it wins (ties count for every solver that ties), ``rho_s(inf)`` the fraction
  it solves.
- The data profile is ``d_s(alpha)``, the fraction of problems it solves within
  ``alpha`` simplex gradients, ``alpha * (n_p + 1)`` evaluations on a problem of size
  ``n_p``.

Both are step functions of their argument; here they are evaluated at every point where
one of them steps, which is what a figure needs to draw them exactly.

>>> costs = np.array([[1.0, 2.0], [3.0, 3.0], [np.inf, 5.0]])  # 3 problems, 2 solvers
>>> profile = performance_profile(costs)
>>> profile.x.tolist(), profile.fractions.tolist()
([1.0, 2.0], [[0.6666666666666666, 0.6666666666666666], [0.6666666666666666, 1.0]])
"""

from __future__ import annotations

from typing import Any, NamedTuple, Sequence

import numpy as np


class Profile(NamedTuple):
    """A profile's step functions, one per solver, at the points where they step."""

    x: np.ndarray  # (points,) ascending: tau (performance) or alpha (data)
    fractions: np.ndarray  # (solvers, points): the fraction of problems at each x

    def at(self, x: float) -> np.ndarray:
        """Every solver's fraction at ``x`` (0 below the first step)."""
        index = np.searchsorted(self.x, x, side="right") - 1
        return self.fractions[:, index] if index >= 0 else np.zeros(len(self.fractions))


def lowest_values(best_found: Any, f_star: Any | None = None) -> np.ndarray:
    """``f_L`` per problem: the lowest value any solver reached, lowered to the known
    minimum ``f_star`` where one is given (finite). A known value that no solver reaches
    keeps every solver from solving with a loose ``f_L``; a solver that goes below a
    rounded known value sets ``f_L`` itself."""
    best = np.asarray(best_found, np.float64)
    if f_star is None:
        return best
    f_star = np.broadcast_to(np.asarray(f_star, np.float64), best.shape)
    return np.where(np.isfinite(f_star), np.fmin(best, f_star), best)


def costs_to_solve(values: Any, costs: Any, f0: Any, f_low: Any, tol: float) -> np.ndarray:
    """The cost at which each run first passes ``f <= f_L + tol (f0 - f_L)``.

    Args:
      values: ``(..., entries)`` the objective along each run (a history, entry 0 at the
        start); NaN entries never pass.
      costs: ``(..., entries)`` the cumulative cost at each entry (iterations,
        evaluations, seconds), broadcast against ``values``.
      f0: ``(...)`` the value at each run's start, the same for every solver of a problem.
      f_low: ``(...)`` the lowest known value of each run's problem (:func:`lowest_values`).
      tol: the fraction of the gap ``f0 - f_L`` left, in ``(0, 1)``.

    Returns:
      ``(...)`` costs, ``inf`` where the run never passes.
    """
    if not 0.0 < tol < 1.0:
        raise ValueError(f"tol must lie in (0, 1), got {tol}")
    values = np.asarray(values, np.float64)
    costs = np.broadcast_to(np.asarray(costs, np.float64), values.shape)
    target = np.asarray(f_low, np.float64) + tol * (np.asarray(f0, np.float64)
                                                     - np.asarray(f_low, np.float64))
    passed = values <= target[..., None]
    first = np.argmax(passed, axis=-1)
    cost = np.take_along_axis(costs, first[..., None], axis=-1)[..., 0]
    return np.where(passed.any(axis=-1), cost, np.inf)


def performance_profile(costs: Any, taus: Sequence[float] | None = None) -> Profile:
    """Dolan and Moré's ``rho_s(tau)`` from ``costs`` ``(problems, solvers)``.

    Costs must be positive; ``inf`` marks a problem the solver did not solve. A problem
    that no solver solves counts in every fraction's denominator and in no numerator.
    By default ``taus`` are the ratios at which some ``rho_s`` steps (1 included).
    """
    costs = _check_costs(costs)
    best = costs.min(axis=1, keepdims=True)
    with np.errstate(invalid="ignore"):
        ratios = np.where(np.isfinite(costs), costs / best, np.inf)
    if taus is None:
        taus = np.unique(np.append(ratios[np.isfinite(ratios)], 1.0))
    taus = np.asarray(taus, np.float64)
    if taus.ndim != 1 or np.any(np.diff(taus) <= 0) or taus.size and taus[0] < 1:
        raise ValueError("taus must be increasing and at least 1")
    return Profile(taus, _fractions_within(ratios, taus))


def data_profile(evaluations: Any, sizes: Any, alphas: Sequence[float] | None = None) -> Profile:
    """Moré and Wild's ``d_s(alpha)`` from ``evaluations`` ``(problems, solvers)`` to solve
    (``inf`` where unsolved) and each problem's size ``n_p``: the fraction of problems a
    solver solves within ``alpha (n_p + 1)`` evaluations."""
    evaluations = _check_costs(evaluations)
    sizes = np.asarray(sizes, np.float64)
    if sizes.shape != evaluations.shape[:1] or np.any(sizes < 1):
        raise ValueError(f"sizes must be {evaluations.shape[0]} positive problem sizes, "
                         f"got shape {sizes.shape}")
    gradients = evaluations / (sizes[:, None] + 1)
    if alphas is None:
        alphas = np.unique(gradients[np.isfinite(gradients)])
    alphas = np.asarray(alphas, np.float64)
    if alphas.ndim != 1 or np.any(np.diff(alphas) <= 0):
        raise ValueError("alphas must be increasing")
    return Profile(alphas, _fractions_within(gradients, alphas))


def _check_costs(costs: Any) -> np.ndarray:
    costs = np.asarray(costs, np.float64)
    if costs.ndim != 2 or 0 in costs.shape:
        raise ValueError(f"costs must be (problems, solvers) with both at least 1, got "
                         f"shape {costs.shape}")
    if np.any(np.isnan(costs)) or np.any(costs <= 0):
        raise ValueError("costs must be positive, with inf for an unsolved problem")
    return costs


def _fractions_within(scaled: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``(solvers, points)``: per solver, the fraction of problems with ``scaled <= x``."""
    return (scaled.T[:, :, None] <= points[None, None, :]).mean(axis=1)
