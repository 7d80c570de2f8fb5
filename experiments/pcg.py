r"""Preconditioned conjugate gradients on SuiteSparse matrices and on the 2-D Poisson matrix.

    python -m experiments.pcg --matrix=1138_bus
    python -m experiments.pcg --matrix=1138_bus --rhs=20
    python -m experiments.pcg --matrix=path/to/any.mtx --tol=1e-8
    python -m experiments.pcg --matrix=poisson2d --size=1000 --max_iters=300 --repeats=1

Solves ``A x = b`` with ``optlab.linalg.cg`` (float64; ``A`` stored as BCOO, or by
diagonals when it is a stencil: ``--layout``, see ``optlab.linalg.sparse_matrix``) from
``x0 = --x0 * ones`` for ``b = --rhs_scale * N(0, I)`` drawn from ``--seed`` (the classic
exercise: ``b ~ N(0, 20)``, ``x0 = ones``), stopping when ``||r_k||_2 < --tol`` on the
recursively updated residual, with each preconditioner: none, Jacobi, IC(0) (zero fill,
two level-scheduled sparse triangular solves per iteration) and ideal (a dense Cholesky
factor of ``A``; skipped above ``ideal_max_n`` unknowns). scipy's
``scipy.sparse.linalg.cg`` with the same rule and the same preconditioners (IC(0) applied
with ``spsolve_triangular``, from optlab's factor, since scipy has none) gives the
reference rows; their iteration counts should agree within a few percent.

Reported per (preconditioner, solver): iterations, status, the set-up time of the
preconditioner (median of ``--repeats``, apart from the solve), the solve time (median of
``--repeats`` calls of the compiled solve; compile time apart), time per iteration, the
true residual ``||b - A x||_2`` of the returned ``x``, and for optlab the cost of
recording the residual history: the same solve with a history buffer of one entry per
iteration, timed the same way, as a ratio. With ``--rhs=K > 1`` every preconditioner also
solves ``K`` further right-hand sides in one vmapped call (sharded over devices when there
are several): mean ± std of the iterations, the call's time, and scipy's loop of ``K``
solves. Printed context: n, stored nonzeros, ``cond(A) = lambda_max / lambda_min`` (dense
``eigvalsh`` up to 5000 unknowns, closed form for poisson2d, ``eigsh`` otherwise), and
the time of one product ``A v`` in optlab's layout and in scipy's CSR.

Written into a new run directory under ``--out``: ``results.json``, ``table.md``,
``results.csv`` and ``residuals.png`` (``||r_k||`` against ``k``, log scale, one line per
preconditioner).
"""

from __future__ import annotations

import dataclasses
import functools
import statistics
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse
import scipy.sparse.linalg
from absl import flags

from configs import pcg as default_config
from experiments.kit import cli
from experiments.kit.rundir import RunDir
from experiments.kit.scipy_reference import scipy_cg, scipy_preconditioner, single_threaded_blas
from optlab import linalg, plots, report, stats, sweep
from optlab.status import Status

NAME = "pcg"
FLAGS = flags.FLAGS
PRECONDITIONERS: dict[str, Callable | None] = {
    "none": None,
    "jacobi": linalg.jacobi,
    "ic0": linalg.ic0,
    "ideal": linalg.ideal,
}
DENSE_EIGENVALUES_MAX_N = 5000


