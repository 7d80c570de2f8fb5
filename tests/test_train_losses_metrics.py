"""optlab.train.losses and optlab.train.metrics against NumPy and scikit-learn."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from sklearn import metrics as sk

from optlab import train
from optlab.train import losses


def test_softmax_cross_entropy_per_sample():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(6, 4)).astype(np.float32)
    labels = rng.integers(0, 4, 6).astype(np.int32)
    log_softmax = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    expected = -log_softmax[np.arange(6), labels]
    np.testing.assert_allclose(losses.softmax_cross_entropy(logits, labels), expected, rtol=1e-5)


def test_squared_and_absolute_errors_average_each_samples_features():
    rng = np.random.default_rng(1)
    predictions = rng.normal(size=(3, 4, 5)).astype(np.float32)
    targets = rng.normal(size=(3, 4, 5)).astype(np.float32)
    difference = predictions - targets
    np.testing.assert_allclose(
        losses.squared_error(predictions, targets), (difference**2).mean(axis=(1, 2)), rtol=1e-6
    )
    np.testing.assert_allclose(
        losses.absolute_error(predictions, targets), np.abs(difference).mean(axis=(1, 2)), rtol=1e-6
    )
    np.testing.assert_allclose(
        train.per_sample_mae(targets, predictions), np.abs(difference).mean(axis=(1, 2)), rtol=1e-6
    )
    with pytest.raises(ValueError, match="same shape"):
        train.per_sample_mae(targets, predictions[:2])


def test_tasks():
    assert set(train.classification().metrics) == {"accuracy"}
    assert train.reconstruction("mae").loss is losses.absolute_error
    assert train.reconstruction().targets_are_inputs and not train.regression().targets_are_inputs
    with pytest.raises(ValueError, match="loss must be one of"):
        train.regression("huber")


class TwoLayers(nnx.Module):
    def __init__(self, rngs):
        self.first = nnx.Linear(3, 4, param_dtype=jnp.float32, rngs=rngs)
        self.norm = nnx.BatchNorm(4, param_dtype=jnp.float32, rngs=rngs)
        self.second = nnx.Linear(4, 2, param_dtype=jnp.float32, rngs=rngs)


def test_penalties_sum_over_kernels_only():
    model = TwoLayers(nnx.Rngs(0))
    model.first.bias[...] = jnp.full((4,), 100.0, jnp.float32)  # biases are never penalised
    params = nnx.state(model, nnx.Param)
    kernels = [np.asarray(model.first.kernel[...]), np.asarray(model.second.kernel[...])]
    np.testing.assert_allclose(
        losses.l1_penalty(params, 0.3), 0.3 * sum(np.abs(k).sum() for k in kernels), rtol=1e-6
    )
    np.testing.assert_allclose(
        losses.l2_penalty(params, 0.3), 0.3 * sum(np.square(k).sum() for k in kernels), rtol=1e-6
    )
    assert len(losses.kernels(params)) == 2  # not the BatchNorm scale, not the biases


def test_accuracy():
    labels = jnp.array([0, 1, 2, 2])
    predictions = jnp.array([0, 2, 2, 2])
    np.testing.assert_allclose(
        train.accuracy(labels, predictions), sk.accuracy_score(labels, predictions)
    )


@pytest.fixture
def labels_and_predictions():
    """Five classes: class 3 is never predicted, class 4 appears nowhere."""
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 4, 60).astype(np.int32)
    predictions = np.where(rng.random(60) < 0.6, labels, rng.integers(0, 3, 60)).astype(np.int32)
    predictions[predictions == 3] = 0
    return labels, predictions


def test_confusion_matrix_matches_sklearn(labels_and_predictions):
    labels, predictions = labels_and_predictions
    expected = sk.confusion_matrix(labels, predictions, labels=range(5))
    actual = train.confusion_matrix(jnp.asarray(labels), jnp.asarray(predictions), 5)
    np.testing.assert_array_equal(actual, expected)
    with pytest.raises(ValueError, match="same length"):
        train.confusion_matrix(jnp.asarray(labels), jnp.asarray(predictions[:3]), 5)


def test_precision_recall_f1_match_sklearn_with_zero_division_zero(labels_and_predictions):
    labels, predictions = labels_and_predictions
    confusion = train.confusion_matrix(jnp.asarray(labels), jnp.asarray(predictions), 5)
    for average in ("macro", None):
        expected = sk.precision_recall_fscore_support(
            labels, predictions, labels=range(5), average=average, zero_division=0
        )[:3]
        actual = train.precision_recall_f1(confusion, average=average)
        for name, value, reference in zip(("precision", "recall", "f1"), actual, expected):
            np.testing.assert_allclose(value, reference, rtol=1e-6, err_msg=f"{name} {average}")
    per_class = train.precision_recall_f1(confusion, average=None)
    assert per_class.precision[3] == 0 and per_class.f1[4] == 0
    with pytest.raises(ValueError, match="average"):
        train.precision_recall_f1(confusion, average="micro")


def test_metrics_run_under_vmap(labels_and_predictions):
    labels, predictions = labels_and_predictions
    stacked = jnp.stack([jnp.asarray(predictions), jnp.asarray(labels)])
    def macro_f1(predicted):
        confusion = train.confusion_matrix(jnp.asarray(labels), predicted, 5)
        return train.precision_recall_f1(confusion).f1

    f1 = jax.vmap(macro_f1)(stacked)
    np.testing.assert_allclose(f1[1], 4 / 5)  # perfect on the four classes that occur
