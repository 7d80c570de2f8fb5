r"""Momentum, RMSprop and Adam on synthetic least squares, swept over hyperparameters and seeds.

Question: how do momentum's beta, RMSprop's gamma, Adam's b1 x b2 and each method's
learning rate change the final loss and the steps to a target loss, with minibatches of
32 rows? Data ``X ~ U(-5, 5)`` (column j scaled by 2j + 1), ``y = X w + N(0, 1)``, one
set per size; the loss is the mean squared error, whose least-squares value ``L(w*)`` is
about 1. Seed s draws ``w0 ~ N(0, I)`` and the shuffles, the same for every setting.
Per size, all sweeps of a method (settings x seeds) are one compiled program, the
hyperparameters traced through ``optax.inject_hyperparams``.

    python -m experiments.linear_regression
    python -m experiments.linear_regression --sizes=500x2 --seeds=20 --methods=adam
    python -m experiments.linear_regression --learning_rates=0.03,0.01 --betas=0.5,0.9

Writes table.md (per size, method and setting: the final loss of the seeds that did not
diverge, the seeds that reached ``--target_factor * L(w*)`` and their steps to it),
results.json, results.csv, convergence_NxD.png (a panel per sweep) and for d = 2
contour_NxD.png (every setting's median-seed path).
"""

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

import optlab
from configs import linear_regression as default_config
from experiments.kit import cli, options
from optlab import plots, report, stats, sweep
from optlab.problems import regression
from optlab.train import minibatch

METHODS: dict[str, Callable[..., optax.GradientTransformation]] = {
    "momentum": optlab.momentum, "rmsprop": optlab.rmsprop, "adam": optlab.adam,
}
DECAY_ARGUMENT = {"momentum": "beta", "rmsprop": "gamma"}  # what the beta sweep varies


class Sweep(NamedTuple):
    """Settings of one method, each run over every seed (a method's sweeps share a program)."""

    method: str
    name: str  # "beta", "b1 x b2" or "learning_rate"
    settings: tuple[dict[str, float], ...]  # keyword arguments of the method, one per setting
    labels: tuple[str, ...]  # e.g. "beta=0.7", "lr=0.01", "b1=0.7, b2=0.9"


class Problem(NamedTuple):
    data: regression.Regression
    solution: regression.LeastSquares
    initial_weights: jax.Array  # (seeds, d), w0 ~ N(0, I): seed s's runs start there
    batches: tuple[jax.Array, jax.Array]  # (seeds, steps, batch, d) rows, (seeds, steps, batch) y


def sweeps(config: default_config.Config, method: str) -> list[Sweep]:
    """The sweeps of ``method``: its decay (Adam: b1 x b2) and its learning rate."""
    if method == "adam":
        decays = [{"b1": p, "b2": q} for p in config.betas for q in config.betas]
        fixed = dict(zip(("b1", "b2"), config.lr_sweep_adam_betas))
    else:
        decays = [{DECAY_ARGUMENT[method]: beta} for beta in config.betas]
        fixed = {DECAY_ARGUMENT[method]: config.lr_sweep_beta}
    rate = {"learning_rate": getattr(config, f"{method}_learning_rate")}
    return [Sweep(method, "b1 x b2" if method == "adam" else "beta",
                  tuple(rate | decay for decay in decays),
                  tuple(", ".join(f"{k}={v:g}" for k, v in decay.items()) for decay in decays)),
            Sweep(method, "learning_rate",
                  tuple({"learning_rate": lr} | fixed for lr in config.learning_rates),
                  tuple(f"lr={lr:g}" for lr in config.learning_rates))]


def validate(config: default_config.Config) -> None:
    """The checks that span fields."""
    for n, d in config.sizes:
        if config.batch_size > n:
            raise ValueError(f"--batch_size={config.batch_size} is larger than n = {n} "
                             f"(size {n}x{d})")
    if config.steps % config.record_every:
        raise ValueError(f"record_every must divide --steps={config.steps}, "
                         f"got {config.record_every}")


