r"""Benchmark: optlab's conjugate gradients against scipy.sparse.linalg.cg, in one process.

    python -m experiments.bench_pcg
    python -m experiments.bench_pcg --poisson_size=316 --repeats=3

Every comparison solves the same system on both sides, in float64, and checks that the
iteration counts agree (within 3%) before it compares times.

* **1138_bus** (``b = 20 N(0, I)``, seed 0; ``x0 = ones``; stop at ``||r_k|| < 1e-7``):
  time per solve of plain CG, Jacobi-PCG and IC(0)-PCG. optlab: ``optlab.linalg.cg`` on
  the layout ``optlab.linalg.sparse_matrix`` picks (CSR there), compiled apart
  (``optlab.sweep.time_compiled``), median of ``repeats`` calls. scipy:
  ``scipy.sparse.linalg.cg(A, b, x0, rtol=0, atol=1e-7, M=...)`` on CSR, median of
  ``repeats`` calls, with the same preconditioners: the inverse diagonal, and optlab's
  IC(0) factor applied by two ``scipy.sparse.linalg.spsolve_triangular`` calls
  (scipy has no incomplete Cholesky). IC(0) set-up: ``optlab.linalg.ic0(A)`` (host
  factorization plus the level schedules of both triangular factors, moved to the
  device), median of ``repeats`` after one warm-up call.
* **20 right-hand sides**: ``jax.vmap`` of plain CG over 20 draws of ``b`` in one call,
  against 20 scipy solves in a Python loop, on 1138_bus and on the renumbered 27-point
  stencil.
* **Layouts**: per test matrix (the bus matrices, ``optlab.linalg.stencil3d`` 27-point
  stencils and 3 x 3 blocks on them, each also renumbered at random as a mesh would be,
  a 7-point stencil, ``random_spd``; n from 494 to 10^5): one product ``v <- A v / ||A
  v||`` in each layout (CSR as numbered, and renumbered by reverse Cuthill-McKee) inside a
  compiled loop, and scipy's CSR product in a Python loop;
  then plain and Jacobi CG per iteration (a fixed count, ``tol`` never met) in the
  layout ``sparse_matrix`` picks, against scipy's.
* **Poisson 2-D**: the 5-point Laplacian on a ``--poisson_size`` squared grid (10^6
  unknowns by default), exactly ``--poisson_iterations`` CG iterations on both sides
  (``tol`` too small to be met), time per iteration. optlab stores the matrix by
  diagonals (``optlab.linalg.sparse_matrix``'s choice for a stencil); the BCOO layout is
  timed too and shown for reference.

BLAS runs on one thread throughout (``single_threaded_blas``): XLA has its own threads,
and on a small machine a spinning BLAS pool beside them slows both sides down.
"""

from __future__ import annotations

import functools
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse
from absl import flags

from experiments.kit import cli
from experiments import pcg as study
from experiments.bench_quasi_newton import machine
from experiments.kit.scipy_reference import (
    scipy_cg, scipy_preconditioner, single_threaded_blas, timed)
from optlab import linalg, sweep
from optlab.status import Status

AGREEMENT = 0.03  # iteration counts must agree within 3% before times are compared
GOALS = {  # comparison -> largest allowed optlab / scipy time ratio
    "CG": 0.5,
    "Jacobi-PCG": 0.5,
    "IC(0)-PCG": 1.0,
    "20 right-hand sides, vmapped": 0.2,  # at least 5x; 10x is the aim
    "Poisson 2-D, per iteration": 1.0,
}
IC0_SETUP_GOAL_S = 0.05


def _agree(ours: int, theirs: int) -> bool:
    return abs(ours - theirs) <= max(1, AGREEMENT * theirs)


