r"""Benchmark: matrix-free second order at scale, against scipy and optimistix.

    python -m experiments.large_scale
    python -m experiments.large_scale --sizes=1000,10000 --problems=rosenbrock

Two problems, float64, each method run to ``||g|| <= --gtol`` (at most ``--max_iters``):

* *rosenbrock*: the extended Rosenbrock function of Moré, Garbow and Hillstrom
  (``optlab.problems.mgh("rosenbrock", n)``) from its standard start;
* *logistic*: L2-regularized logistic regression on synthetic sparse data, ``n``
  samples of ``n`` features with 10 nonzeros each (normal values, labels from a random
  ground truth with 10% flipped), ``f(w) = mean(log(1 + exp(-y Xw))) + 1e-3 ||w||^2 / 2``
  from ``w = 0``. ``X w`` and ``X^T v`` are a gather and a segment sum, which JAX
  differentiates in both modes.

Methods: optlab's ``newton_cg``, ``trust_ncg`` and ``lbfgs``, and dense ``newton`` (with
the modified Hessian ``max(|l|, 1e-8)``, a Wolfe search) up to ``--dense_max`` unknowns,
each run by ``optlab.minimize`` compiled apart (the compile time is reported in its own
column); scipy's ``Newton-CG`` and ``trust-ncg`` given the same jitted value, gradient and
Hessian-vector product (scipy's ``Newton-CG`` has no gradient test: a callback stops it
at the same ``||g|| <= gtol``, from a gradient that is remembered, so that scipy's next
request for it costs nothing); optimistix's ``BFGS`` (dense, ``rtol=0``,
``atol=gtol``, which is its gradient test) up to ``--dense_max`` unknowns.

Each run is a process of its own (``--case=problem:n:method``), so that its peak memory,
``resource.getrusage``'s maximum resident set, is its own (JAX's own footprint
included). Evaluations count the objective-and-gradient evaluations (scipy's ``nfev``);
Hessian-vector products are apart. Goals (issue 19, this 2-core CPU): ``newton_cg``
solves extended Rosenbrock at n = 10^6; at 10^5 it is at least 2x faster than scipy's
Newton-CG with iterations within 25%.
"""

from __future__ import annotations

import functools
import json
import resource
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

import optlab
from experiments.kit import cli
from optlab import report, stopping, sweep

METHODS = ("newton_cg", "trust_ncg", "lbfgs", "newton", "scipy Newton-CG", "scipy trust-ncg",
           "optimistix BFGS")
DENSE = ("newton", "optimistix BFGS")
PROBLEMS = ("rosenbrock", "logistic")


def logistic_data(n: int):
    """The logistic problem's data: ``X`` as (rows, columns, values), 10 per row, and the
    labels ``y`` in {-1, 1}."""
    rng = np.random.default_rng(0)
    per_row = 10
    rows = jnp.asarray(np.repeat(np.arange(n), per_row))
    columns = jnp.asarray(rng.integers(0, n, n * per_row))
    values = jnp.asarray(rng.standard_normal(n * per_row))
    truth = jnp.asarray(rng.standard_normal(n))
    margins = jax.ops.segment_sum(values * truth[columns], rows, n)
    labels = jnp.where(margins > 0, 1.0, -1.0) * jnp.where(rng.random(n) < 0.1, -1.0, 1.0)
    return rows, columns, values, labels


def objective(problem: str, n: int):
    """``(fun, x0, data)``: the objective ``fun(x, data)``, its start and its data, an
    argument of the compiled programs rather than a constant inside them."""
    if problem == "rosenbrock":
        mgh = optlab.problems.mgh("rosenbrock", n)
        return lambda x, data: mgh.fun(x), jnp.asarray(mgh.x0), None
    if problem != "logistic":
        raise ValueError(f"unknown problem {problem!r}; choose one of {', '.join(PROBLEMS)}")

    def fun(w, data):
        rows, columns, values, labels = data
        z = labels * jax.ops.segment_sum(values * w[columns], rows, n)
        return jnp.mean(jnp.logaddexp(0.0, -z)) + 0.5e-3 * jnp.vdot(w, w)

    return fun, jnp.zeros(n), logistic_data(n)


