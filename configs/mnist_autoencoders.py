"""Default configuration of ``python -m experiments.mnist_autoencoders``."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Config:
    models: tuple[str, ...] = ("dense", "conv")  # DenseAutoencoder, ConvAutoencoder2D
    seeds: int = 5  # runs per model; seed s draws the initial weights and the minibatch order
    # The first 6000 training images, cut in order into 4800 for training and 1200 for
    # validation (the loss curves), and the first 1000 test images: the subset of the
    # MNIST MLP study. The full 48 000 / 12 000 / 10 000 cost ten times as much per epoch.
    train_limit: int = 6000
    validation_fraction: float = 0.2
    test_limit: int = 1000
    # 20 epochs of batch 128: 37 Adam steps an epoch, 740 in all.
    epochs: int = 20
    batch_size: int = 128
    # Adam at Keras's default rate.
    learning_rate: float = 1e-3
    # Each model's output bias starts at logit(mean training pixel), so its first
    # reconstructions are the mean intensity (0.13) rather than 0.5. False keeps Keras's
    # zeros, from which Adam at 1e-3 drives the convolutional model's sigmoid output to 0
    # for every pixel within about 60 steps, and it stays there (RESULTS.md).
    output_bias_at_mean: bool = True
    # Runs vmapped together inside the program; 1 loops over the seeds instead, None (flag
    # 0) vmaps them all (BENCHMARKS.md compares the two).
    runs_per_vmap: int | None = 1
    figure_run: int = 0  # the run whose codes and reconstructions the figure shows
    workdir: str | None = None  # checkpoints of each model (resumable); None: none
    wandb_project: str | None = None  # also log the metrics to this W&B project (offline)


def get_config() -> Config:
    """Both autoencoders, 5 seeds, 20 epochs on the 4800 / 1200 / 1000 MNIST subset."""
    return Config()