def make_problem(config: default_config.Config, n: int, d: int) -> tuple[Problem, sweep.Timing]:
    """The data of size ``n x d``, its least squares and every seed's initial weights and
    minibatches: one compiled program, timed. The data's key depends on (seed, n, d) and
    seed ``s``'s on (seed, s) only: adding sizes or seeds changes nothing else."""

    def build(root):
        data_root, seed_root = jax.random.split(root)
        data = regression.make_regression(
            jax.random.fold_in(jax.random.fold_in(data_root, n), d), n, d)

        def one_seed(seed):
            init_key, shuffle_key = jax.random.split(jax.random.fold_in(seed_root, seed))
            rows = minibatch.shuffled_batches(shuffle_key, n, config.batch_size, config.steps)
            return (jax.random.normal(init_key, (d,), data.features.dtype),
                    minibatch.take_batches((data.features, data.targets), rows))

        return Problem(data, regression.least_squares(data.features, data.targets),
                       *jax.vmap(one_seed)(jnp.arange(config.seeds)))

    return sweep.time_compiled(build, jax.random.key(config.seed), repeats=config.repeats)


def run_method(config, problem: Problem, method_sweeps: list[Sweep]):
    """Every sweep of one method, all settings x seeds, in one compiled program.

    Returns per sweep its losses (settings, seeds, records) and trajectories (or None),
    and the program's timing.
    """
    settings = [setting for sw in method_sweeps for setting in sw.settings]
    dtype = problem.data.features.dtype
    arrays = {name: jnp.asarray([s[name] for s in settings], dtype) for name in settings[0]}
    keep_trajectory = problem.data.features.shape[1] == 2  # for the contour figure
    factory = optax.inject_hyperparams(METHODS[method_sweeps[0].method])

    def run(setting, seed_inputs, solution):
        result = minibatch.run_minibatch(
            regression.mse_loss, factory(**setting), *seed_inputs, evaluate=solution.mse,
            record_every=config.record_every, keep_trajectory=keep_trajectory)
        return result.losses, result.trajectory

    # The settings of one seed share its minibatches, and the gradients of all settings
    # become one small matrix product.
    (losses, trajectories), timing = sweep.run_settings(
        run, arrays, (problem.initial_weights, problem.batches), problem.solution,
        repeats=config.repeats)
    ends = np.cumsum([len(sw.settings) for sw in method_sweeps])[:-1]
    losses = np.split(np.asarray(losses), ends)
    paths = ([None] * len(losses) if trajectories is None
             else np.split(np.asarray(trajectories), ends))
    return list(zip(losses, paths)), timing


def summary_rows(size, sw: Sweep, losses, target, record_every, timing) -> list[dict]:
    """One row per setting: final loss, divergence, steps to target, times."""
    rows = []
    steps = stats.first_below(losses, target, inclusive=True) * record_every
    for index, (label, setting) in enumerate(zip(sw.labels, sw.settings)):
        final = losses[index, :, -1]
        # A run that ends above its initial loss has diverged, even if still finite.
        diverged = ~np.isfinite(final) | (final > losses[index, :, 0])
        loss = stats.summarize(np.where(diverged, np.nan, final))
        reached = stats.summarize(steps[index])
        rows.append({
            "size": size, "method": sw.method, "sweep": sw.name, "setting": label, **setting,
            "final_loss_mean": loss.mean, "final_loss_std": loss.std,
            "final_loss_median": loss.median, "final_loss_text": None if not loss.count else
            f"{_significant(loss.mean, 4)} ± {_significant(loss.std, 2)}",
            "diverged": int(diverged.sum()), "reached": reached.count,
            "reached_of": f"{reached.count}/{reached.total}", "steps_mean": reached.mean,
            "steps_std": reached.std, "steps_text": stats.format_mean_std(reached, ".0f"),
            "program_s": timing.run_seconds, "compile_s": timing.compile_seconds})
    return rows


