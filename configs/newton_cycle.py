"""Default configuration of ``python -m experiments.newton_cycle``."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Config:
    start: tuple[float, float] = (0.0, 2.0)  # where pure Newton cycles
    learning_rate: float = 0.01  # gradient descent's fixed step, as in the classic exercise
    min_curvature: float = 1e-3  # eigenvalue floor of the regularized Newton method
    eps: float = 1e-6  # converged when ||x_k - x*|| < eps
    max_iters: int = 5000
    shown_iterates: int = 8  # Newton iterates printed in the summary


def get_config() -> Config:
    return Config()
