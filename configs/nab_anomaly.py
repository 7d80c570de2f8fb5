"""Default configuration of ``python -m experiments.nab_anomaly``."""

from __future__ import annotations

import dataclasses

from experiments.kit.options import (
    TrainingConfig, at_least, decay_rate, each, non_negative, option, positive)

# The optimizer families; each is one compiled program whose runs are its variants x seeds.
FAMILIES = ("sgd", "nesterov", "adam", "amsgrad")


@dataclasses.dataclass(frozen=True)
class Config(TrainingConfig):
    train_series: str = option("art_daily_small_noise", "Series without anomaly.", flag="")
    test_series: str = option("art_daily_jumpsup", "Series with NAB's labelled jump.", flag="")
    # The test series is always whole, so that its labelled anomaly stays in.
    train_points: int | None = option(None, "Points of the training series used.",
                                      default_text="all")
    window_length: int = option(288, "Window length: one day of 5-minute steps; a multiple "
                                "of 4.")
    dropout: float = option(0.2, "After the first encoder and decoder layers.", flag="")
    seeds: int = option(5, "Runs per variant; seed s gives every variant the same "
                        "initialization.", check=at_least(1))
    epochs: int = option(50, "Epochs at most; early stopping usually ends runs before.",
                         check=at_least(1))
    batch_size: int = option(128, "Windows per minibatch.", check=at_least(1))
    validation_fraction: float = option(0.1, "Random windows held out (seeded by seed).",
                                        flag="")
    patience: int = option(5, "Early stopping on the validation loss, best weights restored.",
                           check=at_least(1))
    # Keras SGD: lr_t = lr / (1 + sgd_decay * t); 1e-3 halves the rate after 1000 steps.
    sgd_learning_rate: float = option(0.01, "Learning rate of SGD, momentum and Nesterov.",
                                      flag="", check=positive())
    sgd_decay: float = option(1e-3, "Keras's decay of the 'sgd + decay' variant.",
                              check=non_negative())
    momentum_sweep: tuple[float, ...] = option(
        (0.3, 0.5, 0.79, 0.8, 0.81, 0.9), "Heavy-ball momenta at lr 0.01.",
        check=each(decay_rate()))
    nesterov_momentum: float = option(0.9, "Nesterov's momentum.", flag="")
    # Keras Adam / AMSGrad defaults: eps outside the square root.
    adam_learning_rate: float = option(1e-3, "Adam's and AMSGrad's rate.", flag="",
                                       check=positive())
    adam_beta1_sweep: tuple[float, ...] = option(
        (0.8, 0.9), "Adam's b1 values; 0.9 is the 'adam' variant.", check=each(decay_rate()))
    adam_beta2: float = option(0.999, "Adam's b2.", flag="")
    adam_eps: float = option(1e-7, "Adam's eps.", flag="")
    families: tuple[str, ...] = option(FAMILIES, "Optimizer families (programs) to run.")
    seed: int = option(0, "Seed of the validation split.", flag="")


def get_config() -> Config:
    """The study of the issue: 11 variants in 4 programs, 5 seeds, 50 epochs, patience 5."""
    return Config()
