"""scipy as the reference rows of the studies, stopped by optlab's rules.

scipy's minimizers stop on a gradient tolerance. The studies stop at
``||x_k - x*|| < eps``, so here a callback raises ``StopIteration`` at that rule
(``callback(intermediate_result)``, scipy >= 1.11) and every other tolerance is 0.

``scipy.sparse.linalg.cg`` is run with ``atol=tol, rtol=0`` (the absolute rule of
:func:`optlab.linalg.cg`) and the same preconditioners built as scipy operators: the
diagonal, the IC(0) factor applied by two ``spsolve_triangular`` calls, and a dense
Cholesky factor (:func:`scipy_preconditioner`).

Times are wall times of whole calls. scipy's many small matrix-vector products run
fastest on one BLAS thread, and a BLAS thread pool beside XLA's threads slows them down
several times on a small machine, so :func:`single_threaded_blas` limits BLAS while
scipy is timed.
"""

from __future__ import annotations

import contextlib
import time
from typing import Callable, NamedTuple

import jax
import numpy as np
import scipy.linalg
import scipy.optimize
import scipy.sparse
import scipy.sparse.linalg
import threadpoolctl

from optlab.linalg import ic0_factor
from optlab.sweep import timed  # noqa: F401  (the benchmarks import it from here)


class ScipyRun(NamedTuple):
    iterations: int  # scipy's nit when it stopped
    distance: float  # ||x - x*|| where it stopped
    seconds: float  # wall time of the call


@contextlib.contextmanager
def single_threaded_blas():
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        yield


def minimize_to_distance(
    fun: Callable,
    grad: Callable,
    x0: np.ndarray,
    x_star: np.ndarray,
    eps: float,
    *,
    method: str,
    max_iters: int,
) -> ScipyRun:
    """``scipy.optimize.minimize(method=...)`` with the analytic gradient, stopped at eps."""

    def callback(intermediate_result):
        if np.linalg.norm(intermediate_result.x - x_star) < eps:
            raise StopIteration

    options = {"maxiter": max_iters, "gtol": 0.0}
    if method == "L-BFGS-B":
        options["ftol"] = 0.0
    start = time.perf_counter()
    result = scipy.optimize.minimize(
        fun, x0, jac=grad, method=method, callback=callback, options=options
    )
    seconds = time.perf_counter() - start
    return ScipyRun(int(result.nit), float(np.linalg.norm(result.x - x_star)), seconds)


class ScipyTrace(NamedTuple):
    values: np.ndarray  # f at x0 and after every iteration
    evaluations: int  # nfev
    result: scipy.optimize.OptimizeResult


# Tolerances that leave the stopping to the iteration budget or to scipy's own failure
# tests, so that the trace shows how far each method gets.
_TIGHT = {"BFGS": {"gtol": 1e-10}, "CG": {"gtol": 1e-10}, "L-BFGS-B": {"gtol": 0.0, "ftol": 0.0},
          "Newton-CG": {"xtol": 1e-14}, "trust-ncg": {"gtol": 1e-10},
          "trust-krylov": {"gtol": 1e-10}}


def minimize_trace(fun: Callable, x0: np.ndarray, *, method: str, max_iters: int,
                   hessp: bool = False, bounds=None) -> ScipyTrace:
    """``scipy.optimize.minimize(method=...)`` on a JAX function of a flat vector, given
    its jitted gradient (and Hessian-vector product with ``hessp=True``), with tight
    tolerances; the objective after every iteration, from the callback. ``bounds`` is
    ``(lower, upper)``, flat arrays with infinite entries where a side is free, for
    ``"L-BFGS-B"``; its trace starts at the projection of ``x0``, where scipy starts."""
    value = jax.jit(fun)
    grad = jax.jit(jax.grad(fun))
    kwargs = {}
    if hessp:
        product = jax.jit(lambda x, v: jax.jvp(jax.grad(fun), (x,), (v,))[1])
        kwargs["hessp"] = lambda x, v: np.asarray(product(x, v))
    if bounds is not None:
        lower, upper = (np.broadcast_to(np.asarray(b, np.float64), np.shape(x0)) for b in bounds)
        kwargs["bounds"] = scipy.optimize.Bounds(lower, upper)
        x0 = np.clip(x0, lower, upper)
    values = [float(value(x0))]

    def callback(intermediate_result):
        values.append(float(intermediate_result.fun))

    result = scipy.optimize.minimize(
        lambda x: float(value(x)), np.asarray(x0, np.float64), jac=lambda x: np.asarray(grad(x)),
        method=method, callback=callback, options={"maxiter": max_iters, **_TIGHT[method]},
        **kwargs)
    return ScipyTrace(np.asarray(values), int(result.nfev), result)


class ScipyCG(NamedTuple):
    x: np.ndarray
    iterations: int  # callbacks, one per iteration
    info: int  # scipy's: 0 converged, > 0 iterations when it gave up, < 0 illegal input
    seconds: float  # wall time of the solve (the preconditioner's set-up is apart)


def scipy_preconditioner(name: str, A: scipy.sparse.sparray, shift: float = 0.0):
    """scipy's counterpart of an optlab preconditioner, as ``(operator or None, factor)``.

    ``name`` is ``"none"``, ``"jacobi"``, ``"ic0"`` (optlab's IC(0) factor, which scipy
    lacks, applied with ``spsolve_triangular``) or ``"ideal"`` (dense Cholesky with
    ``cho_solve``). The set-up is done here, so callers can time it apart.
    """
    n = A.shape[0]
    if name == "none":
        return None
    if name == "jacobi":
        return scipy.sparse.diags_array(1.0 / A.diagonal())
    if name == "ic0":
        lower = ic0_factor(A, shift=shift)
        upper = scipy.sparse.csr_array(lower.T)

        def apply(r):
            y = scipy.sparse.linalg.spsolve_triangular(lower, r, lower=True)
            return scipy.sparse.linalg.spsolve_triangular(upper, y, lower=False)

        return scipy.sparse.linalg.LinearOperator((n, n), matvec=apply, dtype=np.float64)
    if name == "ideal":
        factor = scipy.linalg.cho_factor(A.toarray(), lower=True)
        return scipy.sparse.linalg.LinearOperator(
            (n, n), matvec=lambda r: scipy.linalg.cho_solve(factor, r), dtype=np.float64
        )
    raise ValueError(f"unknown preconditioner {name!r}")


def scipy_cg(A, b, x0, *, tol: float, M=None, max_iters: int | None = None) -> ScipyCG:
    """``scipy.sparse.linalg.cg`` stopped at ``||r_k|| < tol``, counting iterations."""
    iterations = 0

    def count(_):
        nonlocal iterations
        iterations += 1

    start = time.perf_counter()
    x, info = scipy.sparse.linalg.cg(
        A, b, x0, rtol=0.0, atol=tol, maxiter=max_iters, M=M, callback=count
    )
    seconds = time.perf_counter() - start
    return ScipyCG(x, iterations, int(info), seconds)
