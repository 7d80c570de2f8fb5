r"""Preconditioned conjugate gradients on SuiteSparse matrices and on the 2-D Poisson matrix.

Question: how much does each preconditioner (none, Jacobi, IC(0), the ideal dense
Cholesky factor) save in iterations and in time, and how does optlab's compiled CG
compare with scipy's? ``A x = b`` is solved in float64 from ``x0 = --x0 * ones`` for
``b = --rhs_scale * N(0, I)``, stopping when ``||r_k||_2 < --tol`` (the classic exercise:
1138_bus, ``b ~ N(0, 20)``, ``x0 = ones``); scipy's ``cg`` with the same preconditioners
(IC(0) from optlab's factor) gives the reference rows.

    python -m experiments.pcg --matrix=1138_bus
    python -m experiments.pcg --matrix=1138_bus --rhs=20
    python -m experiments.pcg --matrix=path/to/any.mtx --tol=1e-8
    python -m experiments.pcg --matrix=poisson2d --size=1000 --max_iters=300 --repeats=1

Writes table.md (per preconditioner and solver: iterations, status, set-up, solve,
per-iteration and compile time, the true residual; with ``--rhs=K`` the K right-hand
sides vmapped against scipy's loop; n, nonzeros, cond(A)),
results.json, results.csv and residuals.png (``||r_k||`` against k, per preconditioner).
"""

import dataclasses
import functools
import statistics
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse
import scipy.sparse.linalg

from configs import pcg as default_config
from experiments.kit import cli, options
from experiments.kit.scipy_reference import (
    scipy_cg, scipy_preconditioner, single_threaded_blas, timed)
from optlab import linalg, plots, report, stats, sweep
from optlab.status import Status

PRECONDITIONERS: dict[str, Callable | None] = {
    "none": None, "jacobi": linalg.jacobi, "ic0": linalg.ic0, "ideal": linalg.ideal,
}
DENSE_MAX_N = 5000  # every eigenvalue of A up to this n, else the extremes by eigsh


def validate(config: default_config.Config) -> None:
    """A missing or malformed matrix file is a usage error."""
    load_matrix(config.matrix, config.size)


@functools.cache
def load_matrix(matrix: str, size: int) -> tuple[str, scipy.sparse.csr_array]:
    """The study's matrix and its display name; ``ValueError`` for a bad ``--matrix``.

    Cached, so that :func:`validate` can load it and :func:`run_study` reuse it.
    """
    if matrix == "poisson2d":
        return f"poisson2d ({size} x {size} grid)", linalg.poisson2d(size, as_scipy=True)
    return matrix, scipy.sparse.csr_array(linalg.read_matrix_market(matrix))


def solve(A, b, x0, precond, *, tol, max_iters, history) -> linalg.CGResult:
    """One optlab solve; A and the preconditioner are arguments, so the program has no
    large constants and is reused for every right-hand side."""
    return linalg.cg(A, b, x0, precond=precond, tol=tol, max_iters=max_iters, history=history)


def solve_many(A, B, x0, precond, *, tol, max_iters) -> linalg.CGResult:
    """Every row of ``B`` as a right-hand side, in one vmapped solve."""
    one = functools.partial(solve, tol=tol, max_iters=max_iters, history=0)
    return jax.vmap(one, in_axes=(None, 0, None, None))(A, B, x0, precond)


