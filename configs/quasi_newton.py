"""Default configuration of ``python -m experiments.quasi_newton``."""

from __future__ import annotations

import dataclasses

from experiments.kit.options import at_least, each, option, positive


@dataclasses.dataclass(frozen=True)
class Config:
    problem: str = option("quadratic", "Test problem: quadratic (the seed recipe) or rosenbrock.")
    sizes: tuple[int, ...] = option(
        (228,), "Problem sizes, one table each, e.g. 2,50,228 (rosenbrock: 2).", flag="n",
        check=each(at_least(1)))
    seeds: int = option(20, "Random problems (quadratic) or starting points (rosenbrock).",
                        check=at_least(1))
    # 1e-5 is as close as scipy's BFGS gets on every seed before its line search reports
    # precision loss.
    eps: float = option(1e-5, "Stop when ||x_k - x*|| < eps (rosenbrock: 1e-2).", check=positive())
    methods: tuple[str, ...] = option(
        ("newton", "sr1", "sr1_exact", "bfgs", "lbfgs"), "Methods to compare.")
    max_iters: int = option(3000, "Iteration budget per run (rosenbrock: 5000).", check=at_least(1))
    scipy: bool = option(True, "Add scipy BFGS and L-BFGS-B reference rows, same stopping rule.")
    repeats: int = option(3, "Timed calls of each compiled program (median reported).",
                          check=at_least(1))


def get_config(problem: str = "quadratic") -> Config:
    """The study's defaults; Rosenbrock stops at 1e-2, the seed study's rule, and n = 2."""
    if problem == "rosenbrock":
        return Config(problem="rosenbrock", sizes=(2,), eps=1e-2, max_iters=5000)
    return Config(problem=problem)
