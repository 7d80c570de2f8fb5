r"""Newton, SR1, BFGS and L-BFGS on random quadratics (or Rosenbrock), averaged over seeds.

    python -m experiments.quasi_newton --n=228
    python -m experiments.quasi_newton --n=2,50,228 --seeds=20
    python -m experiments.quasi_newton --problem=rosenbrock

For each size n and each method, every seed's run is one member of a single vmapped,
compiled program that stops each member when ||x_k - x*|| < eps. The study reports
the iterations (mean, std, min-max, 95% t-interval over the converged seeds), the
time per run (the batch's median wall time over its seeds) with compile time apart,
and scipy's BFGS and L-BFGS-B with the analytic gradient and the same stopping rule
as reference rows. It writes results.json, table.md, results.csv and convergence.png
(distance to x* against iteration: median over seeds, interquartile band) into a new
run directory under --out and names it at the end.

"sr1_exact" is SR1 started from the exact inverse Hessian, as in the seed study: on a
quadratic its first step is Newton's. "sr1" is the honest default, H0 = I.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize
from absl import flags

import optlab
from configs import quasi_newton as default_config
from experiments.kit import scipy_reference
from experiments.kit import cli
from experiments.kit.rundir import RunDir
from optlab import plots, problems, report, stats, sweep

METHODS: dict[str, Callable[[], Any]] = {
    "newton": optlab.newton,
    "sr1": optlab.sr1,
    "sr1_exact": lambda: optlab.sr1(init="exact"),
    "bfgs": optlab.bfgs,
    "bfgs_scaled": lambda: optlab.bfgs(init="scaled"),
    "lbfgs": optlab.lbfgs,
    "steepest_descent": optlab.steepest_descent,
}
PROBLEMS = ("quadratic", "rosenbrock")

NAME = "quasi_newton"
FLAGS = flags.FLAGS


class ProblemSet(NamedTuple):
    """A batch of problems with a seed axis, and how to read one member."""

    batch: Any  # pytree, leaves (seeds, ...)
    objective: Callable[[Any], Callable]  # member -> f
    start: Callable[[Any], jax.Array]  # member -> x0
    minimizer: Callable[[Any], jax.Array]  # member -> x*
    numpy_problem: Callable[[int], tuple]  # seed -> (f, grad, x0, x*) in NumPy, for scipy
    context: dict  # printed and saved with the table


def validate(config: default_config.Config) -> None:
    """Raises ValueError with one readable line for a configuration that cannot run."""
    if config.problem not in PROBLEMS:
        raise ValueError(f"unknown problem {config.problem!r}; choose from {', '.join(PROBLEMS)}")
    if not config.sizes:
        raise ValueError("give at least one problem size with --n")
    minimum = 2 if config.problem == "rosenbrock" else 1
    for n in config.sizes:
        if n < minimum:
            raise ValueError(f"--n must be at least {minimum} for {config.problem}, got {n}")
    if config.seeds < 1:
        raise ValueError(f"--seeds must be a positive number, got {config.seeds}")
    if not config.eps > 0:
        raise ValueError(f"--eps must be positive, got {config.eps}")
    if config.max_iters < 1 or config.repeats < 1:
        raise ValueError("--max_iters and --repeats must be at least 1")
    unknown = [m for m in config.methods if m not in METHODS]
    if unknown or not config.methods:
        raise ValueError(
            f"unknown method {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(METHODS)}"
        )


def problem_set(config: default_config.Config, n: int) -> ProblemSet:
    if config.problem == "quadratic":
        batch = problems.seed_quadratics(n, config.seeds)
        kappa = np.asarray(jax.vmap(problems.Quadratic.condition_number)(batch))

        def numpy_problem(seed):
            a, b, x_star = (np.asarray(leaf[seed]) for leaf in batch)
            return (lambda x: 0.5 * x @ a @ x + b @ x), (lambda x: a @ x + b), np.zeros(n), x_star

        return ProblemSet(
            batch=batch,
            objective=lambda q: q.value,
            start=lambda q: jnp.zeros_like(q.minimizer),
            minimizer=lambda q: q.minimizer,
            numpy_problem=numpy_problem,
            context={
                "recipe": "make_spd_matrix (seed study), x* ~ N(0, I), x0 = 0",
                "condition_number": stats.summarize(kappa).as_dict(),
            },
        )
    starts = problems.rosenbrock_starts(n, config.seeds)
    return ProblemSet(
        batch=starts,
        objective=lambda x0: problems.rosenbrock,
        start=lambda x0: x0,
        minimizer=lambda x0: problems.rosenbrock_minimizer(n),
        numpy_problem=lambda seed: (
            scipy.optimize.rosen,
            scipy.optimize.rosen_der,
            np.asarray(starts[seed]),
            np.ones(n),
        ),
        context={"recipe": "Rosenbrock, x* = 1, x0 ~ U[-2, 2]^n"},
    )


def solve(config, pset: ProblemSet, method: str):
    """All seeds of one method in one compiled program: (Result, Timing)."""
    opt = METHODS[method]()

    def one(member):
        stop = optlab.stopping.distance_to(pset.minimizer(member), config.eps)
        return optlab.minimize(
            pset.objective(member),
            pset.start(member),
            opt,
            stop=stop,
            max_iters=config.max_iters,
            history=config.max_iters + 1,
        )

    return sweep.run_seeds(one, pset.batch, repeats=config.repeats)


def solve_scipy(config, pset: ProblemSet, method: str) -> tuple[np.ndarray, np.ndarray, float]:
    """Per-seed iterations, converged flags and the mean wall time per run of scipy."""
    with scipy_reference.single_threaded_blas():
        runs = [
            scipy_reference.minimize_to_distance(
                *pset.numpy_problem(seed), config.eps, method=method, max_iters=config.max_iters
            )
            for seed in range(config.seeds)
        ]
    iterations = np.array([run.iterations for run in runs])
    converged = np.array([run.distance < config.eps for run in runs])
    return iterations, converged, float(np.mean([run.seconds for run in runs]))


def summary_row(n, method, iterations, converged, time_per_run, compile_seconds) -> dict:
    summary = stats.summarize(np.where(converged, iterations, np.nan))
    return {
        "n": n,
        "method": method,
        "converged": f"{summary.count}/{summary.total}",
        "iterations_mean": summary.mean,
        "iterations_std": summary.std,
        "iterations_min": summary.min,
        "iterations_max": summary.max,
        "iterations_range": "—" if summary.count == 0 else f"{summary.min:.0f}–{summary.max:.0f}",
        "ci95_low": summary.ci_low,
        "ci95_high": summary.ci_high,
        "time_per_run_s": time_per_run,
        "compile_s": compile_seconds,
    }


COLUMNS = [
    report.Column("method", "method"),
    report.Column("converged", "converged"),
    report.Column("iterations_mean", "iterations (mean)", "{:.1f}"),
    report.Column("iterations_std", "std", "{:.1f}"),
    report.Column("iterations_range", "min–max"),
    report.Column("ci95_low", "95% CI low", "{:.1f}"),
    report.Column("ci95_high", "95% CI high", "{:.1f}"),
    report.Column("time_per_run_s", "time per run", report.format_seconds),
    report.Column("compile_s", "compile", report.format_seconds),
]


def classic_rosenbrock(config) -> list[dict]:
    """Each method once from the seed study's start (3.22, 13.37), for its table."""
    x0 = jnp.asarray(problems.ROSENBROCK_START)
    stop = optlab.stopping.distance_to(problems.rosenbrock_minimizer(2), config.eps)
    rows = []
    for method in config.methods:
        run = jax.jit(
            lambda x: optlab.minimize(
                problems.rosenbrock, x, METHODS[method](), stop=stop, max_iters=config.max_iters
            )
        )
        result = run(x0)
        rows.append(
            {
                "method": method,
                "iterations": int(result.iterations),
                "status": optlab.Status(int(result.status)).name.lower(),
            }
        )
    return rows


