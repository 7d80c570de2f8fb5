r"""First-order methods with noisy gradients on 2-D test functions, over noise seeds.

Question, per scenario of the classic exercise (configs/test_functions.py): which rule
and rate gets near the minimizer, and which diverges or stalls? Noisy SGD's learning
rate on the bowl x^2 + y^2; SGD against heavy-ball momentum on Matyas's function; SGD,
momentum and AdaGrad at the monkey saddle (leaving it is the goal); Adam, AdaGrad,
momentum and SGD escaping the local minimum of sin(r); momentum against SGD on Easom's
function. Every method sees the gradient plus noise ``sigma z`` (the same seeds for every
method), runs a fixed number of steps, and is one vmapped, compiled program over seeds.

    python -m experiments.test_functions
    python -m experiments.test_functions --scenario=bowl,matyas --seeds=20 --animate
    python -m experiments.test_functions --scenario=bowl --lr=0.3 --sigma=0

Writes table.md (per method over seeds: iterations until the distance to the minimizers
is below --threshold, final distance and value, non-finite runs; a computed takeaway per
scenario), results.json, results.csv, and per scenario contour-NAME.png and
surface-NAME.png (the median seed's paths), with --animate path-NAME.gif.
"""

import dataclasses
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

import optlab
from configs import test_functions as default_config
from configs.test_functions import Config, Method, Scenario
from experiments.kit import cli
from optlab import first_order, plots, problems, report, stats, sweep

RULES: dict[str, Callable[[Method], optax.GradientTransformation]] = {
    "sgd": lambda m: optlab.sgd(m.learning_rate),
    "heavy_ball": lambda m: optlab.heavy_ball(m.learning_rate, gamma=m.beta),
    "adagrad": lambda m: optlab.adagrad(m.learning_rate),
    "adam": lambda m: optlab.adam(m.learning_rate, b1=m.beta, b2=m.beta2),
}
# The decay rates each rule takes, as (Method field, symbol shown in labels).
DECAYS = {"heavy_ball": (("beta", "γ"),), "adam": (("beta", "β₁"), ("beta2", "β₂"))}


class Runs(NamedTuple):
    """All seeds of one method on one scenario; leaves have the seed axis first."""

    paths: jax.Array  # (seeds, steps + 1, 2) iterates, entry 0 the start
    values: jax.Array  # (seeds, steps + 1) f at the iterates
    distances: jax.Array  # (seeds, steps + 1) distance to the minimizers (see TestFunction)
    status: jax.Array  # (seeds,) int32 optlab.Status: MAX_ITERS, or NONFINITE if diverged
    iterations: jax.Array  # (seeds,) steps taken (fewer than `steps` when non-finite)


def describe(method: Method) -> str:
    """The method's label in tables and legends, e.g. "heavy ball α=0.01 γ=0.99"."""
    decays = (f"{symbol}={getattr(method, name):g}" for name, symbol in DECAYS.get(method.rule, ()))
    return " ".join([method.rule.replace("_", " "), f"α={method.learning_rate:g}", *decays])


def selected(config: Config) -> tuple[Scenario, ...]:
    """The scenarios that ``--scenario`` names, with ``--sigma``, ``--lr`` and ``--beta``."""
    by_name = {scenario.name: scenario for scenario in config.scenarios}
    chosen = []
    for name in by_name if config.scenario is None else dict.fromkeys(config.scenario):
        scenario, methods = by_name[name], []
        for method in scenario.methods:
            if config.lr is not None:
                method = dataclasses.replace(method, learning_rate=config.lr)
            if config.beta is not None and method.rule in DECAYS:
                method = dataclasses.replace(method, beta=config.beta)
            methods.append(method)
        # A shared --lr can make methods identical (the bowl's three rates): keep one.
        chosen.append(dataclasses.replace(
            scenario, methods=tuple(dict.fromkeys(methods)),
            sigma=scenario.sigma if config.sigma is None else config.sigma))
    return tuple(chosen)


