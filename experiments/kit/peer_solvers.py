"""The peers of ``experiments.profiles`` with the history its profiles are read from:
optimistix's minimisers as :mod:`optlab.benchmark` solvers, stepped in a JAX loop
(:func:`optimistix_solver`), and scipy's methods on the host (:func:`scipy_runs`), every
run stopped by the same gradient test as optlab's.
"""

from __future__ import annotations

import time
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize

from experiments.kit import scipy_reference
from optlab import benchmark
from optlab.problems import Problem, stack
from optlab.status import Status


OPTIMISTIX_SOLVERS = ("BFGS", "LBFGS", "NonlinearCG")


def optimistix_solver(name: str, *, gtol: float, max_steps: int) -> benchmark.Solver:
    """optimistix's ``name`` (one of :data:`OPTIMISTIX_SOLVERS`) stepped in a JAX loop
    that records its history, stopped at ``||grad|| <= gtol`` at the accepted point, as
    optlab's runs are (optimistix's own tolerances are 0, so its test never stops first).

    One optimistix step evaluates ``f`` once (with its gradient where the point is
    accepted): the history's entry ``k`` holds the accepted point's value after ``k``
    steps, and ``k`` evaluations (entry 0: the start, one evaluation)."""
    import equinox
    import optimistix

    if name not in OPTIMISTIX_SOLVERS:
        raise ValueError(f"unknown optimistix solver {name!r}; choose one of "
                         f"{', '.join(OPTIMISTIX_SOLVERS)}")
    solver = getattr(optimistix, name)(rtol=0.0, atol=0.0)
    tags = frozenset()

    def solve(fun, x0, lower, upper):
        del lower, upper  # unconstrained
        fn = lambda y, args: (fun(y), None)  # noqa: E731
        state = solver.init(fn, x0, None, {}, jax.ShapeDtypeStruct((), x0.dtype), None, tags)
        # The loop carries the state's arrays; the rest (an operator's jaxpr) stays as the
        # first state has it, as optimistix's own loop does.
        dynamic, static = equinox.partition(state, equinox.is_array)
        f0 = fun(x0)
        values = jnp.full(max_steps + 1, f0)
        evaluations = jnp.ones(max_steps + 1, jnp.int32)
        status = jnp.where(jnp.isfinite(f0), Status.RUNNING, Status.NONFINITE)

        def body(carry):
            y, dynamic, step, status, values, evaluations = carry
            y, state, _ = solver.step(fn, y, None, {}, equinox.combine(dynamic, static), tags)
            terminate, result = solver.terminate(fn, y, None, {}, state, tags)
            step = step + 1
            f, grad = state.f_info.f, state.f_info.grad
            status = jnp.select(
                [~jnp.isfinite(f), jnp.linalg.norm(grad) <= gtol,
                 terminate | (result != optimistix.RESULTS.successful), step >= max_steps],
                [Status.NONFINITE, Status.CONVERGED, Status.LINE_SEARCH_FAILED,
                 Status.MAX_ITERS], Status.RUNNING)
            return (y, equinox.filter(state, equinox.is_array), step,
                    status.astype(jnp.int32), values.at[step].set(f),
                    evaluations.at[step].set(step))

        carry = (x0, dynamic, jnp.zeros((), jnp.int32), status.astype(jnp.int32), values,
                 evaluations)
        _, _, steps, status, values, evaluations = jax.lax.while_loop(
            lambda carry: carry[3] == Status.RUNNING, body, carry)
        after = jnp.arange(max_steps + 1) > steps
        return benchmark.Trace(jnp.where(after, values[steps], values),
                               jnp.where(after, evaluations[steps], evaluations), steps, status)

    return solve


SCIPY_SOLVERS = ("BFGS", "L-BFGS-B", "CG", "Newton-CG", "trust-ncg")
# Tolerances that leave the stop to the benchmark's own test (a callback) or to scipy's
# failures.
_OFF = {"BFGS": {"gtol": 0.0}, "L-BFGS-B": {"gtol": 0.0, "ftol": 0.0}, "CG": {"gtol": 0.0},
        "Newton-CG": {"xtol": 1e-300}, "trust-ncg": {"gtol": 0.0}}