def _significant(value: float, digits: int) -> str:
    """``digits`` significant digits, trailing zeros kept (1.000); 1184, not 1.184e+03."""
    return f"{value:.0f}" if abs(value) >= 10**digits else f"{value:#.{digits}g}".rstrip(".")


COLUMNS = [("method", "method"), ("sweep", "sweep"), ("setting", "setting"),
           ("final_loss_text", "final loss (mean ± std)"), ("diverged", "diverged"),
           ("reached_of", "reached target"), ("steps_text", "steps to target (mean ± std)"),
           ("program_s", "program time", report.format_seconds),
           ("compile_s", "compile", report.format_seconds)]


def run_size(config, n: int, d: int, log: cli.Log) -> dict:
    """Every sweep on one size: rows, curves, paths and times."""
    size = f"{n}x{d}"
    problem, setup = make_problem(config, n, d)
    solution = jax.tree.map(np.asarray, problem.solution)
    best = float(solution.loss)
    target = config.target_factor * best
    log(f"{size}: data, least squares, initial weights and minibatches of {config.seeds} "
        f"seeds in {setup}; loss {best:.4f}, target {target:.4f}")
    rows, sweep_results, programs = [], [], []
    for method in config.methods:
        method_sweeps = sweeps(config, method)
        outputs, timing = run_method(config, problem, method_sweeps)
        runs = sum(len(sw.settings) for sw in method_sweeps) * config.seeds
        programs.append({"method": method, "runs": runs, "run_s": timing.run_seconds,
                         "compile_s": timing.compile_seconds})
        log(f"{size} {method}: {runs} runs ({' and '.join(sw.name for sw in method_sweeps)} "
            f"sweeps x {config.seeds} seeds) in {timing}")
        for sw, (losses, trajectories) in zip(method_sweeps, outputs):
            new_rows = summary_rows(size, sw, losses, target, config.record_every, timing)
            rows += new_rows
            sweep_results.append({
                "method": sw.method, "sweep": sw.name, "labels": list(sw.labels),
                "losses": losses, "paths": None if trajectories is None else [
                    path[stats.median_index(curves[:, -1])]
                    for path, curves in zip(trajectories, losses)]})
            log(f"  {sw.name} sweep: reached the target "
                f"{sum(row['reached'] for row in new_rows)}/{losses.shape[0] * losses.shape[1]}"
                f", diverged {sum(row['diverged'] for row in new_rows)}")
    per_epoch = minibatch.batches_per_epoch(n, config.batch_size)
    context = {
        "n": n, "d": d, "least_squares_loss": best, "target": target,
        "least_squares_weights": solution.weights,
        "true_weights": np.asarray(problem.data.true_weights), "batches_per_epoch": per_epoch,
        "rows_dropped_per_epoch": n - per_epoch * config.batch_size,
        "epochs": config.steps / per_epoch, "setup_s": setup.run_seconds,
        "setup_compile_s": setup.compile_seconds,
    }
    return {"context": context, "rows": rows, "programs": programs, "sweeps": sweep_results,
            "solution": solution}


def run_study(config: default_config.Config, log: cli.Log = print) -> dict:
    """Runs the whole study (no file output) and returns its results."""
    sizes = {f"{n}x{d}": run_size(config, n, d, log) for n, d in config.sizes}
    programs = [p for entry in sizes.values() for p in entry["programs"]]
    totals = {"sweeps": sum(len(entry["sweeps"]) for entry in sizes.values()),
              "programs": len(programs)}
    totals |= {key: sum(p[key] for p in programs) for key in ("runs", "run_s", "compile_s")}
    totals |= {key: sum(entry["context"][key] for entry in sizes.values())
               for key in ("setup_s", "setup_compile_s")}
    return {"config": config, "devices": str(jax.devices()), "sizes": sizes, "totals": totals}


