"""The peers of ``experiments.large_scale``, each run on a JAX objective ``fun(x, data)``
and reported as one row of its table: scipy's Newton-CG and trust-ncg, scipy's
L-BFGS-B, optimistix's BFGS (``experiments.kit.peer_solvers`` runs them with history,
for ``experiments.profiles``).

scipy is given the objective's jitted value, gradient and Hessian-vector product,
compiled before its clock starts; optimistix is compiled apart by
:func:`optlab.sweep.time_compiled`. Every peer stops at the benchmark's own test: a
callback raises ``StopIteration`` where scipy has no such test of its own.
"""

from __future__ import annotations

import functools
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize

from optlab import sweep


def projected_grad_norm(x, g, box) -> float:
    """``||P(x - g) - x||_2`` for the box ``|x_i| <= box``."""
    return float(np.linalg.norm(np.clip(x - g, -box, box) - x))


def scipy_newton_row(method: str, fun, x0, data, gtol: float, max_iters: int) -> dict:
    """scipy's ``Newton-CG`` or ``trust-ncg`` to ``||g|| <= gtol``. Newton-CG has no
    gradient test: a callback stops it, from a gradient that is remembered, so that
    scipy's next request for it costs nothing."""
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


def seconds_per_evaluation(fun, x, data, count: int = 50) -> float:
    """One evaluation of ``fun(x, data)`` and its gradient, the least of three compiled
    loops of ``count``: what any method on one core pays per evaluation at the least."""
    value_and_grad = jax.value_and_grad(fun)

    def evaluations(x, data):
        # The value is used, as a method uses it: XLA's CPU program for the logistic
        # objective's gradient alone is slower.
        def step(_, carry):
            value, grad = value_and_grad(carry[0], data)
            return carry[0] + 0.0 * grad, carry[1] + value

        return jax.lax.fori_loop(0, count, step, (x, jnp.zeros((), x.dtype)))

    _, timing = sweep.time_compiled(evaluations, jnp.asarray(x), data, repeats=3)
    return min(timing.repeats) / count


def scipy_lbfgsb_row(fun, members, gtol: float, max_iters: int, *, batch: bool,
                     repeats: int = 1) -> dict:
    """scipy's L-BFGS-B on each ``(start, data, box)`` of ``members`` (the box ``|x_i| <=
    box``), stopped by the Euclidean projected-gradient test (a callback; its own tests
    off). A batch is a loop of runs whose times add up; its iterations are their mean. The
    time is the median of ``repeats`` loops; ``evaluation_seconds`` is what the runs'
    evaluations alone would take in a compiled loop (:func:`seconds_per_evaluation`)."""
    value_and_grad = jax.jit(jax.value_and_grad(fun))
    start0, data0, _ = members[0]
    jax.block_until_ready(value_and_grad(jnp.asarray(start0), data0))  # compiled apart

    def stopper(data_k, box_k):
        """scipy's objective, and a callback that stops at the projected-gradient test
        from the gradient scipy asked for last (at the new iterate)."""
        last = {}

        def fg(x):
            f, g = value_and_grad(x, data_k)
            last["x"], last["g"] = x, np.asarray(g)
            return float(f), last["g"]

        def callback(intermediate_result):
            x = intermediate_result.x
            g = (last["g"] if np.array_equal(x, last["x"])
                 else np.asarray(value_and_grad(x, data_k)[1]))
            if projected_grad_norm(x, g, box_k) <= gtol:
                raise StopIteration

        return fg, callback

    loops = []
    for _ in range(repeats):  # the runs are the same each time
        seconds, iterations, evaluations, norms = 0.0, [], 0, []
        for start, data_k, box_k in members:
            fg, callback = stopper(data_k, box_k)
            begin = time.perf_counter()
            result = scipy.optimize.minimize(
                fg, np.asarray(start), jac=True, method="L-BFGS-B", callback=callback,
                bounds=scipy.optimize.Bounds(-box_k, box_k),
                options={"maxiter": max_iters, "gtol": 0.0, "ftol": 0.0,
                         "maxfun": 100 * max_iters})
            seconds += time.perf_counter() - begin
            iterations.append(int(result.nit))
            evaluations += int(result.nfev)
            g = np.asarray(value_and_grad(result.x, data_k)[1])
            norms.append(projected_grad_norm(result.x, g, box_k))
        loops.append(seconds)
    return {"seconds": statistics.median(loops), "compile_seconds": None,
            "iterations": float(np.mean(iterations)) if batch else iterations[0],
            "evaluations": evaluations, "products": None, "grad_norm": max(norms),
            "evaluation_seconds": evaluations * seconds_per_evaluation(fun, start0, data0),
            "status": "converged" if max(norms) <= gtol else "stopped",
            **({} if batch else {"active": int(np.sum(np.abs(result.x) == box_k))})}


def optimistix_bfgs_row(fun, x0, data, gtol: float, max_iters: int) -> dict:
    """optimistix's dense ``BFGS`` with ``rtol=0, atol=gtol`` (its gradient test)."""
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

