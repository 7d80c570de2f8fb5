r"""Optimizers for a 1-D convolutional autoencoder that finds the jump in NAB's art_daily_jumpsup.

Question: which optimizer trains the Keras time-series anomaly-detection autoencoder
(``optlab.models.ConvAutoencoder1D``, MSE, batch 128, at most 50 epochs, early stopping
with patience 5) to the lowest loss, and does the trained model flag the labelled jump
and nothing else? Keras's SGD (with decay, and heavy-ball momentum swept), Nesterov, Adam
(b1 swept) and AMSGrad; each optimizer family is one program whose runs are its variants
x seeds, and seed s gives every variant the same initial weights, order and dropout. A
run's threshold is the largest per-window MAE on the training windows; a test time step
is anomalous when every window containing it is.

    python -m experiments.nab_anomaly
    python -m experiments.nab_anomaly --seeds=2 --epochs=10 --families=sgd,adam

Writes table.md (per variant over seeds: epochs, losses at the best epoch, threshold,
anomalous points, seeds that flag only inside the labelled window; the Adam check),
results.json, results.csv, runs.csv, metrics.jsonl, loss_curves.png, and for Adam's
first seed mae_histogram.png, reconstruction.png and anomalies.png.
"""

import functools
from typing import NamedTuple

import numpy as np
import optax

import optlab
from configs import nab_anomaly as default_config
from experiments.kit import cli, options, training_log
from optlab import datasets, models, plots, report, train

SHOWCASE = "adam"  # the variant whose first seed is drawn, and whose claim is checked
PREDICT_BATCH = 512  # windows per evaluation batch when reconstructing
FORMATS = {"epochs": ".1f", "train_loss": ".4f", "val_loss": ".4f", "threshold": ".4f",
           "anomalous_points": ".1f", "best_epoch": ".1f", "inside": ".1f", "outside": ".1f"}


class Family(NamedTuple):
    """One compiled program: an optimizer and the hyperparameters of its variants."""

    name: str
    optimizer: optax.GradientTransformation  # inject_hyperparams-wrapped
    variants: dict[str, dict[str, float]]  # variant name -> injected hyperparameters


def keras_sgd(learning_rate, momentum, decay) -> optax.GradientTransformation:
    """Keras's SGD: ``lr_t = lr / (1 + decay t)`` (t = 0, 1, ...), ``v <- m v - lr_t g``,
    ``w <- w + v``; the heavy ball with an inverse-time schedule."""
    return optlab.heavy_ball(lambda step: learning_rate / (1 + decay * step), momentum)


def families(config: default_config.Config) -> list[Family]:
    """The optimizer families of ``config.families``, with their variants."""
    adam = dict(b2=config.adam_beta2, eps=config.adam_eps)
    inject = optax.inject_hyperparams
    every_family = [
        Family("sgd", inject(keras_sgd)(learning_rate=config.sgd_learning_rate, momentum=0.0,
                                        decay=0.0),
               {"sgd": {"momentum": 0.0, "decay": 0.0},
                "sgd + decay": {"momentum": 0.0, "decay": config.sgd_decay}}
               | {f"momentum {m:g}": {"momentum": m, "decay": 0.0}
                  for m in config.momentum_sweep}),
        Family("nesterov", inject(optlab.nesterov)(learning_rate=config.sgd_learning_rate,
                                                   gamma=config.nesterov_momentum),
               {"nesterov": {}}),
        Family("adam", inject(optlab.adam)(learning_rate=config.adam_learning_rate, b1=0.9,
                                           **adam),
               {("adam" if b1 == 0.9 else f"adam b1={b1:g}"): {"b1": b1}
                for b1 in config.adam_beta1_sweep}),
        Family("amsgrad", inject(optlab.amsgrad)(learning_rate=config.adam_learning_rate,
                                                 **adam), {"amsgrad": {}}),
    ]
    return [family for family in every_family if family.name in config.families]


class Data(NamedTuple):
    train_windows: np.ndarray  # (m_train, L, 1) float32, the fitted part
    validation_windows: np.ndarray  # (m_val, L, 1) float32
    all_train_windows: np.ndarray  # (m, L, 1) float32: both, for the threshold
    test_windows: np.ndarray  # (m_test, L, 1) float32
    test_timestamps: np.ndarray  # (n_test,) datetime64[s]
    test_values: np.ndarray  # (n_test,) standardized test series
    labelled: list  # NAB's (start, end) windows of the test series
    inside_label: np.ndarray  # (n_test,) bool: time stamp inside a labelled window
    scaler: datasets.Standardizer


