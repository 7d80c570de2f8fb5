"""Default configuration of ``python -m experiments.mnist_mlp``: the issue's study."""

from __future__ import annotations

import dataclasses

from experiments.kit.options import (
    TrainingConfig, at_least, decay_rate, each, non_negative, option, positive,
    runs_per_vmap_option)

STUDIES = ("batch_size", "design", "search", "tuned")
FULL_BATCH = "N"  # in batch_sizes: one step per epoch on the whole training set
OBJECTIVES = ("val_accuracy", "val_f1")


def parse_batch_sizes(texts: tuple[str, ...]) -> tuple[int | str, ...]:
    """``("1", " n", "256")`` -> ``(1, "N", 256)``."""
    sizes = tuple(text.strip().upper() for text in texts)
    for size in sizes:
        if size != FULL_BATCH and not (size.isdigit() and int(size) > 0):
            raise ValueError(f"--batch_sizes takes positive integers or N, got {size!r}")
    return tuple(size if size == FULL_BATCH else int(size) for size in sizes)


@dataclasses.dataclass(frozen=True)
class Config(TrainingConfig):
    studies: tuple[str, ...] = option(STUDIES, "Studies to run.", flag="study")
    full: bool = option(False, "Train on the full 60 000 images (48 000 / 12 000) and test "
                        "on all 10 000, instead of the coursework's 4800 / 1200 / 1000.")
    train_limit: int | None = option(6000, "First training images.", flag="", check=at_least(2))
    test_limit: int | None = option(1000, "First test images.", flag="", check=at_least(2))
    validation_fraction: float = option(0.2, "Held-out fraction of them.", flag="")
    seeds: int = option(5, "Runs per variant (weights, shuffles, dropout).", check=at_least(1))
    epochs: int = option(100, "Epochs per run (Hyperband's largest budget).", check=at_least(1))
    batch_size: int = option(256, "Minibatch rows, but in the batch-size study.", check=at_least(1))
    hidden: tuple[int, int] = option((128, 256), "Hidden widths.", flag="", check=each(at_least(1)))
    # RMSprop as Keras has it, the optimizer of every study but the bad initialization's.
    learning_rate: float = option(1e-3, "RMSprop's rate.", flag="", check=positive())
    rho: float = option(0.9, "RMSprop's rho.", flag="", check=decay_rate())
    batch_sizes: tuple[int | str, ...] = option(
        (1, 256, FULL_BATCH), "The batch-size study's sizes; N = full batch.",
        parse=parse_batch_sizes)
    # The design study: other rhos, SGD from Normal(mean, std) kernels, L2, L1 with dropout.
    rhos: tuple[float, ...] = option((0.01, 0.99), flag="", check=each(decay_rate()))
    bad_init: tuple[float, float] = option((10.0, 0.05), flag="")
    sgd_learning_rate: float = option(0.01, "Keras's default.", flag="", check=positive())
    l2_strengths: tuple[float, ...] = option((0.1, 1e-2, 1e-3), flag="", check=each(non_negative()))
    l1_strength: float = option(0.01, flag="", check=non_negative())
    dropout_rate: float = option(0.3, "After each hidden layer.", flag="", check=decay_rate())
    # The search: the product of these hidden sizes, L2 strengths and learning rates.
    search_first: tuple[int, ...] = option((64, 128), flag="", check=each(at_least(1)))
    search_second: tuple[int, ...] = option((256, 512), flag="", check=each(at_least(1)))
    search_l2: tuple[float, ...] = option((1e-1, 1e-3, 1e-6), flag="", check=each(non_negative()))
    search_learning_rates: tuple[float, ...] = option((1e-1, 1e-2, 1e-3), flag="",
                                                      check=each(positive()))
    objective: str = option("val_accuracy", "Search objective: val_accuracy or val_f1.")
    eta: int = option(3, "Hyperband's reduction factor.", check=at_least(2))
    tuned: tuple[int, int, float, float] = option(
        (128, 256, 1e-6, 1e-3), "The coursework's tuned (first, second, L2, lr).", flag="")
    seed: int = option(0, "Hyperband's sampling of configurations.", flag="")
    runs_per_vmap: int | None = runs_per_vmap_option(None)


def get_config(full: bool = False) -> Config:
    """The issue's study: all four studies on the coursework's subset (or the full set)."""
    return Config(full=True, train_limit=None, test_limit=None) if full else Config()
