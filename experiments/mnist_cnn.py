r"""Overfitting of the MNIST CNN, and dropout: none, on the input, after every hidden layer.

    python -m experiments.mnist_cnn
    python -m experiments.mnist_cnn --seeds=2 --epochs=20

Data: the coursework subset of MNIST (``optlab.datasets.mnist_splits``): 4800 training
and 1200 validation images (the first 6000 training images, the last fifth held out) and
the first 1000 test images, pixels in [0, 1], shape (28, 28, 1).

Model: ``optlab.models.CNN``, the coursework's Keras CNN (Conv 256 -> pool -> Conv 128 ->
pool -> Dense 100 -> Dense 100 -> Dense 10; 628,810 parameters), trained with RMSprop at
Keras's defaults (lr 1e-3, rho 0.9, eps 1e-7), batch 1000, softmax cross-entropy, a fixed
number of epochs (no early stopping: the study is about what happens after the best
epoch). Variants, each one ``fit`` call (the same parameter shapes but three different
graphs) whose runs are the seeds: "none" (no dropout); "input" (dropout 0.3 on the input
image, ``CNN(input_dropout=0.3)``); "hidden" (dropout 0.3 after each conv block and each
hidden dense layer, ``CNN(conv_dropout=0.3, dense_dropout=0.3)``). Seed ``s`` gives every
variant the same initial weights and minibatch order.

Reported per variant (mean ± std over seeds), at the last epoch: training accuracy and
loss of the final model in eval mode on the whole training set, validation and test
accuracy and loss, the train - validation accuracy gap and the validation - train loss
gap (the overfitting; the per-epoch training numbers in the history are Keras's, with
dropout on and averaged over the epoch's steps), the epoch of the lowest validation loss,
and the compile and run time of the variant's program. Written into a new run directory
under ``--out``: results.json, table.md, results.csv, runs.csv, metrics.jsonl and
curves.png (3 x 2 panels: per variant, accuracy and loss of training and validation per
epoch, median and interquartile band over seeds).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable, NamedTuple

import numpy as np
from absl import flags
from flax import nnx

import optlab
from configs import mnist_cnn as default_config
from experiments.kit import cli, training_log
from experiments.kit.rundir import RunDir
from optlab import datasets, models, plots, report, stats, train

NAME = "mnist_cnn"
FLAGS = flags.FLAGS


def model_fn(placement: str, config: default_config.Config) -> Callable[..., nnx.Module]:
    """The model builder of a dropout placement (see ``configs.mnist_cnn.PLACEMENTS``)."""
    shape = dict(conv_features=config.conv_features, dense_features=config.dense_features)
    rate = config.dropout_rate
    if placement == "none":
        return functools.partial(models.CNN, **shape)
    if placement == "input":
        return functools.partial(models.CNN, input_dropout=rate, **shape)
    if placement == "hidden":
        return functools.partial(models.CNN, conv_dropout=rate, dense_dropout=rate, **shape)
    raise ValueError(f"unknown placement {placement!r}; choose from {default_config.PLACEMENTS}")


def validate(config: default_config.Config) -> None:
    if config.seeds < 1:
        raise ValueError(f"--seeds must be at least 1, got {config.seeds}")
    if config.epochs < 1:
        raise ValueError(f"--epochs must be at least 1, got {config.epochs}")
    if config.batch_size < 1:
        raise ValueError(f"--batch_size must be at least 1, got {config.batch_size}")
    if not 0 < config.dropout_rate < 1:
        raise ValueError(f"--dropout_rate must be in (0, 1), got {config.dropout_rate}")
    if not config.learning_rate > 0:
        raise ValueError(f"--learning_rate must be positive, got {config.learning_rate}")
    if not config.placements or any(
        p not in default_config.PLACEMENTS for p in config.placements
    ):
        raise ValueError(
            f"--placements must name some of {', '.join(default_config.PLACEMENTS)}, "
            f"got {','.join(config.placements)}"
        )
    if config.runs_per_vmap is not None and config.runs_per_vmap < 1:
        raise ValueError(
            f"--runs_per_vmap must be at least 1 (or 0 for all), got {config.runs_per_vmap}"
        )
    if config.train_limit is not None and config.train_limit < 2:
        raise ValueError(f"--train_limit must be at least 2, got {config.train_limit}")


class Data(NamedTuple):
    train: tuple[np.ndarray, np.ndarray]  # images (n, 28, 28, 1) float32, labels int32
    validation: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray]


def load_data(config: default_config.Config) -> Data:
    splits = datasets.mnist_splits(
        train_limit=config.train_limit,
        validation_fraction=config.validation_fraction,
        test_limit=config.test_limit,
        flatten=False,
    )
    return Data(
        train=(splits.x_train[..., None], splits.y_train),
        validation=(splits.x_validation[..., None], splits.y_validation),
        test=(splits.x_test[..., None], splits.y_test),
    )


def run_variant(config, placement: str, data: Data, log) -> dict:
    """Trains every seed of one placement in one ``fit`` call; scores the final models."""
    seeds = list(range(config.seeds))
    task = train.classification()
    runs = train.init_runs(
        model_fn(placement, config),
        optlab.rmsprop(config.learning_rate, config.rho, config.eps),
        seeds=seeds,
    )
    log(f"dropout {placement}: {runs.count} runs")
    result = train.fit(
        runs,
        task,
        data.train,
        validation=data.validation,
        eval_batch_size=config.eval_batch_size,
        batch_size=config.batch_size,
        max_epochs=config.epochs,
        restore_best=False,
        runs_per_vmap=config.runs_per_vmap,
        on_epoch=train.progress_printer(config.epochs, print_fn=log),
        checkpoint_dir=training_log.checkpoint_dir(config.workdir, f"dropout-{placement}"),
    )
    scores = {
        split: train.evaluate(result, task, arrays, batch_size=config.eval_batch_size)
        for split, arrays in (("train", data.train), ("validation", data.validation),
                              ("test", data.test))
    }
    best_epochs = np.nanargmin(result.history["val_loss"], axis=1)
    rows = [
        {
            "variant": placement,
            "seed": seed,
            "train_accuracy": float(scores["train"]["accuracy"][i]),
            "train_loss": float(scores["train"]["loss"][i]),
            "val_accuracy": float(scores["validation"]["accuracy"][i]),
            "val_loss": float(scores["validation"]["loss"][i]),
            "test_accuracy": float(scores["test"]["accuracy"][i]),
            "test_loss": float(scores["test"]["loss"][i]),
            "accuracy_gap": float(scores["train"]["accuracy"][i]
                                  - scores["validation"]["accuracy"][i]),
            "loss_gap": float(scores["validation"]["loss"][i] - scores["train"]["loss"][i]),
            "best_val_epoch": int(best_epochs[i]) + 1,
        }
        for i, seed in enumerate(seeds)
    ]
    return {
        "runs": rows,
        "history": result.history,
        "program": {"variant": placement, "runs": runs.count,
                    "compile_seconds": result.compile_seconds,
                    "run_seconds": result.run_seconds, "first_epoch": result.first_epoch},
    }


MEASURES = ("train_accuracy", "val_accuracy", "test_accuracy", "accuracy_gap", "train_loss",
            "val_loss", "test_loss", "loss_gap", "best_val_epoch")


def variant_row(runs: list[dict], program: dict) -> dict:
    row = {"variant": program["variant"], "seeds": len(runs)}
    for key in MEASURES:
        summary = stats.summarize(np.array([run[key] for run in runs], dtype=float))
        row[key], row[f"{key}_std"] = summary.mean, summary.std
    row["compile_seconds"] = program["compile_seconds"]
    row["run_seconds"] = program["run_seconds"]
    return row


def run_study(config: default_config.Config, log: Callable[[str], None] = print) -> dict:
    """Trains every placement (no file output) and returns the results."""
    validate(config)
    data = load_data(config)
    log(f"{data.train[0].shape[0]} training, {data.validation[0].shape[0]} validation, "
        f"{data.test[0].shape[0]} test images")
    rows, runs, histories, programs = [], [], {}, []
    for placement in config.placements:
        outcome = run_variant(config, placement, data, log)
        runs += outcome["runs"]
        histories[placement] = outcome["history"]
        programs.append(outcome["program"])
        rows.append(variant_row(outcome["runs"], outcome["program"]))
    return {
        "config": dataclasses.asdict(config),
        "parameters": models.count_params(nnx.eval_shape(
            lambda: model_fn("none", config)(rngs=nnx.Rngs(0))
        )),
        "variants": rows,
        "runs": runs,
        "histories": histories,
        "resumed": {program["variant"]: program["first_epoch"] for program in programs},
    }


FORMATS = {
    "train_accuracy": "{:.4f}", "val_accuracy": "{:.4f}", "test_accuracy": "{:.4f}",
    "accuracy_gap": "{:.4f}", "train_loss": "{:.4f}", "val_loss": "{:.4f}",
    "test_loss": "{:.4f}", "loss_gap": "{:.4f}", "best_val_epoch": "{:.1f}",
}
HEADERS = {
    "train_accuracy": "train acc", "val_accuracy": "val acc", "test_accuracy": "test acc",
    "accuracy_gap": "acc gap (train - val)", "train_loss": "train loss",
    "val_loss": "val loss", "test_loss": "test loss", "loss_gap": "loss gap (val - train)",
    "best_val_epoch": "epoch of best val loss",
}
TABLE_COLUMNS = [
    report.Column("variant", "dropout"),
    *(report.Column(key, HEADERS[key]) for key in MEASURES),
    report.Column("compile_seconds", "compile", report.format_seconds),
    report.Column("run_seconds", "run", report.format_seconds),
]
CSV_COLUMNS = [
    report.Column(key, key)
    for key in ("variant", "seeds", *(k for m in MEASURES for k in (m, f"{m}_std")),
                "compile_seconds", "run_seconds")
]
RUN_COLUMNS = [report.Column(key, key) for key in ("variant", "seed", *MEASURES)]


def _with_spread(rows: list[dict]) -> list[dict]:
    """Rows whose measures read ``mean ± std`` (the Markdown view)."""
    return [
        row | {key: f"{fmt.format(row[key])} ± {fmt.format(row[key + '_std'])}"
               for key, fmt in FORMATS.items()}
        for row in rows
    ]


def summary(config, results: dict) -> str:
    return "\n".join([
        f"## MNIST CNN ({results['parameters']:,} parameters): overfitting and dropout "
        f"{config.dropout_rate:g}",
        "",
        f"RMSprop (lr {config.learning_rate:g}), batch {config.batch_size}, {config.epochs} "
        f"epochs, {config.seeds} seed{'s' if config.seeds != 1 else ''} (mean ± std). "
        "Accuracies and losses of the final models in eval mode; the gaps measure the "
        "overfitting. Compile and run time are those of the variant's program (all its seeds).",
        "",
        report.markdown_table(_with_spread(results["variants"]), TABLE_COLUMNS),
        *training_log.resume_lines(results["resumed"]),
    ])


def write_outputs(config, results: dict, root) -> RunDir:
    run_dir = RunDir.create(root, NAME)
    run_dir.write_json("results.json", {k: v for k, v in results.items() if k != "histories"})
    run_dir.write_text("table.md", summary(config, results) + "\n")
    run_dir.write_text("results.csv", report.csv_text(results["variants"], CSV_COLUMNS))
    run_dir.write_text("runs.csv", report.csv_text(results["runs"], RUN_COLUMNS))
    seeds = list(range(config.seeds))
    training_log.write_metrics(
        run_dir,
        {f"dropout {name}": (history, seeds) for name, history in results["histories"].items()},
        wandb_project=config.wandb_project,
    )
    run_dir.save_figure("curves.png", curves_figure(results))
    return run_dir


def curves_figure(results: dict):
    """Per variant (rows): accuracy and loss (columns), training and validation curves."""
    histories = results["histories"]
    fig, axes = plots.panel_figure(2 * len(histories), ncols=2, size_per_panel=(6.0, 4.0))
    for row, (name, history) in enumerate(histories.items()):
        for ax, measure, log_y in ((axes[2 * row], "accuracy", False),
                                   (axes[2 * row + 1], "loss", True)):
            plots.draw_convergence(
                ax,
                {"train": history[f"train_{measure}"], "validation": history[f"val_{measure}"]},
                xlabel="epoch", ylabel=measure, title=f"dropout {name}: {measure}", log_y=log_y,
            )
    return fig


def config_from_flags() -> default_config.Config:
    overrides = {
        name: getattr(FLAGS, name)
        for name in ("seeds", "epochs", "batch_size", "dropout_rate", "learning_rate",
                     "train_limit", "test_limit", "workdir")
        if getattr(FLAGS, name) is not None
    }
    if FLAGS.placements is not None:
        overrides["placements"] = tuple(FLAGS.placements)
    cli.runs_per_vmap(overrides)
    overrides["wandb_project"] = cli.wandb_project(NAME)
    return dataclasses.replace(default_config.get_config(), **overrides)


def define_flags() -> None:
    flags.DEFINE_integer("seeds", None, "Runs per variant (seed s: same init for every variant).")
    flags.DEFINE_integer("epochs", None, "Epochs per run (no early stopping).")
    flags.DEFINE_integer("batch_size", None, "Images per minibatch.")
    flags.DEFINE_float("dropout_rate", None, "Rate of every dropout layer.")
    flags.DEFINE_float("learning_rate", None, "RMSprop's learning rate.")
    flags.DEFINE_integer("train_limit", None, "MNIST training images used (train + validation).")
    flags.DEFINE_integer("test_limit", None, "MNIST test images used.")
    flags.DEFINE_list(
        "placements", None, f"Dropout placements: {','.join(default_config.PLACEMENTS)}."
    )
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