def validate(config: default_config.Config) -> None:
    unknown = [name for name in config.preconditioners if name not in PRECONDITIONERS]
    if unknown or not config.preconditioners:
        raise ValueError(
            f"--preconditioners must name some of {', '.join(PRECONDITIONERS)}, "
            f"got {','.join(config.preconditioners)!r}"
        )
    if len(set(config.preconditioners)) != len(config.preconditioners):
        raise ValueError("--preconditioners names one preconditioner twice")
    if config.matrix == "poisson2d" and config.size < 2:
        raise ValueError(f"--size must be at least 2, got {config.size}")
    if not config.tol > 0:
        raise ValueError(f"--tol must be positive, got {config.tol}")
    if config.max_iters is not None and config.max_iters < 1:
        raise ValueError(f"--max_iters must be at least 1, got {config.max_iters}")
    if config.rhs < 1:
        raise ValueError(f"--rhs must be at least 1, got {config.rhs}")
    if config.repeats < 1:
        raise ValueError(f"--repeats must be at least 1, got {config.repeats}")
    if not config.rhs_scale > 0:
        raise ValueError(f"--rhs_scale must be positive, got {config.rhs_scale}")
    if not config.ic0_shift >= 0:
        raise ValueError(f"--ic0_shift must be >= 0, got {config.ic0_shift}")
    load_matrix(config.matrix, config.size)  # a missing or malformed file is a usage error


@functools.cache
def load_matrix(matrix: str, size: int) -> tuple[str, scipy.sparse.csr_array]:
    """The study's matrix and its display name; ``ValueError`` for a bad ``--matrix``.

    Cached, so that :func:`validate` can load it and :func:`run_study` reuse it.
    """
    if matrix == "poisson2d":
        return f"poisson2d ({size} x {size} grid)", linalg.poisson2d(size, as_scipy=True)
    return matrix, scipy.sparse.csr_array(linalg.read_matrix_market(matrix))


def eigenvalue_bounds(config, A) -> tuple[float, float, str]:
    """``(lambda_min, lambda_max, how)`` of the SPD matrix ``A``."""
    if config.matrix == "poisson2d":
        return (*linalg.poisson2d_eigenvalue_bounds(config.size), "closed form")
    if A.shape[0] <= DENSE_EIGENVALUES_MAX_N:
        eigenvalues = np.linalg.eigvalsh(A.toarray())
        return float(eigenvalues[0]), float(eigenvalues[-1]), "numpy.linalg.eigvalsh"
    largest = scipy.sparse.linalg.eigsh(A, k=1, which="LA", return_eigenvectors=False)[0]
    smallest = scipy.sparse.linalg.eigsh(
        A, k=1, sigma=0.0, which="LM", return_eigenvectors=False
    )[0]
    return float(smallest), float(largest), "scipy.sparse.linalg.eigsh (shift-invert)"


def layout_name(A_op) -> str:
    if isinstance(A_op, linalg.DiagonalMatrix):
        return f"by diagonals ({len(A_op.offsets)} diagonals)"
    return f"BCOO ({A_op.nse} stored entries)"


def time_matvecs(A, A_op, v, repeats: int) -> dict[str, float]:
    """Median time of one product ``A v``: optlab's compiled one and scipy's CSR one."""
    matvec = jax.jit(lambda A_op, v: A_op @ v)
    v_jax = jnp.asarray(v)
    jax.block_until_ready(matvec(A_op, v_jax))
    calls = max(10, 10 * repeats)
    _, optlab_seconds = timed(lambda: matvec(A_op, v_jax), calls)
    _, scipy_seconds = timed(lambda: A @ v, calls)
    return {"optlab": optlab_seconds, "scipy": scipy_seconds}