def _optlab_run(method: str, fun, x0, data, gtol: float, max_iters: int) -> dict:
    opt = {"newton_cg": optlab.newton_cg, "trust_ncg": optlab.trust_ncg, "lbfgs": optlab.lbfgs,
           "newton": lambda: optlab.newton("wolfe", min_curvature=1e-8)}[method]()

    def run(x0, data):
        return optlab.minimize(lambda x: fun(x, data), x0, opt, stop=stopping.grad_norm(gtol),
                               max_iters=max_iters, history=max_iters + 1)

    result, timing = sweep.time_compiled(run, x0, data, repeats=1)
    info = result.history.info
    products = None
    if info is not None and hasattr(info, "cg_iterations"):
        products = int(np.asarray(info.cg_iterations)[1: int(result.iterations) + 1].sum())
    return {"seconds": timing.run_seconds, "compile_seconds": timing.compile_seconds,
            "iterations": int(result.iterations), "evaluations": int(result.evaluations),
            "products": products, "grad_norm": float(result.grad_norm),
            "status": optlab.Status(int(result.status)).name.lower()}


def _scipy_run(method: str, fun, x0, data, gtol: float, max_iters: int) -> dict:
    import scipy.optimize

    value = functools.partial(jax.jit(fun), data=data)
    grad = functools.partial(jax.jit(jax.grad(fun)), data=data)
    product = functools.partial(jax.jit(
        lambda x, v, data: jax.jvp(lambda y: jax.grad(fun)(y, data), (x,), (v,))[1]), data=data)
    x0 = np.asarray(x0)
    remembered = {}
    counts = {"products": 0}

    def jac(x):
        key = x.tobytes()
        if key not in remembered:
            remembered.clear()
            remembered[key] = np.asarray(grad(x))
        return remembered[key]

    def hessp(x, v):
        counts["products"] += 1
        return np.asarray(product(x, v))

    def callback(intermediate_result):  # Newton-CG's gradient test
        if np.linalg.norm(jac(intermediate_result.x)) <= gtol:
            raise StopIteration

    for compile_ in (value, grad):  # compiled before the clock starts
        jax.block_until_ready(compile_(x0))
    jax.block_until_ready(product(x0, x0))
    options = ({"xtol": 0.0, "maxiter": max_iters} if method == "Newton-CG"
               else {"gtol": gtol, "maxiter": max_iters})
    start = time.perf_counter()
    result = scipy.optimize.minimize(lambda x: float(value(x)), x0, jac=jac, hessp=hessp,
                                     method=method, options=options,
                                     callback=callback if method == "Newton-CG" else None)
    seconds = time.perf_counter() - start
    grad_norm = float(np.linalg.norm(jac(result.x)))
    return {"seconds": seconds, "compile_seconds": None, "iterations": int(result.nit),
            "evaluations": int(result.nfev), "products": counts["products"],
            "grad_norm": grad_norm, "status": "converged" if grad_norm <= gtol else
            f"stopped: {result.message}"}


def _optimistix_run(fun, x0, data, gtol: float, max_iters: int) -> dict:
    import optimistix

    solver = optimistix.BFGS(rtol=0.0, atol=gtol)

    def run(x0, data):
        return optimistix.minimise(fun, solver, x0, args=data, max_steps=max_iters,
                                   throw=False)

    solution, timing = sweep.time_compiled(run, x0, data, repeats=1)
    grad_norm = float(jnp.linalg.norm(jax.grad(fun)(solution.value, data)))
    steps = int(solution.stats["num_steps"])
    return {"seconds": timing.run_seconds, "compile_seconds": timing.compile_seconds,
            "iterations": steps, "evaluations": steps, "products": None,
            "grad_norm": grad_norm,
            "status": "converged" if grad_norm <= gtol else "max_iters"}


def run_case(problem: str, n: int, method: str, gtol: float, max_iters: int) -> dict:
    """One run, in this process: its figures and the process's peak memory."""
    jax.config.update("jax_enable_x64", True)
    fun, x0, data = objective(problem, n)
    if method.startswith("scipy "):
        row = _scipy_run(method.split()[1], fun, x0, data, gtol, max_iters)
    elif method == "optimistix BFGS":
        row = _optimistix_run(fun, x0, data, gtol, max_iters)
    else:
        row = _optlab_run(method, fun, x0, data, gtol, max_iters)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    return {"problem": problem, "n": n, "method": method, **row, "peak_bytes": peak}