def run_preconditioner(name, A, A_op, b, B, x0, config, log) -> tuple[list[dict], dict]:
    """The optlab row, the scipy row (if asked), the vmapped right-hand sides and history."""
    max_iters = 10 * A.shape[0] if config.max_iters is None else config.max_iters
    factory = PRECONDITIONERS[name]
    if name == "ic0":  # 0: the smallest shift that factors A, none where none is needed
        factory = functools.partial(linalg.ic0, shift=config.ic0_shift or "auto")
    precond, setup_seconds = timed((lambda: factory(A)) if factory else (lambda: None),
                                   config.repeats)
    shift = getattr(precond, "shift", 0.0)  # IC(0)'s, for scipy's rows too
    if shift:
        log(f"{name}: IC(0) broke down on A; it factors A + {shift:g} diag(A)")
    plain = functools.partial(solve, tol=config.tol, max_iters=max_iters, history=0)
    result, timing = sweep.time_compiled(plain, A_op, b, x0, precond, repeats=config.repeats)
    iterations = int(result.iterations)
    # The same solve recording every residual norm, in a buffer sized to this run.
    with_history = jax.jit(functools.partial(solve, tol=config.tol, max_iters=max_iters,
                                             history=iterations + 1))(A_op, b, x0, precond)
    rows = [{"preconditioner": name, "solver": "optlab", "iterations": iterations,
             "status": Status(int(result.status)).name.lower(), "setup_seconds": setup_seconds,
             "solve_seconds": timing.run_seconds,
             "seconds_per_iteration": timing.run_seconds / max(iterations, 1),
             "compile_seconds": timing.compile_seconds,
             "true_residual": float(np.linalg.norm(b - A @ np.asarray(result.x)))}]
    log(f"{name}: optlab {iterations} iterations in {timing} (set-up "
        f"{report.format_seconds(setup_seconds)})")
    extra = {"residual_norms": np.asarray(with_history.residual_norms)}
    if config.scipy:
        M, scipy_setup = timed(lambda: scipy_preconditioner(name, A, shift=shift),
                               config.repeats)
        runs = [scipy_cg(A, b, x0, tol=config.tol, M=M, max_iters=max_iters)
                for _ in range(config.repeats)]
        seconds, reference = statistics.median(run.seconds for run in runs), runs[-1]
        rows.append({"preconditioner": name, "solver": "scipy",
                     "iterations": reference.iterations,
                     "status": "converged" if reference.info == 0 else "max_iters",
                     "setup_seconds": scipy_setup, "solve_seconds": seconds,
                     "seconds_per_iteration": seconds / max(reference.iterations, 1),
                     "true_residual": float(np.linalg.norm(b - A @ reference.x))})
        log(f"{name}: scipy {reference.iterations} iterations in {report.format_seconds(seconds)}")
    if B is not None:
        extra["rhs"] = solve_right_hand_sides(name, A, A_op, B, x0, precond, config, max_iters,
                                              shift)
    return rows, extra


def solve_right_hand_sides(name, A, A_op, B, x0, precond, config, max_iters,
                           shift) -> list[dict]:
    """The ``--rhs`` rows: one vmapped optlab call, and scipy's loop over the same B."""
    placed, _ = sweep.shard_seeds(jnp.asarray(B))
    many = functools.partial(solve_many, tol=config.tol, max_iters=max_iters)
    results, timing = sweep.time_compiled(many, A_op, placed, x0, precond, repeats=config.repeats)
    iterations = np.asarray(results.iterations)[: B.shape[0]]
    converged = np.asarray(results.status)[: B.shape[0]] == Status.CONVERGED
    rows = [{"preconditioner": name, "solver": "optlab (vmapped)",
             "iterations": stats.summarize(iterations), "converged": int(converged.sum()),
             "seconds": timing.run_seconds}]
    if config.scipy:
        M = scipy_preconditioner(name, A, shift=shift)
        runs = [scipy_cg(A, rhs, x0, tol=config.tol, M=M, max_iters=max_iters) for rhs in B]
        rows.append({"preconditioner": name, "solver": "scipy (loop)",
                     "iterations": stats.summarize([run.iterations for run in runs]),
                     "converged": sum(run.info == 0 for run in runs),
                     "seconds": sum(run.seconds for run in runs)})
    return rows