def validate(config: Config) -> None:
    """Raises ValueError with one readable line for a configuration that cannot run."""
    names = [scenario.name for scenario in config.scenarios]
    if len(set(names)) != len(names):
        raise ValueError(f"scenario names must be distinct, got {', '.join(names)}")
    unknown = [name for name in config.scenario or () if name not in names]
    if unknown or config.scenario == ():
        raise ValueError(f"--scenario: unknown scenario {', '.join(unknown) or '(none given)'}; "
                         f"choose from {', '.join(names)}")
    for scenario in selected(config):
        for wrong, problem in (
                (scenario.function not in problems.TEST_FUNCTIONS, f"unknown function "
                 f"{scenario.function!r}; choose from {', '.join(problems.TEST_FUNCTIONS)}"),
                (scenario.steps < 1, f"steps must be at least 1, got {scenario.steps}"),
                (not scenario.sigma >= 0, f"--sigma must be non-negative, got {scenario.sigma}"),
                (not scenario.methods, "give at least one method"),
                *((method.rule not in RULES, f"unknown rule {method.rule!r}; choose from "
                   f"{', '.join(RULES)}") for method in scenario.methods)):
            if wrong:
                raise ValueError(f"{scenario.name}: {problem}")
        for method in scenario.methods:
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
        result = optlab.minimize(test_function.fn, x0, noisy, stop=optlab.stopping.never(),
                                 max_iters=scenario.steps, history=scenario.steps + 1,
                                 record_params=True)
        paths = result.history.params
        return Runs(paths, result.history.values, jax.vmap(test_function.distance)(paths),
                    result.status, result.iterations)

    return one


def run_method(config: Config, scenario: Scenario, method: Method) -> tuple[Runs, sweep.Timing]:
    """Every noise seed of one method on one scenario, as one compiled program."""
    return sweep.run_seeds(seed_run(scenario, method), jnp.arange(config.seeds),
                           repeats=config.repeats)


def summarize_method(label: str, runs: Runs, threshold: float, timing: sweep.Timing) -> dict:
    """One table row (numbers and their mean ± std texts) and the per-seed numbers behind it."""
    distances, values, status = map(np.asarray, (runs.distances, runs.values, runs.status))
    per_seed = {"iterations": stats.first_below(distances, threshold),
                "final_distance": distances[:, -1], "final_value": values[:, -1]}
    seeds, nonfinite = len(status), int(np.sum(status == optlab.Status.NONFINITE))
    row = {"method": label, "seeds": seeds} | stats.mean_std_columns(
        per_seed, {"iterations": ".1f", "final_distance": ".3g", "final_value": ".3g"})
    row |= {"reached_text": f"{row['iterations_count']}/{seeds}", "nonfinite_count": nonfinite,
            "nonfinite_text": f"{nonfinite}/{seeds}", "time_all_seeds_s": timing.run_seconds,
            "compile_s": timing.compile_seconds}
    return {"row": row, "per_seed": per_seed | {
        "status": [optlab.Status(int(code)).name.lower() for code in status],
        "steps_taken": np.asarray(runs.iterations)}}


def takeaway(scenario: Scenario, rows: list[dict], threshold: float, start_distance: float) -> str:
    """A one-line reading of a scenario's table, computed from its numbers. At a saddle
    (no minimum) the goal is to leave it; elsewhere, to get close to the minimizers."""
    saddle = problems.TEST_FUNCTIONS[scenario.function].minimum is None
    reached = [row for row in rows if row["iterations_count"] > 0]
    best = max(reached, key=lambda row: (row["iterations_count"], -row["iterations"]),
               default=None)
    parts = [f"no method gets below {threshold:g} in {scenario.steps} steps"]
    if saddle:
        parts = ["unbounded below, so leaving the saddle is the goal"]
    elif best:
        parts = [f"{best['method']} gets below {threshold:g} fastest, in "
                 f"{best['iterations']:.1f} iterations on average ({best['reached_text']} "
                 "seeds)"]
    for row in rows:
        name, distance, value = row["method"], row["final_distance"], row["final_value"]
        ending = f"final distance {distance:.3g}, final value {value:.3g}"
        if row["nonfinite_count"]:
            parts.append(f"{name} {'leaves it for f = -inf' if saddle else 'diverges'} "
                         f"(non-finite in {row['nonfinite_text']} seeds)")
        elif saddle:
            parts.append(f"{name} leaves it: {ending}" if distance > start_distance else
                         f"{name} is drawn towards it: final distance {distance:.3g} (start "
                         f"{start_distance:.3g}), final value {value:.3g}")
        elif distance > 10 * start_distance:
            parts.append(f"{name} diverges: final distance {distance:.1e}")
        elif row["iterations_count"] == 0:
            parts.append(f"{name} does not get below {threshold:g} in {scenario.steps} steps: "
                         f"{ending}")
    finite = [row for row in rows if np.isfinite(row["final_distance"])]
    closest = min(finite, key=lambda row: row["final_distance"], default=None)
    if best and not saddle and closest is not None and closest is not best:
        parts.append(f"{closest['method']} ends closest (final distance "
                     f"{closest['final_distance']:.3g} against {best['final_distance']:.3g})")
    return "; ".join(parts) + "."


