r"""Machine-sound anomaly detection with the spectrogram conv autoencoder, on SYNTHETIC data.

Question: trained on normal machine sounds only, how many of 143 faulty clips does the
coursework's spectrogram autoencoder (``optlab.models.SpectrogramAutoencoder``, Adam,
MSE) flag, and at what false-positive rate? No public recordings (MIMII, DCASE, ToyADMOS)
are available here, so ``optlab.datasets.machine_sound_dataset`` generates the clips:
harmonics with speed wander, coloured noise, and faults (clicks, a half-order harmonic,
amplitude modulation, rub bursts); results say nothing about real machines. A clip's
score is its reconstruction MSE of the 64 x 312 log-mel spectrogram; the threshold is
mean + 2 sigma over held-out normal clips. The seeds are the runs of one program; the
distance to the mean training spectrogram and a PCA reconstruction are reference
detectors.

    python -m experiments.spectrogram_anomaly
    python -m experiments.spectrogram_anomaly --seeds=2 --epochs=10 --severity=1.3

Writes table.md (TP, FP, FN, TN, rates and detections per kind, mean ± std over seeds;
the references; the coursework's target of more than 75 detected, judged on the mean),
results.json, results.csv, runs.csv (per seed), metrics.jsonl, loss_curves.png,
error_histograms.png and spectrograms.png.
"""

import functools
from typing import NamedTuple

import numpy as np
import optax

import optlab
from configs import spectrogram_anomaly as default_config
from experiments.kit import cli, training_log
from optlab import datasets, models, plots, report, stats, train
from optlab.datasets import machine_sounds

AUTOENCODER = "conv autoencoder"
FAULT_KINDS = machine_sounds.KINDS[1:]
TARGET_DETECTED = 75  # the coursework's target: more than 75 of the 143 anomalies
PREDICT_BATCH = 64  # clips per evaluation batch when reconstructing
SYNTHETIC_NOTE = (
    "The data are SYNTHETIC (optlab.datasets.machine_sound_dataset): no public "
    "machine-sound recordings (MIMII, DCASE, ToyADMOS) are available here, so normal and "
    "faulty machine clips are generated; results say nothing about real machines."
)


class Data(NamedTuple):
    """The standardised spectrograms, channels last: ``(clips, 64, 312, 1)`` float32."""

    train: np.ndarray  # normal clips the autoencoder trains on
    validation: np.ndarray  # held-out normal clips: validation loss and threshold
    test: np.ndarray
    test_labels: np.ndarray  # (n_test,) 1 anomalous
    test_kinds: np.ndarray  # (n_test,) index into machine_sounds.KINDS


def load_data(config: default_config.Config) -> Data:
    """Generates the data set, holds out the validation clips and standardises the bands."""
    sounds = datasets.machine_sound_dataset(
        config.data_seed, config.n_train, config.n_test_normal, config.n_test_anomalous,
        severity=config.severity, batch_size=config.synthesis_batch)
    (train_clips,), (validation_clips,) = train.validation_split(
        (sounds.train,), config.validation_fraction, config.data_seed)
    scaler = datasets.BandStandardizer.fit(train_clips)
    return Data(*(scaler.transform(clips)[..., None]
                  for clips in (train_clips, validation_clips, sounds.test)),
                sounds.test_labels, sounds.test_kinds)


