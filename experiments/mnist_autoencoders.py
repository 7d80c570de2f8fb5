r"""Dense and convolutional autoencoders on MNIST: loss curves, codes, reconstructions.

Question: how well do a dense autoencoder (784-400-200-100-200-400-784, 829,284
parameters, a 100-number code) and a convolutional one (3,217 parameters, a 7x7x8 code)
reconstruct MNIST digits after 20 epochs of Adam, batch 128, on the MSE per pixel? Each
model's seeds are the runs of one program. The output layer's bias starts at the logit
of the mean training pixel (``--nooutput_bias_at_mean``: at 0, as Keras, from where the
convolutional model's sigmoid saturates at 0 and never recovers); a seed whose test MSE
is no lower than that of the mean training image counts as collapsed.

    python -m experiments.mnist_autoencoders
    python -m experiments.mnist_autoencoders --models=conv --epochs=50 --seeds=3
    python -m experiments.mnist_autoencoders --train_limit=60000 --test_limit=10000

Writes table.md (per model: parameters, code shape, test MSE and MAE over seeds,
collapsed seeds), results.json, results.csv, metrics.jsonl, loss_curves.png and
digits.png (a test digit of each class, each model's code and reconstruction).
"""

import functools
import math

import numpy as np
import optax
import scipy.special
from flax import nnx

import optlab
from configs import mnist_autoencoders as default_config
from experiments.kit import cli, options, training_log
from optlab import datasets, models, plots, report, stats, train


MODELS: dict[str, type[nnx.Module]] = {
    "dense": models.DenseAutoencoder,
    "conv": models.ConvAutoencoder2D,
}
DIGITS = 10
EVAL_BATCH = 500  # rows per evaluation batch: bounds the memory of the conv activations
CONV_TILE = (2, 4)  # the conv code's 8 channels shown as 2 rows x 4 columns of 7x7


