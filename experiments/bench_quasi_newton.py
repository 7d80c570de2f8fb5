r"""Benchmark: optlab's BFGS and L-BFGS against optimistix, optax and scipy.

    python -m experiments.bench_quasi_newton
    python -m experiments.bench_quasi_newton --n=228 --seeds=20 --steps=100 --repeats=5

Every measurement runs, in this one process, on the same problems:
``optlab.problems.seed_quadratics(n, seeds)`` in float64, each started from ``x0 = 0``.
The rows of the table:

1. *BFGS, fixed steps*: ``optlab.bfgs()`` doing exactly ``--steps`` iterations per seed
   (``optlab.minimize`` with the never-met rule ``grad_norm(1e-300)`` and
   ``max_iters=steps``) against ``optimistix.BFGS(rtol=0, atol=0)`` with
   ``max_steps=steps, throw=False``, both as ``jax.jit(jax.vmap(...))`` over the seeds.
   Reported: microseconds per step per seed (batch time / (steps * seeds)).

   How optimistix counts: ``sol.stats["num_steps"]`` counts calls of ``solver.step``,
   and each call evaluates the objective once, at the line search's trial point. Its
   backtracking Armijo search rejects a trial by shrinking the step on the next call, so
   a rejected trial is a step too, and the first step only evaluates ``x0``: 100 steps
   are 100 objective-and-gradient evaluations of which fewer (about 80-95 here) are
   accepted BFGS updates (``sol.state.num_accepted_steps``, shown in the note). An
   optlab step is one BFGS update with a full strong-Wolfe search (one or more
   evaluations). ``rtol = atol = 0`` neither raises nor stops early: optimistix's Cauchy
   test divides the change in ``y`` and ``f`` by ``atol + rtol |.| = 0``, which gives
   ``inf`` or ``nan`` and never compares below 1, so the loop runs to ``max_steps``;
   ``throw=False`` turns the resulting "max steps reached" into a result code instead of
   an error. The script checks that every seed did exactly ``steps`` steps.
2. *BFGS to eps*: optlab's vmapped BFGS stopped per seed by ``||x - x*|| < eps`` (batch
   time / seeds) against ``scipy.optimize.minimize(method="BFGS")`` with the analytic
   gradient ``A x + b``, ``gtol=0`` and a callback ``callback(intermediate_result)``
   that raises ``StopIteration`` at the same rule (mean wall time per run over the seeds,
   run one after the other). Mean iterations of both are reported as a row of their own.
   scipy runs with BLAS limited to one thread (``experiments.kit.scipy_reference``): its
   many small matrix-vector products are slower with a thread pool beside XLA's.
3. *L-BFGS*: ``optlab.lbfgs(memory=10)`` against ``optax.lbfgs(memory_size=10)``, both run
   by ``optlab.minimize`` (which reads the value and gradient that optax keeps in its
   state), first for exactly ``--steps`` iterations as in 1, then to eps as in 2.
4. *Compile time* of every jitted program, in a table of its own.
5. *End-to-end*: the wall time of ``python -m experiments.quasi_newton --n=N`` (writing
   into a temporary ``--out``) as a subprocess, when that study exists.

Timing (``optlab.sweep.time_compiled``): each program is compiled apart with
``jax.jit(f).lower(*args).compile()`` (tracing and lowering included in the compile
time), called once to warm up, then called ``--repeats`` times, each call ended by
``jax.block_until_ready``; the median of those calls is reported. Ratios are ours / peer,
so below 1 means optlab is faster.
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import flags

import optlab
from experiments.kit import cli, scipy_reference
from optlab import sweep

# Keys of every row returned by `measure`; `ratio` is ours / peer, `met` None when the
# row has no goal.
ROW_KEYS = (
    "benchmark",
    "ours",
    "peer",
    "unit",
    "ours_value",
    "peer_value",
    "ratio",
    "goal",
    "met",
    "note",
)
COMPILE_KEYS = ("program", "compile_s", "run_s")

# Iteration budget of the runs to eps, per dimension (the L-BFGS runs need about 5 n).
EPS_BUDGET_PER_DIM = 50
# Never holds: makes optlab.minimize do exactly max_iters iterations.
NEVER = optlab.stopping.grad_norm(1e-300)
REPO = Path(__file__).resolve().parent.parent


def _row(benchmark, ours, peer, unit, ours_value, peer_value, goal=None, note=""):
    """A table row; `goal` is None or (text, predicate on the ratio)."""
    ratio = ours_value / peer_value if peer_value else math.nan
    return {
        "benchmark": benchmark,
        "ours": ours,
        "peer": peer,
        "unit": unit,
        "ours_value": float(ours_value),
        "peer_value": float(peer_value),
        "ratio": float(ratio),
        "goal": "—" if goal is None else goal[0],
        "met": None if goal is None else bool(goal[1](ratio)),
        "note": note,
    }


def _optlab_program(opt: Callable[[], Any], x0, *, stop: Callable, max_iters: int):
    """vmap over problems of optlab.minimize; `stop(problem)` gives the rule."""

    def one(problem):
        result = optlab.minimize(problem.value, x0, opt(), stop=stop(problem), max_iters=max_iters)
        return result.params, result.iterations, result.status

    return jax.vmap(one)


def _optimistix_bfgs_program(x0, steps: int):
    """vmap over problems of optimistix.minimise(BFGS(rtol=0, atol=0), max_steps=steps)."""
    import optimistix as optx

    solver = optx.BFGS(rtol=0.0, atol=0.0)

    def one(problem):
        sol = optx.minimise(
            lambda y, p: p.value(y), solver, x0, args=problem, max_steps=steps, throw=False
        )
        ran_out = sol.result == optx.RESULTS.nonlinear_max_steps_reached
        return sol.value, sol.stats["num_steps"], ran_out, sol.state.num_accepted_steps

    return jax.vmap(one)


def _distances(params, problems) -> np.ndarray:
    return np.linalg.norm(np.asarray(params) - np.asarray(problems.minimizer), axis=-1)


def _check_fixed(label: str, iterations, status, steps: int) -> None:
    iterations, status = np.asarray(iterations), np.asarray(status)
    if not (np.all(iterations == steps) and np.all(status == optlab.Status.MAX_ITERS)):
        raise RuntimeError(
            f"{label}: every seed must do exactly {steps} steps, got iterations "
            f"{iterations.tolist()} with statuses {status.tolist()}"
        )


def _check_converged(label: str, params, status, problems, eps: float) -> None:
    status = np.asarray(status)
    distances = _distances(params, problems)
    if not (np.all(status == optlab.Status.CONVERGED) and np.all(distances < eps)):
        raise RuntimeError(
            f"{label}: every seed must reach ||x - x*|| < {eps}, got statuses "
            f"{status.tolist()} and distances {distances.tolist()}"
        )


def scipy_bfgs_to_eps(problems, eps: float, max_iters: int, repeats: int) -> dict:
    """scipy BFGS per seed, stopped by a callback at ||x - x*|| < eps; times are per run.

    Returns the median over `repeats` passes (after one warm-up pass) of the mean wall
    time per run, and the iterations and final distances of each seed. BLAS runs on one
    thread (see experiments.kit.scipy_reference).
    """
    matrices = np.asarray(problems.matrix)
    linears = np.asarray(problems.linear)
    minimizers = np.asarray(problems.minimizer)
    seeds, n = linears.shape

    def run(i):
        a, b = matrices[i], linears[i]
        return scipy_reference.minimize_to_distance(
            lambda x: 0.5 * x @ (a @ x) + b @ x,
            lambda x: a @ x + b,
            np.zeros(n),
            minimizers[i],
            eps,
            method="BFGS",
            max_iters=max_iters,
        )

    with scipy_reference.single_threaded_blas():
        results = [run(i) for i in range(seeds)]  # warm-up pass, also the reported results
        passes = [statistics.mean(run(i).seconds for i in range(seeds)) for _ in range(repeats)]
    return {
        "seconds_per_run": statistics.median(passes),
        "iterations": np.array([r.iterations for r in results]),
        "distances": np.array([r.distance for r in results]),
    }


def measure(
    n: int = 228,
    seeds: int = 20,
    steps: int = 100,
    repeats: int = 5,
    eps: float = 1e-5,
    *,
    scipy: bool = True,
    log: Callable[[str], None] = lambda line: None,
) -> tuple[list[dict], list[dict]]:
    """Runs benchmarks 1-4 and returns (rows, compile times); needs jax_enable_x64.

    Rows have the keys `ROW_KEYS` (times in the row's `unit`), compile entries the keys
    `COMPILE_KEYS` (seconds). Raises RuntimeError when a run does not do what it must
    (exactly `steps` steps, or reach eps), since its time would then mean nothing.
    """
    if not jax.config.jax_enable_x64:
        raise RuntimeError(
            'the benchmark runs in float64: jax.config.update("jax_enable_x64", True)'
        )
    problems = optlab.problems.seed_quadratics(n, seeds)
    x0 = jnp.zeros(n)
    max_iters = EPS_BUDGET_PER_DIM * n
    to_eps = lambda problem: optlab.stopping.distance_to(problem.minimizer, eps)  # noqa: E731
    never = lambda problem: NEVER  # noqa: E731
    rows, compiles = [], []
    per_step = 1e6 / (steps * seeds)  # batch seconds -> µs per step per seed

    def timed(program_name, fn):
        log(f"  {program_name} ...")
        output, timing = sweep.time_compiled(fn, problems, repeats=repeats)
        compiles.append(
            {
                "program": program_name,
                "compile_s": timing.compile_seconds,
                "run_s": timing.run_seconds,
            }
        )
        return output, timing.run_seconds

    # 1. BFGS, exactly `steps` steps, vmapped: optlab against optimistix.
    (_, iterations, status), ours = timed(
        f"optlab bfgs, {steps} steps", _optlab_program(optlab.bfgs, x0, stop=never, max_iters=steps)
    )
    _check_fixed("optlab bfgs", iterations, status, steps)
    (_, num_steps, ran_out, accepted), peer = timed(
        f"optimistix BFGS, {steps} steps", _optimistix_bfgs_program(x0, steps)
    )
    if not (np.all(np.asarray(num_steps) == steps) and np.all(np.asarray(ran_out))):
        raise RuntimeError(
            f"optimistix BFGS: num_steps {np.asarray(num_steps).tolist()}, want {steps}"
        )
    accepted = np.asarray(accepted)
    rows.append(
        _row(
            f"BFGS, {steps} steps, vmapped",
            "optlab.bfgs",
            "optimistix.BFGS",
            "µs/step/seed",
            ours * per_step,
            peer * per_step,
            ("≤ 1.0", lambda r: r <= 1.0),
            f"optimistix accepted {accepted.mean():.1f} of {steps} steps "
            f"(min {accepted.min()}, max {accepted.max()})",
        )
    )

    # 2. BFGS to eps: optlab vmapped against scipy.
    (params, iterations, status), ours = timed(
        "optlab bfgs, to eps", _optlab_program(optlab.bfgs, x0, stop=to_eps, max_iters=max_iters)
    )
    _check_converged("optlab bfgs to eps", params, status, problems, eps)
    bfgs_iterations = np.asarray(iterations)
    if scipy:
        log("  scipy BFGS, to eps ...")
        reference = scipy_bfgs_to_eps(problems, eps, max_iters, repeats)
        reached = int(np.sum(reference["distances"] < eps))
        rows.append(
            _row(
                "BFGS to eps: time per run",
                "optlab.bfgs (vmapped / seeds)",
                "scipy BFGS",
                "ms/run",
                ours / seeds * 1e3,
                reference["seconds_per_run"] * 1e3,
                ("≤ 0.1 (≥ 10× faster)", lambda r: r <= 0.1),
                f"scipy reached eps on {reached}/{seeds} seeds; BLAS 1 thread",
            )
        )
        rows.append(
            _row(
                "BFGS to eps: iterations (mean)",
                "optlab.bfgs",
                "scipy BFGS",
                "iterations",
                bfgs_iterations.mean(),
                reference["iterations"].mean(),
                note=f"optlab {bfgs_iterations.min()}-{bfgs_iterations.max()}, "
                f"scipy {reference['iterations'].min()}-{reference['iterations'].max()}",
            )
        )

    # 3. L-BFGS(10): optlab against optax, fixed steps then to eps.
    ours_lbfgs = lambda: optlab.lbfgs(memory=10)  # noqa: E731
    peer_lbfgs = lambda: optax.lbfgs(memory_size=10)  # noqa: E731
    fixed = {}
    for label, opt in (("optlab lbfgs", ours_lbfgs), ("optax lbfgs", peer_lbfgs)):
        (_, iterations, status), fixed[label] = timed(
            f"{label}, {steps} steps", _optlab_program(opt, x0, stop=never, max_iters=steps)
        )
        _check_fixed(label, iterations, status, steps)
    rows.append(
        _row(
            f"L-BFGS(10), {steps} steps, vmapped",
            "optlab.lbfgs",
            "optax.lbfgs",
            "µs/step/seed",
            fixed["optlab lbfgs"] * per_step,
            fixed["optax lbfgs"] * per_step,
            ("≤ 0.5", lambda r: r <= 0.5),
            "both run by optlab.minimize",
        )
    )
    converged = {}
    for label, opt in (("optlab lbfgs", ours_lbfgs), ("optax lbfgs", peer_lbfgs)):
        (params, iterations, status), seconds = timed(
            f"{label}, to eps", _optlab_program(opt, x0, stop=to_eps, max_iters=max_iters)
        )
        _check_converged(f"{label} to eps", params, status, problems, eps)
        converged[label] = (seconds, np.asarray(iterations))
    (ours, ours_it), (peer, peer_it) = converged["optlab lbfgs"], converged["optax lbfgs"]
    rows.append(
        _row(
            "L-BFGS(10) to eps: time per run",
            "optlab.lbfgs (vmapped / seeds)",
            "optax.lbfgs (vmapped / seeds)",
            "ms/run",
            ours / seeds * 1e3,
            peer / seeds * 1e3,
            note=f"a batch waits for its slowest seed: max iterations {ours_it.max()} (optlab) "
            f"vs {peer_it.max()} (optax)",
        )
    )
    rows.append(
        _row(
            "L-BFGS(10) to eps: iterations (mean)",
            "optlab.lbfgs",
            "optax.lbfgs",
            "iterations",
            ours_it.mean(),
            peer_it.mean(),
            note=f"optlab {ours_it.min()}-{ours_it.max()}, optax {peer_it.min()}-{peer_it.max()}",
        )
    )
    return rows, compiles


def end_to_end(n: int, timeout: float = 600.0) -> dict | None:
    """Wall time of `python -m experiments.quasi_newton --n=N` as a row; None if absent."""
    script = REPO / "experiments" / "quasi_newton.py"
    if not script.exists():
        return None
    source = script.read_text()
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-m", "experiments.quasi_newton", f"--n={n}"]
        if re.search(r"DEFINE_\w+\(\s*[\"']out[\"']", source):
            command.append(f"--out={out}")
        start = time.perf_counter()
        try:
            completed = subprocess.run(
                command, check=False, cwd=REPO, capture_output=True, text=True, timeout=timeout
            )
            seconds = time.perf_counter() - start
            failure = (
                None
                if completed.returncode == 0
                else (f"exit status {completed.returncode}: {completed.stderr.strip()[-300:]}")
            )
        except subprocess.TimeoutExpired:
            seconds, failure = time.perf_counter() - start, f"timed out after {timeout:.0f} s"
    row = _row(
        "End-to-end study",
        f"experiments.quasi_newton --n={n}",
        "—",
        "s wall",
        seconds,
        math.nan,
        note=f"FAILED: {failure}"
        if failure
        else "subprocess wall time, imports and compiles included",
    )
    row["goal"], row["met"] = "< 20 s", failure is None and seconds < 20.0
    return row


def _format(value: float) -> str:
    if math.isnan(value):
        return "—"
    if value >= 100:
        return f"{value:.0f}"
    return f"{value:.3g}" if value >= 1 else f"{value:.3f}"


def format_table(rows: list[dict]) -> str:
    """The rows as a Markdown table (also readable as plain text)."""
    header = [
        "benchmark",
        "optlab",
        "peer",
        "unit",
        "optlab value",
        "peer value",
        "ratio",
        "goal",
        "met?",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in rows:
        met = {None: "—", True: "yes", False: "**no**"}[row["met"]]
        cells = [
            row["benchmark"],
            row["ours"],
            row["peer"],
            row["unit"],
            _format(row["ours_value"]),
            _format(row["peer_value"]),
            _format(row["ratio"]),
            row["goal"],
            met,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    notes = [f"- {row['benchmark']}: {row['note']}" for row in rows if row["note"]]
    return "\n".join(lines + ([""] + notes if notes else []))


def format_compile_table(compiles: list[dict]) -> str:
    lines = ["| program | compile (s) | run, median (s) |", "|---|---|---|"]
    lines += [f"| {c['program']} | {c['compile_s']:.2f} | {c['run_s']:.4f} |" for c in compiles]
    return "\n".join(lines)


def machine() -> dict:
    """What the numbers were measured on."""
    processor = platform.processor()
    if not processor:  # empty on many Linux systems; fall back to /proc/cpuinfo
        with contextlib.suppress(OSError):
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    processor = line.split(":", 1)[1].strip()
                    break
    return {
        "processor": processor or platform.machine(),
        "cpu_count": os.cpu_count(),
        "devices": ", ".join(str(d) for d in jax.devices()),
        "python": platform.python_version(),
        "jax": jax.__version__,
    }


def define_flags() -> None:
    # Defined only when run as a script: experiments.quasi_newton defines flags of the same
    # names, and absl refuses a second definition in one process (e.g. under pytest).
    flags.DEFINE_integer("seeds", 20, "Number of seed quadratics.")
    flags.DEFINE_integer("n", 228, "Dimension of the quadratics.")
    flags.DEFINE_integer("steps", 100, "Steps per seed of the fixed-step benchmarks.")
    flags.DEFINE_integer("repeats", 5, "Timed calls per compiled program (median reported).")
    flags.DEFINE_float("eps", 1e-5, "Runs to eps stop when ||x - x*|| < eps (the study's default).")
    flags.DEFINE_bool("skip_scipy", False, "Skip scipy's BFGS (benchmark 2).")


def main(argv):
    del argv
    FLAGS = flags.FLAGS
    jax.config.update("jax_enable_x64", True)
    info = machine()
    print(
        f"machine: {info['processor']}, {info['cpu_count']} CPUs, devices [{info['devices']}], "
        f"python {info['python']}, jax {info['jax']}"
    )
    print(
        f"problems: seed_quadratics(n={FLAGS.n}, seeds={FLAGS.seeds}), float64, x0 = 0; "
        f"steps={FLAGS.steps}, repeats={FLAGS.repeats}, eps={FLAGS.eps:g}"
    )
    start = time.perf_counter()
    rows, compiles = measure(
        FLAGS.n,
        FLAGS.seeds,
        FLAGS.steps,
        FLAGS.repeats,
        FLAGS.eps,
        scipy=not FLAGS.skip_scipy,
        log=print,
    )
    print("  end-to-end study ...")
    row = end_to_end(FLAGS.n)
    if row is None:
        print("  end-to-end: skipped (experiments/quasi_newton.py does not exist)")
    else:
        rows.append(row)
    print(f"benchmark took {time.perf_counter() - start:.1f} s\n")
    print(format_table(rows))
    print("\ncompile times:\n")
    print(format_compile_table(compiles))


if __name__ == "__main__":
    cli.run_script("bench_quasi_newton", main, define_flags)
