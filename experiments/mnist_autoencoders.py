r"""Dense and convolutional autoencoders on MNIST: loss curves, codes, reconstructions.

    python -m experiments.mnist_autoencoders
    python -m experiments.mnist_autoencoders --models=conv --epochs=50 --seeds=3
    python -m experiments.mnist_autoencoders --train_limit=60000 --test_limit=10000

Data (``optlab.datasets.mnist_splits``): the first ``train_limit`` (6000) training
images, in file order, the last 20 % of them held out for validation (4800 / 1200), and
the first ``test_limit`` (1000) test images; pixels scaled to ``[0, 1]``.

Models (``optlab.models``): ``DenseAutoencoder`` (784-400-200-100-200-400-784, ReLU,
sigmoid output; 829,284 parameters; a 100-number code) and ``ConvAutoencoder2D`` (conv
16 3x3, pool, conv 8 3x3, pool; mirrored with upsampling; sigmoid output; 3,217
parameters; a 7x7x8 code). Loss: mean squared error per pixel. Adam (``optlab.adam``,
lr 1e-3, b1 0.9, b2 0.999, eps 1e-8; Keras puts eps at 1e-7), batch 128, 20 epochs, no
early stopping (``restore_best=False``: the last epoch's weights).

Output bias: each model's output layer starts with the bias ``logit(mean training
pixel)`` = -1.90 (``output_bias_at_mean``), so its first reconstructions are the mean
intensity, 0.13, instead of 0.5 everywhere. Keras starts it at 0, and from there the
convolutional model collapses: Adam at 1e-3 drives its output layer into saturation
within about 60 steps (pre-activations about -26, the same with flax's lax
convolutions), the sigmoid outputs 0 for every pixel, the MSE sticks at the mean squared
pixel (0.110 on the training images) and the gradient through ``sigmoid' ~ e^-26`` is far
below Adam's eps, so it never recovers. ``--nooutput_bias_at_mean`` gives Keras's
start. The table counts the collapsed seeds: test MSE no lower than that of the mean
training image.

Runs: per model, the ``--seeds`` seeds are runs of one ``optlab.train.fit`` call (one
compiled program); seed ``s`` draws the initial weights and the minibatch order.
``runs_per_vmap=1`` loops over them inside the program (``--runs_per_vmap=0`` vmaps
them).

Reported per model: the parameter count, the test MSE and MAE of the final weights
(mean ± std over seeds), the number of collapsed seeds, the last validation MSE, and
the compile and run times. Written into a new run directory under ``--out``:
results.json, table.md, results.csv, metrics.jsonl (per run and epoch),
loss_curves.png (training and validation MSE per epoch, median over seeds with the
interquartile band) and digits.png: one test digit of each class 0-9 (the first in the
test set), the dense code (100 numbers shown as a 10x10 image), the dense
reconstruction, the convolutional code (its 8 channels of 7x7 tiled 2x4) and the
convolutional reconstruction, all from run ``figure_run``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Callable

import jax
import numpy as np
import optax
import scipy.special
from absl import flags
from flax import nnx

import optlab
from configs import mnist_autoencoders as default_config
from experiments.kit import cli, training_log
from experiments.kit.rundir import RunDir
from optlab import datasets, models, plots, report, stats, train

NAME = "mnist_autoencoders"
FLAGS = flags.FLAGS

MODELS: dict[str, type[nnx.Module]] = {
    "dense": models.DenseAutoencoder,
    "conv": models.ConvAutoencoder2D,
}
MNIST_TRAIN_IMAGES, MNIST_TEST_IMAGES = 60_000, 10_000
DIGITS = 10
EVAL_BATCH = 500  # rows per evaluation batch: bounds the memory of the conv activations
CONV_TILE = (2, 4)  # the conv code's 8 channels shown as 2 rows x 4 columns of 7x7


def validate(config: default_config.Config) -> None:
    """Raises ValueError with one readable line for a configuration that cannot run."""
    unknown = [name for name in config.models if name not in MODELS]
    if unknown or not config.models:
        raise ValueError(
            f"unknown model {', '.join(unknown) or '(none given)'}; choose from {', '.join(MODELS)}"
        )
    if len(set(config.models)) < len(config.models):
        raise ValueError(f"--models names a model twice: {','.join(config.models)}")
    for name in ("seeds", "epochs", "batch_size"):
        if getattr(config, name) < 1:
            raise ValueError(f"--{name} must be at least 1, got {getattr(config, name)}")
    if not (math.isfinite(config.learning_rate) and config.learning_rate > 0):
        raise ValueError(f"--learning_rate must be positive, got {config.learning_rate:g}")
    if not 1 <= config.train_limit <= MNIST_TRAIN_IMAGES:
        raise ValueError(
            f"--train_limit must be between 1 and {MNIST_TRAIN_IMAGES}, got {config.train_limit}"
        )
    if not DIGITS <= config.test_limit <= MNIST_TEST_IMAGES:
        raise ValueError(
            f"--test_limit must be between {DIGITS} (the figure's digits) and "
            f"{MNIST_TEST_IMAGES}, got {config.test_limit}"
        )
    held_out = round(config.validation_fraction * config.train_limit)
    if not 0 < held_out < config.train_limit:
        raise ValueError(
            f"validation_fraction={config.validation_fraction} of {config.train_limit} "
            "training images leaves an empty training or validation set"
        )
    if config.batch_size > config.train_limit - held_out:
        raise ValueError(
            f"--batch_size={config.batch_size} is larger than the "
            f"{config.train_limit - held_out} training images"
        )
    if config.runs_per_vmap is not None and config.runs_per_vmap < 1:
        raise ValueError(
            f"--runs_per_vmap must be at least 1 (or 0 for all), got {config.runs_per_vmap}"
        )
    if not 0 <= config.figure_run < config.seeds:
        raise ValueError(f"figure_run must be in [0, {config.seeds}), got {config.figure_run}")


def load_data(config: default_config.Config) -> datasets.MnistSplits:
    """Images ``(n, 28, 28)`` in ``[0, 1]``; each model reshapes them to its input."""
    return datasets.mnist_splits(
        train_limit=config.train_limit,
        validation_fraction=config.validation_fraction,
        test_limit=config.test_limit,
        flatten=False,
    )


def model_inputs(name: str, images: np.ndarray) -> np.ndarray:
    """``(n, 784)`` rows for the dense model, ``(n, 28, 28, 1)`` for the convolutional one."""
    if name == "dense":
        return images.reshape(images.shape[0], -1)
    return images[..., None]


def first_of_each_digit(labels: np.ndarray) -> np.ndarray:
    """Index of the first test image of each class 0-9."""
    indices = [np.flatnonzero(labels == digit) for digit in range(DIGITS)]
    missing = [digit for digit, found in enumerate(indices) if found.size == 0]
    if missing:
        raise ValueError(f"the test images hold no digit {missing}; raise --test_limit")
    return np.asarray([found[0] for found in indices])


def codes_and_reconstructions(
    result: train.FitResult, run: int, inputs: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Run ``run``'s codes and reconstructions of ``inputs`` (one compiled call)."""
    params, rest = jax.tree.map(lambda leaf: np.asarray(leaf)[run], (result.params, result.rest))

    @jax.jit
    def apply(params, rest, inputs):
        model = nnx.merge(result.eval_graph, params, rest)
        code = model.encode(inputs)
        return code, model.decode(code)

    code, reconstruction = apply(params, rest, inputs)
    return np.asarray(code), np.asarray(reconstruction)