def compare_solves(A, b, x0, *, tol: float, repeats: int, log) -> list[dict]:
    """CG, Jacobi-PCG and IC(0)-PCG: one row each, optlab against scipy."""
    A_op = linalg.sparse_matrix(A)
    max_iters = 10 * A.shape[0]
    solve = functools.partial(study.solve, history=0, tol=tol, max_iters=max_iters)
    rows = []
    for name, preconditioner, factory in (
        ("CG", "none", None),
        ("Jacobi-PCG", "jacobi", linalg.jacobi),
        ("IC(0)-PCG", "ic0", linalg.ic0),
    ):
        precond = factory(A) if factory else None
        result, timing = sweep.time_compiled(solve, A_op, b, x0, precond, repeats=repeats)
        # The same solve recording every residual norm, in a buffer sized to this run.
        recorded = functools.partial(study.solve, history=int(result.iterations) + 1, tol=tol,
                                     max_iters=max_iters)
        _, history_timing = sweep.time_compiled(recorded, A_op, b, x0, precond, repeats=repeats)
        M = scipy_preconditioner(preconditioner, A)
        runs = [scipy_cg(A, b, x0, tol=tol, M=M, max_iters=max_iters) for _ in range(repeats)]
        scipy_seconds = statistics.median(run.seconds for run in runs)
        row = {
            "comparison": name,
            "optlab_seconds": timing.run_seconds,
            "scipy_seconds": scipy_seconds,
            "optlab_iterations": int(result.iterations),
            "scipy_iterations": runs[-1].iterations,
            "converged": int(result.status) == Status.CONVERGED and runs[-1].info == 0,
            "compile_seconds": timing.compile_seconds,
            "history_cost": history_timing.run_seconds / timing.run_seconds,
        }
        rows.append(row)
        log(
            f"{name}: optlab {row['optlab_iterations']} iterations in "
            f"{1e3 * timing.run_seconds:.1f} ms, scipy {row['scipy_iterations']} in "
            f"{1e3 * scipy_seconds:.1f} ms"
        )
    return rows


def ic0_setup(A, repeats: int) -> dict:
    """Median time of ``optlab.linalg.ic0(A)`` after a warm-up, and of the bare factor."""
    linalg.ic0(A)  # warm-up: first use of the small device kernels that move the arrays
    _, total = timed(lambda: linalg.ic0(A), repeats)
    _, factor = timed(lambda: linalg.ic0_factor(A), repeats)
    return {"ic0_seconds": total, "factor_seconds": factor}


def compare_many(A, B, x0, *, tol: float, repeats: int, log, name: str = "") -> dict:
    """Plain CG on every row of B: one vmapped optlab call against a scipy loop."""
    A_op = linalg.sparse_matrix(A)
    max_iters = 10 * A.shape[0]
    solve = functools.partial(study.solve_many, tol=tol, max_iters=max_iters)
    placed, padding = sweep.shard_seeds(jnp.asarray(B))
    results, timing = sweep.time_compiled(solve, A_op, placed, x0, None, repeats=repeats)
    iterations = np.asarray(results.iterations)[: B.shape[0]]
    loops = []
    for _ in range(repeats):
        runs = [scipy_cg(A, rhs, x0, tol=tol, max_iters=max_iters) for rhs in B]
        loops.append(sum(run.seconds for run in runs))
    scipy_iterations = np.array([run.iterations for run in runs])
    row = {
        "comparison": f"{B.shape[0]} right-hand sides, vmapped{name and f' ({name})'}",
        "goal_key": "20 right-hand sides, vmapped",
        "optlab_seconds": timing.run_seconds,
        "scipy_seconds": statistics.median(loops),
        "optlab_iterations": float(iterations.mean()),
        "scipy_iterations": float(scipy_iterations.mean()),
        "converged": bool(np.all(np.asarray(results.status)[: B.shape[0]] == Status.CONVERGED)),
        "compile_seconds": timing.compile_seconds,
    }
    log(
        f"{B.shape[0]} right-hand sides: optlab {1e3 * row['optlab_seconds']:.1f} ms vmapped, "
        f"scipy {1e3 * row['scipy_seconds']:.1f} ms in a loop"
    )
    return row


