"""Tests of optlab.stats against hand computations with NumPy and scipy.stats.t."""

import json
import math

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from optlab import stats
from optlab.stats import Summary, summarize

SAMPLES = np.array([12.0, 15.0, 11.0, 19.0, 14.0, 13.0, 17.0])


def test_t_interval_matches_hand_computation():
    summary = summarize(SAMPLES, confidence=0.9)
    n = SAMPLES.size
    mean = SAMPLES.sum() / n
    std = math.sqrt(((SAMPLES - mean) ** 2).sum() / (n - 1))
    half_width = scipy.stats.t.ppf(0.95, n - 1) * std / math.sqrt(n)
    assert summary.count == summary.total == n
    assert summary.mean == pytest.approx(mean, rel=1e-12)
    assert summary.std == pytest.approx(std, rel=1e-12)
    assert summary.ci_low == pytest.approx(mean - half_width, rel=1e-12)
    assert summary.ci_high == pytest.approx(mean + half_width, rel=1e-12)
    assert (summary.min, summary.max, summary.median) == (11.0, 19.0, 14.0)
    assert (summary.confidence, summary.method) == (0.9, "t")


def test_wider_confidence_gives_wider_interval():
    narrow = summarize(SAMPLES, confidence=0.8)
    wide = summarize(SAMPLES, confidence=0.99)
    assert wide.ci_low < narrow.ci_low < narrow.ci_high < wide.ci_high


@pytest.mark.parametrize("samples", [SAMPLES, np.random.default_rng(0).lognormal(size=30)])
def test_bootstrap_contains_mean_and_is_deterministic(samples):
    first = summarize(samples, method="bootstrap", n_boot=2000, seed=3)
    again = summarize(samples, method="bootstrap", n_boot=2000, seed=3)
    assert first == again
    assert first.ci_low < first.mean < first.ci_high
    assert samples.min() <= first.ci_low and first.ci_high <= samples.max()
    assert first.method == "bootstrap"


def test_bootstrap_depends_on_seed():
    # Continuous data: with a handful of integers the percentiles of the resampled means
    # fall on the same few values for any seed.
    samples = np.random.default_rng(0).lognormal(size=30)
    first = summarize(samples, method="bootstrap", n_boot=2000, seed=3)
    other = summarize(samples, method="bootstrap", n_boot=2000, seed=4)
    assert (first.ci_low, first.ci_high) != (other.ci_low, other.ci_high)


def test_bootstrap_is_close_to_t_interval_for_normal_data():
    samples = np.random.default_rng(0).normal(10.0, 2.0, size=200)
    t = summarize(samples)
    boot = summarize(samples, method="bootstrap", n_boot=4000)
    width = t.ci_high - t.ci_low
    assert boot.ci_low == pytest.approx(t.ci_low, abs=0.1 * width)
    assert boot.ci_high == pytest.approx(t.ci_high, abs=0.1 * width)


@pytest.mark.parametrize("method", ["t", "bootstrap"])
def test_non_finite_samples_are_excluded_and_counted(method):
    with_failures = np.concatenate([SAMPLES, [np.nan, np.inf, -np.inf]])
    summary = summarize(with_failures, method=method, n_boot=500)
    reference = summarize(SAMPLES, method=method, n_boot=500)
    assert (summary.count, summary.total) == (SAMPLES.size, SAMPLES.size + 3)
    assert summary._replace(total=SAMPLES.size) == reference


@pytest.mark.parametrize("method", ["t", "bootstrap"])
@pytest.mark.parametrize("samples", [[4.0, 4.0, 4.0], [4.0], [4.0, np.nan]])
def test_identical_samples_give_a_point_interval(method, samples):
    summary = summarize(samples, method=method)
    assert (summary.ci_low, summary.mean, summary.ci_high) == (4.0, 4.0, 4.0)
    assert summary.std == 0.0


@pytest.mark.parametrize("samples", [[], [np.nan, np.inf]])
def test_no_finite_sample_gives_nan_statistics(samples):
    summary = summarize(samples)
    assert (summary.count, summary.total) == (0, len(samples))
    for value in (summary.mean, summary.std, summary.min, summary.max, summary.median):
        assert math.isnan(value)
    assert math.isnan(summary.ci_low) and math.isnan(summary.ci_high)


def test_accepts_jax_arrays_and_integers():
    from_jax = summarize(jnp.asarray([3, 4, 5]))
    assert from_jax == summarize(np.array([3.0, 4.0, 5.0]))
    assert isinstance(from_jax.mean, float)


def test_as_dict_is_plain_python_and_json_ready():
    fields = summarize(np.int32([3, 4, 5])).as_dict()
    assert list(fields) == list(Summary._fields)
    assert type(fields["count"]) is int and type(fields["total"]) is int
    assert type(fields["mean"]) is float and fields["method"] == "t"
    assert json.loads(json.dumps(fields, allow_nan=False)) == fields


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(samples=np.ones((2, 3))), "1-D"),
        (dict(samples=3.0), "1-D"),
        (dict(samples=SAMPLES, confidence=0.0), "confidence"),
        (dict(samples=SAMPLES, confidence=1.0), "confidence"),
        (dict(samples=SAMPLES, confidence=95), "confidence"),
        (dict(samples=SAMPLES, method="bca"), "method"),
        (dict(samples=SAMPLES, method="bootstrap", n_boot=0), "n_boot"),
    ],
)
def test_invalid_arguments_raise(kwargs, message):
    samples = kwargs.pop("samples")
    with pytest.raises(ValueError, match=message):
        summarize(samples, **kwargs)


def test_first_below_is_the_first_step_under_the_level_or_nan():
    from optlab.stats import first_below
    curves = np.array([[5.0, 2.0, 0.5, 0.1], [5.0, 4.0, 3.0, 2.0], [5.0, 0.9, 1.5, 1.0]])
    np.testing.assert_array_equal(first_below(curves, 1.0), [2.0, np.nan, 1.0])
    np.testing.assert_array_equal(first_below(curves, 1.0, inclusive=True), [2.0, np.nan, 1.0])
    np.testing.assert_array_equal(first_below(curves, 2.0, inclusive=True), [1.0, 3.0, 1.0])


def test_median_index_ranks_non_finite_runs_last():
    from optlab.stats import median_index
    assert median_index([3.0, np.nan, 1.0, 2.0]) == 3
    assert median_index([np.inf, 1.0, 2.0]) == 2
    assert median_index([7.0]) == 0


def test_mean_std_columns_summarise_the_finite_seeds_of_each_measure():
    columns = stats.mean_std_columns({"steps": [4.0, 6.0, np.nan], "loss": [1.0, 3.0]},
                                     {"steps": ".0f", "loss": ".2f"})
    assert columns["steps"] == 5.0 and columns["steps_count"] == 2
    assert columns["steps_text"] == "5 ± 1" and columns["loss_text"] == "2.00 ± 1.41"
    interval = stats.summarize([1.0, 3.0])
    assert (columns["loss_ci_low"], columns["loss_ci_high"]) == (interval.ci_low,
                                                                  interval.ci_high)