def run_study(config: default_config.Config, log: Callable[[str], None] = print) -> dict:
    """Runs the whole study (no file output) and returns its results."""
    validate(config)
    results = {"config": dataclasses.asdict(config), "devices": str(jax.devices()), "sizes": {}}
    for n in config.sizes:
        pset = problem_set(config, n)
        rows, curves = [], {}
        for method in config.methods:
            result, timing = solve(config, pset, method)
            iterations = np.asarray(result.iterations)
            converged = np.asarray(result.status) == optlab.Status.CONVERGED
            rows.append(
                summary_row(
                    n,
                    method,
                    iterations,
                    converged,
                    timing.run_seconds / config.seeds,
                    timing.compile_seconds,
                )
            )
            curves[method] = np.asarray(result.history.distances)[:, : iterations.max() + 1]
            log(
                f"n={n} {method}: {converged.sum()}/{config.seeds} converged, "
                f"mean {iterations.mean():.1f} iterations; compiled in "
                f"{report.format_seconds(timing.compile_seconds)}, all seeds in "
                f"{report.format_seconds(timing.run_seconds)}"
            )
        if config.scipy:
            for label, method in (("scipy BFGS", "BFGS"), ("scipy L-BFGS-B", "L-BFGS-B")):
                iterations, converged, seconds = solve_scipy(config, pset, method)
                rows.append(summary_row(n, label, iterations, converged, seconds, None))
                log(f"n={n} {label}: mean {iterations.mean():.1f} iterations")
        entry = {"context": pset.context, "rows": rows, "curves": curves}
        if config.problem == "rosenbrock" and n == 2:
            entry["classic_start"] = classic_rosenbrock(config)
        results["sizes"][n] = entry
    return results


