r"""The MNIST MLP 784-128-256-10 of the coursework: design choices and tuning.

    python -m experiments.mnist_mlp
    python -m experiments.mnist_mlp --study=batch_size --seeds=5 --epochs=100
    python -m experiments.mnist_mlp --study=search --objective=val_f1
    python -m experiments.mnist_mlp --study=tuned --full

The network is ``optlab.models.MLP((784, h1, h2, 10))`` with ReLU, trained on softmax
cross-entropy (``optlab.train.classification``) over min-max scaled images
(``pixel / 255``). Data (``optlab.datasets.mnist_splits``): the coursework's subset, the
first 6000 training images cut in order into 4800 train / 1200 validation, and the first
1000 test images; ``--full`` takes the whole set (48 000 / 12 000 / 10 000). Every
variant runs ``--seeds`` times (seed ``s`` draws the initialization, the shuffles and the
dropout masks; every variant sees the same seeds), and the variants of one shape
(hidden sizes, initializer, dropout, optimizer, batch size) are the runs of one
``optlab.train.fit`` call: their learning rates, RMSprop's rho and the L1 / L2 strengths
are per-run values. Training keeps the last epoch's weights (no early stopping, as
Keras's ``fit``) except in the ``tuned`` study; ``--runs_per_vmap=1`` loops over the runs inside the compiled program
instead of vmapping them, a little faster for this MLP on a CPU. The optimizer is
RMSprop as Keras has it (lr 1e-3, rho 0.9, eps 1e-7 outside the square root) unless a
variant says otherwise.

Studies (``--study``, any of them, comma separated; all by default):

* ``batch_size``: batch 1, 256 and N (full-batch gradient descent, one update per
  epoch) with RMSprop (the coursework does not say which optimizer it used): test
  accuracy, updates, wall time, beside the coursework's single Keras runs.
* ``design``: RMSprop with rho 0.01 and 0.99, with L2 0.1 / 0.01 / 0.001, and with L1
  0.01 + dropout 0.3; SGD (lr 0.01) from a Normal(10, 0.05) initialization, alone and
  with the same L2 strengths.
* ``search``: RMSprop with He-normal kernels over hidden sizes {64, 128} x {256, 512}, L2
  {1e-1, 1e-3, 1e-6} and lr {1e-1, 1e-2, 1e-3}: the full grid (one fit per pair of
  hidden sizes, its 9 settings x seeds as runs) and Hyperband (:func:`hyperband`:
  successive-halving brackets, eta = 3, the largest budget R = ``--epochs``; a
  configuration that goes on to a larger budget is retrained from scratch with the same
  seeds, so a trial at the full budget is the grid's run of that configuration, and a
  (configuration, budget) pair already trained is not trained again). The objective
  (``--objective``) is the mean over seeds of the final validation accuracy or macro
  F1. The best configuration of each
  search is then retrained on train + validation and evaluated on the test set.
* ``tuned``: the coursework's tuned configuration (128 / 256, L2 1e-6, lr 1e-3, He
  init) trained on the training set, keeping each seed's weights of the epoch with the
  best validation accuracy (model selection on the validation set, as Keras's
  ``ModelCheckpoint(monitor="val_accuracy", save_best_only=True)``), and evaluated on
  the test set; with ``--full`` it must reach 98% test accuracy. (The last epoch's
  weights reached 97.81 ± 0.36% over 5 seeds: the validation loss rises from about
  epoch 8 and the last epoch's accuracy wanders.)

Reported per variant (mean ± std over seeds): test accuracy and macro F1, final
validation accuracy, the number of updates, and the fit's run and compile time (variants
trained together share one fit: its time is theirs together). Written into a new run
directory under ``--out``: ``results.json`` (every number but the per-epoch curves),
``table.md``, ``results.csv`` (one row per study and variant), ``metrics.jsonl`` (the
per-epoch histories, ``experiments.kit.training_log``; ``--wandb`` sends them to Weights &
Biases too) and, per study, ``<study>_learning_curves.png`` (train and validation
accuracy and loss: median over seeds, interquartile band), ``<study>_weights.png``
(violin plots of each layer's kernel at initialization and after training, seed 0 of
the study's reference variant) and ``<study>_confusion.png`` (the row-normalised test
confusion matrix of that variant, summed over seeds). ``--workdir`` keeps checkpoints
of every fit there, so an interrupted study started again resumes.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from typing import Any, Callable, Iterable, NamedTuple, Sequence

import jax.numpy as jnp
import numpy as np
import optax
from absl import flags
from matplotlib.figure import Figure

import optlab
from configs import mnist_mlp as default_config
from experiments.kit import cli, training_log
from experiments.kit.rundir import RunDir
from optlab import datasets, models, plots, report, stats, train
from optlab.train.losses import kernels

NAME = "mnist_mlp"
FLAGS = flags.FLAGS

INPUTS, CLASSES = 784, 10
KERAS_RMSPROP_EPS = 1e-7
EPOCHS_PER_CALL = 10  # epochs per compiled call of fit: fewer host round trips
CHECKPOINT_EVERY = 10  # epochs between checkpoints under --workdir
EVAL_BATCH = 1000  # rows per batch when predicting on validation and test sets
# The coursework's single Keras runs of the batch-size study: (test accuracy, seconds).
COURSEWORK_BATCH_RUNS = {1: (0.9610, 8913.0), 256: (0.9817, 108.0), "N": (0.9548, 55.0)}
COURSEWORK_TUNED = {"test_accuracy": 0.9829, "test_f1": 0.9831}


class Variant(NamedTuple):
    """One trained configuration of the MLP."""

    name: str
    hidden: tuple[int, int]
    optimizer: str = "rmsprop"  # "rmsprop" or "sgd"
    learning_rate: float = 1e-3
    rho: float = 0.9  # RMSprop's decay of the mean square (unused by SGD)
    l1: float = 0.0
    l2: float = 0.0
    dropout: float = 0.0  # after each hidden layer
    kernel_init: str | tuple = "glorot"  # see optlab.models.kernel_initializer
    batch_size: int | str = 256  # or "N": the whole training set

    @property
    def shape(self) -> tuple:
        """What variants must share to be runs of one fit (one compiled program)."""
        return (self.hidden, self.optimizer, self.dropout, self.kernel_init, self.batch_size)


class Splits(NamedTuple):
    train: tuple[np.ndarray, np.ndarray]  # (x (n, 784) float32, y (n,) int32)
    validation: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray]


# ---------------------------------------------------------------------------- checks


def train_rows(config: default_config.Config) -> int:
    """Rows of the training set, as ``optlab.datasets.mnist_splits`` cuts it."""
    images = 60_000 if config.train_limit is None else min(config.train_limit, 60_000)
    return images - round(config.validation_fraction * images)


def validate(config: default_config.Config) -> None:
    unknown = [study for study in config.studies if study not in default_config.STUDIES]
    if not config.studies or unknown:
        raise ValueError(
            f"--study takes any of {', '.join(default_config.STUDIES)}, got "
            f"{','.join(config.studies) or 'nothing'}"
        )
    for name in ("seeds", "epochs", "batch_size"):
        if getattr(config, name) < 1:
            raise ValueError(f"--{name} must be at least 1, got {getattr(config, name)}")
    for name in ("train_limit", "test_limit"):
        limit = getattr(config, name)
        if limit is not None and limit < 2:
            raise ValueError(f"{name} must be at least 2 or None (all), got {limit}")
    if not 0 < config.validation_fraction < 1:
        raise ValueError(f"validation_fraction must be in (0, 1), got {config.validation_fraction}")
    rows = train_rows(config)
    if rows < 1 or round(config.validation_fraction * (rows + 1)) < 1:
        raise ValueError("the validation split leaves an empty training or validation set")
    for size in config.batch_sizes:
        if size != default_config.FULL_BATCH and not (isinstance(size, int) and 1 <= size <= rows):
            raise ValueError(
                f"--batch_sizes takes sizes in [1, {rows}] (the training rows) or N, got {size}"
            )
    if config.batch_size > rows:
        raise ValueError(f"--batch_size must be at most the {rows} training rows")
    for name in ("batch_sizes", "rhos", "l2_strengths", "search_first", "search_second",
                 "search_l2", "search_learning_rates"):
        if not getattr(config, name):
            raise ValueError(f"{name} must name at least one value")
    if config.objective not in default_config.OBJECTIVES:
        raise ValueError(
            f"--objective must be one of {', '.join(default_config.OBJECTIVES)}, "
            f"got {config.objective!r}"
        )
    if config.runs_per_vmap is not None and config.runs_per_vmap < 1:
        raise ValueError(
            f"--runs_per_vmap must be at least 1 (or 0 for all), got {config.runs_per_vmap}"
        )
    if config.eta < 2:
        raise ValueError(f"--eta must be at least 2, got {config.eta}")
    positive = {
        "learning_rate": [config.learning_rate, config.sgd_learning_rate, config.tuned[3]],
        "search_learning_rates": config.search_learning_rates,
        "hidden sizes": [*config.hidden, *config.search_first, *config.search_second,
                         *config.tuned[:2]],
    }
    for name, values in positive.items():
        if not all(value > 0 for value in values):
            raise ValueError(f"{name} must be positive, got {values}")
    penalties = [*config.l2_strengths, config.l1_strength, *config.search_l2, config.tuned[2]]
    if not all(value >= 0 for value in penalties):
        raise ValueError(f"penalty strengths must be >= 0, got {penalties}")
    if not all(0 <= rho < 1 for rho in (*config.rhos, config.rho)):
        raise ValueError(f"rho must be in [0, 1), got {(*config.rhos, config.rho)}")
    if not 0 <= config.dropout_rate < 1:
        raise ValueError(f"dropout_rate must be in [0, 1), got {config.dropout_rate}")
    if not config.bad_init[1] >= 0:
        raise ValueError(f"the std of bad_init must be >= 0, got {config.bad_init[1]}")


# ---------------------------------------------------------------------------- training


def load_splits(config: default_config.Config) -> Splits:
    data = datasets.mnist_splits(
        train_limit=config.train_limit,
        validation_fraction=config.validation_fraction,
        test_limit=config.test_limit,
    )
    return Splits(
        (data.x_train, data.y_train),
        (data.x_validation, data.y_validation),
        (data.x_test, data.y_test),
    )


def make_optimizer(name: str) -> optax.GradientTransformation:
    """The rule with its learning rate (and rho) injected, so runs can differ in them."""
    if name == "rmsprop":
        return optax.inject_hyperparams(optlab.rmsprop)(
            learning_rate=1e-3, gamma=0.9, eps=KERAS_RMSPROP_EPS
        )
    if name == "sgd":
        return optax.inject_hyperparams(optlab.sgd)(learning_rate=0.01)
    raise ValueError(f"unknown optimizer {name!r}")


def class_scores(result: train.FitResult, *datasets_xy) -> list[dict[str, np.ndarray]]:
    """Every run's accuracy ``(runs,)``, macro F1 ``(runs,)`` and confusion matrix
    ``(runs, 10, 10)`` on each data set ``(x, y)``; one prediction call for all of them."""
    inputs = np.concatenate([x for x, _ in datasets_xy])
    logits = train.predict(result, inputs, batch_size=min(EVAL_BATCH, len(inputs)))
    scores, start = [], 0
    for _, labels in datasets_xy:
        predictions = np.argmax(logits[:, start : start + len(labels)], axis=-1)
        start += len(labels)
        # One run at a time: the metrics then compile once per data set size, not once
        # per number of runs.
        confusion = np.stack([
            np.asarray(train.confusion_matrix(jnp.asarray(labels), jnp.asarray(p), CLASSES))
            for p in predictions
        ])
        f1 = [float(train.precision_recall_f1(jnp.asarray(c)).f1) for c in confusion]
        scores.append({
            "accuracy": np.trace(confusion, axis1=1, axis2=2) / len(labels),
            "f1": np.array(f1),
            "confusion": confusion,
        })
    return scores


def fit_group(
    config, label: str, variants: Sequence[Variant], splits: Splits, *, epochs: int,
    on_train_and_validation: bool, log: Callable[[str], None], select_by: str | None = None,
) -> dict[str, dict]:
    """Trains variants of one shape as the runs of one fit; one record per variant.

    Runs are ordered variant-major: run ``k * seeds + s`` is seed ``s`` of variant ``k``.
    With ``on_train_and_validation`` the model trains on both sets (no validation curves).
    Each run keeps its last epoch's weights, or with ``select_by`` (a history name such
    as ``"val_accuracy"``) those of its best epoch by that measure.
    """
    first, seeds = variants[0], config.seeds
    if any(variant.shape != first.shape for variant in variants):
        raise ValueError("variants of one fit must share their shape")
    per_run = functools.partial(np.repeat, repeats=seeds)
    hyperparams = {"learning_rate": per_run([v.learning_rate for v in variants])}
    if first.optimizer == "rmsprop":
        hyperparams["gamma"] = per_run([v.rho for v in variants])
    model_fn = functools.partial(
        models.MLP, (INPUTS, *first.hidden, CLASSES), dropout=first.dropout,
        kernel_init=first.kernel_init,
    )
    runs = train.init_runs(
        model_fn, make_optimizer(first.optimizer), seeds=list(range(seeds)) * len(variants),
        hyperparams=hyperparams, l1=per_run([v.l1 for v in variants]),
        l2=per_run([v.l2 for v in variants]),
    )
    if on_train_and_validation:
        training = tuple(np.concatenate(arrays) for arrays in zip(splits.train, splits.validation))
        validation = None
    else:
        training, validation = splits.train, splits.validation
    rows = len(training[1])
    batch_size = rows if first.batch_size == default_config.FULL_BATCH else first.batch_size
    log(f"{label}: {len(variants)} variant(s) x {seeds} seeds, batch {batch_size}, {epochs} epochs")
    initial_kernels = [np.asarray(kernel) for kernel in kernels(runs.state.params)]
    result = train.fit(
        runs, train.classification(), training, validation=validation, batch_size=batch_size,
        max_epochs=epochs, eval_batch_size=EVAL_BATCH, restore_best=select_by is not None,
        monitor=select_by,
        epochs_per_call=min(EPOCHS_PER_CALL, epochs), runs_per_vmap=config.runs_per_vmap,
        on_epoch=train.progress_printer(epochs, print_fn=log),
        checkpoint_dir=training_log.checkpoint_dir(config.workdir, f"{label}-{epochs}"),
        checkpoint_every=CHECKPOINT_EVERY,
    )
    final_kernels = [np.asarray(kernel) for kernel in kernels(result.params)]
    if validation is None:
        (test,), val = class_scores(result, splits.test), None
    else:
        test, val = class_scores(result, splits.test, validation)
    records = {}
    for k, variant in enumerate(variants):
        runs_of_variant = slice(k * seeds, (k + 1) * seeds)
        record = {
            "variant": variant,
            "fit": label,
            "trained_on": "train + validation" if on_train_and_validation else "train",
            "batch_size": batch_size,
            "updates": epochs * (rows // batch_size),
            "test_accuracy": test["accuracy"][runs_of_variant],
            "test_f1": test["f1"][runs_of_variant],
            "confusion": test["confusion"][runs_of_variant].sum(axis=0),
            "history": {name: h[runs_of_variant] for name, h in result.history.items()},
            "fit_runs": runs.count,
            "run_seconds": result.run_seconds,
            "compile_seconds": result.compile_seconds,
            "first_epoch": result.first_epoch,
            # Seed 0's kernels, layer by layer, for the violin plots.
            "initial_kernels": [kernel[k * seeds] for kernel in initial_kernels],
            "final_kernels": [kernel[k * seeds] for kernel in final_kernels],
        }
        if val is not None:
            record["val_accuracy"] = val["accuracy"][runs_of_variant]
            record["val_f1"] = val["f1"][runs_of_variant]
        records[variant.name] = record
    return records


def train_variants(
    config, study: str, variants: Sequence[Variant], splits: Splits, *, epochs: int | None = None,
    on_train_and_validation: bool = False, log: Callable[[str], None] = print,
    select_by: str | None = None,
) -> dict[str, dict]:
    """Records of every variant, in the given order; one fit per shape."""
    groups: dict[tuple, list[Variant]] = {}
    for variant in variants:
        groups.setdefault(variant.shape, []).append(variant)
    records = {}
    for index, group in enumerate(groups.values()):
        records |= fit_group(
            config, f"{study}-{index}", group, splits, epochs=epochs or config.epochs,
            on_train_and_validation=on_train_and_validation, log=log, select_by=select_by,
        )
    return {variant.name: records[variant.name] for variant in variants}


# ---------------------------------------------------------------------------- Hyperband


class Trial(NamedTuple):
    bracket: int  # s, from s_max down to 0
    round: int  # i, 0 .. s
    config: int  # index into the pool of configurations
    epochs: int  # budget of this trial (trained from scratch)
    score: float  # objective, higher is better


class HyperbandResult(NamedTuple):
    best: int  # index of the configuration with the best score of any trial
    best_score: float
    trials: list[Trial]
    epochs_spent: int  # sum of the trials' epochs (per seed)


def hyperband_schedule(
    max_epochs: int, eta: int, pool_size: int | None = None
) -> list[list[tuple[int, int]]]:
    """Hyperband's brackets as lists of rounds ``(configurations, epochs)``.

    Li et al. (JMLR 2018, Algorithm 1) with the resource R = ``max_epochs``: for ``s =
    s_max, ..., 0`` (``s_max = floor(log_eta R)``), bracket ``s`` starts ``n = ceil((s_max
    + 1) / (s + 1) * eta^s)`` configurations, and round ``i = 0 .. s`` trains ``n_i =
    floor(n / eta^i)`` of them for ``r_i = R eta^(i - s)`` epochs, rounded to an integer
    (at least 1). With a finite pool, ``n`` is at most ``pool_size`` and ``n_i`` at least
    1. For R = 81, eta = 3 this is the paper's Table 1.

    Raises:
      ValueError: ``max_epochs < 1``, ``eta < 2`` or ``pool_size < 1``.
    """
    if max_epochs < 1 or eta < 2:
        raise ValueError(f"need max_epochs >= 1 and eta >= 2, got {max_epochs} and {eta}")
    if pool_size is not None and pool_size < 1:
        raise ValueError(f"pool_size must be at least 1, got {pool_size}")
    s_max = 0  # integer log: floating log(81) / log(3) may fall just below 4
    while eta ** (s_max + 1) <= max_epochs:
        s_max += 1
    brackets = []
    for s in range(s_max, -1, -1):
        n = math.ceil((s_max + 1) * eta**s / (s + 1))
        if pool_size is not None:
            n = min(n, pool_size)
        brackets.append(
            [(max(1, n // eta**i), max(1, round(max_epochs / eta ** (s - i))))
             for i in range(s + 1)]
        )
    return brackets


def hyperband(
    pool_size: int,
    evaluate: Callable[[list[int], int], Sequence[float]],
    *,
    max_epochs: int,
    eta: int,
    seed: int,
) -> HyperbandResult:
    """Hyperband over a finite pool of configurations, by index.

    Each bracket of :func:`hyperband_schedule` draws its configurations from the pool
    without replacement (``numpy.random.default_rng(seed)``, one generator for all
    brackets) and runs successive halving: ``evaluate(indices, epochs)`` trains those
    configurations from scratch for ``epochs`` and returns their scores (higher is
    better); the best ``n_(i+1)`` go on to the next round. Returns the configuration with
    the best score of any trial (ties: the earlier trial), as the paper does.
    """
    rng = np.random.default_rng(seed)
    trials: list[Trial] = []
    for bracket in hyperband_schedule(max_epochs, eta, pool_size):
        s = len(bracket) - 1
        alive = [int(index) for index in rng.choice(pool_size, bracket[0][0], replace=False)]
        for i, (_, epochs) in enumerate(bracket):
            scores = np.asarray(evaluate(alive, epochs), np.float64)
            trials += [Trial(s, i, c, epochs, float(v)) for c, v in zip(alive, scores)]
            if i + 1 < len(bracket):
                # A stable sort on -score keeps the earlier configuration among equals.
                order = np.argsort(-scores, kind="stable")
                alive = [alive[j] for j in order[: bracket[i + 1][0]]]
    best = max(range(len(trials)), key=lambda t: (trials[t].score, -t))
    return HyperbandResult(
        trials[best].config, trials[best].score, trials, sum(t.epochs for t in trials)
    )


# ---------------------------------------------------------------------------- studies


def rmsprop_variant(config, name: str, **changes) -> Variant:
    return Variant(name, config.hidden, learning_rate=config.learning_rate, rho=config.rho,
                   batch_size=config.batch_size)._replace(**changes)


def batch_size_variants(config) -> list[Variant]:
    return [
        rmsprop_variant(config, f"batch {size}", batch_size=size) for size in config.batch_sizes
    ]


def design_variants(config) -> list[Variant]:
    mean, std = config.bad_init
    bad = dict(optimizer="sgd", learning_rate=config.sgd_learning_rate,
               kernel_init=("normal", mean, std))
    bad_name = f"sgd, normal({mean:g}, {std:g}) init"
    return [
        rmsprop_variant(config, f"rmsprop rho={config.rho:g}"),
        *(rmsprop_variant(config, f"rmsprop rho={rho:g}", rho=rho) for rho in config.rhos),
        *(rmsprop_variant(config, f"rmsprop l2={a:g}", l2=a) for a in config.l2_strengths),
        rmsprop_variant(config, bad_name, **bad),
        *(rmsprop_variant(config, f"{bad_name} l2={a:g}", l2=a, **bad)
          for a in config.l2_strengths),
        rmsprop_variant(
            config, f"rmsprop l1={config.l1_strength:g} dropout={config.dropout_rate:g}",
            l1=config.l1_strength, dropout=config.dropout_rate,
        ),
    ]


def search_variant(config, first: int, second: int, l2: float, learning_rate: float) -> Variant:
    return rmsprop_variant(
        config, f"{first}-{second} l2={l2:g} lr={learning_rate:g}", hidden=(first, second),
        l2=l2, learning_rate=learning_rate, kernel_init="he",
    )


def search_space(config) -> list[Variant]:
    return [
        search_variant(config, first, second, l2, learning_rate)
        for first in config.search_first
        for second in config.search_second
        for l2 in config.search_l2
        for learning_rate in config.search_learning_rates
    ]


def fit_seconds(records: Sequence[dict]) -> dict[str, float]:
    """Run and compile seconds of the fits that trained ``records``, each fit once."""
    fits = {record["fit"]: record for record in records}
    return {key: sum(record[key] for record in fits.values())
            for key in ("run_seconds", "compile_seconds")}


def resumed_fits(records: Iterable[dict]) -> dict[str, int]:
    """The epoch each fit that trained ``records`` started at (> 0: resumed from --workdir)."""
    return {record["fit"]: record["first_epoch"] for record in records}


def objective_scores(config, records: Sequence[dict]) -> np.ndarray:
    """Mean over seeds of the objective; NaN (a diverged run) counts as the worst."""
    scores = np.array([np.mean(record[config.objective]) for record in records])
    return np.where(np.isfinite(scores), scores, -np.inf)


def run_search(config, splits: Splits, log) -> dict:
    space = search_space(config)
    grid = train_variants(config, "search-grid", space, splits, log=log)
    grid_scores = objective_scores(config, list(grid.values()))

    # A trial trains from scratch with the grid's seeds, so the same configuration and
    # budget always give the same score: the grid's runs serve the trials at the full
    # budget, and a trial repeated in a later bracket is not trained again.
    scores = {(index, config.epochs): score for index, score in enumerate(grid_scores)}
    calls, epochs_trained = 0, 0  # calls name the checkpoints of each round apart
    hyperband_records: list[dict] = []

    def evaluate(indices: list[int], epochs: int) -> np.ndarray:
        nonlocal calls, epochs_trained
        new = [index for index in indices if (index, epochs) not in scores]
        if new:
            calls += 1
            epochs_trained += len(new) * epochs
            records = train_variants(
                config, f"search-hyperband{calls}", [space[i] for i in new], splits,
                epochs=epochs, log=log,
            )
            hyperband_records.extend(records.values())
            scores.update(zip(((i, epochs) for i in new),
                              objective_scores(config, list(records.values()))))
        return np.array([scores[index, epochs] for index in indices])

    band = hyperband(
        len(space), evaluate, max_epochs=config.epochs, eta=config.eta, seed=config.seed
    )
    bests = {"grid": space[int(np.argmax(grid_scores))], "hyperband": space[band.best]}
    retrained = train_variants(
        config, "search-best", list(dict.fromkeys(bests.values())), splits,
        on_train_and_validation=True, log=log,
    )
    grid_rows = [
        {"variant": variant.name, "hidden": f"{variant.hidden[0]}-{variant.hidden[1]}",
         "l2": variant.l2, "learning_rate": variant.learning_rate, "objective": score}
        for variant, score in zip(space, grid_scores)
    ]
    return {
        "records": retrained,
        "grid": grid,
        "grid_rows": grid_rows,
        "hyperband": band,
        "space": [variant.name for variant in space],
        "best": {method: variant.name for method, variant in bests.items()},
        "grid_epochs_spent": len(space) * config.epochs,
        "hyperband_epochs_trained": epochs_trained,
        "seconds": {"grid": fit_seconds(list(grid.values())),
                    "hyperband": fit_seconds(hyperband_records)},
        "reference": bests["grid"].name,
        "resumed": resumed_fits([*grid.values(), *hyperband_records, *retrained.values()]),
    }


def run_study(config: default_config.Config, log: Callable[[str], None] = print) -> dict:
    """Runs the chosen studies (no file output) and returns their results."""
    validate(config)
    splits = load_splits(config)
    log(f"MNIST: {len(splits.train[1])} train / {len(splits.validation[1])} validation / "
        f"{len(splits.test[1])} test images")
    studies = {}
    for study in config.studies:
        if study == "batch_size":
            variants = batch_size_variants(config)
            reference = next((v.name for v in variants if v.batch_size == config.batch_size),
                             variants[0].name)
            studies[study] = {"records": train_variants(config, study, variants, splits, log=log),
                              "reference": reference}
        elif study == "design":
            variants = design_variants(config)
            studies[study] = {"records": train_variants(config, study, variants, splits, log=log),
                              "reference": variants[0].name}
        elif study == "search":
            studies[study] = run_search(config, splits, log)
        else:
            first, second, l2, learning_rate = config.tuned
            variant = search_variant(config, first, second, l2, learning_rate)
            variant = variant._replace(name=f"tuned {variant.name}")
            records = train_variants(
                config, study, [variant], splits, log=log, select_by="val_accuracy"
            )
            studies[study] = {"records": records, "reference": variant.name}
    for result in studies.values():  # the search has its own, over all its fits
        result.setdefault("resumed", resumed_fits(result["records"].values()))
    return {"config": dataclasses.asdict(config), "studies": studies, "machine": machine_load()}


def machine_load() -> dict:
    """The CPU count and the load averages when the study ended, to read its timings by:
    a 15-minute load well above the CPU count means other work shared the machine."""
    one, five, fifteen = os.getloadavg() if hasattr(os, "getloadavg") else (math.nan,) * 3
    return {"cpu_count": os.cpu_count(), "load_1min": one, "load_5min": five,
            "load_15min": fifteen}


# ---------------------------------------------------------------------------- report


def _mean_std(values, scale: float = 1.0, digits: int = 2) -> str | None:
    summary = stats.summarize(np.asarray(values, np.float64) * scale)
    if summary.count == 0:
        return None
    failed = summary.total - summary.count
    text = f"{summary.mean:.{digits}f} ± {summary.std:.{digits}f}"
    return text + (f" ({failed} non-finite)" if failed else "")


def variant_row(study: str, record: dict) -> dict:
    variant: Variant = record["variant"]
    row = {
        "study": study,
        "variant": variant.name,
        "trained_on": record["trained_on"],
        "batch_size": record["batch_size"],
        "updates": record["updates"],
        "test_accuracy": float(np.mean(record["test_accuracy"])),
        "test_accuracy_std": float(np.std(record["test_accuracy"], ddof=1))
        if len(record["test_accuracy"]) > 1 else 0.0,
        "test_f1": float(np.mean(record["test_f1"])),
        "test_accuracy_text": _mean_std(record["test_accuracy"], 100),
        "test_f1_text": _mean_std(record["test_f1"], 1, 4),
        "val_accuracy": float(np.mean(record["val_accuracy"])) if "val_accuracy" in record
        else None,
        "val_accuracy_text": _mean_std(record["val_accuracy"], 100) if "val_accuracy" in record
        else None,
        "fit_runs": record["fit_runs"],
        "run_seconds": record["run_seconds"],
        "compile_seconds": record["compile_seconds"],
    }
    size = variant.batch_size
    if study == "batch_size" and size in COURSEWORK_BATCH_RUNS:
        row["coursework_accuracy"], row["coursework_seconds"] = COURSEWORK_BATCH_RUNS[size]
        # Ours trains every seed in that time: per run the ratio is larger still.
        row["speedup"] = row["coursework_seconds"] / record["run_seconds"]
    return row


def study_rows(study: str, result: dict) -> list[dict]:
    return [variant_row(study, record) for record in result["records"].values()]


_SECONDS = report.format_seconds
COLUMNS = [
    report.Column("variant", "variant"),
    report.Column("trained_on", "trained on"),
    report.Column("updates", "updates"),
    report.Column("test_accuracy_text", "test accuracy % (mean ± std)"),
    report.Column("test_f1_text", "test macro F1"),
    report.Column("val_accuracy_text", "val accuracy % (kept weights)"),
    report.Column("fit_runs", "runs in its fit"),
    report.Column("run_seconds", "fit time", _SECONDS),
    report.Column("compile_seconds", "compile", _SECONDS),
]
BATCH_COLUMNS = COLUMNS[:1] + COLUMNS[2:4] + [
    report.Column("run_seconds", "fit time (all seeds)", _SECONDS),
    report.Column("compile_seconds", "compile", _SECONDS),
    report.Column("coursework_accuracy", "coursework accuracy %", lambda v: f"{100 * v:.2f}"),
    report.Column("coursework_seconds", "coursework time (Keras, 1 run)", _SECONDS),
    report.Column("speedup", "coursework time / fit time", "{:.1f}x"),
]
CSV_COLUMNS = [
    report.Column(key, key)
    for key in ("study", "variant", "trained_on", "batch_size", "updates", "test_accuracy",
                "test_accuracy_std", "test_f1", "val_accuracy", "fit_runs", "run_seconds",
                "compile_seconds")
]
GRID_COLUMNS = [
    report.Column("hidden", "hidden"),
    report.Column("l2", "L2", "{:g}"),
    report.Column("learning_rate", "lr", "{:g}"),
    report.Column("objective", "objective (mean over seeds)", "{:.4f}"),
]

STUDY_TITLES = {
    "batch_size": "Batch size 1, 256 and N (RMSprop, lr 1e-3)",
    "design": "Design choices: RMSprop's rho, a bad initialization, L2, L1 + dropout",
    "search": "Hyperparameter search: grid and Hyperband, best configuration retrained",
    "tuned": "The coursework's tuned MLP",
}


def load_sentence(machine: dict | None) -> str:
    """How loaded the machine was, in words, from :func:`machine_load`'s record."""
    if not machine or not math.isfinite(machine["load_15min"]):
        return "The machine's load was not recorded."
    return (
        f"Load average when the study ended: {machine['load_1min']:.1f} (1 min), "
        f"{machine['load_15min']:.1f} (15 min) on {machine['cpu_count']} CPUs."
    )


