r"""Optimizers for a 1-D convolutional autoencoder that finds the jump in NAB's art_daily_jumpsup.

    python -m experiments.nab_anomaly
    python -m experiments.nab_anomaly --seeds=2 --epochs=10 --families=sgd,adam

Data: the training series art_daily_small_noise (no anomaly) is standardized with its
own mean and sample std, which are applied unchanged to the test series
art_daily_jumpsup; both are cut into every window of ``window_length`` = 288 steps
(one day), and a random 10% of the training windows is held out for validation.

Model and training: ``optlab.models.ConvAutoencoder1D`` (the Keras time-series
anomaly-detection model, dropout 0.2), MSE loss, batch 128, at most 50 epochs, early
stopping on the validation loss with patience 5 and the best epoch's weights restored.
Every variant starts from the same initialization: seed ``s`` gives the same initial
weights, minibatch order and dropout masks to every variant.

Variants, in four compiled programs (one per optimizer family; the runs of a program are
its variants times the seeds, hyperparameters injected with ``optax.inject_hyperparams``):

* sgd: heavy ball with an inverse-time decay, Keras's SGD: ``lr_t = lr / (1 + decay t)``,
  ``v <- m v - lr_t g``, ``w <- w + v`` (``optlab.heavy_ball`` with a schedule). "sgd"
  is Keras's default (lr 0.01, m = 0, no decay), "sgd + decay" adds ``decay`` = 1e-3, and
  "momentum m" for m in {0.3, 0.5, 0.79, 0.8, 0.81, 0.9} (lr 0.01) is Keras's momentum;
  "momentum 0.9" is the issue's "momentum" variant. (``optlab.momentum`` is the EMA form,
  which scales the step by ``1 - m``: not Keras's.)
* nesterov: ``optlab.nesterov(0.01, 0.9)``, Keras's ``SGD(nesterov=True)``.
* adam: ``optlab.adam`` with Keras's defaults (lr 1e-3, beta2 0.999, eps 1e-7 outside
  the square root) for beta1 in {0.8, 0.9}; "adam" is beta1 = 0.9.
* amsgrad: ``optlab.amsgrad`` with the same settings.

Anomalies (per run): the threshold is the largest per-window MAE of the reconstructions
of all training windows (training and validation, as the Keras example, whose validation
split is inside ``fit``); a test window is anomalous when its MAE exceeds it, and a time
step is anomalous when every window that contains it is
(``optlab.datasets.anomalous_points``). The flagged time stamps are compared with NAB's
labelled window for art_daily_jumpsup (shipped with the data).

Reported per variant (mean ± std over seeds): epochs trained, the train and validation
loss at the restored (best) epoch, the threshold, the number of anomalous points, how many
seeds flag points inside the labelled window and none outside it, and the compile and run
time of the variant's program; per run the same numbers. The Adam check: over all seeds,
does Adam flag points inside the window and none outside it? Written into a new run
directory under ``--out``: results.json, table.md, results.csv (per variant), runs.csv
(per run), metrics.jsonl (per variant, run and epoch), loss_curves.png (train and
validation loss, log scale, median and interquartile band over seeds),
mae_histogram.png, reconstruction.png (first test window) and anomalies.png (the test
series with the anomalous points in red) for the first seed of "adam".
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable, NamedTuple

import numpy as np
import optax
from absl import flags

import optlab
from configs import nab_anomaly as default_config
from experiments.kit import cli, training_log
from experiments.kit.rundir import RunDir
from optlab import datasets, models, plots, report, stats, train

NAME = "nab_anomaly"
FLAGS = flags.FLAGS
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


def validate(config: default_config.Config) -> None:
    if config.seeds < 1:
        raise ValueError(f"--seeds must be at least 1, got {config.seeds}")
    if config.epochs < 1:
        raise ValueError(f"--epochs must be at least 1, got {config.epochs}")
    if config.batch_size < 1:
        raise ValueError(f"--batch_size must be at least 1, got {config.batch_size}")
    if config.patience < 1:
        raise ValueError(f"--patience must be at least 1, got {config.patience}")
    if not 0 < config.validation_fraction < 1:
        raise ValueError(
            f"--validation_fraction must be in (0, 1), got {config.validation_fraction}"
        )
    if config.window_length < 4 or config.window_length % 4:
        raise ValueError(
            f"window_length must be a positive multiple of 4, got {config.window_length}"
        )
    if not config.families or any(f not in default_config.FAMILIES for f in config.families):
        raise ValueError(
            f"--families must name some of {', '.join(default_config.FAMILIES)}, "
            f"got {','.join(config.families)}"
        )
    if config.sgd_learning_rate <= 0 or config.adam_learning_rate <= 0:
        raise ValueError("learning rates must be positive")
    if config.sgd_decay < 0:
        raise ValueError(f"--sgd_decay must be >= 0, got {config.sgd_decay}")
    for name, values in (("momentum_sweep", config.momentum_sweep),
                         ("adam_beta1_sweep", config.adam_beta1_sweep)):
        if not values or any(not 0 <= value < 1 for value in values):
            raise ValueError(f"--{name} needs values in [0, 1), got {values}")
    if config.runs_per_vmap is not None and config.runs_per_vmap < 1:
        raise ValueError(
            f"--runs_per_vmap must be at least 1 (or 0 for all), got {config.runs_per_vmap}"
        )
    if config.train_points is not None and config.train_points < config.window_length + 1:
        raise ValueError(
            f"train_points must exceed window_length ({config.window_length}), "
            f"got {config.train_points}"
        )


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
        train_windows=fitted,
        validation_windows=held_out,
        all_train_windows=all_train,
        test_windows=windows(test_series.values),
        test_timestamps=test_series.timestamps,
        test_values=scaler.transform(test_series.values),
        labelled=labelled,
        inside_label=datasets.in_windows(test_series.timestamps, labelled),
        scaler=scaler,
    )


def window_mae(result: train.FitResult, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per run, the reconstructions ``(runs, m, L, 1)`` and per-window MAE ``(runs, m)``."""
    reconstructions = np.asarray(train.predict(result, windows, batch_size=PREDICT_BATCH))
    errors = np.abs(reconstructions - windows[None]).mean(axis=(2, 3))
    return reconstructions, errors


