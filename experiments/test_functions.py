r"""First-order methods with noisy gradients on 2-D test functions, averaged over noise seeds.

    python -m experiments.test_functions
    python -m experiments.test_functions --scenario=bowl,matyas --seeds=20 --animate
    python -m experiments.test_functions --scenario=bowl --lr=0.3 --sigma=0

The scenarios of the classic exercise (configs/test_functions.py): the learning rate of
noisy SGD on the bowl x^2 + y^2 (too high, too low, right), SGD against heavy-ball
momentum on Matyas's function, SGD, momentum and AdaGrad at the monkey saddle, escaping
the local minimum of sin(r) at the origin with Adam, AdaGrad, momentum and SGD, and
momentum against SGD on Easom's function. Every method sees the gradient plus Gaussian
noise ``sigma z`` (the same noise seeds 0, ..., seeds - 1 for every method) and runs a
fixed number of steps.

Each (scenario, method) is one vmapped, compiled program over the seeds
(``optlab.sweep.run_seeds``). From the recorded iterates the study reports, as mean ±
std over the seeds, the iterations until the distance to the minimizers first drops
below ``--threshold`` (over the seeds that get there; the "below" column counts them),
the final distance and the final value, and how many runs turned non-finite (diverged).
Distances are those of ``optlab.problems.TEST_FUNCTIONS``: to the nearest circle of
minima for mult, to the saddle point for the monkey saddle, which is unbounded below and
where leaving the saddle is the desired outcome. A one-line takeaway per scenario is
computed from those numbers.

It writes results.json, table.md, results.csv, and per scenario contour-<scenario>.png
and surface-<scenario>.png (each method's path for its median seed: the seed whose final
distance is the median), with --animate also path-<scenario>.gif, into a new run
directory under --out and names it at the end.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import flags

import optlab
from configs import test_functions as default_config
from configs.test_functions import Config, Method, Scenario
from experiments.kit import cli
from experiments.kit.rundir import RunDir
from optlab import first_order, plots, problems, report, stats, sweep

RULES: dict[str, Callable[[Method], optax.GradientTransformation]] = {
    "sgd": lambda m: optlab.sgd(m.learning_rate),
    "heavy_ball": lambda m: optlab.heavy_ball(m.learning_rate, gamma=m.beta),
    "adagrad": lambda m: optlab.adagrad(m.learning_rate),
    "adam": lambda m: optlab.adam(m.learning_rate, b1=m.beta, b2=m.beta2),
}
# The decay rates each rule takes, as (Method field, symbol shown in labels).
DECAYS = {"heavy_ball": (("beta", "γ"),), "adam": (("beta", "β₁"), ("beta2", "β₂"))}


class NeverStop(optlab.stopping.StopRule):
    """A stopping rule that never holds: the exercises run a fixed number of steps.

    A run still ends early when it turns non-finite (or cycles). A zero gradient is no
    reason to stop: a method with momentum moves on.
    """

    def __call__(self, params, value, grad):
        del params, value, grad
        return jnp.asarray(False)


NEVER_STOP = NeverStop()
SCENARIO_NAMES = tuple(scenario.name for scenario in default_config.SCENARIOS)

NAME = "test_functions"
FLAGS = flags.FLAGS


class Runs(NamedTuple):
    """All seeds of one method on one scenario; leaves have the seed axis first."""

    paths: jax.Array  # (seeds, steps + 1, 2) iterates, entry 0 the start
    values: jax.Array  # (seeds, steps + 1) f at the iterates
    distances: jax.Array  # (seeds, steps + 1) distance to the minimizers (see TestFunction)
    status: jax.Array  # (seeds,) int32 optlab.Status: MAX_ITERS, or NONFINITE if diverged
    iterations: jax.Array  # (seeds,) steps taken (fewer than `steps` when non-finite)


def describe(method: Method) -> str:
    """The method's label in tables and legends, e.g. "heavy ball α=0.01 γ=0.99"."""
    parts = [method.rule.replace("_", " "), f"α={method.learning_rate:g}"]
    for field, symbol in DECAYS.get(method.rule, ()):
        parts.append(f"{symbol}={getattr(method, field):g}")
    return " ".join(parts)


