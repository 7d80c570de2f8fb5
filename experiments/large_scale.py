r"""Benchmark: matrix-free second order and L-BFGS-B at scale, against scipy and optimistix.

    python -m experiments.large_scale
    python -m experiments.large_scale --sizes=1000,10000 --problems=rosenbrock
    python -m experiments.large_scale --problems=bounded_logistic,bounded_logistic_x20

Four problems, float64, each method run to ``||g|| <= --gtol`` (the bounded ones to the
projected gradient's ``||P(w - g) - w|| <= --gtol``), at most ``--max_iters``:

* *rosenbrock*: the extended Rosenbrock function of Moré, Garbow and Hillstrom
  (``optlab.problems.mgh("rosenbrock", n)``) from its standard start;
* *logistic*: L2-regularized logistic regression on synthetic sparse data, ``n``
  samples of ``n`` features with 10 nonzeros each, from ``w = 0``
  (``optlab.problems.sparse_logistic_loss`` and ``sparse_logistic_data``);
* *bounded_logistic*: the same within the box ``|w_i| <= 0.05``, by ``optlab.lbfgsb``
  and scipy's ``L-BFGS-B`` (stopped by a callback at the same Euclidean projected-gradient
  test, its own tests off), each the median of ``SINGLE_REPEATS`` timed calls;
* *bounded_logistic_x20*: 20 such problems (seed 0's sparsity pattern, each seed's values
  and labels, boxes from 0.025 to 0.5) against a loop of 20 scipy runs, in one call of
  ``optlab.sweep.run_seeds``: vmapped (``lbfgsb``), one after another (``lbfgsb, in
  sequence``: ``runs_per_vmap=1``), and that sharded over ``os.cpu_count()`` CPU devices
  (``lbfgsb, in sequence, every core``).

Methods on the unconstrained problems: optlab's ``newton_cg``, ``trust_ncg`` and
``lbfgs``, and dense ``newton`` (with the modified Hessian ``max(|l|, 1e-8)``, a Wolfe
search) up to ``--dense_max`` unknowns, each run by ``optlab.minimize`` compiled apart
(the compile time is reported in its own column); scipy's ``Newton-CG`` and
``trust-ncg``, and optimistix's dense ``BFGS`` up to ``--dense_max`` unknowns, run as
:mod:`experiments.kit.peers` says.

Each run is a process of its own (``--case=problem:n:method``), so that its peak memory,
``resource.getrusage``'s maximum resident set, is its own (JAX's own footprint
included). Evaluations count the objective-and-gradient evaluations (scipy's ``nfev``);
Hessian-vector products are apart. The goals of issues 19 and 20 are printed, met or
not, after the table (:func:`goals`), with the bound that the x20 batch's evaluations
alone (timed in a compiled loop) put on any one-core speedup over scipy's loop.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

import optlab
from experiments.kit import cli, peers
from optlab import report, stopping, sweep

UNCONSTRAINED = ("newton_cg", "trust_ncg", "lbfgs", "newton", "scipy Newton-CG",
                 "scipy trust-ncg", "optimistix BFGS")
BOUNDED = ("lbfgsb", "scipy L-BFGS-B")
IN_SEQUENCE = "lbfgsb, in sequence"  # the x20 batch one problem after another (runs_per_vmap=1)
EVERY_CORE = "lbfgsb, in sequence, every core"  # and sharded over one CPU device per core
METHODS = {"rosenbrock": UNCONSTRAINED, "logistic": UNCONSTRAINED, "bounded_logistic": BOUNDED,
           "bounded_logistic_x20": BOUNDED + (IN_SEQUENCE, EVERY_CORE)}
DENSE = ("newton", "optimistix BFGS")
PROBLEMS = tuple(METHODS)
BOX = 0.05  # the bounded logistic problems' box, |w_i| <= BOX (the x20 batch: 0.025 to 0.5)
BATCH = 20
SINGLE_REPEATS = 5  # timed calls of a single bounded run, optlab's and scipy's (the median)
DATA_AXES = (None, None, 0, 0)  # the x20 data: shared rows and columns, batched values, labels


def objective(problem: str, n: int):
    """``(fun, x0, data, box)``: the objective ``fun(x, data)``, its start, its data (an
    argument of the compiled programs rather than a constant inside them) and the
    half-width of the box ``|x_i| <= box`` (None: unconstrained). The x20 problem's
    start, values, labels and box have a leading axis of ``BATCH`` problems: values and
    labels from seeds 0 to 19 on seed 0's sparsity pattern, boxes from 0.025 to 0.5."""
    if problem == "rosenbrock":
        mgh = optlab.problems.mgh("rosenbrock", n)
        return lambda x, data: mgh.fun(x), jnp.asarray(mgh.x0), None, None
    if problem not in PROBLEMS:
        raise ValueError(f"unknown problem {problem!r}; choose one of {', '.join(PROBLEMS)}")
    fun, data = optlab.problems.sparse_logistic_loss, optlab.problems.sparse_logistic_data
    if problem == "logistic":
        return fun, jnp.zeros(n), data(n), None
    if problem == "bounded_logistic":
        return fun, jnp.zeros(n), data(n), jnp.asarray(BOX)
    # One sparsity pattern (seed 0's), values and labels from each seed: vmap then gathers
    # and scatters with shared indices, far cheaper on XLA's CPU than per-member ones.
    rows, columns, _, _ = data(n)
    values, labels = (jnp.stack(leaves) for leaves in zip(
        *(data(n, seed, pattern_seed=0)[2:] for seed in range(BATCH))))
    return (fun, jnp.zeros((BATCH, n)), (rows, columns, values, labels),
            jnp.geomspace(0.025, 0.5, BATCH))


