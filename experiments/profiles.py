r"""Solvers compared on a problem set: performance profiles and data profiles.

Question: on the CUTEst problems, from their standard starts and perturbed ones, which
solver solves the most problems, and which needs the fewest iterations, evaluations
and seconds to do it? Every JAX solver (optlab's methods, optax's L-BFGS run by
``optlab.minimize``, optimistix's minimisers) runs all starts of a problem in one
vmapped call, a group of problems per compiled program (``optlab.benchmark``); scipy's
methods run on the host. Every run records its history, and the profiles are read off
the histories (``optlab.profiles``): no solver runs again to draw them.

    python -m experiments.profiles
    python -m experiments.profiles --problems=mgh --solvers=bfgs,lbfgs,scipy_bfgs
    python -m experiments.profiles --problems=cutest_bounded --solvers=lbfgsb,scipy_lbfgsb

A run solves its problem at tolerance ``tau`` when ``f <= f_L + tau (f(x0) - f_L)``
within ``--max_evaluations``, with ``f_L`` the collection's minimum value where it gives
one, lowered to the best value any solver reached on that start. Writes table.md (the
summary, then every problem), summary.csv, problems.csv, results.json,
performance_profiles.png (iterations, evaluations, seconds; a run's time counts whole,
where it solved) and data_profiles.png (one panel per tolerance).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math

import jax
import numpy as np
import optax

import optlab
from configs import profiles as default_config
from experiments.kit import cli, options, peer_solvers
from optlab import benchmark, plots, problems, profiles, report

OPTLAB_METHODS = ("bfgs", "lbfgs", "sr1", "newton", "newton_cg", "trust_ncg", "trust_sr1",
                  "nonlinear_cg", "steepest_descent", "lbfgsb")
OPTIMISTIX = {"optimistix_bfgs": "BFGS", "optimistix_lbfgs": "LBFGS",
              "optimistix_nonlinear_cg": "NonlinearCG"}
SCIPY = {"scipy_bfgs": "BFGS", "scipy_lbfgsb": "L-BFGS-B", "scipy_cg": "CG",
         "scipy_newton_cg": "Newton-CG", "scipy_trust_ncg": "trust-ncg"}
SOLVERS = (*OPTLAB_METHODS, "optax_lbfgs", *OPTIMISTIX, *SCIPY)
BOUNDED_SOLVERS = ("lbfgsb", "scipy_lbfgsb")
METRICS = ("iterations", "evaluations", "seconds")


def problem_set(config) -> list[problems.Problem]:
    """The problems ``--problems`` names, at most ``--max_n`` in size."""
    if config.problems == "mgh":
        chosen = problems.mgh_problems()
    elif config.problems in ("cutest", "cutest_bounded"):
        kind = "bounded" if config.problems == "cutest_bounded" else "unconstrained"
        chosen = problems.cutest_problems(kind, max_n=config.max_n,
                                          known_minimum=config.known_minimum)
    else:
        chosen = [problems.cutest(name) for name in config.problems.split(",")]
    return [problem for problem in chosen if problem.n <= config.max_n]


def validate(config) -> None:
    """Tolerances in (0, 1); a bounded set only with solvers that take bounds; the optional
    peers and problems installed."""
    needs = {"optimistix": any(name in OPTIMISTIX for name in config.solvers),
             "sif2jax": config.problems != "mgh"}
    for package, needed in needs.items():
        if needed and importlib.util.find_spec(package) is None:
            raise ValueError(f"{package} is not installed: pip install 'optlab[bench]'")
    for tol in (config.tolerance, *config.data_tolerances):
        if not 0 < tol < 1:
            raise ValueError(f"tolerances must lie in (0, 1), got {tol:g}")
    if config.problems == "cutest_bounded":
        others = sorted(set(config.solvers) - set(BOUNDED_SOLVERS))
        if others:
            raise ValueError(f"--problems=cutest_bounded takes {', '.join(BOUNDED_SOLVERS)}, "
                             f"not {', '.join(others)}")


def run_solver(config, name: str, chosen, starts, log: cli.Log) -> benchmark.Runs:
    """One solver on every problem and start, its history recorded."""
    if name in SCIPY:
        return peer_solvers.scipy_runs(SCIPY[name], chosen, starts, gtol=config.gtol,
                                max_iters=config.max_iters, group=config.group, log=log)
    if name in OPTIMISTIX:
        solve = peer_solvers.optimistix_solver(OPTIMISTIX[name], gtol=config.gtol,
                                        max_steps=config.max_iters)
    elif name == "lbfgsb":
        solve = benchmark.minimize_solver(
            optlab.lbfgsb, max_iters=config.max_iters,
            stop=lambda lower, upper: optlab.stopping.projected_grad_norm(lower, upper,
                                                                          config.gtol))
    else:
        opt = optax.lbfgs() if name == "optax_lbfgs" else getattr(optlab, name)()
        solve = benchmark.minimize_solver(opt, stop=optlab.stopping.grad_norm(config.gtol),
                                          max_iters=config.max_iters)
    return benchmark.run_problems(solve, chosen, starts, group=config.group,
                                  repeats=config.repeats, log=log, label=name)


def run_study(config, log: cli.Log = print) -> dict:
    """Runs every solver (no file output) and returns the runs and their profiles."""
    chosen = problem_set(config)
    if not chosen:
        raise ValueError(f"no problem of {config.problems!r} has n <= {config.max_n}")
    log(f"{len(chosen)} problems, {config.seeds + 1} starts each, "
        f"{len(config.solvers)} solvers")
    starts = [benchmark.perturbed_starts(problem, config.seeds, config.perturbation)
              for problem in chosen]
    runs = {name: run_solver(config, name, chosen, starts, log) for name in config.solvers}
    return {"config": dataclasses.asdict(config), "devices": str(jax.devices()),
            **analyse(config, chosen, runs)}


def analyse(config, chosen, runs: dict[str, benchmark.Runs]) -> dict:
    """Costs to solve per instance (problem, start) and solver, and the profiles."""
    names = list(runs)
    values = np.stack([runs[name].values for name in names])  # (solvers, P, S, entries)
    f0 = values[0, ..., 0]
    best = np.min(np.where(np.isfinite(values), values, np.inf), axis=(0, 3))
    f_star = np.array([problem.f_star for problem in chosen])[:, None]
    f_low = profiles.lowest_values(best, f_star)
    # An instance counts where its start is finite and not already at f_L.
    kept = np.isfinite(f0) & (f0 > f_low)
    sizes = np.broadcast_to(np.array([p.n for p in chosen])[:, None], kept.shape)[kept]

    def costs(tol: float, metric: str) -> np.ndarray:
        """(instances, solvers): the metric's cost to pass the test within the budgets."""
        columns = []
        for name in names:
            run = runs[name]
            per_entry = {"iterations": np.arange(values.shape[-1]),
                         "evaluations": run.evaluations, "seconds": run.seconds[..., None]}
            solved_within = profiles.costs_to_solve(run.values, run.evaluations, f0, f_low,
                                                    tol) <= config.max_evaluations
            cost = profiles.costs_to_solve(run.values, per_entry[metric], f0, f_low, tol)
            columns.append(np.where(solved_within, cost, np.inf)[kept])
        return np.stack(columns, axis=1)

    at_tolerance = {metric: costs(config.tolerance, metric) for metric in METRICS}
    performance = {metric: profiles.performance_profile(cost)
                   for metric, cost in at_tolerance.items()}
    data = {tol: profiles.data_profile(costs(tol, "evaluations"), sizes)
            for tol in config.data_tolerances}
    per_instance = np.where(kept[None], np.stack([runs[n].status for n in names]), -1)
    summary = [summary_row(name, j, at_tolerance, performance, runs[name],
                           per_instance[j][kept]) for j, name in enumerate(names)]
    return {"problems": [{"name": p.name, "n": p.n, "f_star": p.f_star} for p in chosen],
            "solvers": names, "instances": int(kept.sum()), "dropped": int((~kept).sum()),
            "summary": summary, "per_problem": per_problem_rows(chosen, names, runs, kept,
                                                                at_tolerance),
            "performance_profiles": {metric: profile._asdict()
                                     for metric, profile in performance.items()},
            "data_profiles": {f"{tol:g}": profile._asdict() for tol, profile in data.items()}}