def validate(config: Config) -> None:
    """Raises ValueError with one readable line for a configuration that cannot run."""
    if not config.scenarios:
        raise ValueError("give at least one scenario")
    names = [scenario.name for scenario in config.scenarios]
    if len(set(names)) != len(names):
        raise ValueError(f"scenario names must be distinct, got {', '.join(names)}")
    if config.seeds < 1:
        raise ValueError(f"--seeds must be a positive number, got {config.seeds}")
    if not config.threshold > 0:
        raise ValueError(f"--threshold must be positive, got {config.threshold}")
    if config.fps < 1 or config.repeats < 1:
        raise ValueError("fps and repeats must be at least 1")
    for scenario in config.scenarios:
        if scenario.function not in problems.TEST_FUNCTIONS:
            raise ValueError(
                f"{scenario.name}: unknown function {scenario.function!r}; "
                f"choose from {', '.join(problems.TEST_FUNCTIONS)}"
            )
        if scenario.steps < 1:
            raise ValueError(f"{scenario.name}: steps must be at least 1, got {scenario.steps}")
        if not scenario.sigma >= 0:
            raise ValueError(f"{scenario.name}: --sigma must be non-negative, got {scenario.sigma}")
        if not scenario.methods:
            raise ValueError(f"{scenario.name}: give at least one method")
        for method in scenario.methods:
            if method.rule not in RULES:
                raise ValueError(
                    f"{scenario.name}: unknown rule {method.rule!r}; choose from {', '.join(RULES)}"
                )
            try:  # optlab checks the hyperparameters when it builds the rule
                RULES[method.rule](method)
            except ValueError as error:
                raise ValueError(f"{scenario.name}, {describe(method)}: {error}") from None


def seed_run(scenario: Scenario, method: Method) -> Callable[[jax.Array], Runs]:
    """The run of one method on one scenario as a function of the noise seed (an int)."""
    test_function = problems.TEST_FUNCTIONS[scenario.function]
    x0 = jnp.asarray(scenario.start, jnp.result_type(float))
    rule = RULES[method.rule](method)

    def one(seed):
        noisy = optax.chain(first_order.add_gaussian_noise(scenario.sigma, seed), rule)
        result = optlab.minimize(
            test_function.fn,
            x0,
            noisy,
            stop=NEVER_STOP,
            max_iters=scenario.steps,
            history=scenario.steps + 1,
            record_params=True,
        )
        paths = result.history.params
        return Runs(
            paths=paths,
            values=result.history.values,
            distances=jax.vmap(test_function.distance)(paths),
            status=result.status,
            iterations=result.iterations,
        )

    return one


def run_method(config: Config, scenario: Scenario, method: Method) -> tuple[Runs, sweep.Timing]:
    """Every noise seed of one method on one scenario, as one compiled program."""
    return sweep.run_seeds(
        seed_run(scenario, method), jnp.arange(config.seeds), repeats=config.repeats
    )


def first_below(distances: np.ndarray, threshold: float) -> np.ndarray:
    """Per seed, the first iteration whose distance is below `threshold`; NaN if none is."""
    below = distances < threshold
    return np.where(below.any(axis=1), below.argmax(axis=1), np.nan)