def load_data(config: default_config.Config) -> Data:
    """Standardized windows of both series (scaled by the training series alone)."""
    train_values = datasets.load_nab(config.train_series).values[: config.train_points]
    test_series = datasets.load_nab(config.test_series)
    scaler = datasets.Standardizer.fit(train_values)

    def windows(values):
        standard = scaler.transform(values)
        return datasets.sliding_windows(standard, config.window_length, dtype=np.float32)[..., None]

    all_train = windows(train_values)
    (fitted,), (held_out,) = train.validation_split((all_train,), config.validation_fraction,
                                                    config.seed)
    labelled = datasets.labelled_windows(config.test_series)
    return Data(fitted, held_out, all_train, windows(test_series.values), test_series.timestamps,
                scaler.transform(test_series.values), labelled,
                datasets.in_windows(test_series.timestamps, labelled), scaler)


def errors(fit: train.FitResult, data: Data) -> dict[str, np.ndarray]:
    """Per run: the per-window MAE of the training and test windows, and the
    reconstruction of the first test window."""
    def predict(windows):
        return np.asarray(train.predict(fit, windows, batch_size=PREDICT_BATCH))

    test = predict(data.test_windows)
    return {"train_mae": np.abs(predict(data.all_train_windows)
                                - data.all_train_windows).mean(axis=(2, 3)),
            "test_mae": np.abs(test - data.test_windows).mean(axis=(2, 3)),
            "first_reconstruction": test[:, 0, :, 0]}


def measures(config, result: train.VariantResult, scores: dict, data: Data) -> dict:
    """Per seed: epochs, losses at the best epoch, threshold and the flagged points."""
    best = result.take(result.fit.best_epoch)
    seeds = np.arange(len(result.seeds))
    thresholds = scores["train_mae"].max(axis=1)
    flagged = np.stack([datasets.anomalous_points(mae > threshold, config.window_length)
                        for mae, threshold in zip(scores["test_mae"], thresholds)])
    return {"epochs": result.take(result.fit.epochs_trained), "best_epoch": best,
            "train_loss": result.history["train_loss"][seeds, best],
            "val_loss": result.history["val_loss"][seeds, best], "threshold": thresholds,
            "anomalous_points": flagged.sum(axis=1),
            "inside": (flagged & data.inside_label).sum(axis=1),
            "outside": (flagged & ~data.inside_label).sum(axis=1), "flagged": flagged}


def run_study(config: default_config.Config, log: cli.Log = print) -> dict:
    """Trains every variant (no file output) and returns the results."""
    data = load_data(config)
    log(f"{data.train_windows.shape[0]} training, {data.validation_windows.shape[0]} "
        f"validation and {data.test_windows.shape[0]} test windows of {config.window_length}")
    model = functools.partial(models.ConvAutoencoder1D, length=config.window_length,
                              dropout=config.dropout)
    family_of = {name: family.name for family in families(config) for name in family.variants}
    grid = train.run_grid(
        [train.Variant(name, model, family.optimizer, setting, batch_size=config.batch_size)
         for family in families(config) for name, setting in family.variants.items()],
        task=train.reconstruction("mse"), data=(data.train_windows,), **config.grid_options(
            log, validation=(data.validation_windows,), patience=config.patience,
            restore_best=True))
    scores = train.grid.per_variant(grid, lambda fit: errors(fit, data))
    per_seed = {name: measures(config, result, scores[name], data)
                for name, result in grid.items()}
    rows, runs = train.grid.seed_rows(grid, {name: {key: m[key] for key in FORMATS}
                                             for name, m in per_seed.items()}, FORMATS)
    for row in rows:
        m = per_seed[row["variant"]]
        row |= {"seeds_inside_only": int(np.sum((m["inside"] > 0) & (m["outside"] == 0))),
                "seeds_outside": int(np.sum(m["outside"] > 0))}
    for row in runs:
        row["family"] = family_of[row["variant"]]
    programs = [{"family": family_of[program["variants"][0]]} | program
                for program in train.grid.programs(grid.values())]
    showcase = per_seed.get(SHOWCASE)
    return {
        "config": config,
        "data": {"mean": data.scaler.mean, "std": data.scaler.std,
                 "train_windows": data.train_windows.shape[0],
                 "validation_windows": data.validation_windows.shape[0],
                 "test_windows": data.test_windows.shape[0],
                 "labelled_windows": [(str(start), str(end)) for start, end in data.labelled]},
        "variants": rows, "runs": runs, "programs": programs,
        "histories": {name: result.history for name, result in grid.items()},
        "showcase": None if showcase is None else {
            "train_mae": scores[SHOWCASE]["train_mae"][0],
            "test_mae": scores[SHOWCASE]["test_mae"][0], "threshold": showcase["threshold"][0],
            "flagged": showcase["flagged"][0], "first_window": data.test_windows[0, :, 0],
            "first_reconstruction": scores[SHOWCASE]["first_reconstruction"][0]},
        "test_series": {"timestamps": data.test_timestamps, "values": data.test_values,
                        "inside_label": data.inside_label},
    }