def run_study(config: default_config.Config, log: cli.Log = print) -> dict:
    """Generates the data, trains the seeds, scores the test clips (no file output)."""
    log(SYNTHETIC_NOTE)
    log(f"Generating {config.n_train} training and {config.n_test_normal} + "
        f"{config.n_test_anomalous} test clips (severity {config.severity:g}) ...")
    data = load_data(config)
    model = functools.partial(models.SpectrogramAutoencoder, input_shape=data.train.shape[1:])
    adam = optax.inject_hyperparams(optlab.adam)(learning_rate=config.learning_rate)
    (result,) = train.run_grid(
        [train.Variant(AUTOENCODER, model, adam, batch_size=config.batch_size)],
        task=train.reconstruction("mse"), data=(data.train,), **config.grid_options(
            log, validation=(data.validation,), eval_batch_size=PREDICT_BATCH)).values()
    # One predict call (one compiled program) for the held-out and the test clips.
    clips = np.concatenate([data.validation, data.test])
    reconstructions = np.asarray(train.predict(result.fit, clips, batch_size=PREDICT_BATCH))
    held_out = data.validation.shape[0]
    scores = machine_sounds.clip_mse(clips, reconstructions)
    runs, histograms = [], {}
    for index, seed in enumerate(result.seeds):
        runs.append({"detector": AUTOENCODER, "seed": seed}
                    | machine_sounds.detection(scores[index, :held_out], scores[index, held_out:],
                                data.test_kinds, config.threshold_sigmas)
                    | {key: float(result.history[key][index, -1])
                       for key in ("train_loss", "val_loss")})
        histograms[f"{AUTOENCODER}, seed {seed}"] = (scores[index, held_out:],
                                                     runs[-1]["threshold"])
        log(f"seed {seed}: {runs[-1]['tp']} of {int(data.test_labels.sum())} anomalies "
            f"detected, {runs[-1]['fp']} false positives")
    detected = np.array([run["tp"] for run in runs])
    detectors = [{"detector": AUTOENCODER, "seeds": len(runs),
                  "seeds_meeting_target": int(np.sum(detected > TARGET_DETECTED)),
                  "compile_seconds": result.fit.compile_seconds,
                  "run_seconds": result.fit.run_seconds}
                 | stats.mean_std_columns({key: [run[key] for run in runs]
                                           for key in SPREAD_FORMATS}, SPREAD_FORMATS)]
    references = machine_sounds.reference_scores(data.train, (data.validation, data.test),
                                                 config.pca_components)
    for name, (validation, test) in references.items():
        row = machine_sounds.detection(validation, test, data.test_kinds, config.threshold_sigmas)
        detectors.append({"detector": name, "seeds": 1} | row
                         | {f"{key}_text": format(row[key], SPREAD_FORMATS[key]) for key in row}
                         | {"seeds_meeting_target": int(row["tp"] > TARGET_DETECTED)})
        histograms[name] = (test, row["threshold"])
        log(f"{name}: {row['tp']} anomalies detected, {row['fp']} false positives")
    examples = [int(np.flatnonzero(data.test_kinds == kind)[0])
                for kind in range(len(machine_sounds.KINDS)) if np.any(data.test_kinds == kind)]
    return {
        "config": config,
        "data": {"synthetic": True, "note": SYNTHETIC_NOTE, "train_clips": data.train.shape[0],
                 "validation_clips": held_out, "test_normal": int(np.sum(data.test_labels == 0)),
                 "test_anomalous": int(np.sum(data.test_labels == 1)),
                 "anomalies_per_kind": {kind: int(np.sum(data.test_kinds == index))
                                        for index, kind in enumerate(FAULT_KINDS, start=1)}},
        "parameters": models.count_params(result.fit.model(0)),
        "detectors": detectors, "runs": runs, "first_epoch": result.fit.first_epoch,
        "target": {"detected_more_than": TARGET_DETECTED, "mean_detected": float(detected.mean()),
                   "seeds_meeting": int(np.sum(detected > TARGET_DETECTED)), "seeds": len(runs)},
        "history": result.history, "test_labels": data.test_labels, "histograms": histograms,
        "examples": {
            "kinds": [machine_sounds.KINDS[data.test_kinds[i]] for i in examples],
            "inputs": data.test[examples, ..., 0],
            "reconstructions": reconstructions[0, held_out + np.asarray(examples), ..., 0],
            "scores": scores[0, held_out + np.asarray(examples)],
            "threshold": runs[0]["threshold"]},
    }


SPREAD_FORMATS = {"tp": ".1f", "fp": ".1f", "fn": ".1f", "tn": ".1f", "detection_rate": ".3f",
                  "false_positive_rate": ".3f", **{kind: ".1f" for kind in FAULT_KINDS},
                  "threshold": ".4f", "train_loss": ".4f", "val_loss": ".4f"}
DETECTOR_COLUMNS = [
    ("detector", "detector"),
    *((f"{key}_text", key.upper()) for key in ("tp", "fp", "fn", "tn")),
    ("detection_rate_text", "detection rate"), ("false_positive_rate_text", "false-positive rate"),
    *((f"{kind}_text", f"{kind} detected") for kind in FAULT_KINDS),
    ("threshold_text", "threshold (MSE)"),
    ("seeds_meeting_target", f"seeds > {TARGET_DETECTED} detected"),
    ("compile_seconds", "compile", report.format_seconds),
    ("run_seconds", "run", report.format_seconds),
]
def summary(config, results: dict) -> str:
    data, target = results["data"], results["target"]
    autoencoder = results["detectors"][0]
    verdict = "meets" if target["mean_detected"] > TARGET_DETECTED else "does NOT meet"
    kinds = ", ".join(f"{count} {kind}" for kind, count in data["anomalies_per_kind"].items())
    return "\n".join([
        f"## Machine-sound anomaly detection with the spectrogram conv autoencoder "
        f"({config.seeds} seeds, {config.epochs} epochs)", "", f"**{SYNTHETIC_NOTE}**", "",
        f"Severity {config.severity:g}. {data['train_clips']} normal training clips, "
        f"{data['validation_clips']} held-out normal clips (they set the threshold "
        f"mean + {config.threshold_sigmas:g} sigma of their reconstruction MSE), "
        f"{data['test_normal']} normal and {data['test_anomalous']} anomalous test clips "
        f"({kinds}); 64 x 312 log-mel spectrograms, bands standardised on the training "
        f"clips. Autoencoder: {results['parameters']:,} parameters, Adam lr "
        f"{config.learning_rate:g}, batch {config.batch_size}, MSE; mean ± std over seeds. "
        "References (deterministic): MSE to the mean training spectrogram, and the "
        f"reconstruction MSE of a {config.pca_components}-component PCA of the training "
        "clips, with the same threshold rule. Compile and run time: the seeds' one program.",
        "", report.markdown_table(results["detectors"], DETECTOR_COLUMNS),
        *training_log.resume_lines({AUTOENCODER: results["first_epoch"]}), "",
        f"Coursework target, more than {TARGET_DETECTED} of the 143 anomalies detected: "
        f"the autoencoder's mean over seeds, {autoencoder['tp']:.1f} ± "
        f"{autoencoder['tp_std']:.1f} of {data['test_anomalous']}, {verdict} it; "
        f"{target['seeds_meeting']} of {target['seeds']} seeds detect more than "
        f"{TARGET_DETECTED}. Detected per seed: "
        f"{', '.join(str(run['tp']) for run in results['runs'])} (runs.csv has each seed's row).",
    ])