def timed(fn: Callable, repeats: int):
    """``fn()``'s last value and the median wall time of ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        value = jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return value, statistics.median(times)


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
    n = A.shape[0]
    max_iters = 10 * n if config.max_iters is None else config.max_iters
    factory = PRECONDITIONERS[name]
    if name == "ic0":
        factory = functools.partial(linalg.ic0, shift=config.ic0_shift)
    precond, setup_seconds = timed(
        (lambda: factory(A)) if factory else (lambda: None), config.repeats
    )

    plain = functools.partial(solve, tol=config.tol, max_iters=max_iters, history=0)
    result, timing = sweep.time_compiled(plain, A_op, b, x0, precond, repeats=config.repeats)
    iterations = int(result.iterations)
    # The same solve recording every residual norm, in a buffer sized to this run.
    recorded = functools.partial(solve, tol=config.tol, max_iters=max_iters, history=iterations + 1)
    with_history, history_timing = sweep.time_compiled(
        recorded, A_op, b, x0, precond, repeats=config.repeats
    )
    x = np.asarray(result.x)
    rows = [
        {
            "preconditioner": name,
            "solver": "optlab",
            "iterations": iterations,
            "status": Status(int(result.status)).name.lower(),
            "setup_seconds": setup_seconds,
            "solve_seconds": timing.run_seconds,
            "seconds_per_iteration": timing.run_seconds / max(iterations, 1),
            "compile_seconds": timing.compile_seconds,
            "history_overhead": history_timing.run_seconds / timing.run_seconds,
            "true_residual": float(np.linalg.norm(b - A @ x)),
        }
    ]
    log(
        f"{name}: optlab {iterations} iterations in {report.format_seconds(timing.run_seconds)} "
        f"(set-up {report.format_seconds(setup_seconds)}, "
        f"compile {report.format_seconds(timing.compile_seconds)})"
    )
    extra = {"residual_norms": np.asarray(with_history.residual_norms)}

    if config.scipy:
        M, scipy_setup = timed(
            lambda: scipy_preconditioner(name, A, shift=config.ic0_shift), config.repeats
        )
        runs = [scipy_cg(A, b, x0, tol=config.tol, M=M, max_iters=max_iters)
                for _ in range(config.repeats)]
        seconds = statistics.median(run.seconds for run in runs)
        reference = runs[-1]
        rows.append(
            {
                "preconditioner": name,
                "solver": "scipy",
                "iterations": reference.iterations,
                "status": "converged" if reference.info == 0 else "max_iters",
                "setup_seconds": scipy_setup,
                "solve_seconds": seconds,
                "seconds_per_iteration": seconds / max(reference.iterations, 1),
                "true_residual": float(np.linalg.norm(b - A @ reference.x)),
            }
        )
        log(f"{name}: scipy {reference.iterations} iterations in {report.format_seconds(seconds)}")

    if B is not None:
        extra["rhs"] = solve_right_hand_sides(name, A, A_op, B, x0, precond, config, max_iters)
    return rows, extra


def solve_right_hand_sides(name, A, A_op, B, x0, precond, config, max_iters) -> list[dict]:
    """The ``--rhs`` rows: one vmapped optlab call, and scipy's loop over the same B."""
    placed, padding = sweep.shard_seeds(jnp.asarray(B))
    many = functools.partial(solve_many, tol=config.tol, max_iters=max_iters)
    results, timing = sweep.time_compiled(many, A_op, placed, x0, precond, repeats=config.repeats)
    iterations = np.asarray(results.iterations)[: B.shape[0]]
    converged = np.asarray(results.status)[: B.shape[0]] == Status.CONVERGED
    rows = [
        {
            "preconditioner": name,
            "solver": "optlab (vmapped)",
            "iterations": stats.summarize(iterations).as_dict(),
            "converged": int(converged.sum()),
            "seconds": timing.run_seconds,
        }
    ]
    if config.scipy:
        M = scipy_preconditioner(name, A, shift=config.ic0_shift)
        runs = [scipy_cg(A, rhs, x0, tol=config.tol, M=M, max_iters=max_iters) for rhs in B]
        rows.append(
            {
                "preconditioner": name,
                "solver": "scipy (loop)",
                "iterations": stats.summarize([run.iterations for run in runs]).as_dict(),
                "converged": sum(run.info == 0 for run in runs),
                "seconds": sum(run.seconds for run in runs),
            }
        )
    return rows


def run_study(config: default_config.Config, log: Callable[[str], None] = print) -> dict:
    """Loads the matrix, runs every preconditioner; no file output.

    BLAS (used by scipy's dense Cholesky and numpy) is held to one thread throughout: XLA
    has its own thread pool, and an idle-spinning BLAS pool beside it slowed both scipy
    and optlab several times on a 2-core machine.
    """
    validate(config)
    with single_threaded_blas():
        return _run_study(config, log)


