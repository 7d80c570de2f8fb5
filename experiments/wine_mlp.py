r"""Backpropagation and a learnable activation: an MLP on UCI red wine, over seeds.

Question: does the MLP 11-16-12-8-2 reach a mean test accuracy above 0.70 on UCI red
wine (label: quality >= 6) with Leaky ReLU, and with the learnable power activation
``x^n`` after its third dense layer (``n`` kept >= 1.01, last in the optax chain)? Two
recipes. ``coursework`` (the default) is the coursework's NumPy network in optax terms:
all rows min-max scaled, then scikit-learn's split with random_state 1; U(-0.5, 0.5)
weights (the power layer's U(0, 1)); 32-row batches in order with the last partial one;
summed kernel gradients plus 0.01 W, averaged biases, the power layer at 5e-4 (optax
``multi_transform``); 150 epochs, 100 for the power network; seeds vmapped. ``keras``
is the Keras reading: a stratified split, Glorot weights, shuffled batches, SGD at 1e-3
and 1e-2 with an L2 penalty, 150 epochs, the engine's grid. Under ``coursework`` seed 0
at the first rate is trained again with the hand-written backward pass (``manual_mlp``).

    python -m experiments.wine_mlp --seeds=20
    python -m experiments.wine_mlp --recipe=keras --seeds=10 --learning_rates=0.001,0.01
    python -m experiments.wine_mlp --recipe=keras --epochs=1500 --workdir=/tmp/wine

Writes table.md (per variant and rate, mean ± std over seeds: train and test accuracy,
the lowest seed's, the learned exponent, whether the target is met; the manual check),
results.json, results.csv, manual.csv, metrics.jsonl, loss_curves.png and
manual_vs_autodiff.png.
"""

import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import optlab
from configs import wine_mlp as default_config
from experiments.kit import cli, training_log
from optlab import datasets, models, plots, report, stats, sweep, train
from optlab.models import manual_mlp

VARIANTS = ("leaky_relu", "power")
INPUTS, CLASSES = 11, 2
# Epochs per compiled call: one epoch takes milliseconds, so a host round trip per epoch
# would cost as much as the training; progress is still reported for every epoch.
EPOCHS_PER_CALL = 10


def load_data(config: default_config.Config) -> datasets.WineSplit:
    """The recipe's split, cut to ``train_limit`` / ``test_limit`` rows if set."""
    if config.recipe == "coursework":
        data = datasets.load_wine_coursework(threshold=config.threshold)
    else:
        data = datasets.load_wine(threshold=config.threshold, test_fraction=config.test_fraction,
                                  seed=config.split_seed)
    train_rows, test_rows = slice(config.train_limit), slice(config.test_limit)
    return data._replace(x_train=data.x_train[train_rows], y_train=data.y_train[train_rows],
                         x_test=data.x_test[test_rows], y_test=data.y_test[test_rows])


@functools.cache  # one object per variant: the grid trains a variant's rates as one program
def model_fn(config: default_config.Config, variant: str) -> Callable[..., models.MLP]:
    """Builds the variant's MLP from its ``nnx.Rngs``."""
    activation = tuple("power" if variant == "power" and layer == config.power_layer
                       else "leaky_relu" for layer in range(len(config.hidden_sizes)))
    return functools.partial(models.MLP, (INPUTS, *config.hidden_sizes, CLASSES),
                             activation=activation)


@functools.cache
def make_optimizer(variant: str, learning_rate: float) -> optax.GradientTransformation:
    """SGD with an injectable learning rate; the power variant projects its exponent last."""
    sgd = optax.inject_hyperparams(optlab.sgd)(learning_rate=learning_rate)
    return optax.chain(sgd, models.project_exponents()) if variant == "power" else sgd