def output_bias(config: default_config.Config, data: datasets.MnistSplits) -> float:
    """The output layers' initial bias: ``logit`` of the mean training pixel, or 0."""
    if not config.output_bias_at_mean:
        return 0.0
    return float(scipy.special.logit(np.mean(data.x_train, dtype=np.float64)))


def run_model(
    config, name: str, data: datasets.MnistSplits, digits: np.ndarray, baseline_mse: float, log
) -> dict:
    """Trains every seed of one autoencoder in one ``fit`` call; test errors and figure data.

    A seed whose test MSE is not below ``baseline_mse`` (that of the mean training image)
    has learned nothing about the digits and is counted as collapsed.
    """
    task = train.reconstruction("mse")
    model_fn = functools.partial(MODELS[name], output_bias=output_bias(config, data))
    runs = train.init_runs(
        model_fn,
        optax.inject_hyperparams(optlab.adam)(learning_rate=config.learning_rate),
        seeds=range(config.seeds),
    )
    parameters = models.count_params(nnx.eval_shape(lambda: model_fn(rngs=nnx.Rngs(0))))
    log(f"{name}: {parameters:,} parameters, {config.seeds} runs, {config.epochs} epochs")
    result = train.fit(
        runs,
        task,
        (model_inputs(name, data.x_train),),
        validation=(model_inputs(name, data.x_validation),),
        eval_batch_size=EVAL_BATCH,
        batch_size=config.batch_size,
        max_epochs=config.epochs,
        restore_best=False,
        runs_per_vmap=config.runs_per_vmap,
        on_epoch=train.progress_printer(config.epochs, print_fn=log),
        checkpoint_dir=training_log.checkpoint_dir(config.workdir, name),
    )
    test = train.evaluate(result, task, (model_inputs(name, data.x_test),), batch_size=EVAL_BATCH)
    code, reconstruction = codes_and_reconstructions(
        result, config.figure_run, model_inputs(name, data.x_test[digits])
    )
    mse, mae = stats.summarize(test["mse"]), stats.summarize(test["mae"])
    row = {
        "model": name,
        "parameters": parameters,
        "code_shape": "x".join(map(str, code.shape[1:])),
        "test_mse_mean": mse.mean,
        "test_mse_std": mse.std,
        "test_mse": f"{mse.mean:.5f} ± {mse.std:.5f}",
        "test_mse_per_seed": np.asarray(test["mse"]).tolist(),
        "collapsed_seeds": int(np.sum(np.asarray(test["mse"]) >= baseline_mse)),
        "test_mae_mean": mae.mean,
        "test_mae_std": mae.std,
        "test_mae": f"{mae.mean:.4f} ± {mae.std:.4f}",
        "final_val_mse_mean": float(np.mean(result.history["val_loss"][:, -1])),
        "compile_s": result.compile_seconds,
        "run_s": result.run_seconds,
    }
    return {
        "row": row,
        "history": result.history,
        "first_epoch": result.first_epoch,
        "codes": code,
        "reconstructions": reconstruction.reshape(DIGITS, 28, 28),
    }


