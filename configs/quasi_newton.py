"""Default configuration of ``python -m experiments.quasi_newton``."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Config:
    problem: str = "quadratic"  # "quadratic" (the seed recipe) or "rosenbrock"
    sizes: tuple[int, ...] = (228,)  # one table per dimension n
    seeds: int = 20  # random problems (quadratic) or starting points (rosenbrock)
    # Stop when ||x_k - x*|| < eps. 1e-5 is as close as scipy's BFGS gets on every seed
    # before its line search reports precision loss (its worst seed stalls at 4.8e-6).
    eps: float = 1e-5
    methods: tuple[str, ...] = ("newton", "sr1", "sr1_exact", "bfgs", "lbfgs")
    max_iters: int = 3000
    scipy: bool = True  # reference rows: scipy BFGS and L-BFGS-B, same stop rule
    repeats: int = 3  # timed calls of each compiled program (median reported)


def get_config(problem: str = "quadratic") -> Config:
    """The study's defaults; Rosenbrock stops at 1e-2, the seed study's rule, and n = 2."""
    if problem == "rosenbrock":
        return Config(problem="rosenbrock", sizes=(2,), eps=1e-2, max_iters=5000)
    return Config(problem=problem)