@single_threaded_blas()
def run_study(config: default_config.Config, log: cli.Log = print) -> dict:
    """Loads the matrix, runs every preconditioner; no file output.

    BLAS (used by scipy's dense Cholesky and numpy) is held to one thread throughout: XLA
    has its own thread pool, and an idle-spinning BLAS pool beside it slowed both scipy
    and optlab several times on a 2-core machine.
    """
    name, A = load_matrix(config.matrix, config.size)
    n = A.shape[0]
    lambda_min, lambda_max, how = ((*linalg.poisson2d_eigenvalue_bounds(config.size), "closed form")
                                   if config.matrix == "poisson2d"
                                   else linalg.eigenvalue_bounds(A, dense_max_n=DENSE_MAX_N))
    log(f"{name}: n = {n}, {A.nnz} stored nonzeros, cond(A) = {lambda_max / lambda_min:.4g}")
    rng = np.random.default_rng(config.seed)
    b = config.rhs_scale * rng.standard_normal(n)
    B = config.rhs_scale * rng.standard_normal((config.rhs, n)) if config.rhs > 1 else None
    x0 = np.full(n, config.x0)
    A_op = linalg.sparse_matrix(A, config.layout)
    log(f"operator: {A_op!r}")
    rows, rhs_rows, residual_norms, skipped = [], [], {}, []
    for preconditioner in config.preconditioners:
        if preconditioner == "ideal" and n > config.ideal_max_n:
            skipped.append(f"ideal (n = {n} > ideal_max_n = {config.ideal_max_n})")
            log(f"ideal: skipped, a dense factor of n = {n} is too large")
            continue
        new_rows, extra = run_preconditioner(preconditioner, A, A_op, b, B, x0, config, log)
        rows += new_rows
        rhs_rows += extra.get("rhs", [])
        residual_norms[preconditioner] = extra["residual_norms"]
    return {
        "config": dataclasses.asdict(config),
        "matrix": {"name": name, "n": n, "nnz": int(A.nnz), "lambda_min": lambda_min,
                   "lambda_max": lambda_max, "condition_number": lambda_max / lambda_min,
                   "eigenvalues_by": how, "layout": repr(A_op)},
        "devices": [str(device) for device in jax.devices()], "rows": rows, "rhs_rows": rhs_rows,
        "skipped": skipped, "residual_norms": residual_norms,
    }


SECONDS = report.format_seconds
COLUMNS = [
    ("preconditioner", "preconditioner"), ("solver", "solver"), ("iterations", "iterations"),
    ("status", "status"), ("setup_seconds", "set-up", SECONDS), ("solve_seconds", "solve", SECONDS),
    ("seconds_per_iteration", "per iteration", SECONDS), ("compile_seconds", "compile", SECONDS),
    ("true_residual", "||b - Ax||", "{:.2e}"),
]
RHS_COLUMNS = [
    ("preconditioner", "preconditioner"), ("solver", "solver"),
    ("iterations", "iterations, mean ± std (min–max)",
     lambda summary: stats.format_mean_std(summary, ".1f", spread="range")),
    ("converged", "converged"), ("seconds", "time for all", SECONDS),
]


def summary(config, results: dict) -> str:
    matrix = results["matrix"]
    lines = [
        f"## Preconditioned CG on {matrix['name']}", "",
        f"n = {matrix['n']}, {matrix['nnz']} stored nonzeros, cond(A) = "
        f"{matrix['lambda_max']:.4g} / {matrix['lambda_min']:.4g} = "
        f"{matrix['condition_number']:.4g} ({matrix['eigenvalues_by']}).",
        f"b = {config.rhs_scale:g} N(0, I) (seed {config.seed}), x0 = {config.x0:g} ones, "
        f"stop at ||r_k|| < {config.tol:g}; devices: {', '.join(results['devices'])}.",
        f"optlab stores A as {matrix['layout']}.", "",
        report.markdown_table(results["rows"], COLUMNS), "",
        "Times are medians of repeated calls; set-up is the preconditioner's construction, "
        "compile the solve's tracing and compilation.",
    ]
    if results["skipped"]:
        lines += ["", "Skipped: " + "; ".join(results["skipped"]) + "."]
    if results["rhs_rows"]:
        lines += ["", f"### {config.rhs} random right-hand sides (b = {config.rhs_scale:g} "
                      "N(0, I))", "", report.markdown_table(results["rhs_rows"], RHS_COLUMNS)]
    return "\n".join(lines)


def write(config, results: dict) -> cli.Report:
    # Residual norm against iteration, one line per preconditioner.
    figure = plots.convergence_figure(
        {name: curve[None] for name, curve in results["residual_norms"].items()},
        ylabel="||r_k||_2", title=f"CG on {results['matrix']['name']}", band=None,
        threshold=config.tol)
    return cli.Report(markdown=summary(config, results), results=results,
                      tables={"results.csv": results["rows"]},
                      figures={"residuals.png": figure})


STUDY = cli.Study(
    "pcg", default_config.get_config, run_study, write, float64=True, validate=validate,
    checks={"preconditioners": options.some_of(PRECONDITIONERS),
            "layout": options.one_of(linalg.operators.LAYOUTS)},
    smoke_flags=("--matrix=494_bus", "--repeats=1", "--rhs=2", "--preconditioners=none,jacobi"),
)


if __name__ == "__main__":
    cli.run(STUDY)
