"""A test problem as a record, and problems of different sizes as one batched objective.

:class:`Problem` is what every problem set of :mod:`optlab.problems` returns (the MGH
problems, the CUTEst ones) and what a user function becomes to join them::

    Problem("my_problem", fun, x0)          # f* unknown, no bounds
    Problem("boxed", fun, x0, lower=np.zeros(n), upper=np.ones(n))
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple, Sequence

import jax
import numpy as np


class Problem(NamedTuple):
    """A minimization problem: its objective, standard start, known minimum value and
    bounds."""

    name: str  # e.g. "helical_valley", "ROSENBR"
    fun: Callable[[jax.Array], jax.Array]  # a pure JAX function of a flat float vector
    x0: np.ndarray  # (n,) the standard start, float64
    f_star: float = math.nan  # the known minimum value; nan where none is known
    lower: np.ndarray | None = None  # (n,) bounds, -inf / inf where a side is free;
    upper: np.ndarray | None = None  # None for an unconstrained problem
    number: int | None = None  # its number in its collection's list (MGH's), if any

    @property
    def n(self) -> int:
        return int(self.x0.shape[0])

    @property
    def bounded(self) -> bool:
        return self.lower is not None or self.upper is not None

    def box(self) -> tuple[np.ndarray, np.ndarray]:
        """``(lower, upper)`` as ``(n,)`` float64 arrays, infinite where a side is free."""
        lower, upper = (np.full(self.n, fill) if bound is None else
                        np.broadcast_to(np.asarray(bound, np.float64), (self.n,))
                        for bound, fill in ((self.lower, -np.inf), (self.upper, np.inf)))
        return lower, upper


class ProblemStack(NamedTuple):
    """Problems of different sizes as one objective: what :func:`stack` returns."""

    fun: Callable[[jax.Array, jax.Array], jax.Array]  # fun(k, x): problem k at x[:n_k]
    x0: np.ndarray  # (problems, width) the standard starts, zero-padded to the widest
    sizes: tuple[int, ...]  # n of each problem
    names: tuple[str, ...]

    def pad(self, vectors, fill: float = 0.0) -> np.ndarray:
        """Per-problem vectors (bounds, minimizers) as one ``(problems, width)`` array."""
        width = self.x0.shape[1]
        return np.stack([np.pad(np.asarray(v, np.float64), (0, width - len(v)),
                                constant_values=fill) for v in vectors])


def stack(problems: Sequence[Problem]) -> ProblemStack:
    """Problems of different sizes as one objective ``fun(k, x)`` of the problem's index
    ``k`` and a vector padded with zeros to the largest ``n``, so that ``jax.vmap`` over
    ``k`` runs them all in one compiled program, whose compile time is a fraction of
    one program per problem. ``fun`` is a ``lax.switch`` over the problems, which under
    ``vmap`` over ``k`` evaluates every problem and selects (with ``k`` an unbatched
    argument, as :func:`optlab.benchmark.run_problems` passes it, only problem ``k``
    runs), and every member runs until the slowest
    stops: a gain when the runs are short (L-BFGS-B on the 18 in boxes, compile
    included), a loss when some run to a budget of a thousand iterations with
    Hessian-vector products. The padding does not enter the objective, so its
    gradient and Hessian there are zero and the second-order methods leave it at 0.

    >>> from optlab.problems import mgh_problems
    >>> batch = stack(mgh_problems())
    >>> batch.x0.shape, batch.sizes[:3]
    ((18, 10), (3, 6, 3))
    >>> round(float(batch.fun(0, batch.x0[0])), 1)  # helical valley at its start
    2500.0
    """
    problems = list(problems)
    if not problems:
        raise ValueError("stack needs at least one problem")
    width = max(problem.n for problem in problems)
    branches = [lambda x, fun=problem.fun, n=problem.n: fun(x[:n]) for problem in problems]
    batch = ProblemStack(lambda k, x: jax.lax.switch(k, branches, x),
                         np.zeros((0, width)), tuple(problem.n for problem in problems),
                         tuple(problem.name for problem in problems))
    return batch._replace(x0=batch.pad([problem.x0 for problem in problems]))
