"""Default configuration of ``python -m experiments.linear_regression``."""

from __future__ import annotations

import dataclasses
import re

from experiments.kit.options import (
    Check, at_least, decay_rate, each, option, positive)


def parse_sizes(texts: tuple[str, ...]) -> tuple[tuple[int, int], ...]:
    """``("500x2", "10000x5")`` -> ``((500, 2), (10000, 5))``."""
    matches = [re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text) for text in texts]
    for text, match in zip(texts, matches):
        if match is None:
            raise ValueError(f"--sizes takes NxD pairs separated by commas, e.g. "
                             f"500x2,10000x5; got {text!r}")
    return tuple((int(match[1]), int(match[2])) for match in matches)


@dataclasses.dataclass(frozen=True)
class Config:
    sizes: tuple[tuple[int, int], ...] = option(
        ((500, 2), (10_000, 5), (150_000, 7)), "Problem sizes NxD, one table each.",
        parse=parse_sizes, default_text="500x2,10000x5,150000x7",
        check=Check(lambda sizes: bool(sizes) and all(min(size) >= 1 for size in sizes),
                    "needs one size at least, each with n >= 1 and d >= 1", "0x2"))
    # Every setting of a sweep sees the same seeds (common random numbers).
    seeds: int = option(10, "Runs per setting (initial weights w0 ~ N(0, I) and shuffles).",
                        check=at_least(1))
    steps: int = option(1000, "Optimizer steps per run, one minibatch each.", check=at_least(1))
    batch_size: int = option(32, "Minibatch rows (a last partial batch is dropped).",
                             check=at_least(1))
    methods: tuple[str, ...] = option(("momentum", "rmsprop", "adam"), "Methods.")
    betas: tuple[float, ...] = option(
        (0.7, 0.8, 0.9), "Values of the beta sweeps: momentum's beta, RMSprop's gamma, "
        "Adam's b1 x b2 grid.", check=each(decay_rate()))
    learning_rates: tuple[float, ...] = option(
        (1e-2, 1e-3, 1e-4), "Values of the learning-rate sweeps.", check=each(positive()))
    # The EMA form of momentum is stable only while lr (1 - beta) lambda_max < 2 (1 + beta):
    # at d = 7 (lambda_max about 2800) lr = 1e-2 diverges for beta = 0.7 and 0.8.
    momentum_learning_rate: float = option(1e-3, "Momentum's rate in its beta sweep.", flag="",
                                           check=positive())
    rmsprop_learning_rate: float = option(1e-2, "RMSprop's rate in its beta sweep.", flag="",
                                          check=positive())
    adam_learning_rate: float = option(1e-2, "Adam's rate in its beta grid.", flag="",
                                       check=positive())
    lr_sweep_beta: float = option(0.9, "Momentum's beta and RMSprop's gamma in the "
                                  "learning-rate sweeps.", flag="", check=decay_rate())
    lr_sweep_adam_betas: tuple[float, float] = option(
        (0.9, 0.999), "Adam's (b1, b2) in its learning-rate sweep.", flag="",
        check=each(decay_rate()))
    target_factor: float = option(
        1.1, "A run reaches the target when the full-data loss is at most this times the "
        "least-squares loss L(w*).",
        check=Check(lambda factor: factor > 1, "must be greater than 1", "1"))
    record_every: int = option(1, "Steps between full-data losses.", flag="", check=at_least(1))
    seed: int = option(0, "Root seed: the data of every size and the runs' keys.", flag="")
    repeats: int = option(3, "Timed calls of each program (their median).", check=at_least(1))


def get_config() -> Config:
    """The study of the issue: 3 sizes, 3 methods, all sweeps, 10 seeds, 1000 steps."""
    return Config()
