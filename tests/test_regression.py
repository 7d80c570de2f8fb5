"""Synthetic least squares (optlab.problems.regression) and the minibatch loop (optlab.train).

Checked against hand computations and NumPy: the data recipe, the loss and its exact
O(d^2) form, one minibatch step, the shuffles (each row at most once per epoch, a fresh
order every epoch, deterministic for a key), and the recording of losses and parameters.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optlab
from optlab.problems import regression
from optlab.train import minibatch


def _data(n=200, d=3, seed=0):
    return regression.make_regression(seed, n, d, dtype=jnp.float64)


def test_make_regression_shapes_dtypes_and_determinism():
    data = regression.make_regression(0, n=100, d=4)
    assert data.features.shape == (100, 4) and data.targets.shape == (100,)
    assert data.true_weights.shape == (4,)
    assert {a.dtype for a in data} == {jnp.dtype(jnp.float32)}
    again = regression.make_regression(jax.random.key(0), n=100, d=4)
    for a, b in zip(data, again):
        np.testing.assert_array_equal(a, b)
    other = regression.make_regression(1, n=100, d=4)
    assert not np.array_equal(data.features, other.features)


def test_columns_are_uniform_on_plus_minus_5_times_2j_plus_1():
    data = _data(n=20_000, d=4)
    scales = 2 * np.arange(4) + 1
    features = np.asarray(data.features)
    bound = 5.0 * scales[None, :]
    assert np.all(np.abs(features) <= bound)
    np.testing.assert_allclose(np.abs(features).max(axis=0), 5.0 * scales, rtol=1e-3)
    # U(-a, a) has standard deviation a / sqrt(3).
    np.testing.assert_allclose(features.std(axis=0), 5.0 * scales / np.sqrt(3), rtol=0.02)


def test_targets_are_linear_plus_unit_noise():
    data = _data(n=20_000, d=3)
    noise = np.asarray(data.targets - data.features @ data.true_weights)
    assert abs(noise.mean()) < 0.03 and abs(noise.std() - 1.0) < 0.03


@pytest.mark.parametrize("n, d", [(0, 2), (5, 0), (2.5, 2), (True, 2)])
def test_make_regression_rejects_bad_sizes(n, d):
    with pytest.raises(ValueError, match="must be a positive integer"):
        regression.make_regression(0, n, d)


def test_mse_loss_is_the_mean_squared_error_without_a_half():
    features = jnp.array([[1.0, 2.0], [3.0, 4.0], [0.0, 1.0]])
    targets = jnp.array([1.0, 2.0, 3.0])
    weights = jnp.array([0.5, -1.0])
    residuals = np.array([1.0 * 0.5 - 2.0 - 1.0, 1.5 - 4.0 - 2.0, -1.0 - 3.0])
    assert float(regression.mse_loss(weights, features, targets)) == pytest.approx(
        np.mean(residuals**2)
    )
    grad = jax.grad(regression.mse_loss)(weights, features, targets)
    np.testing.assert_allclose(grad, 2.0 / 3.0 * np.asarray(features).T @ residuals)


def test_least_squares_matches_numpy_and_its_exact_quadratic_form():
    data = _data(n=5000, d=3)
    solution = regression.least_squares(data.features, data.targets)
    x, y = np.asarray(data.features), np.asarray(data.targets)
    expected, *_ = np.linalg.lstsq(x, y, rcond=None)
    np.testing.assert_allclose(solution.weights, expected, rtol=1e-10)
    best = np.mean((x @ expected - y) ** 2)
    assert float(solution.loss) == pytest.approx(best, rel=1e-12)
    assert 0.9 < best < 1.1  # about the noise variance
    np.testing.assert_allclose(solution.gram, x.T @ x / len(y), rtol=1e-12)
    for weights in np.random.default_rng(0).normal(size=(5, 3)) * [1.0, 3.0, 10.0]:
        direct = regression.mse_loss(jnp.asarray(weights), data.features, data.targets)
        assert float(solution.mse(jnp.asarray(weights))) == pytest.approx(float(direct), rel=1e-10)


def test_one_step_uses_the_gradient_of_the_minibatch_mean():
    data = _data(n=40, d=2)
    rows = jnp.array([[3, 17, 5, 30]])
    batches = minibatch.take_batches((data.features, data.targets), rows)
    initial = jnp.array([0.3, -0.2])
    run = minibatch.run_minibatch(
        regression.mse_loss, optlab.sgd(0.01), initial, batches, evaluate=lambda w: 0.0
    )
    x, y = np.asarray(data.features)[[3, 17, 5, 30]], np.asarray(data.targets)[[3, 17, 5, 30]]
    gradient = 2.0 / 4.0 * x.T @ (x @ np.asarray(initial) - y)
    np.testing.assert_allclose(run.params, np.asarray(initial) - 0.01 * gradient, rtol=1e-12)


def test_a_row_repeated_in_a_batch_gives_the_same_step_as_the_row_alone():
    data = _data(n=10, d=2)
    initial = jnp.zeros(2)

    def step(rows):
        batches = minibatch.take_batches((data.features, data.targets), jnp.array([rows]))
        run = minibatch.run_minibatch(
            regression.mse_loss, optlab.sgd(0.01), initial, batches, evaluate=lambda w: 0.0
        )
        return run.params

    np.testing.assert_allclose(step([4]), step([4, 4, 4, 4]), rtol=1e-12)


def _epochs(order: np.ndarray, per_epoch: int) -> list[np.ndarray]:
    return [order[e : e + per_epoch].ravel() for e in range(0, len(order), per_epoch)]


def test_every_row_once_per_epoch_when_the_batch_divides_n():
    order = np.asarray(minibatch.shuffled_batches(jax.random.key(0), 64, 8, steps=24))
    assert order.shape == (24, 8) and order.dtype == np.int32
    epochs = _epochs(order, 8)
    for rows in epochs:
        np.testing.assert_array_equal(np.sort(rows), np.arange(64))
    assert not np.array_equal(epochs[0], epochs[1])  # reshuffled every epoch


def test_the_partial_batch_is_dropped_and_the_dropped_rows_change():
    n, batch = 70, 8  # 8 minibatches per epoch, 6 rows dropped
    order = np.asarray(minibatch.shuffled_batches(jax.random.key(1), n, batch, steps=8 * 40))
    epochs = _epochs(order, 8)
    dropped = []
    for rows in epochs:
        assert len(rows) == 64 and len(np.unique(rows)) == 64
        dropped.append(frozenset(range(n)) - frozenset(rows.tolist()))
    assert len(set(dropped)) > 1
    assert set(order.ravel().tolist()) == set(range(n))


def test_steps_may_end_within_an_epoch():
    order = np.asarray(minibatch.shuffled_batches(jax.random.key(2), 1000, 32, steps=5))
    assert order.shape == (5, 32) and len(np.unique(order)) == 160


def test_shuffles_are_deterministic_for_a_key():
    first = minibatch.shuffled_batches(jax.random.key(3), 50, 5, steps=30)
    np.testing.assert_array_equal(first, minibatch.shuffled_batches(jax.random.key(3), 50, 5, 30))
    assert not np.array_equal(first, minibatch.shuffled_batches(jax.random.key(4), 50, 5, 30))


@pytest.mark.parametrize("n", [1, 2, 3, 5, 16, 17, 33, 500, 1025])
def test_random_permutation_is_a_bijection(n):
    image = np.asarray(minibatch.random_permutation_at(jax.random.key(n), n, jnp.arange(n)))
    np.testing.assert_array_equal(np.sort(image), np.arange(n))


def test_random_permutation_looks_uniform():
    keys = jax.random.split(jax.random.key(0), 4000)
    images = np.asarray(
        jax.vmap(lambda key: minibatch.random_permutation_at(key, 10, jnp.arange(10)))(keys)
    )
    for position in (0, 9):
        counts = np.bincount(images[:, position], minlength=10)
        assert counts.min() > 320 and counts.max() < 480, counts  # 400 expected, sd 19


@pytest.mark.parametrize(
    "n, batch, steps, message",
    [(10, 11, 5, "batch_size"), (10, 0, 5, "batch_size"), (10, 2, 0, "steps")],
)
def test_shuffles_reject_bad_sizes(n, batch, steps, message):
    with pytest.raises(ValueError, match=message):
        minibatch.shuffled_batches(jax.random.key(0), n, batch, steps)


def test_records_losses_and_parameters_every_k_steps():
    data = _data(n=48, d=2)
    order = minibatch.shuffled_batches(jax.random.key(0), 48, 8, steps=20)
    batches = minibatch.take_batches((data.features, data.targets), order)
    solution = regression.least_squares(data.features, data.targets)
    opt = optlab.momentum(1e-3, beta=0.9)
    initial = jnp.array([1.0, -1.0])
    every = minibatch.run_minibatch(
        regression.mse_loss, opt, initial, batches, evaluate=solution.mse, keep_trajectory=True
    )
    sparse = minibatch.run_minibatch(
        regression.mse_loss, opt, initial, batches, evaluate=solution.mse, record_every=5
    )
    assert every.losses.shape == (21,) and sparse.losses.shape == (5,)
    assert sparse.trajectory is None
    np.testing.assert_allclose(sparse.losses, every.losses[::5], rtol=1e-12)
    np.testing.assert_allclose(every.trajectory[0], initial)
    np.testing.assert_allclose(every.trajectory[-1], every.params)
    np.testing.assert_allclose(
        every.losses, jax.vmap(solution.mse)(every.trajectory), rtol=1e-12
    )


def test_bad_record_every_and_batches_are_refused():
    data = _data(n=16, d=2)
    order = minibatch.shuffled_batches(jax.random.key(0), 16, 4, steps=6)
    batches = minibatch.take_batches((data.features, data.targets), order)
    with pytest.raises(ValueError, match="record_every"):
        minibatch.run_minibatch(
            regression.mse_loss, optlab.sgd(0.1), jnp.zeros(2), batches,
            evaluate=lambda w: 0.0, record_every=4,
        )
    with pytest.raises(ValueError, match="leading axes"):
        minibatch.run_minibatch(
            regression.mse_loss, optlab.sgd(0.1), jnp.zeros(2), (batches[0], batches[1][:3]),
            evaluate=lambda w: 0.0,
        )


def test_runs_under_jit_and_vmap_over_seeds_and_traced_hyperparameters():
    data = _data(n=32, d=2)
    solution = regression.least_squares(data.features, data.targets)

    def run(seed, learning_rate):
        order = minibatch.shuffled_batches(jax.random.key(seed), 32, 4, steps=10)
        batches = minibatch.take_batches((data.features, data.targets), order)
        opt = optax.inject_hyperparams(optlab.adam)(learning_rate=learning_rate)
        return minibatch.run_minibatch(
            regression.mse_loss, opt, jnp.zeros(2), batches, evaluate=solution.mse
        ).losses

    # Member by member equality with unbatched runs is checked on the study's sweeps.
    batched = jax.jit(jax.vmap(run))(jnp.arange(3), jnp.array([0.1, 0.01, 0.001]))
    assert batched.shape == (3, 11) and bool(jnp.all(jnp.isfinite(batched)))
    assert float(batched[0, -1]) < float(batched[0, 0])
