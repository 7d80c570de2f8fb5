"""Default configuration of ``python -m experiments.mnist_autoencoders``."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Config:
    models: tuple[str, ...] = ("dense", "conv")  # DenseAutoencoder, ConvAutoencoder2D
    seeds: int = 5  # runs per model; seed s draws the initial weights and the minibatch order
    # The first 6000 training images, cut in order into 4800 for training and 1200 for
    # validation (the loss curves), and the first 1000 test images: the subset of the
    # MNIST MLP study. The full 48 000 / 12 000 / 10 000 cost ten times as much per epoch:
    # measured on a loaded 2-core CPU, one epoch of the subset takes 0.8 s per seed for
    # the dense model and 19 s per seed for the convolutional one (XLA's CPU convolutions
    # and max-pool gradients are slow), so the full set would take about an hour per seed
    # for the convolutional model alone.
    train_limit: int = 6000
    validation_fraction: float = 0.2
    test_limit: int = 1000
    # 20 epochs of batch 128 (37 Adam steps an epoch, 740 in all): the dense model's
    # validation MSE falls from 0.072 after one epoch to 0.0125, still slowly falling.
    # The default study takes about 35 minutes on a loaded 2-core CPU (2 minutes the
    # dense model, the rest the convolutional one, extrapolated from 6 epochs).
    epochs: int = 20
    batch_size: int = 128
    # Adam, Keras's default rate. The convolutional model's sigmoid output can saturate
    # at 0 for every pixel at this rate and stay there (see the study's docstring); 1e-4
    # escaped that in a short test.
    learning_rate: float = 1e-3
    # Runs vmapped together inside the program; 1 loops over the seeds instead. On a CPU
    # vmapped large matrix products and convolutions are slower than a loop.
    runs_per_vmap: int | None = 1
    figure_run: int = 0  # the run whose codes and reconstructions the figure shows
    workdir: str | None = None  # checkpoints of each model (resumable); None: none
    wandb: bool = False  # also log the metrics to Weights & Biases (offline by default)


def get_config() -> Config:
    """Both autoencoders, 5 seeds, 20 epochs on the 4800 / 1200 / 1000 MNIST subset."""
    return Config()
