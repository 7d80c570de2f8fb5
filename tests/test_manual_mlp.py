"""Tests of optlab.models.manual_mlp: the hand-written backward pass against jax.grad (of
its own loss and of the NNX MLP's), and SGD with it against optax on the NNX model."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from optlab import models
from optlab.models import manual_mlp
from optlab.train import minibatch

SIZES = (11, 16, 12, 8, 3)
L2 = 0.01


def _data(count: int = 32, features: int = SIZES[0], classes: int = SIZES[-1], seed: int = 0):
    x_key, label_key = jax.random.split(jax.random.key(seed))
    x = jax.random.normal(x_key, (count, features), jnp.float64)
    labels = jax.random.randint(label_key, (count,), 0, classes)
    return x, labels


def _random_params(power_layers, seed: int = 1):
    # Random biases, so that the test does not rest on zero ones; float64 for the 1e-10
    # comparison. Both branches of every activation are taken (tested below).
    params = manual_mlp.init(
        jax.random.key(seed), SIZES, power_layers=power_layers, dtype=jnp.float64
    )
    bias_keys = jax.random.split(jax.random.key(seed + 100), len(params))
    for layer, key in zip(params, bias_keys):
        layer["bias"] = 0.1 * jax.random.normal(key, layer["bias"].shape, jnp.float64)
    return params


def _assert_trees_close(actual, expected, atol):
    assert jax.tree.structure(actual) == jax.tree.structure(expected)
    jax.tree.map(lambda a, e: np.testing.assert_allclose(a, e, rtol=0, atol=atol), actual, expected)


@pytest.mark.parametrize("power_layers, l2", [((), 0.0), ((2,), L2), ((0, 1, 2), L2)])
def test_manual_gradients_equal_autodiff(power_layers, l2):
    params = _random_params(power_layers)
    x, labels = _data()
    expected = jax.grad(manual_mlp.loss)(params, x, labels, l2=l2)
    actual = manual_mlp.gradients(params, x, labels, l2=l2)
    _assert_trees_close(actual, expected, atol=1e-10)
    # The exponents' gradients are not trivially zero.
    for index in power_layers:
        assert abs(actual[index]["exponent"]) > 1e-4


def test_both_branches_of_the_activations_are_exercised():
    params = _random_params((2,))
    x, _ = _data()
    activation = x
    for layer in params[:-1]:
        z = activation @ layer["kernel"] + layer["bias"][None, :]
        assert 0.1 < float(jnp.mean(z > 0)) < 0.9
        activation = jnp.where(z > 0, z, 0.01 * z)


def test_loss_matches_an_independent_numpy_computation():
    params = _random_params((1,))
    x, labels = _data()
    activation = np.asarray(x)
    for layer in params[:-1]:
        z = activation @ np.asarray(layer["kernel"]) + np.asarray(layer["bias"])
        if "exponent" in layer:
            power = np.abs(z) ** float(layer["exponent"])
            activation = np.where(z > 0, power, 0.01 * z)
        else:
            activation = np.where(z > 0, z, 0.01 * z)
    logits = activation @ np.asarray(params[-1]["kernel"]) + np.asarray(params[-1]["bias"])
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probabilities = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    cross_entropy = -log_probabilities[np.arange(len(labels)), np.asarray(labels)].mean()
    penalty = sum(float(np.sum(np.asarray(layer["kernel"]) ** 2)) for layer in params)
    expected = cross_entropy + L2 * penalty
    assert float(manual_mlp.loss(params, x, labels, l2=L2)) == pytest.approx(expected, rel=1e-12)


def _nnx_model(seed: int = 3):
    return models.MLP(
        SIZES,
        activation=("leaky_relu", "leaky_relu", "power"),
        dtype=jnp.float64,
        rngs=nnx.Rngs(seed),
    )


def _nnx_loss(model, x, labels, l2):
    logits = model(x)
    cross_entropy = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    return cross_entropy + l2 * sum(jnp.sum(dense.kernel[...] ** 2) for dense in model.dense)


def test_manual_gradients_equal_jax_grad_of_the_nnx_model():
    model = _nnx_model()
    params = manual_mlp.from_model(model)
    assert [sorted(layer) for layer in params] == [
        ["bias", "kernel"], ["bias", "kernel"], ["bias", "exponent", "kernel"], ["bias", "kernel"]
    ]
    x, labels = _data()
    np.testing.assert_allclose(manual_mlp.forward(params, x), model(x), rtol=0, atol=1e-12)

    nnx_grads = nnx.grad(_nnx_loss)(model, x, labels, L2)
    manual = manual_mlp.to_model_state(manual_mlp.gradients(params, x, labels, l2=L2))
    for index, dense in enumerate(nnx_grads["dense"].values()):
        for name in ("kernel", "bias"):
            np.testing.assert_allclose(
                manual["dense"][index][name], dense[name][...], rtol=0, atol=1e-10
            )
    np.testing.assert_allclose(
        manual["activations"][2]["exponent"],
        nnx_grads["activations"][2]["exponent"][...],
        rtol=0,
        atol=1e-10,
    )


def test_sgd_with_manual_gradients_trains_like_optax_on_the_nnx_model():
    model = _nnx_model(seed=4)
    params = manual_mlp.from_model(model)
    x, labels = _data(seed=5)
    learning_rate, steps = 0.1, 20

    optimizer = nnx.Optimizer(
        model, optax.chain(optax.sgd(learning_rate), models.project_exponents()), wrt=nnx.Param
    )
    losses = []
    for _ in range(steps):
        losses.append(float(manual_mlp.loss(params, x, labels, l2=L2)))
        grads = manual_mlp.gradients(params, x, labels, l2=L2)
        params = jax.tree.map(lambda p, g: p - learning_rate * g, params, grads)
        optimizer.update(model, nnx.grad(_nnx_loss)(model, x, labels, L2))

    _assert_trees_close(manual_mlp.from_model(model), params, atol=1e-10)
    assert losses[-1] < 0.9 * losses[0]


def test_to_model_state_round_trips_through_the_model():
    model = _nnx_model()
    shifted = jax.tree.map(lambda p: p + 0.5, manual_mlp.from_model(model))
    nnx.update(model, manual_mlp.to_model_state(shifted))
    _assert_trees_close(manual_mlp.from_model(model), shifted, atol=0)


def test_init_layout_and_ranges():
    params = manual_mlp.init(jax.random.key(0), (5, 4, 3, 2), power_layers=(1,))
    assert [layer["kernel"].shape for layer in params] == [(5, 4), (4, 3), (3, 2)]
    assert all(layer["kernel"].dtype == jnp.float32 for layer in params)
    assert all(not np.any(layer["bias"]) for layer in params)
    assert [("exponent" in layer) for layer in params] == [False, True, False]
    assert 1.4 <= float(params[1]["exponent"]) < 2.0


@pytest.mark.parametrize(
    "build, error, message",
    [
        (lambda: manual_mlp.init(jax.random.key(0), (3,)), ValueError, "at least two"),
        (
            lambda: manual_mlp.init(jax.random.key(0), (3, 4, 2), power_layers=(1,)),
            ValueError,
            "power_layers",
        ),
        (
            lambda: manual_mlp.from_model(models.MLP((3, 4, 2), rngs=nnx.Rngs(0))),
            ValueError,
            "Leaky ReLU and power",
        ),
        (
            lambda: manual_mlp.from_model(
                models.MLP((3, 4, 2), activation="leaky_relu", dropout=0.1, rngs=nnx.Rngs(0))
            ),
            ValueError,
            "no dropout",
        ),
        (
            lambda: manual_mlp.from_model(models.DenseAutoencoder((3, 2), rngs=nnx.Rngs(0))),
            TypeError,
            "needs an optlab.models.MLP",
        ),
    ],
)
def test_bad_input_raises(build, error, message):
    with pytest.raises(error, match=message):
        build()


def test_wrong_data_shapes_raise():
    params = manual_mlp.init(jax.random.key(0), (3, 4, 2))
    with pytest.raises(ValueError, match=r"x must have shape \(N, 3\)"):
        manual_mlp.forward(params, jnp.zeros((5, 4), jnp.float32))
    with pytest.raises(ValueError, match="labels must have shape"):
        manual_mlp.gradients(params, jnp.zeros((5, 3), jnp.float32), jnp.zeros(4, jnp.int32))


def test_fit_takes_the_engines_minibatches_and_equals_steps_with_jax_grad():
    x, labels = _data(count=40)
    params = _random_params((1,))
    optimizer = optax.sgd(0.05)
    key = jax.random.key(7)
    trained, losses = manual_mlp.fit(params, optimizer, key, (x, labels), l2=L2,
                                     batch_size=16, epochs=2)
    expected, state, epoch_losses = params, optimizer.init(params), []
    positions = jnp.arange(32).reshape(2, 16)
    for epoch in range(2):
        rows = minibatch.random_permutation_at(jax.random.fold_in(key, epoch), 40, positions)
        batch_losses = []
        for batch in rows:
            batch_losses.append(manual_mlp.loss(expected, x[batch], labels[batch]))
            grads = jax.grad(manual_mlp.loss)(expected, x[batch], labels[batch], l2=L2)
            updates, state = optimizer.update(grads, state, expected)
            expected = optax.apply_updates(expected, updates)
        epoch_losses.append(np.mean(batch_losses))
    _assert_trees_close(trained, expected, atol=1e-10)
    np.testing.assert_allclose(losses, epoch_losses, rtol=1e-10)
    predictions = np.argmax(manual_mlp.forward(trained, x), axis=1)
    assert manual_mlp.accuracy(trained, x, labels) == pytest.approx(np.mean(predictions == labels))


def _per_row_sum(params, x, labels):
    """The gradient summed over rows, one row at a time: the hand computation."""
    rows = [jax.grad(manual_mlp.loss)(params, x[i : i + 1], labels[i : i + 1])
            for i in range(x.shape[0])]
    return jax.tree.map(lambda *g: sum(g), *rows)


def test_coursework_gradients_sum_kernels_and_average_the_plain_biases():
    x, labels = _data(count=7)
    params = _random_params((1,))
    mean = manual_mlp.gradients(params, x, labels)
    summed = _per_row_sum(params, x, labels)
    expected = [{name: summed[l][name] / 7 if name == "bias" and "exponent" not in layer
                 else summed[l][name] for name in layer} for l, layer in enumerate(params)]
    _assert_trees_close(manual_mlp.coursework_gradients(mean, 7), expected, atol=1e-10)


def test_coursework_optimizer_steps_each_group_at_its_rate_with_l2_on_kernels():
    params = _random_params((1,))
    grads = jax.tree.map(jnp.ones_like, params)
    optimizer = manual_mlp.coursework_optimizer(params, learning_rate=1e-3, power_rate=5e-4,
                                                l2=0.01)
    updates, _ = optimizer.update(grads, optimizer.init(params), params)
    for layer, update in zip(params, updates):
        rate = 5e-4 if "exponent" in layer else 1e-3
        np.testing.assert_allclose(update["kernel"], -rate * (1 + 0.01 * layer["kernel"]))
        np.testing.assert_allclose(update["bias"], -rate * np.ones_like(layer["bias"]))
        if "exponent" in layer:
            np.testing.assert_allclose(update["exponent"], -1e-3)


def test_fit_in_order_takes_the_same_unshuffled_batches_every_epoch_and_the_last_partial_one():
    x, labels = _data(count=21)  # batches of 8, 8 and 5 rows
    params = manual_mlp.coursework_init(jax.random.key(0), SIZES, power_layers=(2,),
                                        dtype=jnp.float64)
    optimizer = manual_mlp.coursework_optimizer(params)

    def gradient_fn(p, bx, by):
        return manual_mlp.coursework_gradients(manual_mlp.gradients(p, bx, by), bx.shape[0])

    trained, losses = manual_mlp.fit_in_order(params, optimizer, (x, labels), batch_size=8,
                                              epochs=2, gradient_fn=gradient_fn)
    expected, state, epoch_losses = params, optimizer.init(params), []
    for _ in range(2):
        batch_losses = []
        for start in (0, 8, 16):
            bx, by = x[start : start + 8], labels[start : start + 8]
            batch_losses.append(manual_mlp.loss(expected, bx, by))
            grads = manual_mlp.coursework_gradients(_per_row_sum(expected, bx, by), 1)
            grads = [{n: g / len(by) if n == "bias" and "exponent" not in layer else g
                      for n, g in layer.items()} for layer in grads]
            updates, state = optimizer.update(grads, state, expected)
            expected = optax.apply_updates(expected, updates)
        epoch_losses.append(np.mean(batch_losses))
    _assert_trees_close(trained, expected, atol=1e-10)
    np.testing.assert_allclose(losses, epoch_losses, rtol=1e-10)


def test_coursework_init_draws_from_the_coursework_ranges():
    params = manual_mlp.coursework_init(jax.random.key(3), (11, 16, 12, 8, 2), power_layers=(2,))
    for index, layer in enumerate(params):
        low, high = (0.0, 1.0) if index == 2 else (-0.5, 0.5)
        for name in ("kernel", "bias"):
            assert low <= float(layer[name].min()) and float(layer[name].max()) <= high
        kernel = np.asarray(layer["kernel"])
        assert kernel.min() < low + 0.1 and kernel.max() > high - 0.1
    assert 1.4 <= float(params[2]["exponent"]) <= 2.0 and "exponent" not in params[1]


def test_accuracy_of_stacked_runs_is_each_runs_accuracy():
    x, labels = _data(count=30)
    runs = [_random_params((2,), seed=seed) for seed in range(3)]
    per_run = manual_mlp.accuracy(jax.tree.map(lambda *leaves: jnp.stack(leaves), *runs),
                                  x, labels)
    assert per_run.shape == (3,)
    for run, share in zip(runs, per_run):
        assert share == pytest.approx(manual_mlp.accuracy(run, x, labels))