def layout_matrices(scale: float = 1.0) -> dict[str, scipy.sparse.csr_array]:
    """The layout comparison's matrices: the shipped bus matrices, 27-point stencils and
    3 x 3 blocks on them (elasticity-like), each also randomly renumbered as a mesh would
    be, a 7-point stencil and random SPD matrices, n from 494 to about 10^5. ``scale``
    shrinks the generated ones (a test's tiny run)."""
    def side(k: int) -> int:
        return max(3, round(k * scale))

    return {
        **{name: scipy.sparse.csr_array(linalg.read_matrix_market(name))
           for name in ("494_bus", "685_bus", "1138_bus")},
        f"27-point, {side(20)}^3": linalg.stencil3d(side(20)),
        f"27-point, {side(20)}^3, permuted": linalg.stencil3d(side(20), permute=0),
        f"3x3 blocks, 27-point {side(12)}^3": linalg.stencil3d(side(12), block=3),
        f"3x3 blocks, 27-point {side(12)}^3, permuted": linalg.stencil3d(
            side(12), block=3, permute=0),
        f"7-point, {side(46)}^3, permuted": linalg.stencil3d(side(46), points=7, permute=0),
        f"random SPD, {side(10_000)} rows x 20": linalg.random_spd(side(10_000), 20, seed=0),
        f"random SPD, {side(100_000)} rows x 10": linalg.random_spd(side(100_000), 10, seed=1),
    }


def product_seconds(A_op, v, steps: int, repeats: int) -> float:
    """Median time of one product ``v <- A v / ||A v||`` inside a compiled loop."""
    loop = jax.jit(lambda A, v: jax.lax.fori_loop(
        0, steps, lambda _, x: (lambda y: y / jnp.linalg.norm(y))(A @ x), v))
    jax.block_until_ready(loop(A_op, v))
    _, seconds = timed(lambda: jax.block_until_ready(loop(A_op, v)), repeats)
    return seconds / steps


def compare_layouts(matrices, *, steps: int, iterations: int, repeats: int, log) -> list[dict]:
    """Per matrix: one product in each layout and in scipy's CSR, and CG per iteration
    (plain and Jacobi, ``iterations`` of them, tol never met) in the layout that
    ``sparse_matrix`` picks against scipy's."""
    rows = []
    for name, A in matrices.items():
        n = A.shape[0]
        v = np.random.default_rng(0).standard_normal(n)
        coo = scipy.sparse.coo_array(A)
        offsets = np.unique(coo.col - coo.row).size
        layouts = {"csr": linalg.CSRMatrix.from_scipy(A, reorder=False),
                   "csr_renumbered": linalg.CSRMatrix.from_scipy(A, reorder=True),
                   "bcoo": linalg.sparse_matrix(A, "bcoo")}
        if offsets * n <= 2 * A.nnz:
            layouts["diagonal"] = linalg.sparse_matrix(A, "diagonal")
        products = {layout: product_seconds(matrix, jnp.asarray(v), steps, repeats)
                    for layout, matrix in layouts.items()}

        def scipy_products():
            x = v
            for _ in range(steps):
                y = A @ x
                x = y / np.linalg.norm(y)

        _, scipy_product = timed(scipy_products, repeats)
        A_op = linalg.sparse_matrix(A)
        picked = A_op.layout if hasattr(A_op, "layout") else "bcoo"
        if getattr(A_op, "order", None) is not None:
            picked += ", renumbered"
        row = {"matrix": name, "n": n, "per_row": A.nnz / n, "layout": picked,
               "products": products,
               "scipy_product": scipy_product / steps}
        for label, precond, M in (("cg", None, None), ("jacobi", linalg.jacobi(A_op),
                                                      scipy_preconditioner("jacobi", A))):
            solve = functools.partial(study.solve, history=0, tol=1e-300, max_iters=iterations)
            _, timing = sweep.time_compiled(solve, A_op, v, np.zeros(n), precond,
                                            repeats=repeats)
            runs = [scipy_cg(A, v, np.zeros(n), tol=1e-300, M=M, max_iters=iterations)
                    for _ in range(repeats)]
            row[label] = timing.run_seconds / iterations
            row[f"scipy_{label}"] = statistics.median(run.seconds for run in runs) / iterations
        rows.append(row)
        log(f"{name}: n = {n}, {row['layout']}; product "
            + ", ".join(f"{k} {1e6 * t:.1f} µs" for k, t in products.items())
            + f", scipy {1e6 * row['scipy_product']:.1f} µs; CG per iteration "
            f"{row['cg'] / row['scipy_cg']:.2f} of scipy's, "
            f"Jacobi {row['jacobi'] / row['scipy_jacobi']:.2f}")
    return rows


