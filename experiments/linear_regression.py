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

Writes table.md (per size, method and setting: the final loss over the seeds that did not
diverge, the seeds that reached ``--target_factor * L(w*)`` and their steps to it, mean
± std; the program's time and compile time), results.json, results.csv,
convergence_NxD.png (loss against step: median and interquartile band, a panel per
sweep) and for d = 2 contour_NxD.png (every setting's median-seed path).
"""

from __future__ import annotations

import time
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


class SeedInputs(NamedTuple):
    """What each seed's runs start from, shared by every setting."""

    initial_weights: jax.Array  # (seeds, d), w0 ~ N(0, I)
    # (seeds, steps, batch, d) rows and (seeds, steps, batch) targets of every minibatch
    batches: tuple[jax.Array, jax.Array]


def sweeps(config: default_config.Config, method: str) -> list[Sweep]:
    """The sweeps of ``method``: its decay (Adam: b1 x b2) and its learning rate."""
    rate = getattr(config, f"{method}_learning_rate")
    if method == "adam":
        grid = [(b1, b2) for b1 in config.betas for b2 in config.betas]
        decays = Sweep(method, "b1 x b2", tuple({"learning_rate": rate, "b1": p, "b2": q}
                                                for p, q in grid),
                       tuple(f"b1={p:g}, b2={q:g}" for p, q in grid))
        fixed = dict(zip(("b1", "b2"), config.lr_sweep_adam_betas))
    else:
        decay = DECAY_ARGUMENT[method]
        decays = Sweep(method, "beta",
                       tuple({"learning_rate": rate, decay: b} for b in config.betas),
                       tuple(f"{decay}={beta:g}" for beta in config.betas))
        fixed = {decay: config.lr_sweep_beta}
    return [decays, Sweep(method, "learning_rate",
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
    """The data of size ``n x d`` and its least squares, one compiled program, timed. The
    data key depends on (seed, n, d) only: adding sizes changes no size's data."""

    def build(root):
        data_key = jax.random.fold_in(jax.random.fold_in(jax.random.split(root)[0], n), d)
        data = regression.make_regression(data_key, n, d)
        return Problem(data, regression.least_squares(data.features, data.targets))

    return sweep.time_compiled(build, jax.random.key(config.seed), repeats=config.repeats)


def make_seed_inputs(config, problem: Problem) -> tuple[SeedInputs, sweep.Timing]:
    """Initial weights and minibatches of every seed, one compiled program, timed. Seed
    ``s``'s key depends on (seed, s) only: adding seeds changes no seed's runs."""
    n, d = problem.data.features.shape

    def build(root, features, targets):
        def one_seed(seed):
            init_key, shuffle_key = jax.random.split(
                jax.random.fold_in(jax.random.split(root)[1], seed))
            rows = minibatch.shuffled_batches(shuffle_key, n, config.batch_size, config.steps)
            return (jax.random.normal(init_key, (d,), features.dtype),
                    minibatch.take_batches((features, targets), rows))

        return SeedInputs(*jax.vmap(one_seed)(jnp.arange(config.seeds)))

    return sweep.time_compiled(build, jax.random.key(config.seed), problem.data.features,
                               problem.data.targets, repeats=config.repeats)


def run_method(config, problem: Problem, inputs: SeedInputs, method_sweeps: list[Sweep]):
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
        run, arrays, inputs, problem.solution, repeats=config.repeats)
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
            "final_loss_median": loss.median,
            "final_loss_text": None if loss.count == 0 else
            f"{_significant(loss.mean, 4)} ± {_significant(loss.std, 2)}",
            "diverged": int(diverged.sum()), "reached": reached.count,
            "reached_of": f"{reached.count}/{reached.total}", "steps_mean": reached.mean,
            "steps_std": reached.std, "steps_text": stats.format_mean_std(reached, ".0f"),
            "program_s": timing.run_seconds, "compile_s": timing.compile_seconds,
        })
    return rows


def _significant(value: float, digits: int) -> str:
    """``digits`` significant digits with trailing zeros kept (1.000, 0.050), whole numbers
    written out in full (1184, not 1.184e+03)."""
    if abs(value) >= 10**digits:
        return f"{value:.0f}"
    return f"{value:#.{digits}g}".rstrip(".")


COLUMNS = [("method", "method"), ("sweep", "sweep"), ("setting", "setting"),
           ("final_loss_text", "final loss (mean ± std)"), ("diverged", "diverged"),
           ("reached_of", "reached target"), ("steps_text", "steps to target (mean ± std)"),
           ("program_s", "program time", report.format_seconds),
           ("compile_s", "compile", report.format_seconds)]


def run_size(config, n: int, d: int, log: cli.Log) -> dict:
    """Every sweep on one size: rows, curves, paths and times."""
    size = f"{n}x{d}"
    problem, problem_timing = make_problem(config, n, d)
    inputs, inputs_timing = make_seed_inputs(config, problem)
    solution = jax.tree.map(np.asarray, problem.solution)
    best = float(solution.loss)
    target = config.target_factor * best
    log(f"{size}: data and least squares in {problem_timing}, loss {best:.4f}, target "
        f"{target:.4f}; initial weights and minibatches of {config.seeds} seeds in "
        f"{inputs_timing}")
    rows, sweep_results, programs = [], [], []
    for method in config.methods:
        method_sweeps = sweeps(config, method)
        outputs, timing = run_method(config, problem, inputs, method_sweeps)
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
        "epochs": config.steps / per_epoch, "problem_s": problem_timing.run_seconds,
        "problem_compile_s": problem_timing.compile_seconds,
        "inputs_s": inputs_timing.run_seconds, "inputs_compile_s": inputs_timing.compile_seconds,
    }
    return {"context": context, "rows": rows, "programs": programs, "sweeps": sweep_results,
            "solution": solution}


