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
def call_study(capsys):
    """``call_study(study, *args)`` runs a kit study's command line in this process, with
    the persistent compilation cache off; returns the exit status and the stderr lines.
    JAX's float64 setting, which a study sets, is restored afterwards."""
    from absl import flags

    from experiments.kit import cli

    x64 = jax.config.jax_enable_x64

    def call(study, *args):
        values = flags.FlagValues()
        remaining = cli.parse(study, ["study", "--compilation_cache=", *args], values)
        status = remaining if isinstance(remaining, int) else cli.main(study, remaining, values)
        errors = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        return status, errors

    yield call
    jax.config.update("jax_enable_x64", x64)


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