def summary(config, results: dict) -> str:
    data = "the full set" if config.train_limit is None else "the coursework's subset"
    lines = [
        f"# MNIST MLP on {data}: {config.seeds} seeds, {config.epochs} epochs, "
        "mean ± std over seeds",
        "",
        "Variants in one fit are trained together; their fit time is shared. "
        + load_sentence(results.get("machine")),
        *training_log.resume_lines(
            {fit: epoch for result in results["studies"].values()
             for fit, epoch in result["resumed"].items()}
        ),
    ]
    for study, result in results["studies"].items():
        rows = study_rows(study, result)
        lines += ["", f"## {STUDY_TITLES[study]}", ""]
        columns = BATCH_COLUMNS if study == "batch_size" else COLUMNS
        lines.append(report.markdown_table(rows, columns))
        if study == "search":
            lines += search_summary(config, result)
        if study == "design":
            lines += ["", "Coursework: SGD from the Normal(mean 10) initialization stayed near "
                          "11% accuracy."]
        if study == "tuned" and config.train_limit is None:
            accuracy = float(np.mean(next(iter(result["records"].values()))["test_accuracy"]))
            verdict = "reaches" if accuracy >= 0.98 else "does NOT reach"
            lines += ["", f"On the full set the tuned MLP {verdict} 98% test accuracy "
                          f"(mean {100 * accuracy:.2f}%)."]
        if study in ("search", "tuned"):
            lines += ["", f"Coursework (one Keras run): test accuracy "
                          f"{100 * COURSEWORK_TUNED['test_accuracy']:.2f}%, macro F1 "
                          f"{COURSEWORK_TUNED['test_f1']:.4f}."]
    return "\n".join(lines) + "\n"


