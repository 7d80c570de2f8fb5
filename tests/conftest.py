"""Strict settings for the whole suite, in the spirit of optimistix's tests.

float64 everywhere (the correctness claims are stated to 1e-12), implicit rank
promotion is an error, and figures render without a display. ``filterwarnings =
error`` comes from pyproject.toml.
"""

import os
import subprocess
import sys

import jax
import pytest
import scipy.linalg  # noqa: F401  (loads scipy's BLAS, so that the limit below covers it)
import threadpoolctl

os.environ.setdefault("MPLBACKEND", "Agg")
jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")

# The reference computations (NumPy SVDs, scipy's BFGS) are many small BLAS calls; with
# OpenBLAS's default thread pool beside XLA's on a small machine they run ten times
# slower than on one thread. Plugins have imported NumPy already, so an environment
# variable would come too late.
_BLAS_THREADS = threadpoolctl.threadpool_limits(limits=1, user_api="blas")


@pytest.fixture
def run_script():
    """``run(module, *args)`` runs ``python -m module args`` and returns the finished
    process and the stderr lines ``NAME: error: ...`` that the script printed (NAME the
    module's last component), for the tests of bad command lines."""

    def run(module: str, *args: str):
        done = subprocess.run(
            [sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=120
        )
        name = module.rsplit(".", 1)[-1]
        errors = [line for line in done.stderr.splitlines() if f"{name}: error" in line]
        return done, errors

    return run
