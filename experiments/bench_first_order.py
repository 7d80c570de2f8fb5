r"""Benchmark: the whole linear-regression study in optlab against the classic NumPy loops.

    python -m experiments.bench_first_order
    python -m experiments.bench_first_order --numpy_seeds=3   # NumPy on 3 seeds, extrapolated

Both sides run, in this one process, the study of ``configs/linear_regression.py``: the
sizes 500x2, 10000x5 and 150000x7, momentum, RMSprop and Adam, every sweep (24 settings
per size), 10 seeds, 1000 steps of 32 rows; 720 runs in all.

* **optlab**: ``experiments.linear_regression.run_study``. Its time is one call of every
  compiled program that does the runs' work: per size, one program per method (its
  sweeps' settings x seeds, vmapped) and one for the data, its least squares and the
  seeds' initial weights, shuffles and minibatches (so optlab's time includes the data
  and least squares that the NumPy side takes as given). Each is timed by ``optlab.sweep.time_compiled`` (compiled apart, one
  warm-up call, median of ``repeats`` calls). Compile time is reported apart, and the
  wall time of the whole ``run_study`` call too.
* **NumPy** (``classic_run``): the same study as the classic exercise writes it: loops over
  sizes, sweeps, settings and seeds, one run at a time, and inside a run a loop over
  epochs (``rng.permutation(n)``) and minibatches, with NumPy float64 arrays and the
  update rules written out (the same formulas as ``optlab.momentum``, ``rmsprop`` and
  ``adam``, ``eps = 1e-8`` outside the square root). BLAS runs on one thread
  (``experiments.kit.scipy_reference.single_threaded_blas``), NumPy's faster setting for
  these tiny products. Its time is the wall time of those loops.

What is identical: the data (``make_problem``, the study's own arrays), the initial
weights of every seed, the hyperparameters, the number of steps, the drop-last
minibatching and the loss bookkeeping: both record the full-data loss after every step
in its exact O(d^2) form ``L(w*) + (w - w*)^T G (w - w*)`` (the study's
``LeastSquares.mse``). What differs: the shuffles (NumPy's ``default_rng`` against the
study's keyed permutations), and float64 against float32. Data generation and the least
squares are their common input; the NumPy side does not time them.

With ``--numpy_seeds=k < 10`` NumPy runs only seeds ``0..k-1`` of every setting, and its
time is extrapolated linearly to 10 seeds (runs are independent and equally long); both
the measured and the extrapolated times are printed.

Correctness check: for every (size, setting), the final losses of the seeds NumPy ran
against optlab's on the same seeds. The shuffles differ, so runs agree in distribution,
not one by one: reported are how many medians agree within 5%, the largest relative
difference, and how many settings a two-sided Mann-Whitney test cannot tell apart
(p > 0.01); near the noise floor the final loss of a run varies by 10-50% from seed to
seed, so a few medians of 10 seeds differ by more than 5% by chance. Diverged runs
(final loss not finite or above the initial loss) count as +inf on both sides.

End to end: the wall time of ``python -m experiments.linear_regression`` as a
subprocess (imports, compiles, the study's timed repeats and its figures included).
"""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import scipy.stats
from absl import flags

from configs import linear_regression as default_config
from experiments import linear_regression as study
from experiments.kit import cli, scipy_reference
from experiments.bench_quasi_newton import machine

REPO = Path(__file__).resolve().parent.parent
EPS = 1e-8  # optlab's default eps of RMSprop and Adam
AGREEMENT = 0.05  # relative difference of median final losses counted as agreeing
SIGNIFICANCE = 0.01  # a Mann-Whitney p-value below this flags a setting as different
SHOWN = 5  # settings outside the tolerance listed by name
SPEEDUP_GOAL = 50.0
END_TO_END_GOAL_S = 60.0