def search_summary(config, result: dict) -> list[str]:
    band: HyperbandResult = result["hyperband"]
    top = sorted(result["grid_rows"], key=lambda row: -row["objective"])[:5]
    return [
        f"Objective: {config.objective} after training on the training set. Best of the grid "
        f"({len(result['space'])} configurations x {config.epochs} epochs = "
        f"{result['grid_epochs_spent']} configuration-epochs): **{result['best']['grid']}**. "
        f"Best of Hyperband (eta = {config.eta}, R = {config.epochs}; {len(band.trials)} trials, "
        f"{band.epochs_spent} configuration-epochs, promoted configurations retrained from "
        f"scratch; {result['hyperband_epochs_trained']} of them trained beyond the grid's "
        f"runs): **{result['best']['hyperband']}** (score {band.best_score:.4f}). The table "
        "above is the best configuration(s) retrained on train + validation.",
        "",
        "Time of the grid's fits: {}; of Hyperband's: {}.".format(*(
            f"{_SECONDS(t['run_seconds'])} (compile {_SECONDS(t['compile_seconds'])})"
            for t in (result["seconds"]["grid"], result["seconds"]["hyperband"])
        )),
        "",
        "Top of the grid:",
        "",
        report.markdown_table(top, GRID_COLUMNS),
    ]


