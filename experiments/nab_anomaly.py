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

Writes table.md (per variant, mean ± std over seeds: epochs, train and validation loss at
the best epoch, threshold, anomalous points, seeds that flag only inside the labelled
window; the Adam check), results.json, results.csv, runs.csv, metrics.jsonl,
loss_curves.png, and for Adam's first seed mae_histogram.png, reconstruction.png and
anomalies.png.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np
import optax

import optlab
from configs import nab_anomaly as default_config
from experiments.kit import cli, options, training_log
from optlab import datasets, models, plots, report, stats, train

SHOWCASE = "adam"  # the variant whose first seed is drawn, and whose claim is checked
PREDICT_BATCH = 512  # windows per evaluation batch when reconstructing


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
    adam_settings = dict(b2=config.adam_beta2, eps=config.adam_eps)
    sgd_variants = {
        "sgd": {"momentum": 0.0, "decay": 0.0},
        "sgd + decay": {"momentum": 0.0, "decay": config.sgd_decay},
    }
    sgd_variants |= {
        f"momentum {m:g}": {"momentum": m, "decay": 0.0} for m in config.momentum_sweep
    }
    adam_variants = {
        ("adam" if b1 == 0.9 else f"adam b1={b1:g}"): {"b1": b1} for b1 in config.adam_beta1_sweep
    }
    every_family = [
        Family(
            "sgd",
            optax.inject_hyperparams(keras_sgd)(
                learning_rate=config.sgd_learning_rate, momentum=0.0, decay=0.0
            ),
            sgd_variants,
        ),
        Family(
            "nesterov",
            optax.inject_hyperparams(optlab.nesterov)(
                learning_rate=config.sgd_learning_rate, gamma=config.nesterov_momentum
            ),
            {"nesterov": {}},
        ),
        Family(
            "adam",
            optax.inject_hyperparams(optlab.adam)(
                learning_rate=config.adam_learning_rate, b1=0.9, **adam_settings
            ),
            adam_variants,
        ),
        Family(
            "amsgrad",
            optax.inject_hyperparams(optlab.amsgrad)(
                learning_rate=config.adam_learning_rate, **adam_settings
            ),
            {"amsgrad": {}},
        ),
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
    train_series = datasets.load_nab(config.train_series)
    test_series = datasets.load_nab(config.test_series)
    train_values = train_series.values[: config.train_points]
    scaler = datasets.Standardizer.fit(train_values)

    def windows(values):
        return datasets.sliding_windows(
            scaler.transform(values), config.window_length, dtype=np.float32
        )[..., None]

    all_train = windows(train_values)
    (fitted,), (held_out,) = train.validation_split(
        (all_train,), config.validation_fraction, config.seed
    )
    labelled = datasets.labelled_windows(config.test_series)
    return Data(
        train_windows=fitted, validation_windows=held_out, all_train_windows=all_train,
        test_windows=windows(test_series.values), test_timestamps=test_series.timestamps,
        test_values=scaler.transform(test_series.values), labelled=labelled,
        inside_label=datasets.in_windows(test_series.timestamps, labelled), scaler=scaler,
    )


def errors(fit: train.FitResult, data: Data) -> dict[str, np.ndarray]:
    """Per run: the per-window MAE of the training and test windows, and the
    reconstruction of the first test window."""
    def predict(windows):
        return np.asarray(train.predict(fit, windows, batch_size=PREDICT_BATCH))

    test = predict(data.test_windows)
    return {
        "train_mae": np.abs(predict(data.all_train_windows) - data.all_train_windows).mean(
            axis=(2, 3)),
        "test_mae": np.abs(test - data.test_windows).mean(axis=(2, 3)),
        "first_reconstruction": test[:, 0, :, 0],
    }


def run_rows(config, name: str, family: str, result: train.VariantResult, scores: dict,
             data: Data) -> list[dict]:
    """One row per seed of a variant: losses at the best epoch, threshold, flagged points."""
    rows = []
    thresholds = scores["train_mae"].max(axis=1)
    for index, seed in enumerate(result.seeds):
        best = int(result.take(result.fit.best_epoch)[index])
        flagged = datasets.anomalous_points(scores["test_mae"][index] > thresholds[index],
                                            config.window_length)
        rows.append({
            "variant": name, "family": family, "seed": seed,
            "epochs": int(result.take(result.fit.epochs_trained)[index]), "best_epoch": best,
            "train_loss": float(result.history["train_loss"][index, best]),
            "val_loss": float(result.history["val_loss"][index, best]),
            "threshold": float(thresholds[index]), "anomalous_points": int(flagged.sum()),
            "inside": int((flagged & data.inside_label).sum()),
            "outside": int((flagged & ~data.inside_label).sum()), "flagged": flagged,
        })
    return rows


def run_study(config: default_config.Config, log: cli.Log = print) -> dict:
    """Trains every variant (no file output) and returns the results."""
    data = load_data(config)
    log(
        f"{data.train_windows.shape[0]} training, {data.validation_windows.shape[0]} "
        f"validation and {data.test_windows.shape[0]} test windows of {config.window_length}"
    )
    model = functools.partial(models.ConvAutoencoder1D, length=config.window_length,
                              dropout=config.dropout)
    family_of, variants = {}, []
    for family in families(config):
        for name, setting in family.variants.items():
            family_of[name] = family.name
            variants.append(train.Variant(name, model, family.optimizer, setting,
                                          batch_size=config.batch_size))
    grid = train.run_grid(
        variants, range(config.seeds), train.reconstruction("mse"), (data.train_windows,),
        max_epochs=config.epochs, checkpoint_dir=config.workdir, log=log,
        validation=(data.validation_windows,), patience=config.patience, restore_best=True,
        runs_per_vmap=config.runs_per_vmap)
    scores = train.grid.per_variant(grid, lambda fit: errors(fit, data))
    runs, rows = [], []
    for name, result in grid.items():
        variant_runs = run_rows(config, name, family_of[name], result, scores[name], data)
        runs += variant_runs
        rows.append({"variant": name, "seeds": len(result.seeds),
                     "seeds_inside_only": sum(r["inside"] > 0 and r["outside"] == 0
                                              for r in variant_runs),
                     "seeds_outside": sum(r["outside"] > 0 for r in variant_runs),
                     "compile_seconds": result.fit.compile_seconds,
                     "run_seconds": result.fit.run_seconds}
                    | stats.mean_std_columns(
                        {key: [r[key] for r in variant_runs] for key in FORMATS}, FORMATS))
    programs: dict[int, dict] = {}
    for name, result in grid.items():
        program = programs.setdefault(result.group, {
            "family": family_of[name], "variants": [], "runs": 0,
            "compile_seconds": result.fit.compile_seconds,
            "run_seconds": result.fit.run_seconds, "first_epoch": result.fit.first_epoch})
        program["variants"].append(name)
        program["runs"] += len(result.seeds)
    showcase = grid.get(SHOWCASE)
    showcase_runs = [row for row in runs if row["variant"] == SHOWCASE]
    return {
        "config": config,
        "data": {
            "mean": data.scaler.mean, "std": data.scaler.std,
            "train_windows": data.train_windows.shape[0],
            "validation_windows": data.validation_windows.shape[0],
            "test_windows": data.test_windows.shape[0],
            "labelled_windows": [(str(start), str(end)) for start, end in data.labelled],
        },
        "variants": rows,
        "runs": [{k: v for k, v in row.items() if k != "flagged"} for row in runs],
        "programs": list(programs.values()),
        "adam_check": None if not showcase_runs else {
            "seeds": len(showcase_runs),
            "seeds_flagging_inside": sum(row["inside"] > 0 for row in showcase_runs),
            "seeds_flagging_outside": sum(row["outside"] > 0 for row in showcase_runs),
            "holds": all(row["inside"] > 0 and row["outside"] == 0 for row in showcase_runs),
        },
        "histories": {name: result.history for name, result in grid.items()},
        "showcase": None if showcase is None else {
            "train_mae": scores[SHOWCASE]["train_mae"][0],
            "test_mae": scores[SHOWCASE]["test_mae"][0],
            "threshold": showcase_runs[0]["threshold"], "flagged": showcase_runs[0]["flagged"],
            "first_window": data.test_windows[0, :, 0],
            "first_reconstruction": scores[SHOWCASE]["first_reconstruction"][0],
        },
        "test_series": {"timestamps": data.test_timestamps, "values": data.test_values,
                        "inside_label": data.inside_label},
    }


FORMATS = {"epochs": ".1f", "train_loss": ".4f", "val_loss": ".4f", "threshold": ".4f",
           "anomalous_points": ".1f"}


VARIANT_COLUMNS = [
    report.Column("variant", "variant"),
    report.Column("epochs_text", "epochs"),
    report.Column("train_loss_text", "train loss (MSE)"),
    report.Column("val_loss_text", "val loss (MSE)"),
    report.Column("threshold_text", "threshold (MAE)"),
    report.Column("anomalous_points_text", "anomalous points"),
    report.Column("seeds_inside_only", "seeds inside only"),
    report.Column("seeds_outside", "seeds with points outside"),
    report.Column("compile_seconds", "compile", report.format_seconds),
    report.Column("run_seconds", "run", report.format_seconds),
]
CSV_COLUMNS = [report.Column(key, key) for key in (
    "variant", "seeds", "epochs", "epochs_std", "train_loss", "train_loss_std", "val_loss",
    "val_loss_std", "threshold", "threshold_std", "anomalous_points", "anomalous_points_std",
    "seeds_inside_only", "seeds_outside", "compile_seconds", "run_seconds",
)]
RUN_COLUMNS = [report.Column(key, key) for key in (
    "variant", "family", "seed", "epochs", "best_epoch", "train_loss", "val_loss", "threshold",
    "anomalous_points", "inside", "outside",
)]


def summary(config, results: dict) -> str:
    seeds = config.seeds
    start, end = results["data"]["labelled_windows"][0]
    lines = [
        f"## Optimizers for the NAB conv autoencoder ({seeds} seeds, at most {config.epochs} "
        f"epochs, patience {config.patience})",
        "",
        f"{results['data']['train_windows']} training / {results['data']['validation_windows']}"
        f" validation windows of {config.window_length} steps of {config.train_series}; "
        f"{results['data']['test_windows']} test windows of {config.test_series}, labelled "
        f"anomaly {start} to {end}. Losses at the restored (best) epoch; mean ± std over "
        "seeds. \"Seeds inside only\": seeds that flag points inside the labelled window "
        "and none outside it. Compile and run time are those of the variant's program "
        "(all variants x seeds of its family).",
        "",
        report.markdown_table(results["variants"], VARIANT_COLUMNS),
    ]
    check = results["adam_check"]
    if check is not None:
        verdict = "holds" if check["holds"] else "does NOT hold"
        lines += [
            "",
            f"Adam check ({verdict}): {check['seeds_flagging_inside']} of {check['seeds']} "
            f"seeds flag points inside the labelled window, {check['seeds_flagging_outside']} "
            "flag points outside it.",
        ]
    lines += [
        "",
        "Coursework (Keras, one run): SGD 0.0525 / 0.0369, momentum 0.8 0.0297 / 0.0251, "
        "Adam 0.0049 / 0.0046 (train / validation loss).",
        *training_log.resume_lines(
            {program["family"]: program["first_epoch"] for program in results["programs"]}),
    ]
    return "\n".join(lines)


def loss_figure(results: dict):
    """Train and validation loss per epoch, log scale: median and quartiles over seeds."""
    return plots.panels_figure(
        {f"{title} loss": {name: history[key] for name, history in results["histories"].items()}
         for key, title in (("train_loss", "training"), ("val_loss", "validation"))},
        ylabel="MSE", size_per_panel=(7.0, 5.0))


def histogram_figure(showcase: dict):
    title = f"{SHOWCASE}, first seed: reconstruction error of the training windows"
    return plots.histogram_figure({title: {"training windows": showcase["train_mae"]}},
                                  {title: showcase["threshold"]}, xlabel="MAE of a window",
                                  ylabel="windows", size_per_panel=(7.0, 4.0))


def reconstruction_figure(showcase: dict):
    fig, (ax,) = plots.panel_figure(1, size_per_panel=(7.0, 4.0))
    ax.plot(showcase["first_window"], label="first test window")
    ax.plot(showcase["first_reconstruction"], label="reconstruction")
    ax.set_xlabel("step")
    ax.set_ylabel("standardized value")
    ax.set_title(f"{SHOWCASE}, first seed")
    ax.legend(loc="upper right")
    return fig


def anomaly_figure(results: dict):
    series, flagged = results["test_series"], results["showcase"]["flagged"]
    fig, (ax,) = plots.panel_figure(1, size_per_panel=(12.0, 4.0))
    stamps = series["timestamps"]
    ax.plot(stamps, series["values"], linewidth=0.8, label="art_daily_jumpsup")
    ax.fill_between(stamps, 0, 1, where=series["inside_label"], color="orange", alpha=0.2,
                    transform=ax.get_xaxis_transform(), label="NAB labelled window")
    ax.scatter(stamps[flagged], series["values"][flagged], color="red", s=6, zorder=3,
               label=f"anomalous points ({int(flagged.sum())})")
    ax.set_ylabel("standardized value")
    ax.set_title(f"{SHOWCASE}, first seed")
    # A fixed place: matplotlib's "best" searches every point of the series and warns
    # (an error under the tests' filterwarnings) when that takes over a second.
    ax.legend(loc="upper left")
    return fig


def write(config, results: dict) -> cli.Report:
    figures = {"loss_curves.png": loss_figure(results)}
    if results["showcase"] is not None:
        figures |= {"mae_histogram.png": histogram_figure(results["showcase"]),
                    "reconstruction.png": reconstruction_figure(results["showcase"]),
                    "anomalies.png": anomaly_figure(results)}
    return cli.Report(
        markdown=summary(config, results),
        results={key: value for key, value in results.items()
                 if key not in ("histories", "showcase", "test_series")},
        tables={"results.csv": (results["variants"], CSV_COLUMNS),
                "runs.csv": (results["runs"], RUN_COLUMNS)},
        figures=figures,
        metrics={name: (history, list(range(config.seeds)))
                 for name, history in results["histories"].items()},
    )


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