def classic_run(
    method: str,
    setting: dict[str, float],
    features: np.ndarray,
    targets: np.ndarray,
    initial: np.ndarray,
    solution: tuple[np.ndarray, float, np.ndarray],
    *,
    steps: int,
    batch_size: int,
    record_every: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """One run of the classic exercise; returns the recorded full-data losses."""
    w_star, best, gram = solution
    n = len(targets)
    w = initial.copy()
    m = np.zeros_like(w)  # momentum / Adam's first moment
    v = np.zeros_like(w)  # RMSprop's mean square / Adam's second moment
    lr = setting["learning_rate"]
    error = w - w_star
    losses = [best + error @ gram @ error]
    t = 0
    while t < steps:
        order = rng.permutation(n)
        for start in range(0, n - batch_size + 1, batch_size):  # the partial batch is dropped
            rows = order[start : start + batch_size]
            xb, yb = features[rows], targets[rows]
            g = 2.0 / batch_size * xb.T @ (xb @ w - yb)  # gradient of the minibatch mean
            t += 1
            if method == "momentum":
                m = setting["beta"] * m + (1 - setting["beta"]) * g
                w = w - lr * m
            elif method == "rmsprop":
                v = setting["gamma"] * v + (1 - setting["gamma"]) * g * g
                w = w - lr * g / (np.sqrt(v) + EPS)
            else:
                b1, b2 = setting["b1"], setting["b2"]
                m = b1 * m + (1 - b1) * g
                v = b2 * v + (1 - b2) * g * g
                w = w - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + EPS)
            if t % record_every == 0:
                error = w - w_star
                losses.append(best + error @ gram @ error)
            if t == steps:
                break
    return np.array(losses)


def classic_study(config, seeds: int, log: Callable[[str], None]) -> tuple[dict, dict]:
    """The study as NumPy loops on the first ``seeds`` seeds: (seconds per size, final losses).

    Final losses are keyed by (size, sweep index) with shape (settings, seeds).
    """
    seconds, finals = {}, {}
    for n, d in config.sizes:
        size = f"{n}x{d}"
        problem, _ = study.make_problem(config, n, d)
        features = np.asarray(problem.data.features, np.float64)
        targets = np.asarray(problem.data.targets, np.float64)
        initial = np.asarray(problem.initial_weights, np.float64)
        solution = (
            np.asarray(problem.solution.weights, np.float64),
            float(problem.solution.loss),
            np.asarray(problem.solution.gram, np.float64),
        )
        start = time.perf_counter()
        # A diverging run overflows, as it does in the classic exercise; that is a result.
        with scipy_reference.single_threaded_blas(), np.errstate(over="ignore", invalid="ignore"):
            for index, sw in enumerate(sw for method in config.methods
                                       for sw in study.sweeps(config, method)):
                finals[size, index] = np.array(
                    [
                        [
                            classic_run(
                                sw.method,
                                setting,
                                features,
                                targets,
                                initial[seed],
                                solution,
                                steps=config.steps,
                                batch_size=config.batch_size,
                                record_every=config.record_every,
                                rng=np.random.default_rng([config.seed, n, d, seed]),
                            )[-1]
                            for seed in range(seeds)
                        ]
                        for setting in sw.settings
                    ]
                )
        seconds[size] = time.perf_counter() - start
        log(f"  NumPy {size}: {seconds[size]:.2f} s for {seeds} of {config.seeds} seeds")
    return seconds, finals


def _diverged(final: np.ndarray, initial: np.ndarray) -> np.ndarray:
    return ~np.isfinite(final) | (final > initial)


def agreement(config, results: dict, finals: dict, seeds: int) -> list[dict]:
    """Per (size, setting): final losses of the first ``seeds`` seeds, optlab against NumPy.

    A diverged run (final loss not finite or above its initial loss) counts as +inf.
    Reported: both medians, their relative difference, and the two-sided Mann-Whitney
    p-value of the two samples (the shuffles differ, so the losses agree in distribution,
    not run by run).
    """
    rows = []
    for (size, index), numpy_final in finals.items():
        result = results["sizes"][size]["sweeps"][index]
        losses = result["losses"][:, :seeds]
        for setting, label in enumerate(result["labels"]):
            initial, final = losses[setting, :, 0], losses[setting, :, -1]
            ours = np.where(_diverged(final, initial), np.inf, final)
            theirs = numpy_final[setting]
            theirs = np.where(_diverged(theirs, initial), np.inf, theirs)
            ours_median, numpy_median = float(np.median(ours)), float(np.median(theirs))
            both_finite = math.isfinite(ours_median) and math.isfinite(numpy_median)
            relative = abs(numpy_median - ours_median) / ours_median if both_finite else math.nan
            pooled = np.concatenate([ours, theirs])
            p_value = (
                1.0
                if np.all(pooled == pooled[0])
                else float(scipy.stats.mannwhitneyu(ours, theirs).pvalue)
            )
            rows.append(
                {
                    "size": size,
                    "method": result["method"],
                    "setting": label,
                    "optlab_median": ours_median,
                    "numpy_median": numpy_median,
                    "optlab_diverged": int(np.isinf(ours).sum()),
                    "numpy_diverged": int(np.isinf(theirs).sum()),
                    "relative_difference": relative,
                    "p_value": p_value,
                    "within_tolerance": (ours_median == numpy_median) or relative <= AGREEMENT,
                    "agree": (ours_median == numpy_median)
                    or relative <= AGREEMENT
                    or p_value > SIGNIFICANCE,
                }
            )
    return rows


