"""Default configuration of ``python -m experiments.mnist_cnn``."""

from __future__ import annotations

import dataclasses

# Where the dropout layers sit: none; on the input image; after each conv block and
# each hidden dense layer.
PLACEMENTS = ("none", "input", "hidden")


@dataclasses.dataclass(frozen=True)
class Config:
    # The coursework subset: the first train_limit MNIST training images, the last
    # validation_fraction of them held out (4800 / 1200), and the first test_limit test
    # images (1000).
    train_limit: int = 6000
    validation_fraction: float = 0.2
    test_limit: int = 1000
    # 50 epochs of 4 steps (200 RMSprop steps): a 628,810-parameter CNN fits 4800
    # images long before that, so the later epochs show the overfitting (training
    # accuracy near 1, validation loss turning back up) and what dropout does about it.
    epochs: int = 50
    batch_size: int = 1000
    dropout_rate: float = 0.3
    # The coursework's CNN (628,810 parameters); tests shrink it.
    conv_features: tuple[int, ...] = (256, 128)
    dense_features: tuple[int, ...] = (100, 100)
    placements: tuple[str, ...] = PLACEMENTS
    # Keras RMSprop defaults: lr 1e-3, rho 0.9, eps 1e-7 outside the square root.
    learning_rate: float = 1e-3
    rho: float = 0.9
    eps: float = 1e-7
    seeds: int = 5  # runs per variant; seed s gives every variant the same initial weights
    # Runs vmapped at a time; 1 loops over them inside the program, None (flag 0) vmaps
    # all; on a CPU the loop is the faster (BENCHMARKS.md).
    runs_per_vmap: int | None = 1
    eval_batch_size: int = 600  # rows per evaluation batch (validation, test, train)
    workdir: str | None = None  # per-variant checkpoints; a rerun with it resumes
    wandb_project: str | None = None  # also log the metrics to this W&B project (offline)


def get_config() -> Config:
    """The study of the issue: three dropout placements, 5 seeds, 50 epochs."""
    return Config()
