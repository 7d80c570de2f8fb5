"""scipy.optimize as the reference rows of the studies, stopped by optlab's rule.

scipy's minimizers stop on a gradient tolerance. The studies stop at
``||x_k - x*|| < eps``, so here a callback raises ``StopIteration`` at that rule
(``callback(intermediate_result)``, scipy >= 1.11) and every other tolerance is 0.

Times are wall times of whole calls. scipy's many small matrix-vector products run
fastest on one BLAS thread, and a BLAS thread pool beside XLA's threads slows them down
several times on a small machine, so :func:`single_threaded_blas` limits BLAS while
scipy is timed.
"""

from __future__ import annotations

import contextlib
import time
from typing import Callable, NamedTuple

import numpy as np
import scipy.optimize
import threadpoolctl


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