def render_tables(config, results: dict) -> str:
    parts = [
        "\n".join([
            f"## n = {c['n']}, d = {c['d']}: {config.seeds} seeds, {config.steps} steps of "
            f"{config.batch_size} rows", "",
            f"{c['epochs']:.3g} epochs of {c['batches_per_epoch']} minibatches "
            f"({c['rows_dropped_per_epoch']} rows dropped per epoch). Least-squares "
            f"loss L(w*) = {c['least_squares_loss']:.4f}; target {config.target_factor:g} "
            f"L(w*) = {c['target']:.4f}, checked every {config.record_every} step(s).", "",
            report.markdown_table(entry["rows"], COLUMNS)])
        for entry in results["sizes"].values() for c in (entry["context"],)]
    totals = results["totals"]
    seconds = {key: report.format_seconds(value) for key, value in totals.items()}
    parts.append(
        f"{totals['sweeps']} sweeps in {totals['programs']} programs, {totals['runs']} runs of "
        f"{config.steps} steps: {seconds['run_s']} for one call of each program (compile "
        f"{seconds['compile_s']}); {seconds['setup_s']} for the data, least squares and "
        f"minibatches (compile {seconds['setup_compile_s']}); medians of {config.repeats} "
        "timed calls.\n")
    return "\n\n".join(parts)


def convergence_figure(config, entry: dict):
    """Full-data loss against step, one panel per sweep, one curve per setting."""
    n, d = entry["context"]["n"], entry["context"]["d"]
    return plots.panels_figure(
        {f"{r['method']}, {r['sweep']} sweep, n = {n}, d = {d}": dict(zip(r["labels"], r["losses"]))
         for r in entry["sweeps"]},
        xlabel="step", ylabel=f"full-data loss, median of {config.seeds} seeds, IQR band",
        ncols=2, threshold=entry["context"]["target"], x_step=config.record_every)


def contour_figure(entry: dict):
    """For d = 2: the loss over the weights and the median seed's path of every setting,
    a panel per sweep, in a box around the starts and w* with room to overshoot."""
    w_star, gram = entry["solution"].weights, entry["solution"].gram
    anchors = np.stack([p[0] for r in entry["sweeps"] for p in r["paths"]] + [w_star])
    low, high = anchors.min(axis=0), anchors.max(axis=0)
    margin = np.maximum(0.5 * (high - low), 0.5)
    (x0, y0), (x1, y1) = low - margin, high + margin
    return plots.contour_figure(
        lambda w: (w - w_star) @ gram @ (w - w_star), (x0, x1, y0, y1),
        {f"{r['method']}, {r['sweep']}: L(w) - L(w*), median seed":
         dict(zip(r["labels"], r["paths"])) for r in entry["sweeps"]}, w_star)


def write(config, results: dict) -> cli.Report:
    figures = {}
    for size, entry in results["sizes"].items():
        figures[f"convergence_{size}.png"] = convergence_figure(config, entry)
        if entry["context"]["d"] == 2:
            figures[f"contour_{size}.png"] = contour_figure(entry)
    # The per-step curves and paths are in the figures.
    sizes = {size: {key: entry[key] for key in ("context", "rows", "programs")}
             for size, entry in results["sizes"].items()}
    return cli.Report(
        markdown=render_tables(config, results), results=results | {"sizes": sizes},
        tables={"results.csv": [row for entry in sizes.values() for row in entry["rows"]]},
        figures=figures)


# Training runs in float32.
STUDY = cli.Study(
    "linear_regression", default_config.get_config, run_study, write, validate=validate,
    checks={"methods": options.some_of(METHODS)},
    smoke_flags=("--sizes=64x2", "--seeds=2", "--steps=20", "--methods=adam", "--repeats=1",
                 "--betas=0.9", "--learning_rates=0.01"),
)


if __name__ == "__main__":
    cli.run(STUDY)