def manual_check(variant, rate, initial, autodiff, autodiff_losses, train_manually, data) -> dict:
    """Seed 0 at the first rate trained again by ``train_manually(initial)`` with the
    hand-written backward pass, from the same weights on the same batches, against the
    autodiff run's parameters ``autodiff`` and per-epoch losses."""
    (trained, losses), timing = sweep.time_compiled(train_manually, initial, repeats=1)
    gap = np.abs(np.asarray(losses) - autodiff_losses)
    x_test = np.asarray(data.x_test, np.float32)
    return {
        "variant": variant, "learning_rate": rate, "seed": 0,
        "max_param_difference": max(float(np.max(np.abs(np.asarray(a) - np.asarray(m))))
                                    for a, m in zip(*map(jax.tree.leaves, (autodiff, trained)))),
        "max_param_magnitude": max(float(np.max(np.abs(leaf)))
                                   for leaf in jax.tree.leaves(autodiff)),
        "max_loss_difference": float(gap.max()),
        "autodiff_test_accuracy": manual_mlp.accuracy(autodiff, x_test, data.y_test),
        "manual_test_accuracy": manual_mlp.accuracy(trained, x_test, data.y_test),
        "manual_seconds": timing.run_seconds, "loss_difference_curve": gap,
    }


def variant_row(config, variant: str, rate: float, per_seed: dict, train_loss, timing) -> dict:
    """A table row: per-seed accuracies (and exponents) as mean ± std, the lowest seed's."""
    test = np.asarray(per_seed["test_accuracy"])
    return {"variant": variant, "learning_rate": rate,
            "epochs": np.asarray(train_loss).shape[1],
            "test_accuracy_mean": float(test.mean()), "test_accuracy_min": float(test.min()),
            "above_target": bool(test.mean() > config.target_accuracy),
            "final_train_loss_mean": float(np.mean(np.asarray(train_loss)[:, -1])),
            "compile_s": timing[0], "run_s": timing[1]} | {
        f"{key}_per_seed": np.asarray(per_seed[key]).tolist()
        for key in ("test_accuracy", "exponent") if key in per_seed} | stats.mean_std_columns(
        per_seed, {key: ".3f" if key == "exponent" else ".4f" for key in per_seed})


def run_keras(config, data, log: cli.Log) -> tuple[list, list, dict, dict]:
    """The Keras reading: the engine's grid (a variant's rates x seeds are one program)."""
    grid = train.run_grid(
        [train.Variant(f"{variant} lr={rate:g}", model_fn(config, variant),
                       make_optimizer(variant, config.learning_rates[0]),
                       {"learning_rate": rate}, l2=config.l2, batch_size=config.batch_size)
         for variant in VARIANTS for rate in config.learning_rates],
        task=train.classification(), data=(data.x_train, data.y_train), **config.grid_options(
            log, validation=(data.x_test, data.y_test), restore_best=False,
            epochs_per_call=EPOCHS_PER_CALL))
    train_accuracy = train.grid.per_variant(grid, lambda fit: train.evaluate(
        fit, train.classification(), (data.x_train, data.y_train))["accuracy"])
    rows = []
    for name, result in grid.items():
        variant, rate = VARIANTS[result.group], result.variant.hyperparams["learning_rate"]
        # The test set is fit's validation set: its last epoch is the final model's.
        per_seed = {"train_accuracy": train_accuracy[name],
                    "test_accuracy": result.history["val_accuracy"][:, -1]}
        if variant == "power":
            per_seed["exponent"] = result.take(np.asarray(
                result.fit.params["activations"][config.power_layer]["exponent"][...], np.float64))
        rows.append(variant_row(config, variant, rate, per_seed, result.history["train_loss"],
                                (result.fit.compile_seconds, result.fit.run_seconds)))
    return (rows, [], {name: result.history for name, result in grid.items()},
            {VARIANTS[result.group]: result.fit.first_epoch for result in grid.values()})