def learning_curves_figure(study: str, records: dict) -> Figure:
    """Train and validation accuracy and loss against epoch, one curve per variant."""
    panels = [("train_accuracy", "train accuracy"), ("val_accuracy", "validation accuracy"),
              ("train_loss", "train loss"), ("val_loss", "validation loss")]
    panels = [(key, label) for key, label in panels
              if any(key in record["history"] for record in records.values())]
    fig, axes = plots.panel_figure(len(panels), ncols=2)
    for ax, (key, label) in zip(axes, panels):
        curves = {name: record["history"][key] for name, record in records.items()
                  if key in record["history"]}
        plots.draw_convergence(ax, curves, xlabel="epoch", ylabel=label, log_y="loss" in key,
                               title=f"{study}: {label}")
        ax.legend(fontsize="x-small")
    return fig


def weights_figure(name: str, record: dict) -> Figure:
    """Violin plots of each layer's kernel weights at initialization and after training."""
    layers = len(record["initial_kernels"])
    fig, axes = plots.panel_figure(layers, ncols=layers, size_per_panel=(3.5, 4.0))
    for layer, ax in enumerate(axes):
        values = [record["initial_kernels"][layer].ravel(), record["final_kernels"][layer].ravel()]
        finite = [v[np.isfinite(v)] for v in values]
        positions = [p for p, v in zip((1, 2), finite) if v.size]
        ax.violinplot([v for v in finite if v.size], positions=positions, showmedians=True)
        ax.set_xticks([1, 2], ["initial", "trained"])
        rows, cols = record["initial_kernels"][layer].shape
        ax.set_title(f"layer {layer + 1} ({rows}x{cols})")
        ax.set_ylabel("kernel weight")
    fig.suptitle(f"{name} (seed 0)")
    return fig


