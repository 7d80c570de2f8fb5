"""Default configuration of ``python -m experiments.nab_anomaly``."""

from __future__ import annotations

import dataclasses

# The optimizer families; each is one compiled program whose runs are its variants x seeds.
FAMILIES = ("sgd", "nesterov", "adam", "amsgrad")


@dataclasses.dataclass(frozen=True)
class Config:
    train_series: str = "art_daily_small_noise"  # no anomaly: fits the autoencoder
    test_series: str = "art_daily_jumpsup"  # one jump, labelled by NAB
    # Points of the training series used (None: all 4032); tests shrink it. The test
    # series is always whole, so that its labelled anomaly stays in.
    train_points: int | None = None
    window_length: int = 288  # one day of 5-minute steps; a multiple of 4 (the model)
    dropout: float = 0.2  # after the first encoder and decoder layers, as the Keras example
    seeds: int = 5  # runs per variant; seed s gives every variant the same initialization
    epochs: int = 50  # at most; early stopping usually ends runs before
    batch_size: int = 128
    validation_fraction: float = 0.1  # random windows held out (seeded by `seed`)
    patience: int = 5  # early stopping on the validation loss, best weights restored
    # Keras SGD defaults (lr 0.01, no momentum); "SGD + decay" is Keras's `decay`
    # argument, lr_t = lr / (1 + sgd_decay * t) at step t = 0, 1, ...; 1e-3 halves the
    # rate after 1000 steps (about 38 epochs of 26 steps).
    sgd_learning_rate: float = 0.01
    sgd_decay: float = 1e-3
    momentum_sweep: tuple[float, ...] = (0.3, 0.5, 0.79, 0.8, 0.81, 0.9)  # heavy ball, lr 0.01
    nesterov_momentum: float = 0.9
    # Keras Adam / AMSGrad defaults: lr 1e-3, beta2 0.999, eps 1e-7 outside the square root.
    adam_learning_rate: float = 1e-3
    adam_beta1_sweep: tuple[float, ...] = (0.8, 0.9)  # 0.9 is the "Adam" variant
    adam_beta2: float = 0.999
    adam_eps: float = 1e-7
    families: tuple[str, ...] = FAMILIES  # which programs run (tests run fewer)
    # Runs vmapped at a time (optlab.train.fit); 1 loops over them inside the program,
    # None (flag 0) vmaps all; on a CPU the loop is the faster (BENCHMARKS.md).
    runs_per_vmap: int | None = 1
    seed: int = 0  # the validation split
    workdir: str | None = None  # per-family checkpoints; a rerun with it resumes
    wandb_project: str | None = None  # also log the metrics to this W&B project (offline)


def get_config() -> Config:
    """The study of the issue: 11 variants in 4 programs, 5 seeds, 50 epochs, patience 5."""
    return Config()