def compare_poisson(size: int, iterations: int, repeats: int, log) -> list[dict]:
    """Time per CG iteration on the Poisson matrix, a fixed number of iterations."""
    A = linalg.poisson2d(size, as_scipy=True)
    n = A.shape[0]
    b = np.random.default_rng(0).standard_normal(n)
    x0 = np.zeros(n)
    tol = 1e-300  # never met: both sides do exactly `iterations` iterations
    solve = functools.partial(study.solve, history=0, tol=tol, max_iters=iterations)
    runs = [scipy_cg(A, b, x0, tol=tol, max_iters=iterations) for _ in range(repeats)]
    scipy_per_iteration = statistics.median(run.seconds for run in runs) / iterations
    rows = []
    for layout in ("diagonal", "bcoo"):
        A_op = linalg.sparse_matrix(A, layout)
        result, timing = sweep.time_compiled(solve, A_op, b, x0, None, repeats=repeats)
        rows.append(
            {
                "comparison": f"Poisson 2-D, per iteration ({layout} layout)",
                "goal_key": "Poisson 2-D, per iteration" if layout == "diagonal" else None,
                "optlab_seconds": timing.run_seconds / iterations,
                "scipy_seconds": scipy_per_iteration,
                "optlab_iterations": int(result.iterations),
                "scipy_iterations": runs[-1].iterations,
                "converged": True,  # not the point: both ran the same fixed count
                "compile_seconds": timing.compile_seconds,
            }
        )
        log(
            f"Poisson n = {n} ({layout}): optlab {1e6 * rows[-1]['optlab_seconds']:.0f} µs "
            f"per iteration, scipy {1e6 * scipy_per_iteration:.0f} µs"
        )
    return rows


def measure(
    *, matrix: str = "1138_bus", rhs: int = 20, poisson_size: int = 1000,
    poisson_iterations: int = 100, repeats: int = 5, layout_scale: float = 1.0,
    layout_steps: int = 100, layout_iterations: int = 50, log=print,
) -> dict:
    """Every comparison; the figures that BENCHMARKS.md reports."""
    with single_threaded_blas():
        A = linalg.read_matrix_market(matrix)
        n = A.shape[0]
        rng = np.random.default_rng(0)
        b = 20.0 * rng.standard_normal(n)
        B = 20.0 * rng.standard_normal((rhs, n))
        x0 = np.ones(n)
        rows = compare_solves(A, b, x0, tol=1e-7, repeats=repeats, log=log)
        setup = ic0_setup(A, repeats)
        log(f"IC(0) set-up: {1e3 * setup['ic0_seconds']:.1f} ms")
        rows.append(compare_many(A, B, x0, tol=1e-7, repeats=repeats, log=log, name=matrix))
        matrices = layout_matrices(layout_scale)
        permuted = next(name for name in matrices if name.startswith("27-point") and
                        name.endswith("permuted"))
        stencil = matrices[permuted]
        rows.append(compare_many(
            stencil, 20.0 * rng.standard_normal((rhs, stencil.shape[0])),
            np.ones(stencil.shape[0]), tol=1e-7, repeats=repeats, log=log, name=permuted))
        rows += compare_poisson(poisson_size, poisson_iterations, repeats, log)
        layouts = compare_layouts(matrices, steps=layout_steps, iterations=layout_iterations,
                                  repeats=repeats, log=log)
    for row in rows:
        row["ratio"] = row["optlab_seconds"] / row["scipy_seconds"]
        row.setdefault("goal_key", row["comparison"])
        row["agree"] = _agree(round(row["optlab_iterations"]), round(row["scipy_iterations"]))
    for row in layouts:
        plain = row["matrix"].endswith("_bus") or not any(
            word in row["matrix"] for word in ("permuted", "random"))
        row["goal"] = 0.5 if plain else 1.0
    return {"matrix": matrix, "n": n, "poisson_n": poisson_size**2, "rows": rows, **setup,
            "layouts": layouts}