def confusion_figure(name: str, confusion: np.ndarray) -> Figure:
    """The test confusion matrix with each row divided by its count (true class)."""
    totals = confusion.sum(axis=1, keepdims=True)
    normalised = confusion / np.maximum(totals, 1)
    fig, (ax,) = plots.panel_figure(1, size_per_panel=(6.0, 5.0))
    image = ax.imshow(normalised, vmin=0.0, vmax=1.0, cmap="Blues")
    for (true, predicted), value in np.ndenumerate(normalised):
        if value >= 0.005:
            ax.text(predicted, true, f"{value:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if value > 0.5 else "black")
    ax.set_xticks(range(CLASSES))
    ax.set_yticks(range(CLASSES))
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(f"{name}\ntest confusion, normalised per true class", fontsize="medium")
    fig.colorbar(image, ax=ax)
    return fig


def curve_records(study: str, result: dict) -> dict:
    """The variants whose learning curves are drawn (the search: its grid's best)."""
    if study == "search":
        return {result["best"]["grid"]: result["grid"][result["best"]["grid"]]}
    return result["records"]


def _record_view(record: dict) -> dict:
    skipped = ("history", "initial_kernels", "final_kernels", "variant")
    view = {key: value for key, value in record.items() if key not in skipped}
    return view | {"variant": record["variant"]._asdict()}


def json_view(results: dict) -> dict:
    """Every number but the per-epoch histories (metrics.jsonl) and the kernels (figures)."""
    studies = {}
    for study, result in results["studies"].items():
        view = {"rows": study_rows(study, result), "reference": result["reference"],
                "variants": {n: _record_view(r) for n, r in result["records"].items()},
                "resumed": result["resumed"]}
        if study == "search":
            band = result["hyperband"]
            view |= {
                "grid": result["grid_rows"],
                "best": result["best"],
                "grid_epochs_spent": result["grid_epochs_spent"],
                "hyperband_epochs_trained": result["hyperband_epochs_trained"],
                "seconds": result["seconds"],
                "hyperband": {"best": result["space"][band.best], "best_score": band.best_score,
                              "epochs_spent": band.epochs_spent,
                              "trials": [t._asdict() | {"variant": result["space"][t.config]}
                                         for t in band.trials]},
            }
        studies[study] = view
    return {"config": results["config"], "studies": studies, "machine": results.get("machine")}


def write_outputs(config, results: dict, root) -> RunDir:
    run_dir = RunDir.create(root, NAME)
    run_dir.write_json("results.json", json_view(results))
    run_dir.write_text("table.md", summary(config, results))
    rows = [row for study, result in results["studies"].items()
            for row in study_rows(study, result)]
    run_dir.write_text("results.csv", report.csv_text(rows, CSV_COLUMNS))
    histories = {}
    for study, result in results["studies"].items():
        trained = dict(result["records"])
        if study == "search":
            trained |= {f"grid {name}": record for name, record in result["grid"].items()}
        histories |= {f"{study}/{name}": (record["history"], list(range(config.seeds)))
                      for name, record in trained.items()}
        run_dir.save_figure(f"{study}_learning_curves.png",
                            learning_curves_figure(study, curve_records(study, result)))
        reference = result["records"][result["reference"]]
        run_dir.save_figure(f"{study}_weights.png", weights_figure(result["reference"], reference))
        run_dir.save_figure(f"{study}_confusion.png",
                            confusion_figure(result["reference"], reference["confusion"]))
    training_log.write_metrics(run_dir, histories,
                               wandb_project=config.wandb_project)
    return run_dir


# ---------------------------------------------------------------------------- flags


def _parse_batch_sizes(texts: list[str]) -> tuple[int | str, ...]:
    sizes: list[int | str] = []
    for text in texts:
        text = text.strip()
        if text.upper() == default_config.FULL_BATCH:
            sizes.append(default_config.FULL_BATCH)
        elif text.isdigit():
            sizes.append(int(text))
        else:
            raise ValueError(f"--batch_sizes takes positive integers or N, got {text!r}")
    return tuple(sizes)


def config_from_flags() -> default_config.Config:
    overrides: dict[str, Any] = {}
    for name in ("seeds", "epochs", "batch_size", "objective", "eta", "workdir"):
        if getattr(FLAGS, name) is not None:
            overrides[name] = getattr(FLAGS, name)
    if FLAGS.study is not None:
        overrides["studies"] = tuple(FLAGS.study)
    if FLAGS.batch_sizes is not None:
        overrides["batch_sizes"] = _parse_batch_sizes(FLAGS.batch_sizes)
    if FLAGS.full:
        overrides |= {"train_limit": None, "test_limit": None}
    cli.runs_per_vmap(overrides)
    overrides["wandb_project"] = cli.wandb_project(NAME)
    return dataclasses.replace(default_config.get_config(), **overrides)


def define_flags() -> None:
    flags.DEFINE_list("study", None, f"Studies to run, any of {', '.join(default_config.STUDIES)}.")
    flags.DEFINE_bool("full", False, "Train on the full 60 000 images (48 000 / 12 000) "
                      "and test on all 10 000.")
    flags.DEFINE_integer("seeds", None, "Runs per variant.")
    flags.DEFINE_integer("epochs", None, "Epochs of every run (Hyperband's largest budget).")
    flags.DEFINE_integer("batch_size", None, "Rows per minibatch (all but the batch-size study).")
    flags.DEFINE_list("batch_sizes", None, "The batch-size study's sizes; N = full batch.")
    flags.DEFINE_string("objective", None, "Search objective: val_accuracy or val_f1.")
    flags.DEFINE_integer("eta", None, "Hyperband's reduction factor.")
    cli.define_runs_per_vmap(default_config.Config.runs_per_vmap)
    cli.define_training_flags()


main = cli.study_main(
    NAME,
    config_from_flags=config_from_flags,
    validate=validate,
    run_study=run_study,
    render=summary,
    write_outputs=write_outputs,
    float64=False,
)


if __name__ == "__main__":
    cli.run_script(NAME, main, define_flags)