def end_to_end(timeout: float = 600.0) -> dict:
    """Wall time of ``python -m experiments.linear_regression`` in a subprocess."""
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        completed = subprocess.run(
            [sys.executable, "-m", "experiments.linear_regression", f"--out={out}"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        seconds = time.perf_counter() - start
    failure = None if completed.returncode == 0 else completed.stderr.strip()[-300:]
    return {"seconds": seconds, "failure": failure}


def measure(
    config: default_config.Config,
    *,
    numpy_seeds: int | None = None,
    log: Callable[[str], None] = lambda line: None,
) -> dict:
    """Runs the study in optlab and as NumPy loops; returns times, speed-ups and agreement.

    ``numpy_seeds`` (default: all of ``config.seeds``) limits the NumPy loops to the
    first seeds; their time is then extrapolated linearly to ``config.seeds``.
    """
    numpy_seeds = config.seeds if numpy_seeds is None else numpy_seeds
    if not 1 <= numpy_seeds <= config.seeds:
        raise ValueError(f"numpy_seeds must be between 1 and {config.seeds}, got {numpy_seeds}")
    log("optlab study ...")
    start = time.perf_counter()
    results = study.run_study(config, log=lambda line: log("  " + line))
    optlab_wall = time.perf_counter() - start
    log("NumPy loops ...")
    numpy_seconds, finals = classic_study(config, numpy_seeds, log)
    scale = config.seeds / numpy_seeds
    sizes = []
    for size, entry in results["sizes"].items():
        ours = sum(p["run_s"] for p in entry["programs"]) + entry["context"]["setup_s"]
        sizes.append(
            {
                "size": size,
                "optlab_s": ours,
                "numpy_measured_s": numpy_seconds[size],
                "numpy_s": numpy_seconds[size] * scale,
                "speedup": numpy_seconds[size] * scale / ours,
            }
        )
    totals = results["totals"]
    optlab_s = totals["run_s"] + totals["setup_s"]
    compile_s = totals["compile_s"] + totals["setup_compile_s"]
    numpy_measured = sum(numpy_seconds.values())
    agree = agreement(config, results, finals, numpy_seeds)
    return {
        "numpy_seeds": numpy_seeds,
        "seeds": config.seeds,
        "runs": totals["runs"],
        "sizes": sizes,
        "optlab_s": optlab_s,
        "optlab_compile_s": compile_s,
        "optlab_wall_s": optlab_wall,
        "numpy_measured_s": numpy_measured,
        "numpy_s": numpy_measured * scale,
        "speedup": numpy_measured * scale / optlab_s,
        "speedup_with_compile": numpy_measured * scale / (optlab_s + compile_s),
        "agreement": agree,
    }


def _seconds(value: float) -> str:
    return f"{value:.3g}" if value < 100 else f"{value:.0f}"


def format_report(measured: dict, end_to_end_run: dict | None = None) -> str:
    """The tables as Markdown (also readable as plain text)."""
    extrapolated = measured["numpy_seeds"] < measured["seeds"]
    numpy_header = (
        f"NumPy (s, {measured['numpy_seeds']} seeds measured → {measured['seeds']})"
        if extrapolated
        else "NumPy (s)"
    )
    lines = [
        f"| size | optlab (s) | {numpy_header} | speed-up (NumPy / optlab) |",
        "|---|---|---|---|",
    ]
    for row in measured["sizes"]:
        numpy_cell = _seconds(row["numpy_s"])
        if extrapolated:
            numpy_cell = f"{_seconds(row['numpy_measured_s'])} → {numpy_cell}"
        lines.append(
            f"| {row['size']} | {_seconds(row['optlab_s'])} | {numpy_cell} "
            f"| {row['speedup']:.0f}× |"
        )
    total_numpy = _seconds(measured["numpy_s"])
    if extrapolated:
        total_numpy = f"{_seconds(measured['numpy_measured_s'])} → {total_numpy}"
    met = "yes" if measured["speedup"] >= SPEEDUP_GOAL else "**no**"
    lines += [
        f"| **whole study** ({measured['runs']} runs) | {_seconds(measured['optlab_s'])} | "
        f"{total_numpy} | **{measured['speedup']:.0f}×** (goal ≥ {SPEEDUP_GOAL:.0f}×: {met}) |",
        "",
        f"- optlab compile time, all programs: {_seconds(measured['optlab_compile_s'])} s; "
        f"speed-up counting it: {measured['speedup_with_compile']:.1f}×",
        f"- optlab `run_study` wall time (compiles, warm-up and timed repeats): "
        f"{_seconds(measured['optlab_wall_s'])} s",
    ]
    if end_to_end_run is not None:
        seconds = end_to_end_run["seconds"]
        if end_to_end_run["failure"]:
            lines.append(f"- end to end: FAILED after {seconds:.1f} s: {end_to_end_run['failure']}")
        else:
            met = "yes" if seconds < END_TO_END_GOAL_S else "**no**"
            lines.append(
                f"- end to end, `python -m experiments.linear_regression` as a subprocess: "
                f"{seconds:.1f} s (goal < {END_TO_END_GOAL_S:.0f} s: {met})"
            )
    agree = measured["agreement"]
    within = sum(row["within_tolerance"] for row in agree)
    alike = sum(row["agree"] for row in agree)
    differences = [
        r["relative_difference"] for r in agree if math.isfinite(r["relative_difference"])
    ]
    diverged_alike = sum((r["optlab_diverged"] > 0) == (r["numpy_diverged"] > 0) for r in agree)
    lines.append(
        f"- same results, final loss over the first {measured['numpy_seeds']} seeds of every "
        f"setting: medians within {AGREEMENT:.0%} for {within}/{len(agree)} settings (largest "
        f"relative difference {max(differences, default=math.nan):.1%}); within "
        f"{AGREEMENT:.0%} or not told apart by a Mann-Whitney test (p > {SIGNIFICANCE:g}): "
        f"{alike}/{len(agree)}; diverging alike: {diverged_alike}/{len(agree)}"
    )
    outside = [r for r in agree if not r["within_tolerance"]]
    for r in outside[:SHOWN]:
        lines.append(
            f"  - {r['size']} {r['method']} {r['setting']}: median optlab "
            f"{r['optlab_median']:.4g}, NumPy {r['numpy_median']:.4g}; p = {r['p_value']:.2f}"
        )
    if len(outside) > SHOWN:
        lines.append(f"  - and {len(outside) - SHOWN} more outside {AGREEMENT:.0%}")
    return "\n".join(lines)


def define_flags() -> None:
    # Defined only when run as a script, as in bench_quasi_newton: absl refuses a second
    # definition of a flag name in one process (e.g. under pytest).
    flags.DEFINE_integer("numpy_seeds", None, "Seeds the NumPy loops run (default: all).")
    flags.DEFINE_integer("repeats", 3, "Timed calls per compiled optlab program (median).")
    flags.DEFINE_bool("end_to_end", True, "Also time the study as a subprocess.")


def main(argv):
    del argv
    FLAGS = flags.FLAGS
    config = dataclasses.replace(default_config.get_config(), repeats=FLAGS.repeats)
    info = machine()
    print(
        f"machine: {info['processor']}, {info['cpu_count']} CPUs, devices [{info['devices']}], "
        f"python {info['python']}, jax {info['jax']}, numpy {np.__version__}"
    )
    sizes = ", ".join(f"{n}x{d}" for n, d in config.sizes)
    print(
        f"study: sizes {sizes}; {', '.join(config.methods)}; {config.seeds} seeds, "
        f"{config.steps} steps of {config.batch_size} rows; repeats={config.repeats}"
    )
    start = time.perf_counter()
    measured = measure(config, numpy_seeds=FLAGS.numpy_seeds, log=print)
    run = None
    if FLAGS.end_to_end:
        print("end-to-end study ...")
        run = end_to_end()
    print(f"benchmark took {time.perf_counter() - start:.1f} s\n")
    print(format_report(measured, run))


if __name__ == "__main__":
    cli.run_script("bench_first_order", main, define_flags)