def _time(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{1e3 * seconds:.3g} ms"
    return f"{1e6 * seconds:.3g} µs"


def format_report(measured: dict) -> str:
    lines = [
        "| comparison | optlab | scipy | optlab / scipy | goal | iterations (optlab / scipy) |",
        "|---|---|---|---|---|---|",
    ]
    for row in measured["rows"]:
        goal = GOALS.get(row["goal_key"]) if row["goal_key"] else None
        verdict = "—"
        if goal is not None:
            met = row["ratio"] <= goal and row["agree"]
            verdict = f"≤ {goal:g}: {'yes' if met else '**no**'}"
        counts = f"{row['optlab_iterations']:g} / {row['scipy_iterations']:g}"
        if not row["agree"]:
            counts += " (**differ by more than 3%**)"
        lines.append(
            f"| {row['comparison']} | {_time(row['optlab_seconds'])} | "
            f"{_time(row['scipy_seconds'])} | {row['ratio']:.2f} | {verdict} | {counts} |"
        )
    met = measured["ic0_seconds"] < IC0_SETUP_GOAL_S
    lines += [
        "",
        f"- IC(0) set-up on {measured['matrix']}: {_time(measured['ic0_seconds'])} "
        f"(goal < {_time(IC0_SETUP_GOAL_S)}: {'yes' if met else '**no**'}), of which the "
        f"host factorization {_time(measured['factor_seconds'])}.",
        "- compile times (apart from the figures above): "
        + ", ".join(f"{row['comparison']} {_time(row['compile_seconds'])}" for row in measured["rows"]),
        "- the solve recording every residual norm, against the solve without: "
        + ", ".join(f"{row['comparison']} {row['history_cost']:.2f}x"
                    for row in measured["rows"] if "history_cost" in row),
        "", "Layouts: one product (compiled loop) in each layout and in scipy's CSR; CG per "
        "iteration in the layout sparse_matrix picks, against scipy (goal: at most 0.5 of "
        "scipy's on the bus matrices and stencils, 1.0 elsewhere).", "",
        "| matrix | n | per row | picked | CSR | CSR renumbered | BCOO | diagonals "
        "| scipy CSR | CG / scipy | Jacobi-PCG / scipy | goal |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in measured["layouts"]:
        ratios = [row[key] / row[f"scipy_{key}"] for key in ("cg", "jacobi")]
        met = max(ratios) <= row["goal"]
        products = [_time(row["products"][key]) if key in row["products"] else "—"
                    for key in ("csr", "csr_renumbered", "bcoo", "diagonal")]
        lines.append(f"| {row['matrix']} | {row['n']} | {row['per_row']:.1f} | "
                     f"{row['layout']} | " + " | ".join(products)
                     + f" | {_time(row['scipy_product'])} | "
                     f"{ratios[0]:.2f} | {ratios[1]:.2f} | ≤ {row['goal']:g}: "
                     f"{'yes' if met else '**no**'} |")
    return "\n".join(lines)


def define_flags() -> None:
    flags.DEFINE_string("matrix", "1138_bus", "Shipped matrix or .mtx path of the solve comparisons.")
    flags.DEFINE_integer("rhs", 20, "Right-hand sides of the vmapped comparison.")
    flags.DEFINE_integer("poisson_size", 1000, "Grid side of the Poisson comparison (size^2 unknowns).")
    flags.DEFINE_integer("poisson_iterations", 100, "CG iterations timed on the Poisson matrix.")
    flags.DEFINE_integer("repeats", 5, "Timed calls per comparison (median reported).")
    flags.DEFINE_float("layout_scale", 1.0, "Scales the generated matrices of the layout table.")


def main(argv):
    del argv
    FLAGS = flags.FLAGS
    for name in ("rhs", "poisson_size", "poisson_iterations", "repeats"):
        if getattr(FLAGS, name) < (2 if name == "poisson_size" else 1):
            return cli.fail("bench_pcg", f"--{name} is too small: {getattr(FLAGS, name)}")
    try:
        linalg.read_matrix_market(FLAGS.matrix)
    except ValueError as error:
        return cli.fail("bench_pcg", str(error))
    jax.config.update("jax_enable_x64", True)
    info = machine()
    print(
        f"machine: {info['processor']}, {info['cpu_count']} CPUs, devices [{info['devices']}], "
        f"python {info['python']}, jax {info['jax']}, numpy {np.__version__}"
    )
    start = time.perf_counter()
    measured = measure(
        matrix=FLAGS.matrix, rhs=FLAGS.rhs, poisson_size=FLAGS.poisson_size,
        poisson_iterations=FLAGS.poisson_iterations, repeats=FLAGS.repeats,
        layout_scale=FLAGS.layout_scale,
    )
    print(f"benchmark took {time.perf_counter() - start:.1f} s\n")
    print(format_report(measured))
    return 0


if __name__ == "__main__":
    cli.run_script("bench_pcg", main, define_flags)