def median_seed(final_distances: np.ndarray) -> int:
    """The seed whose final distance is the (lower) median; a non-finite one counts as largest."""
    order = np.argsort(np.where(np.isfinite(final_distances), final_distances, np.inf))
    return int(order[(len(order) - 1) // 2])


def _mean_std(summary: stats.Summary, fmt: str) -> str:
    if summary.count == 0:
        return report.MISSING
    return f"{fmt.format(summary.mean)} ± {fmt.format(summary.std)}"


def summarize_method(label: str, runs: Runs, threshold: float, timing: sweep.Timing) -> dict:
    """One table row (numbers and their mean ± std texts) and the per-seed numbers behind it."""
    distances, values = np.asarray(runs.distances), np.asarray(runs.values)
    per_seed = {
        "iterations_to_threshold": first_below(distances, threshold),
        "final_distance": distances[:, -1],
        "final_value": values[:, -1],
        "status": [optlab.Status(int(code)).name.lower() for code in np.asarray(runs.status)],
        "steps_taken": np.asarray(runs.iterations),
    }
    iterations = stats.summarize(per_seed["iterations_to_threshold"])
    distance = stats.summarize(per_seed["final_distance"])
    value = stats.summarize(per_seed["final_value"])
    nonfinite = int(np.sum(np.asarray(runs.status) == optlab.Status.NONFINITE))
    seeds = iterations.total
    row = {
        "method": label,
        "reached": f"{iterations.count}/{seeds}",
        "iterations": _mean_std(iterations, "{:.1f}"),
        "final_distance": _mean_std(distance, "{:.3g}"),
        "final_value": _mean_std(value, "{:.3g}"),
        "nonfinite": f"{nonfinite}/{seeds}",
        "seeds": seeds,
        "reached_count": iterations.count,
        "iterations_mean": iterations.mean,
        "iterations_std": iterations.std,
        "iterations_ci95_low": iterations.ci_low,
        "iterations_ci95_high": iterations.ci_high,
        "final_distance_mean": distance.mean,
        "final_distance_std": distance.std,
        "final_value_mean": value.mean,
        "final_value_std": value.std,
        "nonfinite_count": nonfinite,
        "time_all_seeds_s": timing.run_seconds,
        "compile_s": timing.compile_seconds,
    }
    return {"row": row, "per_seed": per_seed}


def takeaway(scenario: Scenario, rows: list[dict], threshold: float, start_distance: float) -> str:
    """A one-line reading of a scenario's table, computed from its numbers."""
    if problems.TEST_FUNCTIONS[scenario.function].minimum is None:
        return _saddle_takeaway(rows, start_distance)
    parts = []
    reached = [row for row in rows if row["reached_count"] > 0]
    if reached:
        best = max(reached, key=lambda row: (row["reached_count"], -row["iterations_mean"]))
        parts.append(
            f"{best['method']} gets below {threshold:g} fastest, in "
            f"{best['iterations_mean']:.1f} iterations on average ({best['reached']} seeds)"
        )
    else:
        parts.append(f"no method gets below {threshold:g} in {scenario.steps} steps")
    for row in rows:
        if row["nonfinite_count"]:
            parts.append(f"{row['method']} diverges (non-finite in {row['nonfinite']} seeds)")
        elif row["final_distance_mean"] > 10 * start_distance:
            parts.append(
                f"{row['method']} diverges: final distance {row['final_distance_mean']:.1e}"
            )
        elif row["reached_count"] == 0:
            parts.append(
                f"{row['method']} does not get below {threshold:g} in {scenario.steps} steps: "
                f"final distance {row['final_distance_mean']:.3g}, "
                f"final value {row['final_value_mean']:.3g}"
            )
    finite = [row for row in rows if np.isfinite(row["final_distance_mean"])]
    if reached and finite:
        closest = min(finite, key=lambda row: row["final_distance_mean"])
        if closest is not best:
            parts.append(
                f"{closest['method']} ends closest (final distance "
                f"{closest['final_distance_mean']:.3g} against {best['final_distance_mean']:.3g})"
            )
    return "; ".join(parts) + "."


def _saddle_takeaway(rows: list[dict], start_distance: float) -> str:
    parts = ["unbounded below, so leaving the saddle is the goal"]
    for row in rows:
        if row["nonfinite_count"]:
            parts.append(
                f"{row['method']} leaves it for f = -inf (non-finite in {row['nonfinite']} seeds)"
            )
        elif row["final_distance_mean"] > start_distance:
            parts.append(
                f"{row['method']} leaves it: final distance {row['final_distance_mean']:.3g}, "
                f"final value {row['final_value_mean']:.3g}"
            )
        else:
            parts.append(
                f"{row['method']} is drawn towards it: final distance "
                f"{row['final_distance_mean']:.3g} (start {start_distance:.3g}), final value "
                f"{row['final_value_mean']:.3g}"
            )
    return "; ".join(parts) + "."


def run_scenario(config: Config, scenario: Scenario, log: Callable[[str], None]) -> dict:
    """Every method of one scenario: table rows, takeaway, median-seed paths, per-seed numbers."""
    test_function = problems.TEST_FUNCTIONS[scenario.function]
    start_distance = float(test_function.distance(jnp.asarray(scenario.start)))
    rows, per_seed, median_seeds, paths = [], {}, {}, {}
    for method in scenario.methods:
        label = describe(method)
        runs, timing = run_method(config, scenario, method)
        summary = summarize_method(label, runs, config.threshold, timing)
        row = summary["row"]
        rows.append(row)
        per_seed[label] = summary["per_seed"]
        median_seeds[label] = median_seed(summary["per_seed"]["final_distance"])
        paths[label] = np.asarray(runs.paths[median_seeds[label]])
        log(
            f"{scenario.name} / {label}: {row['reached']} below {config.threshold:g} "
            f"(iterations {row['iterations']}), final distance {row['final_distance']}, "
            f"{row['nonfinite']} non-finite; compiled in "
            f"{report.format_seconds(timing.compile_seconds)}, all seeds in "
            f"{report.format_seconds(timing.run_seconds)}"
        )
    return {
        "function": scenario.function,
        "question": scenario.question,
        "start_distance": start_distance,
        "rows": rows,
        "takeaway": takeaway(scenario, rows, config.threshold, start_distance),
        "median_seed": median_seeds,
        "paths": paths,
        "per_seed": per_seed,
    }


def run_study(config: Config, log: Callable[[str], None] = print) -> dict:
    """Runs every scenario (no file output) and returns the results."""
    validate(config)
    results = {"config": dataclasses.asdict(config), "devices": str(jax.devices()), "scenarios": {}}
    for scenario in config.scenarios:
        results["scenarios"][scenario.name] = run_scenario(config, scenario, log)
    return results


def columns(threshold: float) -> list[report.Column]:
    return [
        report.Column("method", "method"),
        report.Column("reached", f"below {threshold:g}"),
        report.Column("iterations", f"iterations to < {threshold:g}"),
        report.Column("final_distance", "final distance"),
        report.Column("final_value", "final value"),
        report.Column("nonfinite", "non-finite"),
    ]


CSV_COLUMNS = [
    report.Column(key, key)
    for key in (
        "scenario",
        "method",
        "seeds",
        "reached_count",
        "iterations_mean",
        "iterations_std",
        "iterations_ci95_low",
        "iterations_ci95_high",
        "final_distance_mean",
        "final_distance_std",
        "final_value_mean",
        "final_value_std",
        "nonfinite_count",
        "time_all_seeds_s",
        "compile_s",
    )
]


def render_tables(config: Config, results: dict) -> str:
    parts = []
    for scenario in config.scenarios:
        entry = results["scenarios"][scenario.name]
        start = ", ".join(f"{coordinate:g}" for coordinate in scenario.start)
        parts.append(
            "\n".join([
                f"## {scenario.name}: from ({start}), {scenario.steps} steps, "
                f"noise σ = {scenario.sigma:g}, {config.seeds} seeds",
                "",
                entry["question"],
                "",
                report.markdown_table(entry["rows"], columns(config.threshold)),
                f"Takeaway: {entry['takeaway']}",
            ])
        )
    return "\n\n".join(parts) + "\n"


def _figure_title(config: Config, scenario: Scenario) -> str:
    return f"{scenario.name}: median of {config.seeds} seeds, σ = {scenario.sigma:g}"


def write_outputs(config: Config, results: dict, root) -> RunDir:
    run_dir = RunDir.create(root, "test_functions")
    run_dir.write_json("results.json", results)
    run_dir.write_text("table.md", render_tables(config, results))
    rows = [
        {"scenario": name, **row}
        for name, entry in results["scenarios"].items()
        for row in entry["rows"]
    ]
    run_dir.write_text("results.csv", report.csv_text(rows, CSV_COLUMNS))
    for scenario in config.scenarios:
        paths = results["scenarios"][scenario.name]["paths"]
        function = problems.TEST_FUNCTIONS[scenario.function]
        title = _figure_title(config, scenario)
        run_dir.save_figure(
            f"contour-{scenario.name}.png",
            plots.contour_figure(
                function.fn, function.domain, paths, function.minimizer, title=title
            ),
        )
        run_dir.save_figure(
            f"surface-{scenario.name}.png",
            plots.surface_figure(function.fn, function.domain, paths, title=title),
        )
        if config.animate:
            animation = plots.path_animation(
                function.fn,
                function.domain,
                paths,
                config.fps,
                minimizer=function.minimizer,
                title=title,
            )
            run_dir.save_animation(f"path-{scenario.name}.gif", animation, config.fps)
    return run_dir


def _override(method: Method) -> Method:
    """`method` with the learning rate and decay given by flags, if any."""
    if FLAGS.lr is not None:
        method = dataclasses.replace(method, learning_rate=FLAGS.lr)
    if FLAGS.beta is not None and method.rule in DECAYS:
        method = dataclasses.replace(method, beta=FLAGS.beta)
    return method


def config_from_flags() -> Config:
    config = default_config.get_config()
    scenarios = config.scenarios
    if FLAGS.scenario is not None:
        by_name = {scenario.name: scenario for scenario in scenarios}
        unknown = [name for name in FLAGS.scenario if name not in by_name]
        if unknown or not FLAGS.scenario:
            raise ValueError(
                f"unknown scenario {', '.join(unknown) or '(none given)'}; "
                f"choose from {', '.join(by_name)}"
            )
        scenarios = tuple(by_name[name] for name in dict.fromkeys(FLAGS.scenario))
    overridden = []
    for scenario in scenarios:
        # A shared --lr can make methods identical (the bowl's three rates): keep one.
        methods = tuple(dict.fromkeys(_override(method) for method in scenario.methods))
        sigma = scenario.sigma if FLAGS.sigma is None else FLAGS.sigma
        overridden.append(dataclasses.replace(scenario, methods=methods, sigma=sigma))
    overrides = {"scenarios": tuple(overridden), "animate": FLAGS.animate}
    for name in ("seeds", "threshold"):
        if getattr(FLAGS, name) is not None:
            overrides[name] = getattr(FLAGS, name)
    return dataclasses.replace(config, **overrides)


def define_flags() -> None:
    flags.DEFINE_list("scenario", None, f"Scenarios to run (default all): {', '.join(SCENARIO_NAMES)}.")
    flags.DEFINE_integer("seeds", None, "Noise seeds per method (one vmapped program per method).")
    flags.DEFINE_float("sigma", None, "Gradient noise of every scenario (default: per scenario).")
    flags.DEFINE_float("threshold", None, "Count iterations until the distance is below this.")
    flags.DEFINE_float("lr", None, "Learning rate of every method (default: per method).")
    flags.DEFINE_float("beta", None, "Momentum decay of every method that has one (γ, Adam's β₁).")
    flags.DEFINE_bool("animate", False, "Also write an animated GIF of the paths per scenario.")
    flags.DEFINE_string("out", "runs", "Directory that receives the run directory.")


# float64, as in the tests: a diverging run stays finite longer, so its growth shows.
main = cli.study_main(
    NAME,
    config_from_flags=config_from_flags,
    validate=validate,
    run_study=run_study,
    render=render_tables,
    write_outputs=write_outputs,
    float64=True,
)


if __name__ == "__main__":
    cli.run_script(NAME, main, define_flags)