def run_study(config: default_config.Config, log: Callable[[str], None] = print) -> dict:
    """Trains every configured autoencoder and returns the results; no file output."""
    validate(config)
    data = load_data(config)
    digits = first_of_each_digit(data.y_test)
    baseline_mse = float(np.mean((data.x_test - data.x_train.mean(axis=0)) ** 2))
    trained = {
        name: run_model(config, name, data, digits, baseline_mse, log) for name in config.models
    }
    return {
        "config": dataclasses.asdict(config),
        "data": {
            "train_images": int(data.x_train.shape[0]),
            "validation_images": int(data.x_validation.shape[0]),
            "test_images": int(data.x_test.shape[0]),
            "mean_image_test_mse": baseline_mse,
            "output_bias": output_bias(config, data),
        },
        "rows": [entry["row"] for entry in trained.values()],
        "histories": {name: entry["history"] for name, entry in trained.items()},
        "resumed": {name: entry["first_epoch"] for name, entry in trained.items()},
        "figure": {
            "test_indices": digits,
            "originals": data.x_test[digits],
            "codes": {name: entry["codes"] for name, entry in trained.items()},
            "reconstructions": {name: entry["reconstructions"] for name, entry in trained.items()},
        },
    }


COLUMNS = [
    report.Column("model", "model"),
    report.Column("parameters", "parameters", "{:,}"),
    report.Column("code_shape", "code"),
    report.Column("test_mse", "test MSE"),
    report.Column("test_mae", "test MAE"),
    report.Column("collapsed_seeds", "collapsed seeds"),
    report.Column("final_val_mse_mean", "last validation MSE", "{:.5f}"),
    report.Column("run_s", "run time", report.format_seconds),
    report.Column("compile_s", "compile", report.format_seconds),
]
CSV_COLUMNS = [
    report.Column(key, key)
    for key in (
        "model", "parameters", "code_shape", "test_mse_mean", "test_mse_std", "test_mae_mean",
        "test_mae_std", "collapsed_seeds", "final_val_mse_mean", "run_s", "compile_s",
    )
]


def summary(config, results: dict) -> str:
    data = results["data"]
    return "\n".join(
        [
            f"## Autoencoders on MNIST: {data['train_images']} training / "
            f"{data['validation_images']} validation / {data['test_images']} test images",
            "",
            f"Adam lr {config.learning_rate:g}, batch {config.batch_size}, {config.epochs} "
            f"epochs, MSE loss, output bias starting at {data['output_bias']:.3f}"
            f"{' (logit of the mean training pixel)' if config.output_bias_at_mean else ''}; "
            f"mean ± std over {config.seeds} seeds; run time of all seeds "
            "of a model together. A seed has collapsed when its test MSE is no lower than "
            f"that of the mean training image, {data['mean_image_test_mse']:.4f}: it has "
            "learned nothing about the digits.",
            "",
            report.markdown_table(results["rows"], COLUMNS),
            *training_log.resume_lines(results["resumed"]),
        ]
    )


def loss_figure(config, results: dict):
    """Training and validation MSE per epoch, one panel per model."""
    names = list(results["histories"])
    fig, axes = plots.panel_figure(len(names), ncols=len(names))
    for ax, name in zip(axes, names):
        history = results["histories"][name]
        plots.draw_convergence(
            ax,
            {"train": history["train_loss"], "validation": history["val_loss"]},
            xlabel="epoch",
            ylabel="MSE",
            title=f"{name} autoencoder (median and IQR over {config.seeds} seeds)",
        )
    return fig


