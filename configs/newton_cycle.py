"""Default configuration of ``python -m experiments.newton_cycle``."""

from __future__ import annotations

import dataclasses

from experiments.kit.options import at_least, option, positive


@dataclasses.dataclass(frozen=True)
class Config:
    start: tuple[float, float] = option((0.0, 2.0), "Where pure Newton cycles.", flag="")
    learning_rate: float = option(0.01, "Gradient descent's fixed step (the classic exercise's).",
                                  check=positive())
    min_curvature: float = option(1e-3, "Eigenvalue floor of the regularized Newton method.",
                                  check=positive())
    eps: float = option(1e-6, "Converged when ||x_k - x*|| < eps.", check=positive())
    max_iters: int = option(5000, "Iteration budget of each method.", check=at_least(1))
    shown_iterates: int = option(8, "Newton iterates printed in the summary.", flag="")


def get_config() -> Config:
    return Config()
