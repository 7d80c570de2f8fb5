"""optlab.models.convolution equals flax's Conv / ConvTranspose, values and gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from optlab import models
from optlab.models.convolution import strided_conv, transposed_conv

LAYERS = [(nnx.Conv, strided_conv), (nnx.ConvTranspose, transposed_conv)]


def _layer(cls, in_features, out_features, kernel, strides, padding, seed=0):
    layer = cls(in_features, out_features, kernel, strides, padding=padding, rngs=nnx.Rngs(seed))
    # Non-zero biases, so that a misplaced bias shows.
    layer.bias[...] = jax.random.normal(jax.random.key(seed + 1), (out_features,))
    return layer


@pytest.mark.parametrize("cls, function", LAYERS)
@pytest.mark.parametrize("padding", ["SAME", "VALID"])
@pytest.mark.parametrize("length, kernel, stride", [
    (288, 7, 2), (72, 7, 2), (10, 3, 3), (9, 4, 2), (11, 2, 3), (8, 7, 1),
])
def test_1d_equals_flax_layer(cls, function, padding, length, kernel, stride):
    layer = _layer(cls, 3, 5, (kernel,), (stride,), padding)
    x = jax.random.normal(jax.random.key(2), (2, length, 3))
    expected = layer(x)
    actual = function(layer, x)
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("cls, function", LAYERS)
def test_2d_equals_flax_layer(cls, function):
    layer = _layer(cls, 3, 4, (3, 5), (2, 3), "SAME")
    x = jax.random.normal(jax.random.key(3), (2, 12, 13, 3))
    np.testing.assert_allclose(function(layer, x), layer(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("cls, function", LAYERS)
def test_gradients_equal_those_of_the_flax_layer(cls, function):
    layer = _layer(cls, 2, 3, (5,), (2,), "SAME")
    graph, params = nnx.split(layer)
    x = jax.random.normal(jax.random.key(4), (4, 16, 2))
    cotangent = jax.random.normal(jax.random.key(5), layer(x).shape)

    def loss(params, x, apply):
        return jnp.sum(apply(nnx.merge(graph, params), x) * cotangent)

    expected = jax.grad(loss, argnums=(0, 1))(params, x, lambda m, x: m(x))
    actual = jax.grad(loss, argnums=(0, 1))(params, x, function)
    for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected)):
        np.testing.assert_allclose(a, e, atol=1e-4, rtol=1e-4)


def test_the_1d_autoencoder_computes_what_its_flax_layers_compute():
    model = models.ConvAutoencoder1D(dropout=0.0, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(6), (3, 288, 1))
    (first, second), (third, fourth) = model.encoder, model.decoder
    h = jax.nn.relu(second(jax.nn.relu(first(x))))
    expected = model.output_conv(jax.nn.relu(fourth(jax.nn.relu(third(h)))))
    np.testing.assert_allclose(model(x), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("function, cls, options, match", [
    (strided_conv, nnx.Conv, dict(padding="CIRCULAR"), "padding"),
    (strided_conv, nnx.Conv, dict(kernel_dilation=2), "kernel_dilation"),
    (strided_conv, nnx.Conv, dict(input_dilation=2), "input_dilation"),
    (strided_conv, nnx.Conv, dict(feature_group_count=2), "feature group"),
    (transposed_conv, nnx.ConvTranspose, dict(transpose_kernel=True), "transpose_kernel"),
    (transposed_conv, nnx.ConvTranspose, dict(padding=((1, 1),)), "padding"),
])
def test_unsupported_layers_are_rejected(function, cls, options, match):
    layer = cls(2, 4, (3,), rngs=nnx.Rngs(0), **options)
    with pytest.raises(ValueError, match=match):
        function(layer, jnp.zeros((1, 8, 2)))


def test_inputs_of_the_wrong_rank_are_rejected():
    layer = nnx.Conv(2, 4, (3,), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="spatial"):
        strided_conv(layer, jnp.zeros((8, 2)))