def run_family(config, family: Family, data: Data, log) -> dict:
    """Trains every variant x seed of ``family`` in one ``fit`` call and scores every run."""
    seeds = list(range(config.seeds))
    names = list(family.variants)
    hyperparams = {
        key: [family.variants[name][key] for name in names for _ in seeds]
        for key in sorted({key for setting in family.variants.values() for key in setting})
    }
    runs = train.init_runs(
        functools.partial(
            models.ConvAutoencoder1D, length=config.window_length, dropout=config.dropout
        ),
        family.optimizer,
        seeds=seeds * len(names),
        hyperparams=hyperparams,
    )
    log(f"{family.name}: {len(names)} variants x {len(seeds)} seeds = {runs.count} runs")
    result = train.fit(
        runs,
        train.reconstruction("mse"),
        (data.train_windows,),
        validation=(data.validation_windows,),
        batch_size=config.batch_size,
        max_epochs=config.epochs,
        patience=config.patience,
        restore_best=True,
        runs_per_vmap=config.runs_per_vmap,
        on_epoch=train.progress_printer(config.epochs, print_fn=log),
        checkpoint_dir=training_log.checkpoint_dir(config.workdir, family.name),
    )
    _, train_errors = window_mae(result, data.all_train_windows)
    test_reconstructions, test_errors = window_mae(result, data.test_windows)
    thresholds = train_errors.max(axis=1)
    run_rows, variants = [], {}
    for index in range(runs.count):
        name, seed = names[index // len(seeds)], seeds[index % len(seeds)]
        best = int(result.best_epoch[index])
        flagged = datasets.anomalous_points(
            test_errors[index] > thresholds[index], config.window_length
        )
        run_rows.append({
            "variant": name,
            "family": family.name,
            "seed": seed,
            "epochs": int(result.epochs_trained[index]),
            "best_epoch": best,
            "train_loss": float(result.history["train_loss"][index, best]),
            "val_loss": float(result.history["val_loss"][index, best]),
            "threshold": float(thresholds[index]),
            "anomalous_points": int(flagged.sum()),
            "inside": int((flagged & data.inside_label).sum()),
            "outside": int((flagged & ~data.inside_label).sum()),
        })
        variant = variants.setdefault(name, {"history": {"train_loss": [], "val_loss": []}})
        for key in ("train_loss", "val_loss"):
            variant["history"][key].append(result.history[key][index])
        if name == SHOWCASE and seed == seeds[0]:
            variants[name]["showcase"] = {
                "train_mae": train_errors[index],
                "test_mae": test_errors[index],
                "threshold": float(thresholds[index]),
                "flagged": flagged,
                "first_window": data.test_windows[0, :, 0],
                "first_reconstruction": test_reconstructions[index, 0, :, 0],
            }
    for variant in variants.values():
        variant["history"] = {k: np.stack(v) for k, v in variant["history"].items()}
    return {
        "runs": run_rows,
        "variants": variants,
        "program": {
            "family": family.name,
            "variants": names,
            "runs": runs.count,
            "compile_seconds": result.compile_seconds,
            "run_seconds": result.run_seconds,
            "first_epoch": result.first_epoch,
        },
    }


def _mean_std(values) -> dict:
    summary = stats.summarize(np.asarray(values, dtype=float))
    return {"mean": summary.mean, "std": summary.std}


def variant_rows(run_rows: list[dict], programs: list[dict]) -> list[dict]:
    """Per variant, mean and std over seeds, and how many seeds flag only inside the label."""
    timing = {name: program for program in programs for name in program["variants"]}
    rows = []
    for name in timing:
        runs = [row for row in run_rows if row["variant"] == name]
        row = {"variant": name, "seeds": len(runs)}
        for key in ("epochs", "train_loss", "val_loss", "threshold", "anomalous_points"):
            spread = _mean_std([run[key] for run in runs])
            row[key], row[f"{key}_std"] = spread["mean"], spread["std"]
        row["seeds_inside_only"] = sum(run["inside"] > 0 and run["outside"] == 0 for run in runs)
        row["seeds_outside"] = sum(run["outside"] > 0 for run in runs)
        row["compile_seconds"] = timing[name]["compile_seconds"]
        row["run_seconds"] = timing[name]["run_seconds"]
        rows.append(row)
    return rows


def run_study(config: default_config.Config, log: Callable[[str], None] = print) -> dict:
    """Trains every variant (no file output) and returns the results."""
    validate(config)
    data = load_data(config)
    log(
        f"{data.train_windows.shape[0]} training, {data.validation_windows.shape[0]} "
        f"validation and {data.test_windows.shape[0]} test windows of {config.window_length}"
    )
    run_rows, programs, variants = [], [], {}
    for family in families(config):
        outcome = run_family(config, family, data, log)
        run_rows += outcome["runs"]
        programs.append(outcome["program"])
        variants |= outcome["variants"]
    showcase_runs = [row for row in run_rows if row["variant"] == SHOWCASE]
    return {
        "config": dataclasses.asdict(config),
        "data": {
            "mean": data.scaler.mean,
            "std": data.scaler.std,
            "train_windows": data.train_windows.shape[0],
            "validation_windows": data.validation_windows.shape[0],
            "test_windows": data.test_windows.shape[0],
            "labelled_windows": [(str(start), str(end)) for start, end in data.labelled],
        },
        "variants": variant_rows(run_rows, programs),
        "runs": run_rows,
        "programs": programs,
        "adam_check": None if not showcase_runs else {
            "seeds": len(showcase_runs),
            "seeds_flagging_inside": sum(row["inside"] > 0 for row in showcase_runs),
            "seeds_flagging_outside": sum(row["outside"] > 0 for row in showcase_runs),
            "holds": all(row["inside"] > 0 and row["outside"] == 0 for row in showcase_runs),
        },
        "histories": {name: variant["history"] for name, variant in variants.items()},
        "showcase": variants.get(SHOWCASE, {}).get("showcase"),
        "test_series": {"timestamps": data.test_timestamps, "values": data.test_values,
                        "inside_label": data.inside_label},
    }


VARIANT_COLUMNS = [
    report.Column("variant", "variant"),
    report.Column("epochs", "epochs"),
    report.Column("train_loss", "train loss (MSE)"),
    report.Column("val_loss", "val loss (MSE)"),
    report.Column("threshold", "threshold (MAE)"),
    report.Column("anomalous_points", "anomalous points"),
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


def _with_spread(rows: list[dict]) -> list[dict]:
    """Rows whose mean columns read ``mean ± std`` (the Markdown view)."""
    formats = {"epochs": "{:.1f}", "train_loss": "{:.4f}", "val_loss": "{:.4f}",
               "threshold": "{:.4f}", "anomalous_points": "{:.1f}"}
    return [
        row | {key: f"{fmt.format(row[key])} ± {fmt.format(row[key + '_std'])}"
               for key, fmt in formats.items()}
        for row in rows
    ]


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
        report.markdown_table(_with_spread(results["variants"]), VARIANT_COLUMNS),
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
            {program["family"]: program["first_epoch"] for program in results["programs"]}
        ),
    ]
    return "\n".join(lines)