def load_data(config: default_config.Config) -> datasets.MnistSplits:
    """Images ``(n, 28, 28)`` in ``[0, 1]``; each model reshapes them to its input."""
    return datasets.mnist_splits(
        train_limit=config.train_limit, validation_fraction=config.validation_fraction,
        test_limit=config.test_limit, flatten=False,
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


def output_bias(config: default_config.Config, data: datasets.MnistSplits) -> float:
    """The output layers' initial bias: ``logit`` of the mean training pixel, or 0."""
    if not config.output_bias_at_mean:
        return 0.0
    return float(scipy.special.logit(np.mean(data.x_train, dtype=np.float64)))


def run_model(
    config, name: str, data: datasets.MnistSplits, digits: np.ndarray, baseline_mse: float, log
) -> dict:
    """Trains every seed of one autoencoder (one program); test errors and figure data.

    A seed whose test MSE is not below ``baseline_mse`` (that of the mean training image)
    has learned nothing about the digits and is counted as collapsed.
    """
    task = train.reconstruction("mse")
    model_fn = functools.partial(MODELS[name], output_bias=output_bias(config, data))
    adam = optax.inject_hyperparams(optlab.adam)(learning_rate=config.learning_rate)
    parameters = models.count_params(nnx.eval_shape(lambda: model_fn(rngs=nnx.Rngs(0))))
    log(f"{name}: {parameters:,} parameters")
    # One grid per model: the two take their images in different shapes.
    (result,) = train.run_grid(
        [train.Variant(name, model_fn, adam, batch_size=config.batch_size)],
        task=task, data=(model_inputs(name, data.x_train),), **config.grid_options(
            log, name, validation=(model_inputs(name, data.x_validation),),
            eval_batch_size=EVAL_BATCH, restore_best=False)).values()
    test = train.evaluate(result.fit, task, (model_inputs(name, data.x_test),),
                          batch_size=EVAL_BATCH)
    model = result.fit.model(config.figure_run)
    code = np.asarray(model.encode(model_inputs(name, data.x_test[digits])))
    reconstruction = np.asarray(model.decode(code))
    row = {
        "model": name, "parameters": parameters, "code_shape": "x".join(map(str, code.shape[1:])),
        "test_mse_per_seed": np.asarray(test["mse"]).tolist(),
        "collapsed_seeds": int(np.sum(np.asarray(test["mse"]) >= baseline_mse)),
        "final_val_mse_mean": float(np.mean(result.history["val_loss"][:, -1])),
        "compile_s": result.fit.compile_seconds, "run_s": result.fit.run_seconds,
    } | stats.mean_std_columns({"test_mse": test["mse"], "test_mae": test["mae"]},
                               {"test_mse": ".5f", "test_mae": ".4f"})
    return {
        "row": row, "history": result.history, "first_epoch": result.fit.first_epoch,
        "codes": code, "reconstructions": reconstruction.reshape(DIGITS, 28, 28),
    }


def run_study(config: default_config.Config, log: cli.Log = print) -> dict:
    """Trains every configured autoencoder and returns the results; no file output."""
    data = load_data(config)
    digits = first_of_each_digit(data.y_test)
    baseline_mse = float(np.mean((data.x_test - data.x_train.mean(axis=0)) ** 2))
    trained = {
        name: run_model(config, name, data, digits, baseline_mse, log) for name in config.models
    }
    return {
        "config": config,
        "data": {"train_images": len(data.y_train), "validation_images": len(data.y_validation),
                 "test_images": len(data.y_test), "mean_image_test_mse": baseline_mse,
                 "output_bias": output_bias(config, data)},
        "rows": [entry["row"] for entry in trained.values()],
        "histories": {name: entry["history"] for name, entry in trained.items()},
        "resumed": {name: entry["first_epoch"] for name, entry in trained.items()},
        "figure": {
            "test_indices": digits, "originals": data.x_test[digits],
            "codes": {name: entry["codes"] for name, entry in trained.items()},
            "reconstructions": {name: entry["reconstructions"] for name, entry in trained.items()},
        },
    }


COLUMNS = [("model", "model"), ("parameters", "parameters", "{:,}"), ("code_shape", "code"),
           ("test_mse_text", "test MSE"), ("test_mae_text", "test MAE"),
           ("collapsed_seeds", "collapsed seeds"),
           ("final_val_mse_mean", "last validation MSE", "{:.5f}"),
           ("run_s", "run time", report.format_seconds),
           ("compile_s", "compile", report.format_seconds)]


def summary(config, results: dict) -> str:
    data = results["data"]
    return "\n".join([
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
            *training_log.resume_lines(results["resumed"])])


def code_image(name: str, code: np.ndarray) -> np.ndarray:
    """One digit's code as an image: the dense 100 numbers as 10x10, the conv 7x7x8 tiled."""
    if name == "dense":
        return code.reshape(math.isqrt(code.size), -1)
    (height, width, _), (rows, cols) = code.shape, CONV_TILE
    # (h, w, r*c) -> (r, h, c, w): channel k sits at row k // c, column k % c.
    tiles = code.reshape(height, width, rows, cols).transpose(2, 0, 3, 1)
    return tiles.reshape(rows * height, cols * width)


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
            ax.set(xticks=[], yticks=[])
            if column == 0:
                ax.set_ylabel(label, fontsize=7)
    return fig


def write(config, results: dict) -> cli.Report:
    return cli.Report(
        markdown=summary(config, results),
        # The per-epoch curves and images are in metrics.jsonl and digits.png.
        results={k: v for k, v in results.items() if k not in ("histories", "figure")}
        | {"figure_test_indices": results["figure"]["test_indices"]},
        tables={"results.csv": results["rows"]},
        figures={"loss_curves.png": plots.learning_curves_figure(
                     {f"{name} autoencoder": history
                      for name, history in results["histories"].items()}, ylabel="MSE"),
                 "digits.png": digits_figure(results)},
        metrics=results["histories"])


def validate(config: default_config.Config) -> None:
    """The checks that span fields."""
    held_out = round(config.validation_fraction * config.train_limit)
    if config.batch_size > config.train_limit - held_out:
        raise ValueError(f"--batch_size={config.batch_size} is larger than the "
                         f"{config.train_limit - held_out} training images")
    if not 0 <= config.figure_run < config.seeds:
        raise ValueError(f"figure_run must be in [0, {config.seeds}), got {config.figure_run}")


# Training runs in float32.
STUDY = cli.Study(
    "mnist_autoencoders", default_config.get_config, run_study, write, validate=validate,
    checks={"models": options.some_of(MODELS)},
    smoke_flags=("--train_limit=300", "--test_limit=200", "--epochs=1", "--seeds=1",
                 "--models=dense", "--batch_size=60"),
)


if __name__ == "__main__":
    cli.run(STUDY)
