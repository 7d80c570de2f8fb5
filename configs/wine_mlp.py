"""Default configuration of ``python -m experiments.wine_mlp``."""

from __future__ import annotations

import dataclasses

from experiments.kit.options import (
    TrainingConfig, at_least, each, non_negative, one_of, option, positive, runs_per_vmap_option)

RECIPES = ("coursework", "keras")


@dataclasses.dataclass(frozen=True)
class Config(TrainingConfig):
    recipe: str = option("coursework", "coursework (the coursework's NumPy conventions) or "
                         "keras (the Keras reading); see the study's docstring.",
                         check=one_of(RECIPES))
    seeds: int = option(5, "Runs per variant and learning rate; every rate sees the same "
                        "seeds.", check=at_least(1))
    # keras: the rate 1e-3, and 1e-2, Keras's default for SGD, as a comparison.
    learning_rates: tuple[float, ...] = option((1e-3,), "SGD learning rates.",
                                               check=each(positive()))
    epochs: int = option(150, "Training epochs (coursework: of the Leaky ReLU network).",
                         check=at_least(1))
    power_epochs: int = option(100, "coursework: epochs of the power network.",
                               check=at_least(1))
    power_learning_rate: float = option(5e-4, "coursework: the rate of the kernel and bias "
                                        "before the power activation.", check=positive())
    batch_size: int = option(32, "Rows per minibatch; an epoch's last partial batch is "
                             "dropped.", check=at_least(1))
    l2: float = option(0.01, "L2 strength on every kernel (Keras l2: 0.01 * sum(W ** 2)).",
                       check=non_negative())
    hidden_sizes: tuple[int, ...] = option((16, 12, 8), "Hidden widths.", flag="")
    # 0-based: 2 is the third dense layer; Leaky ReLU after the others.
    power_layer: int = option(2, "The hidden layer followed by the power activation.",
                              flag="")
    threshold: int = option(6, "A wine is good (label 1) when its quality is at least this.",
                            flag="")
    test_fraction: float = option(0.25, "Stratified test split.", flag="")
    split_seed: int = option(0, "Seed of the split.", flag="")
    train_limit: int | None = option(None, "First training rows kept.", flag="")
    test_limit: int | None = option(None, "First test rows kept.", flag="")
    target_accuracy: float = option(0.70, "The issue's claim: mean test accuracy above "
                                    "this.", flag="")
    runs_per_vmap: int | None = runs_per_vmap_option(None)  # keras: tiny runs, all vmapped
    manual_check: bool = option(True, "coursework: train seed 0 of each variant again with "
                                "the hand-written gradients (manual_mlp).")


def get_config(recipe: str = "coursework") -> Config:
    """The coursework's recipe, both variants, 5 seeds; ``keras``: SGD at 1e-3 and 1e-2."""
    return Config() if recipe != "keras" else Config(recipe=recipe, learning_rates=(1e-3, 1e-2))