def write_outputs(config, results: dict, root) -> RunDir:
    run_dir = RunDir.create(root, NAME)
    saved = {key: value for key, value in results.items()
             if key not in ("histories", "showcase", "test_series")}
    run_dir.write_json("results.json", saved)
    run_dir.write_text("table.md", summary(config, results) + "\n")
    run_dir.write_text("results.csv", report.csv_text(results["variants"], CSV_COLUMNS))
    run_dir.write_text("runs.csv", report.csv_text(results["runs"], RUN_COLUMNS))
    seeds = list(range(config.seeds))
    training_log.write_metrics(
        run_dir,
        {name: (history, seeds) for name, history in results["histories"].items()},
        wandb_project=config.wandb_project,
    )
    run_dir.save_figure("loss_curves.png", loss_figure(results))
    if results["showcase"] is not None:
        run_dir.save_figure("mae_histogram.png", histogram_figure(results["showcase"]))
        run_dir.save_figure("reconstruction.png", reconstruction_figure(results["showcase"]))
        run_dir.save_figure("anomalies.png", anomaly_figure(results))
    return run_dir


def loss_figure(results: dict):
    """Train and validation loss per epoch, log scale: median and quartiles over seeds."""
    fig, (train_ax, val_ax) = plots.panel_figure(2, size_per_panel=(7.0, 5.0))
    panels = ((train_ax, "train_loss", "training"), (val_ax, "val_loss", "validation"))
    for ax, key, title in panels:
        plots.draw_convergence(
            ax, {name: history[key] for name, history in results["histories"].items()},
            xlabel="epoch", ylabel="MSE", title=f"{title} loss",
        )
    return fig


