r"""The MNIST MLP 784-128-256-10 of the coursework: design choices and tuning.

Question: what do batch size, RMSprop's rho, a bad initialization, L1 / L2 and dropout do
to this MLP (``optlab.models.MLP``, ReLU, RMSprop as Keras has it), which configuration do
a grid search and Hyperband pick (by the mean over seeds of the last validation accuracy
or macro F1; the best retrained on train + validation), and does the tuned MLP (each
seed's best epoch kept) reach 98% on the full set? Data: 4800 / 1200 / 1000 images
(``--full``: 48 000 / 12 000 / 10 000). Variants of one shape train as one program.

    python -m experiments.mnist_mlp
    python -m experiments.mnist_mlp --study=batch_size --seeds=5 --epochs=100
    python -m experiments.mnist_mlp --study=search --objective=val_f1
    python -m experiments.mnist_mlp --study=tuned --full

Writes table.md (per study and variant over seeds: test accuracy and macro F1, validation
accuracy, updates, fit and compile time), results.json, results.csv, metrics.jsonl and per
study STUDY_learning_curves.png, STUDY_weights.png (seed 0's kernels before and after
training) and STUDY_confusion.png.
"""

import functools
import itertools
from typing import Sequence

import numpy as np
import optax

import optlab
from configs import mnist_mlp as default_config
from experiments.kit import cli, options, training_log
from optlab import datasets, models, plots, report, search, stats, train
from optlab.train.losses import kernels

INPUTS, CLASSES = 784, 10
EPOCHS_PER_CALL = 10  # epochs per compiled call of fit: fewer host round trips
CHECKPOINT_EVERY = 10  # epochs between checkpoints under --workdir
EVAL_BATCH = 1000  # rows per batch when predicting on validation and test sets
SPECS = {"test_accuracy": ".2f", "val_accuracy": ".2f", "test_f1": ".4f", "val_f1": ".4f"}
HEAVY = ("result", "history", "confusion")  # in metrics.jsonl and the figures, not the tables
OPTIMIZERS = {  # rates (and rho) injected, so the runs of one program can differ in them
    "rmsprop": optax.inject_hyperparams(optlab.rmsprop)(learning_rate=1e-3, gamma=0.9,
                                                         eps=1e-7),  # Keras's eps
    "sgd": optax.inject_hyperparams(optlab.sgd)(learning_rate=0.01),
}


@functools.cache  # one object per shape and rule: the grid trains a shape's variants together
def model_for(hidden: tuple[int, int], dropout: float, kernel_init) -> functools.partial:
    return functools.partial(models.MLP, (INPUTS, *hidden, CLASSES), dropout=dropout,
                             kernel_init=kernel_init)