def run_coursework(config, data, log: cli.Log) -> tuple[list, list, dict, dict]:
    """The coursework's recipe: per variant and rate, every seed in one vmapped program."""
    training = (np.asarray(data.x_train, np.float32), data.y_train)
    sizes = (INPUTS, *config.hidden_sizes, CLASSES)
    rows, manual, histories = [], [], {}

    def autodiff(params, x, labels):  # the correct chain rule for the exponent
        return manual_mlp.coursework_gradients(jax.grad(manual_mlp.loss)(params, x, labels),
                                               x.shape[0])

    def by_hand(params, x, labels):
        return manual_mlp.coursework_gradients(manual_mlp.gradients(params, x, labels),
                                               x.shape[0])

    for variant in VARIANTS:
        power = (config.power_layer,) if variant == "power" else ()
        epochs = config.power_epochs if variant == "power" else config.epochs
        initial = jax.vmap(lambda key: manual_mlp.coursework_init(key, sizes, power_layers=power))(
            jax.vmap(jax.random.key)(jnp.arange(config.seeds)))
        for index, rate in enumerate(config.learning_rates):
            optimizer = manual_mlp.coursework_optimizer(
                jax.tree.map(lambda leaf: leaf[0], initial), learning_rate=rate,
                power_rate=config.power_learning_rate, l2=config.l2)

            def train_runs(params, gradient_fn=autodiff, optimizer=optimizer, epochs=epochs):
                return manual_mlp.fit_in_order(params, optimizer, training, epochs=epochs,
                                               batch_size=config.batch_size,
                                               gradient_fn=gradient_fn)

            (trained, losses), timing = sweep.time_compiled(jax.vmap(train_runs), initial,
                                                            repeats=1)
            name = f"{variant} lr={rate:g}"
            log(f"{name}: {config.seeds} seeds x {epochs} epochs in {timing}")
            per_seed = {"train_accuracy": manual_mlp.accuracy(trained, *training),
                        "test_accuracy": manual_mlp.accuracy(trained, data.x_test, data.y_test)}
            if power:
                per_seed["exponent"] = np.asarray(trained[power[0]]["exponent"], np.float64)
            histories[name] = {"train_loss": np.asarray(losses)}
            rows.append(variant_row(config, variant, rate, per_seed, losses,
                                    (timing.compile_seconds, timing.run_seconds)))
            if config.manual_check and index == 0:
                first = jax.tree.map(lambda leaf: leaf[0], (initial, trained))
                manual.append(manual_check(
                    variant, rate, first[0], first[1], np.asarray(losses)[0],
                    functools.partial(train_runs, gradient_fn=by_hand), data))
    return rows, manual, histories, {}


def run_study(config: default_config.Config, log: cli.Log = print) -> dict:
    """Trains both variants (and the manual check) and returns the results; no file output."""
    data = load_data(config)
    run = run_coursework if config.recipe == "coursework" else run_keras
    rows, manual, histories, resumed = run(config, data, log)
    for entry in manual:
        log(f"{entry['variant']}: manual backpropagation, max |parameter difference| "
            f"{entry['max_param_difference']:.2e}")
    return {
        "config": config,
        "data": {"train_rows": int(data.x_train.shape[0]), "test_rows": int(data.x_test.shape[0]),
                 "test_majority_accuracy": float(max(np.mean(data.y_test),
                                                     1 - np.mean(data.y_test)))},
        "parameters": {variant: models.count_params(nnx.eval_shape(
            lambda: model_fn(config, variant)(rngs=nnx.Rngs(0)))) for variant in VARIANTS},
        "rows": rows, "manual": manual, "histories": histories, "resumed": resumed,
    }


SECONDS = report.format_seconds
COLUMNS = [("variant", "variant"), ("learning_rate", "SGD lr", "{:g}"), ("epochs", "epochs"),
           ("train_accuracy_text", "train accuracy"), ("test_accuracy_text", "test accuracy"),
           ("test_accuracy_min", "lowest seed's test accuracy", "{:.4f}"),
           ("above_target", "mean test > target", lambda v: "yes" if v else "no"),
           ("exponent_text", "learned exponent"),
           ("final_train_loss_mean", "final train loss", "{:.4f}"),
           ("run_s", "run time (variant)", SECONDS), ("compile_s", "compile", SECONDS)]
