"""Default configuration of ``python -m experiments.mnist_mlp``: the issue's study."""

from __future__ import annotations

import dataclasses

STUDIES = ("batch_size", "design", "search", "tuned")
FULL_BATCH = "N"  # in batch_sizes: one step per epoch on the whole training set
OBJECTIVES = ("val_accuracy", "val_f1")


@dataclasses.dataclass(frozen=True)
class Config:
    # Which studies run (--study): "batch_size" (1, 256, N), "design" (RMSprop's rho, a
    # bad initialization, L2, L1 + dropout), "search" (grid and Hyperband, then the best
    # configuration retrained), "tuned" (the coursework's tuned MLP, the >= 98% check).
    studies: tuple[str, ...] = STUDIES
    # Data. The coursework's subset: the first train_limit training images, the last
    # validation_fraction of them held out (4800 / 1200), and the first test_limit test
    # images; None for both limits is the full set (48 000 / 12 000 / 10 000), --full.
    train_limit: int | None = 6000
    test_limit: int | None = 1000
    validation_fraction: float = 0.2
    seeds: int = 5  # runs per variant; a seed draws the initialization, shuffles and dropout
    epochs: int = 100  # of every training run; also Hyperband's largest budget R
    batch_size: int = 256  # of every study but the batch-size study
    hidden: tuple[int, int] = (128, 256)  # the MLP 784-128-256-10
    # Every optimizer but the bad-initialization study's is RMSprop as Keras has it:
    # lr 1e-3, rho 0.9, eps 1e-7 outside the square root.
    learning_rate: float = 1e-3
    rho: float = 0.9
    # The batch-size study: "N" is full-batch gradient descent. The coursework's optimizer
    # is not stated; we use the RMSprop above.
    batch_sizes: tuple[int | str, ...] = (1, 256, FULL_BATCH)
    # The design study.
    rhos: tuple[float, ...] = (0.01, 0.99)
    bad_init: tuple[float, float] = (10.0, 0.05)  # Normal(mean, std); Keras's default std
    sgd_learning_rate: float = 0.01  # Keras's SGD default
    l2_strengths: tuple[float, ...] = (0.1, 0.01, 0.001)  # with RMSprop and with SGD + bad init
    l1_strength: float = 0.01  # with dropout_rate after each hidden layer
    dropout_rate: float = 0.3
    # The search (RMSprop, He-normal kernels): every hidden size pair of
    # search_first x search_second, with search_l2 x search_learning_rates.
    search_first: tuple[int, ...] = (64, 128)
    search_second: tuple[int, ...] = (256, 512)
    search_l2: tuple[float, ...] = (1e-1, 1e-3, 1e-6)
    search_learning_rates: tuple[float, ...] = (1e-1, 1e-2, 1e-3)
    objective: str = "val_accuracy"  # or "val_f1" (macro F1 on the validation set)
    eta: int = 3  # Hyperband's reduction factor
    # The coursework's tuned configuration (first, second hidden size, L2, learning rate),
    # trained by the "tuned" study (RMSprop, He-normal kernels).
    tuned: tuple[int, int, float, float] = (128, 256, 1e-6, 1e-3)
    seed: int = 0  # Hyperband's sampling of configurations
    # Runs vmapped at a time in a fit (None: all); BENCHMARKS.md compares the two.
    runs_per_vmap: int | None = None
    workdir: str | None = None  # checkpoints of every fit, to resume an interrupted study
    wandb_project: str | None = None  # also log the metrics to this W&B project (offline)


def get_config() -> Config:
    """The issue's study: all four studies on the coursework's subset, 5 seeds, 100 epochs."""
    return Config()