def code_image(name: str, code: np.ndarray) -> np.ndarray:
    """One digit's code as an image: the dense 100 numbers as 10x10, the conv 7x7x8 tiled."""
    if name == "dense":
        side = math.isqrt(code.size)
        return code.reshape(side, side) if side * side == code.size else code.reshape(1, -1)
    rows, cols = CONV_TILE
    height, width, channels = code.shape
    if channels != rows * cols:
        return code.reshape(height, -1)
    # (h, w, r*c) -> (r, c, h, w) -> (r*h, c*w): channel k sits at row k // c, column k % c.
    tiles = code.transpose(2, 0, 1).reshape(rows, cols, height, width)
    return tiles.transpose(0, 2, 1, 3).reshape(rows * height, cols * width)


def digits_figure(results: dict):
    """Originals, then per model its codes and reconstructions, one column per digit."""
    figure_data = results["figure"]
    panels = [("original", figure_data["originals"])]
    for name in figure_data["codes"]:
        panels.append((f"{name} code", [code_image(name, c) for c in figure_data["codes"][name]]))
        panels.append((f"{name} reconstruction", figure_data["reconstructions"][name]))
    fig, axes = plots.panel_figure(len(panels) * DIGITS, ncols=DIGITS, size_per_panel=(1.1, 1.1))
    for row, (label, images) in enumerate(panels):
        for column in range(DIGITS):
            ax = axes[row * DIGITS + column]
            is_code = "code" in label
            ax.imshow(images[column], cmap="viridis" if is_code else "gray",
                      vmin=None if is_code else 0.0, vmax=None if is_code else 1.0)
            ax.set_xticks([])
            ax.set_yticks([])
            if column == 0:
                ax.set_ylabel(label, fontsize=7)
    return fig


def json_view(results: dict) -> dict:
    """The results without the per-epoch curves and images (metrics.jsonl, digits.png)."""
    view = {k: v for k, v in results.items() if k not in ("histories", "figure")}
    view["figure_test_indices"] = results["figure"]["test_indices"]
    return view


def write_outputs(config, results: dict, root) -> RunDir:
    run_dir = RunDir.create(root, NAME)
    run_dir.write_json("results.json", json_view(results))
    run_dir.write_text("table.md", summary(config, results) + "\n")
    run_dir.write_text("results.csv", report.csv_text(results["rows"], CSV_COLUMNS))
    run_dir.save_figure("loss_curves.png", loss_figure(config, results))
    run_dir.save_figure("digits.png", digits_figure(results))
    seeds = list(range(config.seeds))
    training_log.write_metrics(
        run_dir,
        {name: (history, seeds) for name, history in results["histories"].items()},
        wandb_project=config.wandb_project,
    )
    return run_dir


def config_from_flags() -> default_config.Config:
    overrides = {
        name: getattr(FLAGS, name)
        for name in (
            "seeds", "epochs", "batch_size", "learning_rate", "train_limit", "test_limit", "workdir"
        )
        if getattr(FLAGS, name) is not None
    }
    if FLAGS.models is not None:
        overrides["models"] = tuple(FLAGS.models)
    if FLAGS.output_bias_at_mean is not None:
        overrides["output_bias_at_mean"] = FLAGS.output_bias_at_mean
    cli.runs_per_vmap(overrides)
    overrides["wandb_project"] = cli.wandb_project(NAME)
    return dataclasses.replace(default_config.get_config(), **overrides)


def define_flags() -> None:
    flags.DEFINE_list("models", None, f"Autoencoders to train, any of {', '.join(MODELS)}.")
    flags.DEFINE_integer("seeds", None, "Runs per model.")
    flags.DEFINE_integer("epochs", None, "Training epochs.")
    flags.DEFINE_integer("batch_size", None, "Images per minibatch.")
    flags.DEFINE_float("learning_rate", None, "Adam's learning rate.")
    flags.DEFINE_boolean(
        "output_bias_at_mean",
        None,
        "Start the output layers' bias at the logit of the mean training pixel (default); "
        "--nooutput_bias_at_mean starts it at 0, as Keras.",
    )
    flags.DEFINE_integer("train_limit", None, "Training images used (80 % train, 20 % validation).")
    flags.DEFINE_integer("test_limit", None, "Test images used.")
    cli.define_runs_per_vmap(default_config.Config.runs_per_vmap)
    cli.define_training_flags()


# Training runs in float32.
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