def spectrogram_figure(results: dict):
    """One test clip per kind: input, reconstruction and squared error (first seed)."""
    examples = results["examples"]
    rows = len(examples["kinds"])
    fig, axes = plots.panel_figure(3 * rows, ncols=3, size_per_panel=(5.0, 2.2))
    images = (examples["inputs"], examples["reconstructions"],
              (examples["reconstructions"] - examples["inputs"]) ** 2)
    for row, kind in enumerate(examples["kinds"]):
        flagged = "flagged" if examples["scores"][row] > examples["threshold"] else "not flagged"
        titles = (f"{kind}: input", f"reconstruction (MSE {examples['scores'][row]:.3f}, "
                  f"{flagged})", "squared error")
        # The input's colour range for the reconstruction too, so that they compare.
        limits = (examples["inputs"][row].min(), examples["inputs"][row].max())
        for column, (image, title) in enumerate(zip(images, titles)):
            ax = axes[3 * row + column]
            vmin, vmax = limits if column < 2 else (None, None)
            shown = ax.imshow(image[row], origin="lower", aspect="auto", cmap="magma",
                              vmin=vmin, vmax=vmax)
            fig.colorbar(shown, ax=ax)
            ax.set(xlabel="frame", ylabel="mel band")
            ax.set_title(title, fontsize=9)
    return fig


def write(config, results: dict) -> cli.Report:
    history, panels = results["history"], results["histograms"]
    labels = np.asarray(results["test_labels"], bool)
    return cli.Report(
        markdown=summary(config, results),
        results={key: value for key, value in results.items()
                 if key not in ("history", "test_labels", "histograms", "examples")},
        tables={"results.csv": results["detectors"], "runs.csv": results["runs"]},
        figures={
            "loss_curves.png": plots.learning_curves_figure({AUTOENCODER: history},
                                                            ylabel="MSE"),
            # Test scores of normal and anomalous clips and the threshold, per seed and
            # reference.
            "error_histograms.png": plots.histogram_figure(
                {title: {"normal": scores[~labels], "anomalous": scores[labels]}
                 for title, (scores, _) in panels.items()},
                {title: threshold for title, (_, threshold) in panels.items()},
                xlabel="reconstruction MSE of a test clip", ylabel="clips", log_x=True),
            "spectrograms.png": spectrogram_figure(results)},
        metrics={AUTOENCODER: (history, [row["seed"] for row in results["runs"]])},
    )


def validate(config: default_config.Config) -> None:
    """The checks that span fields."""
    held_out = max(1, round(config.validation_fraction * config.n_train))
    if held_out < 2 or config.n_train - held_out < config.batch_size:
        raise ValueError(
            f"--validation_fraction {config.validation_fraction} of --n_train "
            f"{config.n_train} must hold out at least 2 clips and leave at least "
            f"--batch_size {config.batch_size} for training")
    if config.pca_components > config.n_train - held_out:
        raise ValueError(f"--pca_components must be at most the {config.n_train - held_out} "
                         f"training clips, got {config.pca_components}")


STUDY = cli.Study(
    "spectrogram_anomaly", default_config.get_config, run_study, write, validate=validate,
    smoke_flags=("--n_train=10", "--n_test_normal=6", "--n_test_anomalous=4", "--seeds=1",
                 "--epochs=1", "--batch_size=8", "--pca_components=2", "--validation_fraction=0.2"),
)


if __name__ == "__main__":
    cli.run(STUDY)