def train_variants(config, label: str, variants: Sequence[train.Variant], data, *, log: cli.Log,
                   epochs: int | None = None, on_train_and_validation: bool = False,
                   select_by: str | None = None) -> dict[str, dict]:
    """Trains ``variants`` over the seeds (one program per shape): per variant its row (the
    setting, updates, times, scores over the seeds), result, history and test confusion.
    ``on_train_and_validation`` trains on both sets; ``select_by`` (``"val_accuracy"``)
    keeps each run's best epoch by that measure instead of its last."""
    epochs = epochs or config.epochs
    training, validation = (data.x_train, data.y_train), (data.x_validation, data.y_validation)
    if on_train_and_validation:
        training, validation = tuple(map(np.concatenate, zip(training, validation))), None
    rows = len(training[1])
    grid = train.run_grid(
        [v._replace(batch_size=rows) if v.batch_size == default_config.FULL_BATCH else v
         for v in variants], task=train.classification(), data=training, **config.grid_options(
            log, f"{label}-{epochs}", max_epochs=epochs, validation=validation,
            eval_batch_size=EVAL_BATCH, restore_best=select_by is not None, monitor=select_by,
            epochs_per_call=min(EPOCHS_PER_CALL, epochs), checkpoint_every=CHECKPOINT_EVERY))
    sets = {"test": (data.x_test, data.y_test), "val": validation}
    scores = train.grid.per_variant(grid, lambda fit: {
        split: train.class_scores(fit, xy, CLASSES, batch_size=EVAL_BATCH)
        for split, xy in sets.items() if xy is not None})
    records = {}
    for name, result in grid.items():
        variant, fit = result.variant, result.fit
        per_seed = {f"{split}_{key}": scores[name][split][key]
                    for split in scores[name] for key in ("accuracy", "f1")}
        records[name] = {
            "variant": name, "batch_size": variant.batch_size, "l1": variant.l1, "l2": variant.l2,
            **variant.hyperparams, "updates": epochs * (rows // variant.batch_size),
            "fit_runs": fit.best_epoch.shape[0], "run_seconds": fit.run_seconds,
            "compile_seconds": fit.compile_seconds, "per_seed": per_seed, "result": result,
            "history": result.history, "confusion": scores[name]["test"]["confusion"].sum(axis=0),
        } | stats.mean_std_columns({key: values * (1 if key.endswith("f1") else 100)
                                    for key, values in per_seed.items()}, SPECS)
    return records


def mlp_variant(config, name: str, *, hidden=None, optimizer="rmsprop", learning_rate=None,
                rho=None, kernel_init="glorot", dropout=0.0, batch_size=None, **penalties):
    """A variant of the MLP: RMSprop as Keras has it with the config's rate, rho and batch
    unless told otherwise (batch ``"N"``: the whole training set); ``penalties``: l1, l2."""
    hyperparams = {"learning_rate": learning_rate or config.learning_rate}
    if optimizer == "rmsprop":
        hyperparams["gamma"] = config.rho if rho is None else rho
    return train.Variant(name, model_for(hidden or config.hidden, dropout, kernel_init),
                         OPTIMIZERS[optimizer], hyperparams,
                         batch_size=batch_size or config.batch_size, **penalties)


def design_variants(config) -> list[train.Variant]:
    mean, std = config.bad_init
    bad = dict(optimizer="sgd", learning_rate=config.sgd_learning_rate,
               kernel_init=("normal", mean, std))
    bad_name = f"sgd, normal({mean:g}, {std:g}) init"
    return [
        mlp_variant(config, f"rmsprop rho={config.rho:g}"),
        *(mlp_variant(config, f"rmsprop rho={rho:g}", rho=rho) for rho in config.rhos),
        *(mlp_variant(config, f"rmsprop l2={a:g}", l2=a) for a in config.l2_strengths),
        mlp_variant(config, bad_name, **bad),
        *(mlp_variant(config, f"{bad_name} l2={a:g}", l2=a, **bad) for a in config.l2_strengths),
        mlp_variant(config, f"rmsprop l1={config.l1_strength:g} dropout={config.dropout_rate:g}",
                    l1=config.l1_strength, dropout=config.dropout_rate),
    ]


def search_variant(config, first: int, second: int, l2: float, learning_rate: float,
                   prefix: str = "") -> train.Variant:
    return mlp_variant(config, f"{prefix}{first}-{second} l2={l2:g} lr={learning_rate:g}",
                       hidden=(first, second), l2=l2, learning_rate=learning_rate,
                       kernel_init="he")


def run_search(config, data, log: cli.Log) -> dict:
    """The grid at the full budget, then Hyperband reusing its scores; both bests retrained."""
    space = [search_variant(config, *setting) for setting in itertools.product(
        config.search_first, config.search_second, config.search_l2, config.search_learning_rates)]
    trained: list[dict] = []  # the records of each evaluation: the grid's, then Hyperband's

    def evaluate(indices: list[int], epochs: int) -> np.ndarray:
        trained.append(train_variants(config, f"search-{len(trained)}",
                                      [space[i] for i in indices], data, epochs=epochs, log=log))
        # The mean over seeds; NaN (a diverged run) counts as the worst.
        scores = np.array([np.mean(r["per_seed"][config.objective])
                           for r in trained[-1].values()])
        return np.where(np.isfinite(scores), scores, -np.inf)

    grid = search.grid_search(len(space), evaluate, max_epochs=config.epochs)
    band = search.hyperband(len(space), evaluate, max_epochs=config.epochs, eta=config.eta,
                            seed=config.seed, known={(t.config, t.epochs): t.score
                                                     for t in grid.trials})
    bests = {"grid": space[grid.best], "hyperband": space[band.best]}
    retrained = list({variant.name: variant for variant in bests.values()}.values())
    return {
        "records": train_variants(config, "search-best", retrained, data,
                                  on_train_and_validation=True, log=log),
        "grid": trained[0], "hyperband": [r for records in trained[1:] for r in records.values()],
        "searches": {"grid": grid, "hyperband": band}, "reference": bests["grid"].name,
        "space": [variant.name for variant in space],
        "best": {method: variant.name for method, variant in bests.items()},
    }


def run_study(config: default_config.Config, log: cli.Log = print) -> dict:
    """Runs the chosen studies (no file output) and returns their results."""
    data = datasets.mnist_splits(train_limit=config.train_limit, test_limit=config.test_limit,
                                 validation_fraction=config.validation_fraction)
    log(f"MNIST: {len(data.y_train)} train / {len(data.y_validation)} validation / "
        f"{len(data.y_test)} test images")
    chosen = {"batch_size": [mlp_variant(config, f"batch {size}", batch_size=size)
                             for size in config.batch_sizes],
              "design": design_variants(config),
              "tuned": [search_variant(config, *config.tuned, prefix="tuned ")]}
    studies = {}
    for study in config.studies:
        if study == "search":
            studies[study] = run_search(config, data, log)
            continue
        studies[study] = {"reference": next(  # the figures' variant: the first at --batch_size
            (v.name for v in chosen[study] if v.batch_size == config.batch_size),
            chosen[study][0].name),
            "records": train_variants(config, study, chosen[study], data, log=log,
                                      select_by="val_accuracy" if study == "tuned" else None)}
    return {"config": config, "studies": studies}


SECONDS = report.format_seconds
COLUMNS = [("variant", "variant"), ("updates", "updates"),
           ("test_accuracy_text", "test accuracy %, mean ± std"), ("test_f1_text", "test macro F1"),
           ("val_accuracy_text", "val accuracy % (kept weights)"), ("fit_runs", "runs in its fit"),
           ("run_seconds", "fit time (its runs)", SECONDS), ("compile_seconds", "compile", SECONDS)]
GRID_COLUMNS = [("variant", "configuration"), ("objective", "mean objective over seeds", "{:.4f}")]
STUDY_TITLES = {
    "batch_size": "Batch size 1, 256 and N (RMSprop, lr 1e-3)",
    "design": "Design choices: RMSprop's rho, a bad initialization, L2, L1 + dropout",
    "search": "Hyperparameter search: grid and Hyperband, best configuration retrained",
    "tuned": "The coursework's tuned MLP",
}


def summary(config, results: dict, rows: list[dict]) -> str:
    records = [r for result in results["studies"].values() for r in (*result["records"].values(),
               *result.get("grid", {}).values(), *result.get("hyperband", ()))]
    data = "the full set" if config.train_limit is None else "the coursework's subset"
    lines = [f"# MNIST MLP on {data}: {config.seeds} seeds, {config.epochs} epochs, "
             "mean ± std over seeds", "",
             "Variants in one fit are trained together; their fit time is shared.",
             # Every fit a study trained: those it shows and, for the search, those it scored.
             *training_log.resume_lines({", ".join(p["variants"]): p["first_epoch"] for p in
                                         train.grid.programs(r["result"] for r in records)})]
    for study, result in results["studies"].items():
        lines += ["", f"## {STUDY_TITLES[study]}", "", report.markdown_table(
            [row for row in rows if row["study"] == study], COLUMNS)]
        if study == "search":
            lines += search_summary(config, result)
        if study == "tuned" and config.train_limit is None:
            accuracy = next(iter(result["records"].values()))["test_accuracy"]
            lines += ["", f"On the full set the tuned MLP "
                          f"{'reaches' if accuracy >= 98 else 'does NOT reach'} 98% test "
                          f"accuracy (mean {accuracy:.2f}%)."]
    return "\n".join(lines) + "\n"


def search_summary(config, result: dict) -> list[str]:
    grid, band = result["searches"]["grid"], result["searches"]["hyperband"]
    top = sorted(grid.trials, key=lambda trial: -trial.score)[:5]

    def seconds(records):  # the programs that trained ``records``, each once
        fits = train.grid.programs(record["result"] for record in records)
        return (f"{SECONDS(sum(fit['run_seconds'] for fit in fits))} (compile "
                f"{SECONDS(sum(fit['compile_seconds'] for fit in fits))})")

    return [
        f"Objective: {config.objective} after training on the training set. Best of the grid "
        f"({len(result['space'])} configurations x {config.epochs} epochs = "
        f"{grid.epochs_spent} configuration-epochs, {seconds(result['grid'].values())}): "
        f"**{result['best']['grid']}**. Best of Hyperband (eta = {config.eta}, R = "
        f"{config.epochs}; {len(band.trials)} trials, {band.epochs_spent} configuration-epochs, "
        f"promoted configurations retrained from scratch, {band.epochs_trained} of them beyond "
        f"the grid's runs, {seconds(result['hyperband'])}): "
        f"**{result['best']['hyperband']}** (score {band.best_score:.4f}). The table above is "
        "the best configuration(s) retrained on train + validation.", "", "Top of the grid:", "",
        report.markdown_table([{"variant": result["space"][t.config], "objective": t.score}
                               for t in top], GRID_COLUMNS),
    ]


def figures(study: str, result: dict) -> dict:
    """Learning curves (accuracy and loss per epoch, a curve per variant), and the
    reference variant's kernels before and after training and its test confusion."""
    curves = ({result["best"]["grid"]: result["grid"][result["best"]["grid"]]}
              if study == "search" else result["records"])
    fig = plots.learning_curves_figure({name: record["history"] for name, record in curves.items()},
                                       ("accuracy", "loss"), by="measure", legend_size="x-small")
    name = result["reference"]
    reference = result["records"][name]
    trained = reference["result"]  # seed 0's kernels: at initialization and trained
    runs = train.init_runs(trained.variant.model, trained.variant.optimizer, seeds=[0])
    layers = [(np.asarray(initial)[0], np.asarray(final)[trained.runs.start])
              for initial, final in zip(kernels(runs.state.params), kernels(trained.fit.params))]
    return {
        f"{study}_learning_curves.png": fig,
        f"{study}_weights.png": plots.violin_figure(
            {f"layer {i + 1} {initial.shape[0]}x{initial.shape[1]}":
             {"initial": initial, "trained": final}
             for i, (initial, final) in enumerate(layers)},
            ylabel="kernel weight", title=f"{name} (seed 0)"),
        f"{study}_confusion.png": plots.confusion_figure(reference["confusion"],
                                                         title=f"{name}: test confusion"),
    }


def write(config, results: dict) -> cli.Report:
    rows, metrics, drawn = [], {}, {}
    for study, result in results["studies"].items():
        rows += [{"study": study} | {key: value for key, value in record.items()
                                     if key not in HEAVY} for record in result["records"].values()]
        shown = result["records"] | {f"grid {n}": r for n, r in result.get("grid", {}).items()}
        metrics |= {f"{study}/{name}": record["history"] for name, record in shown.items()}
        drawn |= figures(study, result)
    searched = {key: value for key, value in results["studies"].get("search", {}).items()
                if key not in ("records", "grid", "hyperband")}
    return cli.Report(markdown=summary(config, results, rows),
                      results={"config": config, "variants": rows, "search": searched or None},
                      tables={"results.csv": rows}, figures=drawn, metrics=metrics)


def validate(config: default_config.Config) -> None:
    """The checks that span fields: the batches and the split against the training rows."""
    rows, held_out = datasets.mnist_split_sizes(config.train_limit, config.validation_fraction)
    if rows < 1 or held_out < 1:
        raise ValueError("the validation split leaves an empty training or validation set")
    for size in (*config.batch_sizes, config.batch_size):
        if size != default_config.FULL_BATCH and size > rows:
            raise ValueError(f"--batch_sizes and --batch_size take sizes in [1, {rows}] (the "
                             f"training rows) or N, got {size}")


STUDY = cli.Study(
    "mnist_mlp", default_config.get_config, run_study, write, validate=validate,
    checks={"studies": options.some_of(default_config.STUDIES),
            "objective": options.one_of(default_config.OBJECTIVES)},
    smoke_flags=("--study=tuned", "--seeds=1", "--epochs=1", "--batch_size=1000"),
)


if __name__ == "__main__":
    cli.run(STUDY)
