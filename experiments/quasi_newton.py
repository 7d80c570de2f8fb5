r"""Newton, SR1, BFGS and L-BFGS on random quadratics (or Rosenbrock), over seeds.

Question: how many iterations does each method need to reach ||x_k - x*|| < eps, and what
does a run cost, once compiled? Every seed's run of one method is a member of one vmapped,
compiled program; scipy's BFGS and L-BFGS-B, with the same stopping rule, are reference
rows. "sr1_exact" starts SR1 from the exact inverse Hessian, as the seed study did (on a
quadratic its first step is Newton's); "sr1" is the honest default, H0 = I.

    python -m experiments.quasi_newton --n=228
    python -m experiments.quasi_newton --n=2,50,228 --seeds=20
    python -m experiments.quasi_newton --problem=rosenbrock

Writes table.md (per size: converged seeds, iterations as mean, std, min-max and 95%
t-interval over them, time per run, compile time), results.json, results.csv and
convergence.png (distance to x* per iteration: median and interquartile band).
"""

import dataclasses
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize

import optlab
from configs import quasi_newton as default_config
from experiments.kit import cli, options, scipy_reference
from optlab import plots, problems, report, stats, sweep

METHODS: dict[str, Callable[[], Any]] = {
    "newton": optlab.newton, "sr1": optlab.sr1, "sr1_exact": lambda: optlab.sr1(init="exact"),
    "bfgs": optlab.bfgs, "bfgs_scaled": lambda: optlab.bfgs(init="scaled"), "lbfgs": optlab.lbfgs,
    "steepest_descent": optlab.steepest_descent, "newton_cg": optlab.newton_cg,
    "trust_ncg": optlab.trust_ncg, "trust_sr1": optlab.trust_sr1,
    "nonlinear_cg": optlab.nonlinear_cg, "lbfgsb": optlab.lbfgsb,
}
PROBLEMS = ("quadratic", "rosenbrock")


class ProblemSet(NamedTuple):
    """A batch of problems with a seed axis, and how to read one member."""

    batch: Any  # pytree, leaves (seeds, ...)
    objective: Callable[[Any], Callable]  # member -> f
    start: Callable[[Any], jax.Array]  # member -> x0
    minimizer: Callable[[Any], jax.Array]  # member -> x*
    numpy_problem: Callable[[int], tuple]  # seed -> (f, grad, x0, x*) in NumPy, for scipy
    context: dict  # printed and saved with the table


def validate(config: default_config.Config) -> None:
    """The check that spans fields: Rosenbrock needs n >= 2."""
    if config.problem == "rosenbrock" and min(config.sizes) < 2:
        raise ValueError(f"--n must be at least 2 for rosenbrock, got {min(config.sizes)}")


def problem_set(config: default_config.Config, n: int) -> ProblemSet:
    if config.problem == "quadratic":
        batch = problems.seed_quadratics(n, config.seeds)
        kappa = np.asarray(jax.vmap(problems.Quadratic.condition_number)(batch))

        def numpy_problem(seed):
            a, b, x_star = (np.asarray(leaf[seed]) for leaf in batch)
            return (lambda x: 0.5 * x @ a @ x + b @ x), (lambda x: a @ x + b), np.zeros(n), x_star

        return ProblemSet(batch, lambda q: q.value, lambda q: jnp.zeros_like(q.minimizer),
                          lambda q: q.minimizer, numpy_problem,
                          {"recipe": "make_spd_matrix (seed study), x* ~ N(0, I), x0 = 0",
                           "condition_number": stats.summarize(kappa).as_dict()})
    starts = problems.rosenbrock_starts(n, config.seeds)
    return ProblemSet(
        starts, lambda x0: problems.rosenbrock, lambda x0: x0,
        lambda x0: problems.rosenbrock_minimizer(n),
        lambda seed: (scipy.optimize.rosen, scipy.optimize.rosen_der, np.asarray(starts[seed]),
                      np.ones(n)),
        {"recipe": "Rosenbrock, x* = 1, x0 ~ U[-2, 2]^n"})


def solve(config, pset: ProblemSet, method: str):
    """All seeds of one method in one compiled program: (Result, Timing)."""
    opt = METHODS[method]()

    def one(member):
        stop = optlab.stopping.distance_to(pset.minimizer(member), config.eps)
        return optlab.minimize(pset.objective(member), pset.start(member), opt, stop=stop,
                               max_iters=config.max_iters, history=config.max_iters + 1)

    return sweep.run_seeds(one, pset.batch, repeats=config.repeats)


def solve_scipy(config, pset: ProblemSet, method: str) -> tuple[np.ndarray, np.ndarray, float]:
    """Per-seed iterations, converged flags and the mean wall time per run of scipy."""
    with scipy_reference.single_threaded_blas():
        runs = [scipy_reference.minimize_to_distance(*pset.numpy_problem(seed), config.eps,
                                                     method=method, max_iters=config.max_iters)
                for seed in range(config.seeds)]
    return (np.array([run.iterations for run in runs]),
            np.array([run.distance < config.eps for run in runs]),
            float(np.mean([run.seconds for run in runs])))