def run_scenario(config: Config, scenario: Scenario, log: cli.Log) -> dict:
    """Every method of one scenario: table rows, takeaway, median-seed paths, per-seed numbers."""
    test_function = problems.TEST_FUNCTIONS[scenario.function]
    start_distance = float(test_function.distance(jnp.asarray(scenario.start)))
    rows, per_seed, median_seeds, paths = [], {}, {}, {}
    for method in scenario.methods:
        label = describe(method)
        runs, timing = run_method(config, scenario, method)
        summary = summarize_method(label, runs, config.threshold, timing)
        row, per_seed[label] = summary["row"], summary["per_seed"]
        rows.append(row)
        median_seeds[label] = stats.median_index(per_seed[label]["final_distance"])
        paths[label] = np.asarray(runs.paths[median_seeds[label]])
        log(f"{scenario.name} / {label}: {row['reached_text']} below {config.threshold:g} "
            f"(iterations {row['iterations_text']}), final distance "
            f"{row['final_distance_text']}, {row['nonfinite_text']} non-finite; all seeds in "
            f"{timing}")
    return {
        "function": scenario.function, "question": scenario.question,
        "start_distance": start_distance, "rows": rows,
        "takeaway": takeaway(scenario, rows, config.threshold, start_distance),
        "median_seed": median_seeds, "paths": paths, "per_seed": per_seed,
    }


def run_study(config: Config, log: cli.Log = print) -> dict:
    """Runs every scenario (no file output) and returns the results."""
    return {"config": dataclasses.asdict(config), "devices": str(jax.devices()),
            "scenarios": {s.name: run_scenario(config, s, log) for s in selected(config)}}


def render_tables(config: Config, results: dict) -> str:
    parts = []
    for scenario in selected(config):
        entry = results["scenarios"][scenario.name]
        start = ", ".join(f"{coordinate:g}" for coordinate in scenario.start)
        parts.append("\n".join([
            f"## {scenario.name}: from ({start}), {scenario.steps} steps, "
            f"noise σ = {scenario.sigma:g}, {config.seeds} seeds", "", entry["question"], "",
            report.markdown_table(entry["rows"], [
                ("method", "method"), ("reached_text", f"below {config.threshold:g}"),
                ("iterations_text", f"iterations to < {config.threshold:g}"),
                ("final_distance_text", "final distance"), ("final_value_text", "final value"),
                ("nonfinite_text", "non-finite")]),
            f"Takeaway: {entry['takeaway']}"]))
    return "\n\n".join(parts) + "\n"


def figures(config: Config, results: dict) -> tuple[dict, dict]:
    """Per scenario the contour and surface plots of the median seeds' paths, and GIFs."""
    drawn, animations = {}, {}
    for scenario in selected(config):
        paths = results["scenarios"][scenario.name]["paths"]
        function = problems.TEST_FUNCTIONS[scenario.function]
        title = f"{scenario.name}: median of {config.seeds} seeds, σ = {scenario.sigma:g}"
        drawn[f"contour-{scenario.name}.png"] = plots.contour_figure(
            function.fn, function.domain, paths, function.minimizer, title=title)
        drawn[f"surface-{scenario.name}.png"] = plots.surface_figure(
            function.fn, function.domain, paths, title=title)
        if config.animate:
            animations[f"path-{scenario.name}.gif"] = (plots.path_animation(
                function.fn, function.domain, paths, config.fps,
                minimizer=function.minimizer, title=title), config.fps)
    return drawn, animations


def write(config: Config, results: dict) -> cli.Report:
    rows = [{"scenario": name, **row}
            for name, entry in results["scenarios"].items() for row in entry["rows"]]
    drawn, animations = figures(config, results)
    return cli.Report(
        markdown=render_tables(config, results), results=results,
        tables={"results.csv": rows}, figures=drawn, animations=animations)


# float64, as in the tests: a diverging run stays finite longer, so its growth shows.
STUDY = cli.Study(
    "test_functions", default_config.get_config, run_study, write, float64=True, validate=validate,
    smoke_flags=("--scenario=bowl", "--seeds=2", "--repeats=1", "--lr=0.1"))


if __name__ == "__main__":
    cli.run(STUDY)
