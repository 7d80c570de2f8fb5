"""experiments.bench_first_order at a tiny size: its loops are the study's runs, its report.

No speed is asserted: the numbers depend on the machine and on what else runs on it.
"""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import linear_regression as default_config
from experiments import bench_first_order as bench
from experiments import linear_regression as study
from optlab.problems import regression
from optlab.train import minibatch

TINY = dataclasses.replace(
    default_config.get_config(), sizes=((48, 2),), seeds=3, steps=16, batch_size=8, repeats=1
)


class _SameShuffles:
    """Stands in for the NumPy generator: hands out optlab's permutation of each epoch."""

    def __init__(self, key):
        self.key, self.epoch = key, 0

    def permutation(self, n):
        epoch_key = jax.random.fold_in(self.key, self.epoch)
        self.epoch += 1
        return np.asarray(minibatch.random_permutation_at(epoch_key, n, jnp.arange(n)))


@pytest.mark.parametrize(
    "method, setting",
    [
        ("momentum", {"learning_rate": 1e-3, "beta": 0.8}),
        ("rmsprop", {"learning_rate": 1e-2, "gamma": 0.9}),
        ("adam", {"learning_rate": 1e-2, "b1": 0.8, "b2": 0.7}),
    ],
)
def test_the_numpy_loops_make_the_same_run_given_the_same_shuffles(method, setting):
    n, steps, batch = 20, 11, 6  # 3 minibatches per epoch, 2 rows dropped, 4 epochs
    data = regression.make_regression(1, n, 2, dtype=jnp.float64)
    solution = regression.least_squares(data.features, data.targets)
    key, initial = jax.random.key(7), jnp.array([0.5, -1.5])
    order = minibatch.shuffled_batches(key, n, batch, steps)
    optlab_run = minibatch.run_minibatch(
        regression.mse_loss,
        optax.inject_hyperparams(study.METHODS[method])(**setting),
        initial,
        minibatch.take_batches((data.features, data.targets), order),
        evaluate=solution.mse,
    )
    numpy_losses = bench.classic_run(
        method,
        setting,
        np.asarray(data.features),
        np.asarray(data.targets),
        np.asarray(initial),
        (np.asarray(solution.weights), float(solution.loss), np.asarray(solution.gram)),
        steps=steps,
        batch_size=batch,
        record_every=1,
        rng=_SameShuffles(key),
    )
    np.testing.assert_allclose(numpy_losses, optlab_run.losses, rtol=1e-10)


@pytest.fixture(scope="module")
def measured():
    return bench.measure(TINY, numpy_seeds=2)


def test_measure_reports_finite_positive_times_and_a_speedup(measured):
    assert measured["numpy_seeds"] == 2 and measured["seeds"] == 3
    assert [row["size"] for row in measured["sizes"]] == ["48x2"]
    for key in ("optlab_s", "optlab_compile_s", "optlab_wall_s", "numpy_measured_s", "numpy_s"):
        assert math.isfinite(measured[key]) and measured[key] > 0, key
    # Two of three seeds measured: the NumPy time is extrapolated by 3/2.
    assert measured["numpy_s"] == pytest.approx(measured["numpy_measured_s"] * 1.5)
    assert measured["speedup"] == pytest.approx(measured["numpy_s"] / measured["optlab_s"])


def test_agreement_covers_every_setting(measured):
    agreement = measured["agreement"]
    assert len(agreement) == 24
    for row in agreement:
        assert 0.0 <= row["p_value"] <= 1.0
        assert row["agree"] in (True, False)


def test_report_shows_both_times_and_the_ratio(measured):
    text = bench.format_report(measured, {"seconds": 12.5, "failure": None})
    assert "whole study" in text and "48x2" in text and "speed-up" in text
    assert "2 seeds measured → 3" in text
    assert "12.5 s (goal < 60 s: yes)" in text


def test_numpy_seeds_must_be_in_range():
    with pytest.raises(ValueError, match="numpy_seeds"):
        bench.measure(TINY, numpy_seeds=4)