def summary_row(n, method, iterations, converged, time_per_run, compile_seconds) -> dict:
    """Iterations over the converged seeds: mean, std, range and 95% interval."""
    kept = np.where(converged, iterations, np.nan)
    row = {"n": n, "method": method} | stats.mean_std_columns({"iterations": kept}, ".1f")
    return row | {"converged": f"{row['iterations_count']}/{len(kept)}",
                  "iterations_range": "—" if not np.any(converged) else
                  f"{np.nanmin(kept):.0f}–{np.nanmax(kept):.0f}",
                  "time_per_run_s": time_per_run, "compile_s": compile_seconds}


COLUMNS = [("method", "method"), ("converged", "converged"),
           ("iterations", "iterations (mean)", "{:.1f}"), ("iterations_std", "std", "{:.1f}"),
           ("iterations_range", "min–max"), ("iterations_ci_low", "95% CI low", "{:.1f}"),
           ("iterations_ci_high", "95% CI high", "{:.1f}"),
           ("time_per_run_s", "time per run", report.format_seconds),
           ("compile_s", "compile", report.format_seconds)]


def classic_rosenbrock(config) -> list[dict]:
    """Each method once from the seed study's start (3.22, 13.37), for its table."""
    stop = optlab.stopping.distance_to(problems.rosenbrock_minimizer(2), config.eps)
    rows = []
    for method in config.methods:
        result = jax.jit(lambda x: optlab.minimize(
            problems.rosenbrock, x, METHODS[method](), stop=stop, max_iters=config.max_iters,
        ))(jnp.asarray(problems.ROSENBROCK_START))
        rows.append({"method": method, "iterations": int(result.iterations),
                     "status": optlab.Status(int(result.status)).name.lower()})
    return rows


def run_study(config: default_config.Config, log: cli.Log = print) -> dict:
    """Runs the whole study (no file output) and returns its results."""
    results = {"config": dataclasses.asdict(config), "devices": str(jax.devices()), "sizes": {}}
    for n in config.sizes:
        pset = problem_set(config, n)
        rows, curves = [], {}
        for method in config.methods:
            result, timing = solve(config, pset, method)
            iterations = np.asarray(result.iterations)
            converged = np.asarray(result.status) == optlab.Status.CONVERGED
            rows.append(summary_row(n, method, iterations, converged,
                                    timing.run_seconds / config.seeds, timing.compile_seconds))
            curves[method] = np.asarray(result.history.distances)[:, : iterations.max() + 1]
            log(f"n={n} {method}: {converged.sum()}/{config.seeds} converged, mean "
                f"{iterations.mean():.1f} iterations; all seeds in {timing}")
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
        context = entry["context"]
        lines = [f"## {config.problem}, n = {n}, {config.seeds} seeds, stop at ||x - x*|| < "
                 f"{config.eps:g}", "", context["recipe"]]
        if "condition_number" in context:
            kappa = context["condition_number"]
            lines.append(f"condition number: median {kappa['median']:.3g}, "
                         f"range {kappa['min']:.3g} – {kappa['max']:.3g}")
        lines += ["", report.markdown_table(entry["rows"], COLUMNS)]
        if "classic_start" in entry:
            lines += ["", f"From the seed study's start {problems.ROSENBROCK_START}:", "",
                      report.markdown_table(entry["classic_start"], [
                          ("method", "method"), ("iterations", "iterations"),
                          ("status", "status")])]
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


def write(config, results: dict) -> cli.Report:
    sizes = results["sizes"]
    # Distance to x* against iteration, one panel per size.
    figure = plots.panels_figure(
        {f"{config.problem}, n = {n}": entry["curves"] for n, entry in sizes.items()},
        xlabel="iteration", ylabel=f"||x_k - x*||, median of {config.seeds} seeds, IQR band",
        threshold=config.eps)
    return cli.Report(
        markdown=render_tables(config, results), results=results,
        tables={"results.csv": [row for entry in sizes.values() for row in entry["rows"]]},
        figures={"convergence.png": figure})


# Second-order methods and their references run in float64.
STUDY = cli.Study(
    "quasi_newton", default_config.get_config, run_study, write, float64=True, validate=validate,
    checks={"problem": options.one_of(PROBLEMS), "methods": options.some_of(METHODS)},
    run_name=lambda config: f"quasi_newton-{config.problem}",
    smoke_flags=("--n=3", "--seeds=2", "--repeats=1", "--methods=bfgs,lbfgs", "--noscipy"))


if __name__ == "__main__":
    cli.run(STUDY)
