r"""Overfitting of the MNIST CNN, and dropout: none, on the input, after every hidden layer.

Question: the coursework's CNN (``optlab.models.CNN``, 628,810 parameters) fits 4800
MNIST images long before its 50 epochs end; how far do training and validation drift
apart, and which dropout placement keeps them closest? RMSprop at Keras's defaults,
batch 1000, no early stopping. Placements: "none", "input" (dropout on the image) and
"hidden" (after each conv block and hidden dense layer); each is one program whose runs
are the seeds, and seed s gives every placement the same initial weights.

    python -m experiments.mnist_cnn
    python -m experiments.mnist_cnn --seeds=2 --epochs=20 --placements=none,hidden

Writes table.md (per placement, mean ± std over seeds of the final models in eval mode:
accuracy and loss on each split, their gaps, the epoch of the lowest validation loss),
results.json, results.csv, runs.csv (per seed), metrics.jsonl and curves.png.
"""

import functools
from typing import Callable

import numpy as np
from flax import nnx

import optlab
from configs import mnist_cnn as default_config
from experiments.kit import cli, options, training_log
from optlab import datasets, models, plots, report, train

# Where each placement (``configs.mnist_cnn.PLACEMENTS``) puts dropout: CNN's arguments.
DROPOUT = {"none": (), "input": ("input_dropout",), "hidden": ("conv_dropout", "dense_dropout")}


def model_fn(placement: str, config: default_config.Config) -> Callable[..., nnx.Module]:
    """The model builder of a dropout placement."""
    return functools.partial(models.CNN, conv_features=config.conv_features,
                             dense_features=config.dense_features,
                             **dict.fromkeys(DROPOUT[placement], config.dropout_rate))


def load_data(config: default_config.Config) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Train, validation and test images ``(n, 28, 28, 1)`` float32 and their labels."""
    s = datasets.mnist_splits(
        train_limit=config.train_limit, validation_fraction=config.validation_fraction,
        test_limit=config.test_limit, flatten=False)
    return {"train": (s.x_train[..., None], s.y_train),
            "val": (s.x_validation[..., None], s.y_validation),
            "test": (s.x_test[..., None], s.y_test)}


MEASURES = ("train_accuracy", "val_accuracy", "test_accuracy", "accuracy_gap", "train_loss",
            "val_loss", "test_loss", "loss_gap", "best_val_epoch")


def run_study(config: default_config.Config, log: cli.Log = print) -> dict:
    """Trains every placement (no file output) and returns the results."""
    data = load_data(config)
    log(", ".join(f"{len(labels)} {split}" for split, (_, labels) in data.items()) + " images")
    task = train.classification()
    optimizer = optlab.rmsprop(config.learning_rate, config.rho, config.eps)
    variants = [train.Variant(placement, model_fn(placement, config), optimizer,
                              batch_size=config.batch_size) for placement in config.placements]
    grid = train.run_grid(variants, task=task, data=data["train"], **config.grid_options(
        log, validation=data["val"], eval_batch_size=config.eval_batch_size, restore_best=False))
    scores = train.grid.per_variant(grid, lambda fit: {
        split: train.evaluate(fit, task, arrays, batch_size=config.eval_batch_size)
        for split, arrays in data.items()})
    per_seed = {}
    for placement, result in grid.items():
        measures = {f"{split}_{name}": np.asarray(scores[placement][split][name], float)
                    for split in ("train", "val", "test") for name in ("accuracy", "loss")}
        measures["accuracy_gap"] = measures["train_accuracy"] - measures["val_accuracy"]
        measures["loss_gap"] = measures["val_loss"] - measures["train_loss"]
        measures["best_val_epoch"] = np.nanargmin(result.history["val_loss"], axis=1) + 1.0
        per_seed[placement] = {key: measures[key] for key in MEASURES}
    rows, runs = train.grid.seed_rows(grid, per_seed, FORMATS)
    return {
        "config": config,
        "parameters": models.count_params(nnx.eval_shape(
            lambda: model_fn("none", config)(rngs=nnx.Rngs(0)))),
        "variants": rows, "runs": runs,
        "histories": {name: result.history for name, result in grid.items()},
        "resumed": {name: result.fit.first_epoch for name, result in grid.items()},
    }


FORMATS = {key: ".1f" if key == "best_val_epoch" else ".4f" for key in MEASURES}
HEADERS = {
    "train_accuracy": "train acc", "val_accuracy": "val acc", "test_accuracy": "test acc",
    "accuracy_gap": "acc gap (train - val)", "train_loss": "train loss",
    "val_loss": "val loss", "test_loss": "test loss", "loss_gap": "loss gap (val - train)",
    "best_val_epoch": "epoch of best val loss",
}
COLUMNS = [("variant", "dropout"), *((f"{key}_text", HEADERS[key]) for key in MEASURES),
           ("compile_seconds", "compile", report.format_seconds),
           ("run_seconds", "run", report.format_seconds)]


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
        report.markdown_table(results["variants"], COLUMNS),
        *training_log.resume_lines(results["resumed"]),
    ])


def write(config, results: dict) -> cli.Report:
    return cli.Report(
        markdown=summary(config, results),
        results={k: v for k, v in results.items() if k != "histories"},
        tables={"results.csv": results["variants"], "runs.csv": results["runs"]},
        figures={"curves.png": plots.learning_curves_figure(
            {f"dropout {name}": history for name, history in results["histories"].items()},
            ("accuracy", "loss"))},
        metrics={f"dropout {name}": history for name, history in results["histories"].items()},
    )


STUDY = cli.Study(
    "mnist_cnn", default_config.get_config, run_study, write,
    checks={"placements": options.some_of(default_config.PLACEMENTS),
            "dropout_rate": options.Check(lambda rate: rate < 1, "must be below 1", "1")},
    smoke_flags=("--train_limit=200", "--test_limit=50", "--epochs=1", "--seeds=1",
                 "--placements=none", "--batch_size=80", "--conv_features=4,4",
                 "--dense_features=8"),
)


if __name__ == "__main__":
    cli.run(STUDY)
