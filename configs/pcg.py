"""Default configuration of ``python -m experiments.pcg``."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Config:
    # A shipped SuiteSparse matrix (494_bus, 685_bus, 1138_bus), a path to any symmetric
    # .mtx file, or "poisson2d" (the 5-point Laplacian on a size x size grid).
    matrix: str = "1138_bus"
    size: int = 100  # grid side N of poisson2d (n = N^2 unknowns); ignored otherwise
    # How optlab stores A: "auto" (by diagonals for a stencil such as poisson2d, BCOO
    # otherwise), "bcoo" or "diagonal"; see optlab.linalg.sparse_matrix.
    layout: str = "auto"
    preconditioners: tuple[str, ...] = ("none", "jacobi", "ic0", "ideal")
    seed: int = 0  # b = rhs_scale * N(0, I) drawn with numpy.random.default_rng(seed)
    rhs_scale: float = 20.0  # b ~ N(0, rhs_scale^2 I), the classic exercise's N(0, 20)
    x0: float = 1.0  # the starting point is x0 * ones(n), the classic exercise's ones
    tol: float = 1e-7  # stop when ||b - A x_k||_2 < tol (absolute, the classic rule)
    max_iters: int | None = None  # per solve; None: 10 n
    rhs: int = 1  # > 1: also solve that many random right-hand sides in one vmapped call
    ic0_shift: float = 0.0  # IC(0) factors A + shift * diag(A) (see optlab.linalg.ic0)
    # "ideal" densifies A (an n x n Cholesky factor); above this n it is skipped.
    ideal_max_n: int = 5000
    scipy: bool = True  # reference rows from scipy.sparse.linalg.cg with the same preconditioners
    repeats: int = 3  # timed calls of every solve and set-up (median reported)


def get_config() -> Config:
    """The classic exercise: 1138_bus, b ~ N(0, 20), x0 = ones, tol 1e-7, four preconditioners."""
    return Config()