def summary_row(name, j, at_tolerance, performance, run: benchmark.Runs, status) -> dict:
    evaluations = at_tolerance["evaluations"][:, j]
    solved = np.isfinite(evaluations)
    statuses = [optlab.Status(int(code)).name.lower() for code in status]
    return {"solver": name, "solved": f"{solved.sum()}/{solved.size}",
            "solved_fraction": float(solved.mean()),
            **{f"wins_{metric}": float(performance[metric].at(1.0)[j]) for metric in METRICS},
            "median_evaluations": float(np.median(evaluations[solved])) if solved.any()
            else math.nan,
            "time_per_run_s": float(run.seconds.mean()), "compile_s": run.compile_seconds,
            "converged": statuses.count("converged"),
            "stopped_otherwise": len(statuses) - statuses.count("converged")}


def per_problem_rows(chosen, names, runs, kept, at_tolerance) -> list[dict]:
    """Per problem and solver: starts solved, median evaluations to solve, time per run,
    the most common status."""
    rows, index = [], np.cumsum(kept.ravel()).reshape(kept.shape) - 1
    for p, problem in enumerate(chosen):
        for j, name in enumerate(names):
            cost = np.array([at_tolerance["evaluations"][index[p, s], j]
                             for s in range(kept.shape[1]) if kept[p, s]])
            common = optlab.Status(int(np.bincount(runs[name].status[p]).argmax()))
            rows.append({"problem": problem.name, "n": problem.n, "solver": name,
                         "solved": int(np.isfinite(cost).sum()), "starts": int(cost.size),
                         "median_evaluations": float(np.median(cost[np.isfinite(cost)]))
                         if np.isfinite(cost).any() else math.nan,
                         "time_per_run_s": float(runs[name].seconds[p].mean()),
                         "status": common.name.lower()})
    return rows


