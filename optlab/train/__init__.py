"""Training as pure functions: minibatch runs, and vmapped Flax NNX training runs.

:mod:`optlab.train.minibatch` runs an optax rule over minibatches of any loss;
:mod:`optlab.train.engine` trains Flax NNX models, many seeds and hyperparameters as one
compiled program, with early stopping and checkpoints; :mod:`optlab.train.grid` trains
named variants x seeds in as few programs as their shapes allow; :mod:`optlab.train.losses` and
:mod:`optlab.train.metrics` hold the losses, penalties and evaluation metrics.
"""

from optlab.train import checkpoint, engine, grid, losses, metrics, minibatch
from optlab.train.checkpoint import Checkpointer
from optlab.train.engine import (
    FitResult,
    Runs,
    RunState,
    class_scores,
    evaluate,
    fit,
    init_runs,
    predict,
    progress_printer,
    train_step,
    validation_split,
)
from optlab.train.grid import Variant, VariantResult, run_grid
from optlab.train.losses import Task, classification, reconstruction, regression
from optlab.train.metrics import (
    accuracy,
    confusion_matrix,
    per_sample_mae,
    precision_recall_f1,
)
from optlab.train.minibatch import (
    MinibatchRun,
    batches_per_epoch,
    run_minibatch,
    shuffled_batches,
    take_batches,
)

__all__ = [
    "Checkpointer",
    "FitResult",
    "MinibatchRun",
    "RunState",
    "Runs",
    "Task",
    "Variant",
    "VariantResult",
    "accuracy",
    "batches_per_epoch",
    "checkpoint",
    "class_scores",
    "classification",
    "confusion_matrix",
    "engine",
    "evaluate",
    "fit",
    "grid",
    "init_runs",
    "losses",
    "metrics",
    "minibatch",
    "per_sample_mae",
    "precision_recall_f1",
    "predict",
    "progress_printer",
    "reconstruction",
    "regression",
    "run_grid",
    "run_minibatch",
    "shuffled_batches",
    "take_batches",
    "train_step",
    "validation_split",
]