def histogram_figure(showcase: dict):
    fig, (ax,) = plots.panel_figure(1, size_per_panel=(7.0, 4.0))
    ax.hist(showcase["train_mae"], bins=50, label="training windows")
    ax.axvline(showcase["threshold"], color="red", linestyle="--",
               label=f"threshold {showcase['threshold']:.4f}")
    ax.set_xlabel("MAE of a window")
    ax.set_ylabel("windows")
    ax.set_title(f"{SHOWCASE}, first seed: reconstruction error of the training windows")
    ax.legend(loc="upper right")
    return fig


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


def config_from_flags() -> default_config.Config:
    overrides = {
        name: getattr(FLAGS, name)
        for name in ("seeds", "epochs", "batch_size", "patience", "validation_fraction",
                     "sgd_decay", "workdir")
        if getattr(FLAGS, name) is not None
    }
    for name in ("momentum_sweep", "adam_beta1_sweep"):
        if getattr(FLAGS, name) is not None:
            overrides[name] = cli.parse_floats(name, getattr(FLAGS, name))
    if FLAGS.families is not None:
        overrides["families"] = tuple(FLAGS.families)
    cli.runs_per_vmap(overrides)
    overrides["wandb_project"] = cli.wandb_project(NAME)
    return dataclasses.replace(default_config.get_config(), **overrides)


def define_flags() -> None:
    flags.DEFINE_integer("seeds", None, "Runs per variant (seed s: same init for every variant).")
    flags.DEFINE_integer("epochs", None, "Most epochs per run.")
    flags.DEFINE_integer("batch_size", None, "Windows per minibatch.")
    flags.DEFINE_integer("patience", None, "Early-stopping patience in epochs.")
    flags.DEFINE_float("validation_fraction", None, "Training windows held out.")
    flags.DEFINE_float("sgd_decay", None, "Keras decay of 'sgd + decay': lr / (1 + decay t).")
    flags.DEFINE_list("momentum_sweep", None, "Momentum values of the heavy-ball sweep.")
    flags.DEFINE_list("adam_beta1_sweep", None, "Adam's beta1 values.")
    flags.DEFINE_list("families", None, f"Optimizer families: {','.join(default_config.FAMILIES)}.")
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