SUMMARY_COLUMNS = [
    ("solver", "solver"), ("solved", "solved"),
    ("wins_iterations", "fewest iterations", "{:.0%}"),
    ("wins_evaluations", "fewest evaluations", "{:.0%}"),
    ("wins_seconds", "fastest", "{:.0%}"),
    ("median_evaluations", "median evaluations (solved)", "{:.0f}"),
    ("time_per_run_s", "time per run", report.format_seconds),
    ("compile_s", "compile", report.format_seconds),
    ("converged", "runs converged"), ("stopped_otherwise", "runs stopped otherwise")]


def render_tables(config, results: dict) -> str:
    names = results["solvers"]
    wide = {}
    for row in results["per_problem"]:
        entry = wide.setdefault(row["problem"], {"problem": row["problem"], "n": row["n"]})
        entry[row["solver"]] = (f"{row['solved']}/{row['starts']}" + (
            f" · {row['median_evaluations']:.0f}" if row["solved"] else ""))
    return "\n".join([
        f"## {config.problems}: {len(results['problems'])} problems with n <= {config.max_n}, "
        f"{config.seeds + 1} starts each ({results['instances']} instances; "
        f"{results['dropped']} dropped: a non-finite start or one already at f_L)", "",
        f"Solved: f <= f_L + {config.tolerance:g} (f(x0) - f_L) within {config.max_evaluations} "
        f"evaluations and {config.max_iters} iterations; every run stops at ||g|| <= "
        f"{config.gtol:g}. The 'fewest' columns are each performance profile at tau = 1 "
        "(ties count for every solver that ties).", "",
        report.markdown_table(results["summary"], SUMMARY_COLUMNS), "",
        "### Every problem: starts solved · median evaluations to solve", "",
        report.markdown_table(list(wide.values()),
                              [("problem", "problem"), ("n", "n"), *((n, n) for n in names)]),
    ]) + "\n"


def write(config, results: dict) -> cli.Report:
    names = results["solvers"]
    as_profile = lambda d: profiles.Profile(np.asarray(d["x"]), np.asarray(d["fractions"]))  # noqa: E731
    performance = plots.profiles_figure(
        {f"{metric}, tolerance {config.tolerance:g}": as_profile(profile)
         for metric, profile in results["performance_profiles"].items()}, names,
        xlabel="tau: within this factor of the best solver")
    data = plots.profiles_figure(
        {f"tolerance {tol}": as_profile(profile)
         for tol, profile in results["data_profiles"].items()}, names, ncols=2,
        xlabel="alpha: evaluations / (n + 1)")
    return cli.Report(
        markdown=render_tables(config, results), results=results,
        tables={"problems.csv": results["per_problem"], "summary.csv": results["summary"]},
        figures={"performance_profiles.png": performance, "data_profiles.png": data})


STUDY = cli.Study(
    "profiles", default_config.get_config, run_study, write, float64=True, validate=validate,
    checks={"solvers": options.some_of(SOLVERS)},
    smoke_flags=("--problems=mgh", "--max_n=3", "--seeds=1", "--max_iters=40",
                 "--solvers=bfgs,optimistix_bfgs,scipy_bfgs", "--repeats=0"))


if __name__ == "__main__":
    cli.run(STUDY)