def render_tables(config, results: dict) -> str:
    parts = []
    for n, entry in results["sizes"].items():
        title = f"## {config.problem}, n = {n}, {config.seeds} seeds, stop at ||x - x*|| < {config.eps:g}"
        context = entry["context"]
        lines = [title, "", context["recipe"]]
        if "condition_number" in context:
            kappa = context["condition_number"]
            lines.append(
                f"condition number: median {kappa['median']:.3g}, "
                f"range {kappa['min']:.3g} – {kappa['max']:.3g}"
            )
        lines += ["", report.markdown_table(entry["rows"], COLUMNS)]
        if "classic_start" in entry:
            lines += [
                "",
                f"From the seed study's start {problems.ROSENBROCK_START}:",
                "",
                report.markdown_table(
                    entry["classic_start"],
                    [
                        report.Column("method", "method"),
                        report.Column("iterations", "iterations"),
                        report.Column("status", "status"),
                    ],
                ),
            ]
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


def figure(config, results: dict):
    """Distance to x* against iteration, one panel per size, up to the longest run."""
    sizes = list(results["sizes"])
    fig, axes = plots.panel_figure(len(sizes))
    for ax, n in zip(axes, sizes):
        curves = results["sizes"][n]["curves"]
        length = max(curve.shape[1] for curve in curves.values())
        padded = {  # a run that stopped earlier stays at its last distance
            method: np.pad(curve, ((0, 0), (0, length - curve.shape[1])), mode="edge")
            for method, curve in curves.items()
        }
        plots.draw_convergence(
            ax,
            padded,
            ylabel=f"||x_k - x*||, median of {config.seeds} seeds, IQR band",
            title=f"{config.problem}, n = {n}",
            threshold=config.eps,
        )
    return fig


def write_outputs(config, results: dict, root) -> RunDir:
    run_dir = RunDir.create(root, f"quasi_newton-{config.problem}")
    run_dir.write_json("results.json", results)
    run_dir.write_text("table.md", render_tables(config, results))
    rows = [row for entry in results["sizes"].values() for row in entry["rows"]]
    run_dir.write_text("results.csv", report.csv_text(rows, [report.Column("n", "n")] + COLUMNS))
    run_dir.save_figure("convergence.png", figure(config, results))
    return run_dir


def config_from_flags() -> default_config.Config:
    config = default_config.get_config(FLAGS.problem)
    overrides = {}
    if FLAGS.n is not None:
        try:
            overrides["sizes"] = tuple(int(n) for n in FLAGS.n)
        except ValueError:
            raise ValueError(f"--n takes integers separated by commas, got {','.join(FLAGS.n)}")
    for name in ("seeds", "eps", "max_iters", "repeats"):
        if getattr(FLAGS, name) is not None:
            overrides[name] = getattr(FLAGS, name)
    if FLAGS.methods is not None:
        overrides["methods"] = tuple(FLAGS.methods)
    overrides["scipy"] = FLAGS.scipy
    return dataclasses.replace(config, **overrides)


def define_flags() -> None:
    flags.DEFINE_enum("problem", "quadratic", PROBLEMS, "Test problem.")
    flags.DEFINE_list("n", None, "Problem sizes, e.g. 2,50,228 (default: the problem's config).")
    flags.DEFINE_integer("seeds", None, "Number of random problems or starting points.")
    flags.DEFINE_float("eps", None, "Stop when ||x_k - x*|| < eps.")
    flags.DEFINE_list("methods", None, f"Methods, any of {', '.join(METHODS)}.")
    flags.DEFINE_integer("max_iters", None, "Iteration budget per run.")
    flags.DEFINE_bool("scipy", True, "Add scipy BFGS and L-BFGS-B reference rows.")
    flags.DEFINE_integer("repeats", None, "Timed calls per compiled program (median reported).")
    flags.DEFINE_string("out", "runs", "Directory that receives the run directory.")


# Second-order methods and their references run in float64.
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
    cli.run(NAME, main, define_flags)
