"""optlab.models.convolution equals flax's Conv / ConvTranspose, values and gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax import lax

from optlab import models
from optlab.models import convolution

LAYERS = [nnx.Conv, nnx.ConvTranspose]


def _layer(cls, in_features, out_features, kernel, strides, padding, seed=0):
    layer = cls(in_features, out_features, kernel, strides, padding=padding, rngs=nnx.Rngs(seed))
    # Non-zero biases, so that a misplaced bias shows.
    layer.bias[...] = jax.random.normal(jax.random.key(seed + 1), (out_features,), jnp.float32)
    return layer


@pytest.mark.parametrize("cls", LAYERS)
@pytest.mark.parametrize("padding", ["SAME", "VALID", [(1, 2)]])
@pytest.mark.parametrize("length, kernel, stride", [
    (288, 7, 2), (9, 4, 2), (11, 2, 3), (8, 7, 1),
])
def test_1d_equals_the_flax_layer(cls, padding, length, kernel, stride):
    layer = _layer(cls, 3, 5, (kernel,), (stride,), padding)
    x = jax.random.normal(jax.random.key(2), (2, length, 3))
    expected = layer(x)
    actual = convolution.apply(layer, x)
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("cls", LAYERS)
@pytest.mark.parametrize("padding", ["SAME", "VALID"])
def test_2d_equals_the_flax_layer(cls, padding):
    layer = _layer(cls, 3, 4, (3, 5), (2, 3), padding)
    x = jax.random.normal(jax.random.key(3), (2, 12, 13, 3))
    np.testing.assert_allclose(convolution.apply(layer, x), layer(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("method", [*convolution.METHODS, None])
def test_conv_equals_lax_on_random_shapes(method):
    rng = np.random.default_rng(0)
    for _ in range(6):
        window = tuple(rng.integers(1, 4, size=2))
        strides = tuple(rng.integers(1, 4, size=2))
        padding = [tuple(rng.integers(0, 3, size=2)) for _ in range(2)]
        channels = rng.integers(1, 6, size=2)
        x = rng.normal(size=(2, 9, 8, channels[0])).astype(np.float32)
        kernel = rng.normal(size=(*window, *channels)).astype(np.float32)
        expected = lax.conv_general_dilated(
            x, kernel, strides, padding, dimension_numbers=("NHWC", "HWIO", "NHWC")
        )
        actual = convolution.conv(x, kernel, strides, padding, method=method)
        np.testing.assert_allclose(actual, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("method", convolution.METHODS)
def test_every_method_has_the_gradients_of_lax(method):
    x = jax.random.normal(jax.random.key(8), (2, 11, 3), jnp.float64)
    kernel = jax.random.normal(jax.random.key(9), (4, 3, 2), jnp.float64)
    pads = [(2, 1)]

    def loss(conv, x, kernel):
        return jnp.sum(jnp.sin(conv(x, kernel)))

    ours = jax.grad(loss, argnums=(1, 2))(
        lambda x, k: convolution.conv(x, k, (2,), pads, method=method), x, kernel
    )
    reference = jax.grad(loss, argnums=(1, 2))(
        lambda x, k: lax.conv_general_dilated(
            x, k, (2,), pads, dimension_numbers=("NWC", "WIO", "NWC")
        ),
        x, kernel,
    )
    for a, e in zip(ours, reference):
        np.testing.assert_allclose(a, e, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("taps, channels, ratio, method", [
    (9, (1, 256), 1.2, "patches"),    # the CNN's first layer: one input channel
    (9, (256, 128), 1.4, "taps"),     # the CNN's second layer: the products dominate
    (9, (32, 1), 1.06, "products"),   # the spectrogram autoencoder's output layer
    (9, (16, 8), 1.31, "taps"),       # the 2-D autoencoder's second layer, 14 x 14 maps
    (9, (32, 16), 1.08, "taps"),      # the spectrogram autoencoder's second layer
    (7, (32, 16), 2.0, "taps"),       # a strided layer: "products" would compute 2x too much
])
def test_the_cost_model_picks_the_method_measured_fastest(taps, channels, ratio, method):
    assert convolution._cheapest(taps, *channels, ratio) == method


@pytest.mark.parametrize("cls", LAYERS)
def test_gradients_equal_those_of_the_flax_layer(cls):
    layer = _layer(cls, 2, 3, (5,), (2,), "SAME")
    graph, params = nnx.split(layer)
    x = jax.random.normal(jax.random.key(4), (4, 16, 2))
    cotangent = jax.random.normal(jax.random.key(5), layer(x).shape)

    def loss(params, x, apply):
        return jnp.sum(apply(nnx.merge(graph, params), x) * cotangent)

    expected = jax.grad(loss, argnums=(0, 1))(params, x, lambda m, x: m(x))
    actual = jax.grad(loss, argnums=(0, 1))(params, x, convolution.apply)
    for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected)):
        np.testing.assert_allclose(a, e, atol=1e-4, rtol=1e-4)


def test_vmapped_over_kernels_equals_one_layer_at_a_time():
    layers = nnx.vmap(lambda key: _layer(nnx.Conv, 2, 3, (3,), (1,), "SAME"), in_axes=0)(
        jnp.arange(2)
    )
    graph, params = nnx.split(layers)
    x = jax.random.normal(jax.random.key(6), (4, 10, 2))
    batched = jax.vmap(lambda p: convolution.apply(nnx.merge(graph, p), x))(params)
    for run in range(2):
        one = nnx.merge(graph, jax.tree.map(lambda leaf: leaf[run], params))
        np.testing.assert_allclose(batched[run], one(x), atol=1e-5, rtol=1e-5)


def _flax_forward_1d(model, x):
    (first, second), (third, fourth) = model.encoder, model.decoder
    h = jax.nn.relu(second(jax.nn.relu(first(x))))
    return model.output_conv(jax.nn.relu(fourth(jax.nn.relu(third(h)))))


def _flax_forward_2d(model, x):
    for conv in model.encoder:
        x = models.pooling.max_pool(jax.nn.relu(conv(x)), (2, 2))
    for conv in model.decoder:
        x = models.autoencoders.upsample(jax.nn.relu(conv(x)))
    return model.output_activation(model.output_conv(x))


@pytest.mark.parametrize("build, shape, reference", [
    (lambda r: models.ConvAutoencoder1D(dropout=0.0, rngs=r), (3, 288, 1), _flax_forward_1d),
    (lambda r: models.ConvAutoencoder2D(rngs=r), (3, 28, 28, 1), _flax_forward_2d),
    (lambda r: models.SpectrogramAutoencoder(input_shape=(16, 24, 1), rngs=r), (3, 16, 24, 1),
     _flax_forward_2d),
])
def test_the_autoencoders_compute_what_their_flax_layers_compute(build, shape, reference):
    model = build(nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(7), shape)
    np.testing.assert_allclose(model(x), reference(model, x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("cls, options, match", [
    (nnx.Conv, dict(padding="CIRCULAR"), "padding"),
    (nnx.Conv, dict(kernel_dilation=2), "kernel_dilation"),
    (nnx.Conv, dict(input_dilation=2), "input_dilation"),
    (nnx.Conv, dict(feature_group_count=2), "feature group"),
    (nnx.ConvTranspose, dict(transpose_kernel=True), "transpose_kernel"),
])
def test_unsupported_layers_are_rejected(cls, options, match):
    layer = cls(2, 4, (3,), rngs=nnx.Rngs(0), **options)
    with pytest.raises(ValueError, match=match):
        convolution.apply(layer, jnp.zeros((1, 8, 2)))


def test_bad_inputs_are_rejected():
    layer = nnx.Conv(2, 4, (3,), padding="VALID", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="spatial"):
        convolution.apply(layer, jnp.zeros((8, 2)))
    with pytest.raises(ValueError, match="larger than"):
        convolution.apply(layer, jnp.zeros((1, 2, 2)))
    with pytest.raises(TypeError, match="nnx.Conv"):
        convolution.apply(nnx.Linear(2, 3, rngs=nnx.Rngs(0)), jnp.zeros((1, 2)))
    with pytest.raises(ValueError, match="do not fit"):
        convolution.conv(jnp.zeros((1, 8, 3)), jnp.zeros((3, 2, 4)), (1,), [(0, 0)])
    with pytest.raises(ValueError, match="non-negative"):
        convolution.conv(jnp.zeros((1, 8, 2)), jnp.zeros((3, 2, 4)), (1,), [(-1, 0)])
    with pytest.raises(ValueError, match="method must be one of"):
        convolution.conv(jnp.zeros((1, 8, 2)), jnp.zeros((3, 2, 4)), (1,), [(0, 0)], method="fft")
    with pytest.raises(ValueError, match="strides and padding"):
        convolution.conv(jnp.zeros((1, 8, 2)), jnp.zeros((3, 2, 4)), (1, 1), [(0, 0)])