def _optlab_run(method: str, fun, x0, data, box, gtol: float, max_iters: int,
                runs_per_vmap: int | None = None) -> dict:
    """One optlab run, or with a batch of boxes, the batch in one call
    (``optlab.sweep.run_seeds``: vmapped, or ``runs_per_vmap`` at a time)."""
    def run(x0, data, box):
        if box is None:
            opt = {"newton_cg": optlab.newton_cg, "trust_ncg": optlab.trust_ncg,
                   "lbfgs": optlab.lbfgs,
                   "newton": lambda: optlab.newton("wolfe", min_curvature=1e-8)}[method]()
            stop = stopping.grad_norm(gtol)
        else:
            opt, stop = optlab.lbfgsb(-box, box), stopping.projected_grad_norm(-box, box, gtol)
        return optlab.minimize(lambda x: fun(x, data), x0, opt, stop=stop,
                               max_iters=max_iters, history=max_iters + 1)

    batched = box is not None and jnp.ndim(box) == 1
    if batched:  # the pattern (rows, columns) shared, each problem's values and labels
        rows, columns, values, labels = data

        def member(problem, rows, columns):
            x0, values, labels, box = problem
            return run(x0, (rows, columns, values, labels), box)

        result, timing = sweep.run_seeds(member, (x0, values, labels, box), rows, columns,
                                         repeats=1, runs_per_vmap=runs_per_vmap)
    else:
        result, timing = sweep.time_compiled(run, x0, data, box,
                                             repeats=1 if box is None else SINGLE_REPEATS)
    info = result.history.info
    products = None
    if info is not None and hasattr(info, "cg_iterations"):
        products = int(np.asarray(info.cg_iterations)[1: int(result.iterations) + 1].sum())
    if box is None:
        grad_norm = float(result.grad_norm)
    else:  # the largest over the batch
        x = np.asarray(result.params).reshape(-1, x0.shape[-1])
        g = np.asarray(jax.vmap(jax.grad(fun), in_axes=(0, DATA_AXES))(jnp.asarray(x), data)
                       if batched
                       else jax.grad(fun)(result.params, data)).reshape(x.shape)
        grad_norm = max(peers.projected_grad_norm(xk, gk, bk) for xk, gk, bk in
                        zip(x, g, np.broadcast_to(np.asarray(box), x.shape[:1])))
    statuses = {optlab.Status(int(s)).name.lower() for s in np.ravel(result.status)}
    return {"seconds": timing.run_seconds, "compile_seconds": timing.compile_seconds,
            "iterations": float(np.mean(result.iterations)) if batched
            else int(result.iterations), "evaluations": int(np.sum(result.evaluations)),
            "products": products, "grad_norm": grad_norm, "status": "/".join(sorted(statuses)),
            **({"active": int(np.asarray(info.active)[int(result.iterations)])}
               if box is not None and not batched else {})}


def _members(x0, data, box) -> list[tuple]:
    """``(start, data, box)`` of each bounded problem: one, or the x20 batch's 20."""
    member = lambda k: tuple(leaf if axis is None else leaf[k]  # noqa: E731
                             for leaf, axis in zip(data, DATA_AXES))
    return [(x0[k], member(k), box[k]) for k in range(len(box))] if np.ndim(box) else [
        (x0, data, box)]