SECONDS = report.format_seconds
COLUMNS = [("variant", "variant"), ("epochs_text", "epochs"),
           ("train_loss_text", "train loss (MSE)"), ("val_loss_text", "val loss (MSE)"),
           ("threshold_text", "threshold (MAE)"), ("anomalous_points_text", "anomalous points"),
           ("seeds_inside_only", "seeds inside only"),
           ("seeds_outside", "seeds with points outside"),
           ("compile_seconds", "compile", SECONDS), ("run_seconds", "run", SECONDS)]


def summary(config, results: dict) -> str:
    data = results["data"]
    start, end = data["labelled_windows"][0]
    lines = [
        f"## Optimizers for the NAB conv autoencoder ({config.seeds} seeds, at most "
        f"{config.epochs} epochs, patience {config.patience})", "",
        f"{data['train_windows']} training / {data['validation_windows']} validation windows "
        f"of {config.window_length} steps of {config.train_series}; {data['test_windows']} "
        f"test windows of {config.test_series}, labelled anomaly {start} to {end}. Losses at "
        "the restored (best) epoch; mean ± std over seeds. \"Seeds inside only\": seeds that "
        "flag points inside the labelled window and none outside it. Compile and run time are "
        "those of the variant's program (all variants x seeds of its family).", "",
        report.markdown_table(results["variants"], COLUMNS),
    ]
    adam = next((row for row in results["variants"] if row["variant"] == SHOWCASE), None)
    if adam is not None:
        holds = "holds" if adam["seeds_inside_only"] == adam["seeds"] else "does NOT hold"
        lines += ["", f"Adam check ({holds}): {adam['seeds_inside_only']} of {adam['seeds']} "
                      "seeds flag points inside the labelled window and none outside it."]
    return "\n".join(lines + training_log.resume_lines(
        {p["family"]: p["first_epoch"] for p in results["programs"]}))


def figures(results: dict) -> dict:
    """Loss curves; for Adam's first seed the training MAE histogram with the threshold, the
    first test window's reconstruction and the flagged points on the test series."""
    histories = results["histories"]
    drawn = {"loss_curves.png": plots.learning_curves_figure(histories, by="measure",
                                                             ylabel="MSE")}
    showcase, series = results["showcase"], results["test_series"]
    if showcase is None:
        return drawn
    title = f"{SHOWCASE}, first seed"
    drawn["mae_histogram.png"] = plots.histogram_figure(
        {f"{title}: reconstruction error of the training windows":
         {"training windows": showcase["train_mae"]}},
        {f"{title}: reconstruction error of the training windows": showcase["threshold"]},
        xlabel="MAE of a window", ylabel="windows", size_per_panel=(7.0, 4.0))
    window = {"first test window": showcase["first_window"][None],
              "reconstruction": showcase["first_reconstruction"][None]}
    drawn["reconstruction.png"] = plots.convergence_figure(
        window, xlabel="step", ylabel="standardized value", title=title, log_y=False, band=None,
        max_points=window["reconstruction"].size)
    fig, (ax,) = plots.panel_figure(1, size_per_panel=(12.0, 4.0))
    stamps, values, flagged = series["timestamps"], series["values"], showcase["flagged"]
    ax.plot(stamps, values, linewidth=0.8, label="art_daily_jumpsup")
    ax.fill_between(stamps, 0, 1, where=series["inside_label"], color="orange", alpha=0.2,
                    transform=ax.get_xaxis_transform(), label="NAB labelled window")
    ax.scatter(stamps[flagged], values[flagged], color="red", s=6, zorder=3,
               label=f"anomalous points ({int(flagged.sum())})")
    ax.set(ylabel="standardized value", title=title)
    # A fixed place: matplotlib's "best" searches every point of the series and warns
    # (an error under the tests' filterwarnings) when that takes over a second.
    ax.legend(loc="upper left")
    drawn["anomalies.png"] = fig
    return drawn


def write(config, results: dict) -> cli.Report:
    return cli.Report(
        markdown=summary(config, results),
        results={key: value for key, value in results.items()
                 if key not in ("histories", "showcase", "test_series")},
        tables={"results.csv": results["variants"], "runs.csv": results["runs"]},
        figures=figures(results),
        metrics=results["histories"])


def validate(config: default_config.Config) -> None:
    """The checks that span fields."""
    if config.window_length < 4 or config.window_length % 4:
        raise ValueError(
            f"--window_length must be a positive multiple of 4, got {config.window_length}")
    if config.train_points is not None and config.train_points < config.window_length + 1:
        raise ValueError(f"train_points must exceed window_length ({config.window_length}), "
                         f"got {config.train_points}")


STUDY = cli.Study(
    "nab_anomaly", default_config.get_config, run_study, write, validate=validate,
    checks={"families": options.some_of(default_config.FAMILIES)},
    smoke_flags=("--seeds=1", "--epochs=1", "--families=adam", "--adam_beta1_sweep=0.9",
                 "--train_points=400", "--window_length=32"))


if __name__ == "__main__":
    cli.run(STUDY)