def _run_study(config: default_config.Config, log: Callable[[str], None]) -> dict:
    name, A = load_matrix(config.matrix, config.size)
    n = A.shape[0]
    lambda_min, lambda_max, how = eigenvalue_bounds(config, A)
    log(f"{name}: n = {n}, {A.nnz} stored nonzeros, cond(A) = {lambda_max / lambda_min:.4g}")
    rng = np.random.default_rng(config.seed)
    b = config.rhs_scale * rng.standard_normal(n)
    B = config.rhs_scale * rng.standard_normal((config.rhs, n)) if config.rhs > 1 else None
    x0 = np.full(n, config.x0)
    A_op = linalg.sparse_matrix(A, config.layout)
    matvec_seconds = time_matvecs(A, A_op, b, config.repeats)
    log(
        f"operator: {layout_name(A_op)}; one product A v takes "
        f"{report.format_seconds(matvec_seconds['optlab'])} "
        f"(scipy CSR: {report.format_seconds(matvec_seconds['scipy'])})"
    )

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
        "matrix": {
            "name": name,
            "n": n,
            "nnz": int(A.nnz),
            "lambda_min": lambda_min,
            "lambda_max": lambda_max,
            "condition_number": lambda_max / lambda_min,
            "eigenvalues_by": how,
            "layout": layout_name(A_op),
            "matvec_seconds": matvec_seconds,
        },
        "devices": [str(device) for device in jax.devices()],
        "rows": rows,
        "rhs_rows": rhs_rows,
        "skipped": skipped,
        "residual_norms": residual_norms,
    }


def _seconds(value) -> str:
    return report.format_seconds(value) if value is not None else "—"


COLUMNS = [
    report.Column("preconditioner", "preconditioner"),
    report.Column("solver", "solver"),
    report.Column("iterations", "iterations"),
    report.Column("status", "status"),
    report.Column("setup_seconds", "set-up", _seconds),
    report.Column("solve_seconds", "solve", _seconds),
    report.Column("seconds_per_iteration", "per iteration", _seconds),
    report.Column("compile_seconds", "compile", _seconds),
    report.Column("history_overhead", "with history", "{:.2f}x"),
    report.Column("true_residual", "||b - Ax||", "{:.2e}"),
]


def _mean_std(summary: dict) -> str:
    return f"{summary['mean']:.1f} ± {summary['std']:.1f} ({summary['min']:.0f}–{summary['max']:.0f})"


RHS_COLUMNS = [
    report.Column("preconditioner", "preconditioner"),
    report.Column("solver", "solver"),
    report.Column("iterations", "iterations, mean ± std (min–max)", _mean_std),
    report.Column("converged", "converged"),
    report.Column("seconds", "time for all", _seconds),
]


def summary(config, results: dict) -> str:
    matrix = results["matrix"]
    lines = [
        f"## Preconditioned CG on {matrix['name']}",
        "",
        f"n = {matrix['n']}, {matrix['nnz']} stored nonzeros, cond(A) = "
        f"{matrix['lambda_max']:.4g} / {matrix['lambda_min']:.4g} = "
        f"{matrix['condition_number']:.4g} ({matrix['eigenvalues_by']}).",
        f"b = {config.rhs_scale:g} N(0, I) (seed {config.seed}), x0 = {config.x0:g} ones, "
        f"stop at ||r_k|| < {config.tol:g}; devices: {', '.join(results['devices'])}.",
        f"optlab stores A {matrix['layout']}; one product A v takes "
        f"{report.format_seconds(matrix['matvec_seconds']['optlab'])} "
        f"(scipy CSR: {report.format_seconds(matrix['matvec_seconds']['scipy'])}).",
        "",
        report.markdown_table(results["rows"], COLUMNS),
        "",
        "Times are medians of repeated calls; set-up is the preconditioner's construction, "
        "compile the solve's tracing and compilation. 'with history': time of the same "
        "solve recording every residual norm, as a multiple of the time without.",
    ]
    if results["skipped"]:
        lines += ["", "Skipped: " + "; ".join(results["skipped"]) + "."]
    if results["rhs_rows"]:
        lines += [
            "",
            f"### {config.rhs} random right-hand sides (b = {config.rhs_scale:g} N(0, I))",
            "",
            report.markdown_table(results["rhs_rows"], RHS_COLUMNS),
        ]
    return "\n".join(lines)


