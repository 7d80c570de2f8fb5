"""Default configuration of ``python -m experiments.pcg``."""

from __future__ import annotations

import dataclasses

from experiments.kit.options import at_least, non_negative, option, positive


@dataclasses.dataclass(frozen=True)
class Config:
    matrix: str = option(
        "1138_bus", "A shipped SuiteSparse matrix (494_bus, 685_bus, 1138_bus), a path to a "
        "symmetric .mtx file, or poisson2d (the 5-point Laplacian on a size x size grid).")
    size: int = option(100, "Grid side N of poisson2d (N^2 unknowns).", check=at_least(2))
    layout: str = option("auto", "How optlab stores A: auto (by diagonals for a stencil, CSR "
                         "otherwise), csr, diagonal or bcoo; see optlab.linalg.sparse_matrix.")
    preconditioners: tuple[str, ...] = option(
        ("none", "jacobi", "ic0", "ideal"), "Preconditioners to compare.")
    seed: int = option(0, "Seed of b = rhs_scale * N(0, I) (numpy.random.default_rng).")
    rhs_scale: float = option(20.0, "Standard deviation of the entries of b (the classic "
                              "exercise's N(0, 20)).", check=positive())
    x0: float = option(1.0, "The start is x0 * ones (the classic exercise's ones).")
    tol: float = option(1e-7, "Stop when ||b - A x_k||_2 < tol (absolute).", check=positive())
    max_iters: int | None = option(None, "Iteration budget per solve.", check=at_least(1),
                                   default_text="10 n")
    rhs: int = option(1, "More than 1: also solve that many random right-hand sides in one "
                      "vmapped call.", check=at_least(1))
    ic0_shift: float = option(0.0, "IC(0) factors A + shift * diag(A) (see linalg.ic0); 0 "
                              "finds the smallest shift that factors A, none if none is needed.",
                              check=non_negative())
    ideal_max_n: int = option(5000, "Skip the ideal preconditioner (a dense n x n Cholesky "
                              "factor) above this n.")
    scipy: bool = option(True, "Add scipy.sparse.linalg.cg reference rows, same "
                         "preconditioners.")
    repeats: int = option(3, "Timed calls of every solve and set-up (median reported).",
                          check=at_least(1))


def get_config() -> Config:
    """The classic exercise: 1138_bus, b ~ N(0, 20), x0 = ones, tol 1e-7, four preconditioners."""
    return Config()