def measure(problems, sizes, *, gtol: float, max_iters: int, dense_max: int, log=print,
            timeout: float = 1800.0) -> list[dict]:
    """Every case as a subprocess of this script."""
    rows = []
    for problem in problems:
        for n in sizes:
            for method in METHODS:
                if method in DENSE and n > dense_max:
                    continue
                command = [sys.executable, "-m", "experiments.large_scale",
                           f"--case={problem}:{n}:{method}", f"--gtol={gtol}",
                           f"--max_iters={max_iters}"]
                done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
                if done.returncode != 0:
                    raise RuntimeError(f"{problem} n={n} {method} failed:\n{done.stderr[-3000:]}")
                row = json.loads(done.stdout.strip().splitlines()[-1])
                rows.append(row)
                log(f"{problem:10s} n={n:<8d} {method:16s} {report.format_seconds(row['seconds'])}"
                    f", {row['iterations']} iterations, {row['status']}, peak "
                    f"{row['peak_bytes'] / 2**20:.0f} MiB")
    return rows


def format_table(rows: list[dict]) -> str:
    lines = ["| problem | n | method | time | compile | iterations | evaluations | "
             "Hessian-vector products | final ‖g‖ | status | peak memory |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        compile_ = ("—" if row["compile_seconds"] is None
                    else report.format_seconds(row["compile_seconds"]))
        products = "—" if row["products"] is None else str(row["products"])
        lines.append(
            f"| {row['problem']} | {row['n']} | {row['method']} | "
            f"{report.format_seconds(row['seconds'])} | {compile_} | {row['iterations']} | "
            f"{row['evaluations']} | {products} | {row['grad_norm']:.1e} | {row['status']} | "
            f"{row['peak_bytes'] / 2**20:.0f} MiB |")
    return "\n".join(lines)


def goals(rows: list[dict]) -> list[str]:
    """The issue's goals, as sentences with their figures."""
    found = {(r["problem"], r["n"], r["method"]): r for r in rows}
    sentences = []
    big = found.get(("rosenbrock", 10**6, "newton_cg"))
    if big is not None:
        met = big["status"] == "converged"
        sentences.append(f"newton_cg solves extended Rosenbrock at n = 10^6 to ||g|| <= gtol: "
                         f"{'yes' if met else 'no'} ({big['status']}, {big['iterations']} "
                         f"iterations, {report.format_seconds(big['seconds'])}).")
    ours, theirs = (found.get(("rosenbrock", 10**5, m)) for m in ("newton_cg", "scipy Newton-CG"))
    if ours is not None and theirs is not None:
        ratio = ours["seconds"] / theirs["seconds"]
        spread = abs(ours["iterations"] - theirs["iterations"]) / theirs["iterations"]
        sentences.append(
            f"At n = 10^5, newton_cg / scipy Newton-CG time {ratio:.2f} (goal <= 0.5: "
            f"{'yes' if ratio <= 0.5 else 'no'}), iterations {ours['iterations']} against "
            f"{theirs['iterations']} (within 25%: {'yes' if spread <= 0.25 else 'no'}).")
    return sentences


def define_flags() -> None:
    flags.DEFINE_list("problems", list(PROBLEMS), "Problems: rosenbrock, logistic.")
    flags.DEFINE_list("sizes", ["1000", "10000", "100000", "1000000"], "Numbers of unknowns.")
    flags.DEFINE_float("gtol", 1e-6, "Every run stops at ||grad|| <= gtol.")
    flags.DEFINE_integer("max_iters", 1000, "Iteration budget of every run.")
    flags.DEFINE_integer("dense_max", 1000, "Largest n of the dense methods.")
    flags.DEFINE_string("case", None, "problem:n:method: one run, printed as JSON (internal).")


def main(argv):
    del argv
    FLAGS = flags.FLAGS
    if FLAGS.case:
        problem, n, method = FLAGS.case.split(":", 2)
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
                   dense_max=FLAGS.dense_max)
    print(f"\nbenchmark took {time.perf_counter() - start:.0f} s\n")
    print(format_table(rows))
    for sentence in goals(rows):
        print(f"- {sentence}")
    return 0


if __name__ == "__main__":
    cli.run_script("large_scale", main, define_flags)