def figure(config, results: dict):
    """Residual norm against iteration, one line per preconditioner, log scale."""
    longest = max(curve.size for curve in results["residual_norms"].values())
    curves = {
        name: np.pad(curve, (0, longest - curve.size), constant_values=np.nan)[None]
        for name, curve in results["residual_norms"].items()
    }
    return plots.convergence_figure(
        curves,
        ylabel="||r_k||_2",
        title=f"CG on {results['matrix']['name']}",
        band=None,
        threshold=config.tol,
    )


def write_outputs(config, results: dict, root) -> RunDir:
    run_dir = RunDir.create(root, NAME)
    run_dir.write_json("results.json", results)
    run_dir.write_text("table.md", summary(config, results) + "\n")
    run_dir.write_text("results.csv", report.csv_text(results["rows"], COLUMNS))
    run_dir.save_figure("residuals.png", figure(config, results))
    return run_dir


FLAG_FIELDS = (
    "matrix", "size", "layout", "seed", "rhs_scale", "x0", "tol", "max_iters", "rhs", "ic0_shift",
    "ideal_max_n", "repeats",
)


def config_from_flags() -> default_config.Config:
    overrides = {name: getattr(FLAGS, name) for name in FLAG_FIELDS if getattr(FLAGS, name) is not None}
    if FLAGS.preconditioners is not None:
        overrides["preconditioners"] = tuple(FLAGS.preconditioners)
    overrides["scipy"] = FLAGS.scipy
    return dataclasses.replace(default_config.get_config(), **overrides)


def define_flags() -> None:
    flags.DEFINE_string(
        "matrix", None, "Shipped matrix name (1138_bus, 685_bus, 494_bus), a .mtx path, or poisson2d."
    )
    flags.DEFINE_integer("size", None, "Grid side N of poisson2d (N^2 unknowns).")
    flags.DEFINE_enum(
        "layout", None, ["auto", "bcoo", "diagonal"], "How optlab stores A (see linalg.sparse_matrix)."
    )
    flags.DEFINE_list("preconditioners", None, "Some of none,jacobi,ic0,ideal.")
    flags.DEFINE_integer("seed", None, "Seed of the right-hand sides.")
    flags.DEFINE_float("rhs_scale", None, "Standard deviation of the entries of b.")
    flags.DEFINE_float("x0", None, "The starting point is x0 * ones.")
    flags.DEFINE_float("tol", None, "Stop when ||b - A x_k|| < tol.")
    flags.DEFINE_integer("max_iters", None, "Iteration budget per solve (default 10 n).")
    flags.DEFINE_integer("rhs", None, "Also solve this many random right-hand sides, vmapped.")
    flags.DEFINE_float("ic0_shift", None, "IC(0) factors A + shift * diag(A).")
    flags.DEFINE_integer("ideal_max_n", None, "Skip the dense ideal preconditioner above this n.")
    flags.DEFINE_integer("repeats", None, "Timed calls per solve and set-up (median reported).")
    flags.DEFINE_bool("scipy", True, "Add scipy.sparse.linalg.cg reference rows.")
    flags.DEFINE_string("out", "runs", "Directory that receives the run directory.")


main = cli.study_main(
    NAME,
    config_from_flags=config_from_flags,
    validate=validate,
    run_study=run_study,
    render=summary,
    write_outputs=write_outputs,
    float64=True,
)


if __name__ == "__main__":
    cli.run_script(NAME, main, define_flags)