def run_case(problem: str, n: int, method: str, gtol: float, max_iters: int) -> dict:
    """One run, in this process: its figures and the process's peak memory."""
    jax.config.update("jax_enable_x64", True)
    fun, x0, data, box = objective(problem, n)
    if method not in METHODS[problem]:
        raise ValueError(f"{problem} is run by {', '.join(METHODS[problem])}, not {method!r}")
    if method == "scipy L-BFGS-B":
        members = _members(x0, data, box)
        row = peers.scipy_lbfgsb_row(fun, members, gtol, max_iters, batch=bool(np.ndim(box)),
                                     repeats=1 if np.ndim(box) else SINGLE_REPEATS)
    elif method.startswith("scipy "):
        row = peers.scipy_newton_row(method.split()[1], fun, x0, data, gtol, max_iters)
    elif method == "optimistix BFGS":
        row = peers.optimistix_bfgs_row(fun, x0, data, gtol, max_iters)
    elif method in (IN_SEQUENCE, EVERY_CORE):  # on every device of the process
        row = _optlab_run("lbfgsb", fun, x0, data, box, gtol, max_iters, runs_per_vmap=1)
    else:
        row = _optlab_run(method, fun, x0, data, box, gtol, max_iters)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    return {"problem": problem, "n": n, "method": method, **row, "peak_bytes": peak,
            "devices": len(jax.devices())}


def measure(problems, sizes, *, gtol: float, max_iters: int, dense_max: int, log=print,
            timeout: float = 1800.0, bounded_gtol: float | None = None) -> list[dict]:
    """Every case as a subprocess of this script."""
    rows = []
    for problem in problems:
        for n in sizes:
            for method in METHODS[problem]:
                if method in DENSE and n > dense_max:
                    continue
                bounded = method in BOUNDED + (IN_SEQUENCE, EVERY_CORE)
                tol = gtol if bounded_gtol is None or not bounded else bounded_gtol
                command = [sys.executable, "-m", "experiments.large_scale",
                           f"--case={problem}:{n}:{method}", f"--gtol={tol}",
                           f"--max_iters={max_iters}"]
                if method == EVERY_CORE:
                    command.append(f"--cpu_devices={os.cpu_count()}")
                done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
                if done.returncode != 0:
                    raise RuntimeError(f"{problem} n={n} {method} failed:\n{done.stderr[-3000:]}")
                row = json.loads(done.stdout.strip().splitlines()[-1])
                rows.append(row)
                log(f"{problem:10s} n={n:<8d} {method:16s} {report.format_seconds(row['seconds'])}"
                    f", {row['iterations']:.4g} iterations, {row['status']}, peak "
                    f"{row['peak_bytes'] / 2**20:.0f} MiB, {row['devices']} device(s)")
    return rows


COLUMNS = [("problem", "problem"), ("n", "n"), ("method", "method"),
           ("seconds", "time", report.format_seconds),
           ("compile_seconds", "compile", report.format_seconds),
           ("iterations", "iterations", "{:.4g}"), ("evaluations", "evaluations"),
           ("products", "Hessian-vector products"), ("grad_norm", "final ‖g‖", "{:.1e}"),
           ("status", "status"), ("peak_bytes", "peak memory", lambda b: f"{b / 2**20:.0f} MiB")]


def format_table(rows: list[dict]) -> str:
    return report.markdown_table(rows, COLUMNS)


def _half_the_time(label: str, ours: dict, theirs: dict) -> str:
    """The sentence of a goal "at most half of the peer's time, iterations within 25%"."""
    ratio = ours["seconds"] / theirs["seconds"]
    spread = abs(ours["iterations"] - theirs["iterations"]) / theirs["iterations"]
    return (f"{label} time {ratio:.2f} (goal <= 0.5: {'yes' if ratio <= 0.5 else 'no'}), "
            f"iterations {ours['iterations']} against {theirs['iterations']} (within 25%: "
            f"{'yes' if spread <= 0.25 else 'no'}).")


