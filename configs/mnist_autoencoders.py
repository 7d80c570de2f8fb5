"""Default configuration of ``python -m experiments.mnist_autoencoders``."""

from __future__ import annotations

import dataclasses

from experiments.kit.options import TrainingConfig, at_least, option, positive


@dataclasses.dataclass(frozen=True)
class Config(TrainingConfig):
    models: tuple[str, ...] = option(("dense", "conv"), "Autoencoders to train: "
                                     "DenseAutoencoder, ConvAutoencoder2D.")
    seeds: int = option(5, "Runs per model; seed s draws the initial weights and the "
                        "minibatch order.", check=at_least(1))
    # The subset of the MNIST MLP study: 4800 training, 1200 validation and 1000 test
    # images; the full set costs ten times as much per epoch.
    train_limit: int = option(6000, "Training images used (80 % train, 20 % validation).",
                              check=at_least(1))
    validation_fraction: float = option(0.2, "Held-out fraction of them.", flag="")
    test_limit: int = option(1000, "Test images used (10 at least: one digit of each class).",
                             check=at_least(10))
    epochs: int = option(20, "Training epochs (37 Adam steps each).", check=at_least(1))
    batch_size: int = option(128, "Images per minibatch.", check=at_least(1))
    learning_rate: float = option(1e-3, "Adam's learning rate (Keras's default).",
                                  check=positive())
    # From Keras's zero bias, Adam at 1e-3 drives the convolutional model's sigmoid output
    # to 0 for every pixel within about 60 steps, and it stays there (RESULTS.md).
    output_bias_at_mean: bool = option(
        True, "Start the output layers' bias at the logit of the mean training pixel; "
        "--nooutput_bias_at_mean starts it at 0, as Keras.")
    figure_run: int = option(0, "The run whose codes and reconstructions the figure shows.",
                             flag="")


def get_config() -> Config:
    """The study of the issue: both autoencoders, 5 seeds, 20 epochs of Adam."""
    return Config()