def run_study(config: default_config.Config, log: cli.Log = print) -> dict:
    """Runs the whole study (no file output) and returns its results."""
    start = time.perf_counter()
    sizes = {f"{n}x{d}": run_size(config, n, d, log) for n, d in config.sizes}
    programs = [p for entry in sizes.values() for p in entry["programs"]]
    contexts = [entry["context"] for entry in sizes.values()]

    def total(key, entries):
        return sum(entry[key] for entry in entries)

    totals = {
        "sweeps": sum(len(entry["sweeps"]) for entry in sizes.values()),
        "programs": len(programs), "runs": total("runs", programs),
        # One call of every compiled program that does the runs' work: the methods'
        # sweeps and the seeds' minibatches (not the data and least squares, their input).
        "run_s": total("run_s", programs) + total("inputs_s", contexts),
        "problems_s": total("problem_s", contexts),
        "compile_s": total("compile_s", programs) + total("inputs_compile_s", contexts)
        + total("problem_compile_s", contexts),
        "wall_s": time.perf_counter() - start,
    }
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
    seconds = {key: report.format_seconds(totals[key])
               for key in ("run_s", "problems_s", "compile_s", "wall_s")}
    parts.append(
        f"{totals['sweeps']} sweeps in {totals['programs']} programs, {totals['runs']} runs of "
        f"{config.steps} steps. One call of every compiled program: {seconds['run_s']} for "
        f"the runs (the methods' programs and the seeds' minibatches), {seconds['problems_s']} "
        f"for the data and least squares. Compiling: {seconds['compile_s']}. The whole "
        f"computation, with warm-up calls and {config.repeats} timed repeats: "
        f"{seconds['wall_s']}.\n")
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
    solution, sweep_results = entry["solution"], entry["sweeps"]
    anchors = np.stack([p[0] for result in sweep_results for p in result["paths"]]
                       + [solution.weights])
    low, high = anchors.min(axis=0), anchors.max(axis=0)
    margin = np.maximum(0.5 * (high - low), 0.5)
    (x0, y0), (x1, y1) = low - margin, high + margin
    w_star, gram = solution.weights, solution.gram
    return plots.contour_figure(
        lambda w: (w - w_star) @ gram @ (w - w_star), (x0, x1, y0, y1),
        {f"{r['method']}, {r['sweep']}: L(w) - L(w*), median seed":
         dict(zip(r["labels"], r["paths"])) for r in sweep_results}, w_star)


def write(config, results: dict) -> cli.Report:
    figures = {}
    for size, entry in results["sizes"].items():
        figures[f"convergence_{size}.png"] = convergence_figure(config, entry)
        if entry["context"]["d"] == 2:
            figures[f"contour_{size}.png"] = contour_figure(entry)
    # The per-step curves and paths are in the figures.
    sizes = {size: {"context": entry["context"], "rows": entry["rows"],
                    "programs": entry["programs"],
                    "sweeps": [{k: v for k, v in s.items() if k not in ("losses", "paths")}
                               for s in entry["sweeps"]]}
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