def goals(rows: list[dict]) -> list[str]:
    """The issues' goals, as sentences with their figures: ``newton_cg`` solves extended
    Rosenbrock at n = 10^6 and takes at most half of scipy's time at 10^5, ``lbfgsb`` at
    n >= 10^4 (iterations within 25%); 20 bounded problems vmapped 10x faster than scipy."""
    found = {(r["problem"], r["n"], r["method"]): r for r in rows}
    sentences = []
    big = found.get(("rosenbrock", 10**6, "newton_cg"))
    if big is not None:
        met = "yes" if big["status"] == "converged" else "no"
        sentences.append(f"newton_cg solves extended Rosenbrock at n = 10^6 to ||g|| <= gtol: "
                         f"{met} ({big['status']}, {big['iterations']} "
                         f"iterations, {report.format_seconds(big['seconds'])}).")
    ours, theirs = (found.get(("rosenbrock", 10**5, m)) for m in ("newton_cg", "scipy Newton-CG"))
    if ours is not None and theirs is not None:
        sentences.append(_half_the_time("At n = 10^5, newton_cg / scipy Newton-CG", ours, theirs))
    for n in sorted({r["n"] for r in rows if r["problem"] == "bounded_logistic"}):
        ours, theirs = (found.get(("bounded_logistic", n, m)) for m in BOUNDED)
        if ours is not None and theirs is not None and n >= 10**4:
            sentences.append(_half_the_time(
                f"Bounded logistic at n = {n}: lbfgsb / scipy L-BFGS-B", ours, theirs))
    for n in sorted({r["n"] for r in rows if r["problem"] == "bounded_logistic_x20"}):
        theirs = found.get(("bounded_logistic_x20", n, "scipy L-BFGS-B"))
        if theirs is not None and theirs.get("evaluation_seconds"):
            bound = theirs["seconds"] / theirs["evaluation_seconds"]
            sentences.append(
                f"At n = {n} the {BATCH} problems' {theirs['evaluations']} evaluations alone take "
                f"{report.format_seconds(theirs['evaluation_seconds'])} in a compiled loop: on "
                f"one core no run of them is more than {bound:.1f}x faster than scipy's loop.")
        for method, how in (("lbfgsb", "vmapped"), (IN_SEQUENCE, "in sequence"),
                            (EVERY_CORE, "in sequence over {devices} CPU devices")):
            ours = found.get(("bounded_logistic_x20", n, method))
            if ours is None or theirs is None:
                continue
            speedup = theirs["seconds"] / ours["seconds"]
            how = how.format(devices=ours.get("devices", "several"))
            sentences.append(f"{BATCH} bounded logistic problems at n = {n}, {how} in one "
                             f"call: {speedup:.1f}x faster than a loop of scipy runs (goal "
                             f">= 10: {'yes' if speedup >= 10 else 'no'}).")
    return sentences


def define_flags() -> None:
    flags.DEFINE_list("problems", list(PROBLEMS), f"Problems: {', '.join(PROBLEMS)}.")
    flags.DEFINE_list("sizes", ["1000", "10000", "100000", "1000000"], "Numbers of unknowns.")
    flags.DEFINE_float("gtol", 1e-6, "Every run stops at ||grad|| <= gtol.")
    flags.DEFINE_float("bounded_gtol", 1e-9, "The bounded problems' runs stop at "
                       "||P(w - grad) - w|| <= bounded_gtol (their mean loss has a gradient "
                       "of order 1/sqrt(n), so --gtol would end them after a few steps).")
    flags.DEFINE_integer("max_iters", 1000, "Iteration budget of every run.")
    flags.DEFINE_integer("dense_max", 1000, "Largest n of the dense methods.")
    flags.DEFINE_string("case", None, "problem:n:method: one run, printed as JSON (internal).")
    flags.DEFINE_integer("cpu_devices", None, "CPU devices of a --case run's process "
                         "(internal: the method that runs on every core).")


def main(argv):
    del argv
    FLAGS = flags.FLAGS
    if FLAGS.case:
        problem, n, method = FLAGS.case.split(":", 2)
        if FLAGS.cpu_devices:
            jax.config.update("jax_num_cpu_devices", FLAGS.cpu_devices)
        print(json.dumps(run_case(problem, int(n), method, FLAGS.gtol, FLAGS.max_iters)))
        return 0
    unknown = set(FLAGS.problems) - set(PROBLEMS)
    if unknown:
        return cli.fail("large_scale", f"unknown problems {sorted(unknown)}; choose from "
                        f"{', '.join(PROBLEMS)}")
    try:
        sizes = [int(size) for size in FLAGS.sizes]
    except ValueError:
        return cli.fail("large_scale", f"--sizes must be integers, got {FLAGS.sizes}")
    if any(size < 2 or size % 2 for size in sizes):
        return cli.fail("large_scale", f"--sizes must be even and at least 2, got {sizes}")
    start = time.perf_counter()
    rows = measure(FLAGS.problems, sizes, gtol=FLAGS.gtol, max_iters=FLAGS.max_iters,
                   dense_max=FLAGS.dense_max, bounded_gtol=FLAGS.bounded_gtol)
    print(f"\nbenchmark took {time.perf_counter() - start:.0f} s\n")
    print(format_table(rows))
    for sentence in goals(rows):
        print(f"- {sentence}")
    return 0


if __name__ == "__main__":
    cli.run_script("large_scale", main, define_flags)
