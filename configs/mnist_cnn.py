"""Default configuration of ``python -m experiments.mnist_cnn``."""

from __future__ import annotations

import dataclasses

from experiments.kit.options import TrainingConfig, at_least, each, option, positive

# Where the dropout layers sit: none; on the input image; after each conv block and
# each hidden dense layer.
PLACEMENTS = ("none", "input", "hidden")


@dataclasses.dataclass(frozen=True)
class Config(TrainingConfig):
    # The coursework subset: the first 6000 training images, the last fifth held out.
    train_limit: int = option(6000, "MNIST training images used (train + validation).",
                              check=at_least(2))
    validation_fraction: float = option(0.2, "Held-out fraction of them.", flag="")
    test_limit: int = option(1000, "MNIST test images used.", check=at_least(1))
    # 50 epochs of 4 steps: the CNN fits 4800 images long before that, so the later
    # epochs show the overfitting and what dropout does about it.
    epochs: int = option(50, "Epochs per run (no early stopping).", check=at_least(1))
    batch_size: int = option(1000, "Images per minibatch.", check=at_least(1))
    dropout_rate: float = option(0.3, "Rate of every dropout layer.", check=positive())
    conv_features: tuple[int, ...] = option((256, 128), "Conv layers' channels.",
                                            check=each(at_least(1)))
    dense_features: tuple[int, ...] = option((100, 100), "Hidden dense widths.",
                                             check=each(at_least(1)))
    placements: tuple[str, ...] = option(PLACEMENTS, "Dropout placements.")
    # Keras RMSprop defaults: eps outside the square root.
    learning_rate: float = option(1e-3, "RMSprop's learning rate.", check=positive())
    rho: float = option(0.9, "RMSprop's decay of the mean square.", flag="")
    eps: float = option(1e-7, "RMSprop's eps.", flag="")
    seeds: int = option(5, "Runs per placement; seed s gives every placement the same "
                        "initial weights.", check=at_least(1))
    eval_batch_size: int = option(600, "Rows per evaluation batch.", flag="")


def get_config() -> Config:
    """The study of the issue: three dropout placements, 5 seeds, 50 epochs."""
    return Config()