MANUAL_COLUMNS = [("variant", "variant"), ("learning_rate", "SGD lr", "{:g}"),
                  ("max_param_difference", "max |param manual - autodiff|", "{:.2e}"),
                  ("max_param_magnitude", "max |param|", "{:.3g}"),
                  ("max_loss_difference", "max |train loss difference|", "{:.2e}"),
                  ("autodiff_test_accuracy", "test accuracy (autodiff)", "{:.4f}"),
                  ("manual_test_accuracy", "test accuracy (manual)", "{:.4f}"),
                  ("manual_seconds", "manual run", SECONDS)]
RECIPES = {  # the summary's sentence on the recipe
    "coursework": "The coursework's recipe (see the study's docstring), its exponent gradient "
                  "corrected; {config.epochs} epochs, {config.power_epochs} for the power "
                  "network; the layer before the power activation at "
                  "{config.power_learning_rate:g}.",
    "keras": "The Keras reading: a stratified split, Glorot weights, shuffled batches, mean "
             "gradients with an L2 penalty, {config.epochs} epochs; every rate on the same seeds.",
}


def summary(config, results: dict) -> str:
    data = results["data"]
    lines = [
        f"## MLP on UCI red wine (quality >= {config.threshold}): "
        f"{data['train_rows']} training / {data['test_rows']} test rows", "",
        f"11-{'-'.join(map(str, config.hidden_sizes))}-2, Leaky ReLU "
        f"({results['parameters']['leaky_relu']} parameters) or with the learnable power "
        f"activation after hidden layer {config.power_layer} "
        f"({results['parameters']['power']} parameters), batch {config.batch_size}, L2 "
        f"{config.l2:g}; mean ± std over {config.seeds} seeds. Target: mean test accuracy > "
        f"{config.target_accuracy:g} (majority class: {data['test_majority_accuracy']:.4f}).",
        "", RECIPES[config.recipe].format(config=config), "",
        report.markdown_table(results["rows"], COLUMNS),
        *training_log.resume_lines(results["resumed"]),
    ]
    if results["manual"]:
        lines += ["", "Manual backpropagation (optlab.models.manual_mlp) against autodiff: seed "
                      "0, same initial weights, batches and update, float32.", "",
                  report.markdown_table(results["manual"], MANUAL_COLUMNS)]
    return "\n".join(lines)


def write(config, results: dict) -> cli.Report:
    histories = results["histories"]
    # The Keras recipe's validation curves are its test set's.
    figures = {"loss_curves.png": plots.learning_curves_figure(histories, ylabel="cross-entropy")}
    tables = {"results.csv": results["rows"]}
    if results["manual"]:
        tables["manual.csv"] = results["manual"]
        figures["manual_vs_autodiff.png"] = plots.convergence_figure(
            {entry["variant"]: entry["loss_difference_curve"][None, :]
             for entry in results["manual"]},
            xlabel="epoch", ylabel="|train loss manual - autodiff|", band=None,
            # Linear: most epochs agree exactly, and a log axis would draw those zeros at
            # the smallest positive difference.
            log_y=False, title="Hand-written gradients against jax.grad (float32)")
    return cli.Report(
        markdown=summary(config, results),
        # The per-epoch curves are in metrics.jsonl and the figures.
        results={k: v for k, v in results.items() if k != "histories"} | {"manual": [
            {k: v for k, v in entry.items() if k != "loss_difference_curve"}
            for entry in results["manual"]]},
        tables=tables, figures=figures, metrics=histories)


def validate(config: default_config.Config) -> None:
    """The batch must fit in the training rows; only the Keras recipe checkpoints."""
    if config.recipe == "coursework" and config.workdir:
        raise ValueError("--workdir goes with --recipe=keras: the coursework's runs have no "
                         "checkpoints (they take seconds)")
    rows = load_data(config).x_train.shape[0]
    if config.batch_size > rows:
        raise ValueError(f"--batch_size={config.batch_size} is larger than the {rows} "
                         "training rows")


# Training runs in float32.
STUDY = cli.Study(
    "wine_mlp", default_config.get_config, run_study, write, validate=validate,
    smoke_flags=("--seeds=1", "--epochs=1", "--power_epochs=1", "--nomanual_check"))


if __name__ == "__main__":
    cli.run(STUDY)