def scipy_runs(method: str, problems: Sequence[Problem], starts: Sequence, *, gtol: float,
               max_iters: int, group: int = 16, log=None) -> benchmark.Runs:
    """scipy's ``method`` on every problem from each of its starts, on the host, as
    :class:`optlab.benchmark.Runs`: stopped where ``||grad||_2 <= gtol`` (the projected
    gradient for a bounded problem under L-BFGS-B) by a callback, or by scipy itself
    (a failed line search, its iteration limit). The objective of each group of problems
    is one jitted function of the problem's index (``lax.switch``), compiled apart
    from the clock; every run is timed alone, with one BLAS thread."""
    if method not in SCIPY_SOLVERS:
        raise ValueError(f"unknown scipy method {method!r}; choose one of "
                         f"{', '.join(SCIPY_SOLVERS)}")
    problems = list(problems)
    order = sorted(range(len(problems)), key=lambda i: (problems[i].n, i))
    runs, compile_seconds = {}, 0.0
    for first in range(0, len(order), group):
        members = order[first:first + group]
        functions, seconds = _group_functions([problems[i] for i in members],
                                              method in ("Newton-CG", "trust-ncg"))
        compile_seconds += seconds
        with scipy_reference.single_threaded_blas():
            for k, index in enumerate(members):
                runs[index] = [_scipy_run(method, problems[index], functions, k, x0, gtol,
                                          max_iters) for x0 in np.asarray(starts[index])]
        if log is not None:
            log(f"scipy {method}: problems {first + 1}-{first + len(members)} of {len(order)} "
                "done")
    columns = [runs[i] for i in range(len(problems))]
    field = lambda j: np.array([[run[j] for run in row] for row in columns])  # noqa: E731
    return benchmark.Runs(field(0), field(1), field(2), field(3), field(4), compile_seconds)


def _group_functions(problems: list[Problem], hessp: bool):
    """The group's value-and-gradient (and Hessian-vector product) of ``(k, x)``, jitted
    and compiled; and the seconds that took."""
    width = max(problem.n for problem in problems)
    fun = stack(problems).fun
    begin = time.perf_counter()
    value_and_grad = jax.jit(jax.value_and_grad(fun, argnums=1))
    jax.block_until_ready(value_and_grad(0, jnp.zeros(width)))
    product = None
    if hessp:
        product = jax.jit(lambda k, x, v: jax.jvp(lambda y: jax.grad(fun, argnums=1)(k, y),
                                                  (x,), (v,))[1])
        jax.block_until_ready(product(0, jnp.zeros(width), jnp.zeros(width)))
    return (width, value_and_grad, product), time.perf_counter() - begin


def _scipy_run(method, problem: Problem, functions, k: int, x0, gtol: float, max_iters: int):
    """One scipy run: (values, evaluations, iterations, status, seconds), the histories
    ``max_iters + 1`` long."""
    width, value_and_grad, product = functions
    n = problem.n
    pad = lambda x: np.pad(x, (0, width - n))  # noqa: E731
    bounds = None
    if problem.bounded and method == "L-BFGS-B":
        bounds = problem.box()
        x0 = np.clip(x0, *bounds)
    counted = {"evaluations": 0}
    last = {}

    def fg(x):
        counted["evaluations"] += 1
        f, g = value_and_grad(k, pad(x))
        last["x"], last["g"] = np.array(x), np.asarray(g)[:n]
        return float(f), last["g"]

    def stationarity(x, g):
        return (np.linalg.norm(g) if bounds is None
                else np.linalg.norm(np.clip(x - g, *bounds) - x))

    f0, g0 = fg(np.asarray(x0, np.float64))
    values, evaluations = [f0], [1]
    counted["evaluations"] = 0  # scipy evaluates x0 again: its count starts there

    def callback(intermediate_result):
        x = intermediate_result.x
        values.append(float(intermediate_result.fun))
        evaluations.append(counted["evaluations"])
        g = last["g"] if np.array_equal(x, last["x"]) else fg(x)[1]
        if stationarity(x, g) <= gtol:
            raise StopIteration

    kwargs = {}
    if product is not None:
        kwargs["hessp"] = lambda x, v: np.asarray(product(k, pad(x), pad(v)))[:n]
    if bounds is not None:
        kwargs["bounds"] = scipy.optimize.Bounds(*bounds)
    begin = time.perf_counter()
    result = scipy.optimize.minimize(
        fg, np.asarray(x0, np.float64), jac=True, method=method, callback=callback,
        options={"maxiter": max_iters, **_OFF[method]}, **kwargs)
    seconds = time.perf_counter() - begin
    iterations = len(values) - 1
    if stationarity(np.asarray(x0), g0) <= gtol:
        status = Status.CONVERGED
    elif not np.isfinite(values[-1]):
        status = Status.NONFINITE
    elif stationarity(result.x, fg(result.x)[1]) <= gtol:
        status = Status.CONVERGED
    elif iterations >= max_iters:
        status = Status.MAX_ITERS
    else:
        status = Status.LINE_SEARCH_FAILED  # scipy stopped on a failure of its own
    values, evaluations = (np.pad(np.asarray(v), (0, max_iters + 1 - len(v)), mode="edge")
                           for v in (values, evaluations))
    return values[:max_iters + 1], evaluations[:max_iters + 1], iterations, int(status), seconds
