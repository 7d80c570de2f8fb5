"""The coursework's autoencoders (Flax NNX), as its Keras models.

Contract: every autoencoder is an ``nnx.Module`` whose ``__call__(x)`` returns the
reconstruction ``decode(encode(x))``, of the shape of ``x``; ``encode`` and ``decode`` can
be used apart after training (for codes, anomaly scores, generation). Kernels are
Glorot-uniform, biases zeros (the Keras defaults), parameters float32; hidden layers use
ReLU. Inputs are channels last.

The two image models take ``output_bias``, the initial bias of their output layer (0 by
default, as Keras). With a sigmoid output, ``logit(mean pixel)`` (``scipy.special.logit``)
makes the first reconstructions the mean intensity instead of 0.5 everywhere. On MNIST
(mean pixel 0.13) under MSE and Adam at 1e-3, the zero start drives ``ConvAutoencoder2D``'s
output into saturation within about 60 steps, where the sigmoid's gradient vanishes and
the model never recovers; from the mean it trains (see ``experiments.mnist_autoencoders``).

* :class:`DenseAutoencoder`: input ``(N, 784)``, code ``(N, 100)``, 829,284 parameters;
* :class:`ConvAutoencoder2D`: ``(N, 28, 28, 1)``, code ``(N, 7, 7, 8)``, 3,217;
* :class:`ConvAutoencoder1D`: ``(N, 288, 1)``, code ``(N, 72, 16)``, 9,505;
* :class:`SpectrogramAutoencoder`: ``(N, 64, 312, 1)``, code ``(N, 8, 39, 4)``, 11,193.

Padding is 'same' throughout, pooling is 2x2 max-pooling and upsampling repeats each
pixel (Keras ``UpSampling2D``, nearest neighbour), so sizes halve and double exactly; the
inputs' sides must be divisible accordingly.

The layers are ``nnx.Conv`` / ``nnx.ConvTranspose`` (their parameters and checkpoints are
flax's), applied through :func:`optlab.models.convolution.apply`: the same values by
matrix products, which train many times faster on a CPU inside ``optlab.train.fit``'s
loops.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from optlab.models import convolution
from optlab.models.activations import activation_function
from optlab.models.mlp import apply_optional, dropout_or_none
from optlab.models.pooling import max_pool

_LAYER_OPTIONS = dict(
    kernel_init=nnx.initializers.glorot_uniform(), dtype=jnp.float32, param_dtype=jnp.float32
)
_POOL = (2, 2)


def _bias_options(bias: float) -> dict:
    """The layer options that start a bias at the finite number ``bias``."""
    bias = float(bias)
    if not math.isfinite(bias):
        raise ValueError(f"output_bias must be finite, got {bias}")
    return dict(bias_init=nnx.initializers.constant(bias))


def _check_shape(model: str, x: jax.Array, expected: tuple[int, ...]) -> None:
    """Raises ValueError unless ``x`` is ``(N, *expected)``."""
    if tuple(jnp.shape(x)[1:]) != expected or jnp.ndim(x) != len(expected) + 1:
        raise ValueError(f"{model} expects inputs (N, {expected}), got {jnp.shape(x)}")


def upsample(x: jax.Array, factor: int = 2) -> jax.Array:
    """Repeats every pixel of images ``(N, H, W, C)`` ``factor`` times along H and W
    (Keras ``UpSampling2D(factor)``, nearest neighbour)."""
    return jnp.repeat(jnp.repeat(x, factor, axis=1), factor, axis=2)


class DenseAutoencoder(nnx.Module):
    """Dense ``784-400-200-100`` encoder and mirrored ``100-200-400-784`` decoder.

    Every layer but the last uses ``activation`` (the code too); the last uses
    ``output_activation``, a sigmoid by default, for inputs scaled to ``[0, 1]``, and
    starts with the bias ``output_bias`` (see the module's docstring).
    Expects ``(N, sizes[0])``; the code is ``(N, sizes[-1])``.
    """

    def __init__(
        self,
        sizes: Sequence[int] = (784, 400, 200, 100),
        *,
        activation: str | Callable = "relu",
        output_activation: str | Callable = "sigmoid",
        output_bias: float = 0.0,
        rngs: nnx.Rngs,
    ):
        sizes = tuple(int(size) for size in sizes)
        if len(sizes) < 2 or min(sizes) < 1:
            raise ValueError(f"sizes must be at least two positive widths, got {sizes}")
        self.sizes = sizes
        self.activation = activation_function(activation)
        self.output_activation = activation_function(output_activation)
        mirrored = sizes[::-1]
        self.encoder = nnx.List(
            nnx.Linear(a, b, rngs=rngs, **_LAYER_OPTIONS) for a, b in zip(sizes[:-1], sizes[1:])
        )
        output_layer = len(mirrored) - 2
        self.decoder = nnx.List(
            nnx.Linear(
                a, b, rngs=rngs, **_LAYER_OPTIONS,
                **(_bias_options(output_bias) if layer == output_layer else {}),
            )
            for layer, (a, b) in enumerate(zip(mirrored[:-1], mirrored[1:]))
        )

    def encode(self, x: jax.Array) -> jax.Array:
        _check_shape("DenseAutoencoder", x, self.sizes[:1])
        for dense in self.encoder:
            x = self.activation(dense(x))
        return x

    def decode(self, code: jax.Array) -> jax.Array:
        for dense in self.decoder[:-1]:
            code = self.activation(dense(code))
        return self.output_activation(self.decoder[-1](code))

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.decode(self.encode(x))


class ConvAutoencoder2D(nnx.Module):
    """For MNIST images ``(N, 28, 28, 1)``; code ``(N, 7, 7, 8)``.

    Encoder: conv 16 3x3 -> pool 2 -> conv 8 3x3 -> pool 2 (28 -> 14 -> 7).
    Decoder: conv 8 3x3 -> upsample 2 -> conv 16 3x3 -> upsample 2 -> conv 1 3x3 with
    ``output_activation`` (sigmoid by default) and initial bias ``output_bias`` (see the
    module's docstring). ReLU elsewhere.
    """

    input_shape = (28, 28, 1)

    def __init__(
        self,
        *,
        output_activation: str | Callable = "sigmoid",
        output_bias: float = 0.0,
        rngs: nnx.Rngs,
    ):
        self.output_activation = activation_function(output_activation)
        kernel = (3, 3)
        self.encoder = nnx.List([
            nnx.Conv(1, 16, kernel, rngs=rngs, **_LAYER_OPTIONS),
            nnx.Conv(16, 8, kernel, rngs=rngs, **_LAYER_OPTIONS),
        ])
        self.decoder = nnx.List([
            nnx.Conv(8, 8, kernel, rngs=rngs, **_LAYER_OPTIONS),
            nnx.Conv(8, 16, kernel, rngs=rngs, **_LAYER_OPTIONS),
        ])
        self.output_conv = nnx.Conv(
            16, 1, kernel, rngs=rngs, **_LAYER_OPTIONS, **_bias_options(output_bias)
        )

    def encode(self, x: jax.Array) -> jax.Array:
        _check_shape("ConvAutoencoder2D", x, self.input_shape)
        for conv in self.encoder:
            x = max_pool(jax.nn.relu(convolution.apply(conv, x)), _POOL)
        return x

    def decode(self, code: jax.Array) -> jax.Array:
        for conv in self.decoder:
            code = upsample(jax.nn.relu(convolution.apply(conv, code)))
        return self.output_activation(convolution.apply(self.output_conv, code))

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.decode(self.encode(x))


class ConvAutoencoder1D(nnx.Module):
    """For series ``(N, 288, 1)`` (one day of 5-minute steps); code ``(N, 72, 16)``.

    Encoder: Conv1D 32 k7 stride 2 -> dropout -> Conv1D 16 k7 stride 2 (288 -> 144 -> 72).
    Decoder: Conv1DTranspose 16 k7 stride 2 -> dropout -> Conv1DTranspose 32 k7 stride 2
    -> Conv1DTranspose 1 k7 stride 1, linear (72 -> 144 -> 288). ReLU elsewhere; this is
    the Keras time-series anomaly-detection model. ``length`` must be divisible by 4.
    """

    def __init__(self, *, length: int = 288, dropout: float = 0.2, rngs: nnx.Rngs):
        if length < 4 or length % 4:
            raise ValueError(f"length must be a positive multiple of 4, got {length}")
        self.input_shape = (length, 1)
        kernel, stride = (7,), (2,)
        self.encoder = nnx.List([
            nnx.Conv(1, 32, kernel, stride, rngs=rngs, **_LAYER_OPTIONS),
            nnx.Conv(32, 16, kernel, stride, rngs=rngs, **_LAYER_OPTIONS),
        ])
        self.encoder_dropout = dropout_or_none("dropout", dropout, rngs)
        self.decoder = nnx.List([
            nnx.ConvTranspose(16, 16, kernel, stride, rngs=rngs, **_LAYER_OPTIONS),
            nnx.ConvTranspose(16, 32, kernel, stride, rngs=rngs, **_LAYER_OPTIONS),
        ])
        self.decoder_dropout = dropout_or_none("dropout", dropout, rngs)
        self.output_conv = nnx.ConvTranspose(32, 1, kernel, (1,), rngs=rngs, **_LAYER_OPTIONS)

    def encode(self, x: jax.Array) -> jax.Array:
        _check_shape("ConvAutoencoder1D", x, self.input_shape)
        first, second = self.encoder
        x = apply_optional(self.encoder_dropout, jax.nn.relu(convolution.apply(first, x)))
        return jax.nn.relu(convolution.apply(second, x))

    def decode(self, code: jax.Array) -> jax.Array:
        first, second = self.decoder
        code = apply_optional(self.decoder_dropout, jax.nn.relu(convolution.apply(first, code)))
        return convolution.apply(self.output_conv, jax.nn.relu(convolution.apply(second, code)))

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.decode(self.encode(x))


class SpectrogramAutoencoder(nnx.Module):
    """For spectrograms ``(N, 64, 312, 1)``; code ``(N, 8, 39, 4)``.

    Encoder: conv 32, 16, 4 (3x3), each followed by ReLU and 2x2 pooling
    (64x312 -> 32x156 -> 16x78 -> 8x39). Decoder: conv 4, 16, 32 (3x3), each followed by
    ReLU and 2x upsampling, then conv 1 (3x3) with ``output_activation`` (linear by
    default: spectrogram values are not confined to ``[0, 1]``). ``input_shape`` is
    ``(height, width, 1)`` with both sides divisible by 8.
    """

    def __init__(
        self,
        *,
        input_shape: Sequence[int] = (64, 312, 1),
        output_activation: str | Callable = "linear",
        rngs: nnx.Rngs,
    ):
        height, width, channels = input_shape
        if channels != 1 or height % 8 or width % 8 or min(height, width) < 8:
            raise ValueError(
                f"input_shape must be (H, W, 1) with H and W multiples of 8, got {input_shape}"
            )
        self.input_shape = (height, width, channels)
        self.output_activation = activation_function(output_activation)
        kernel = (3, 3)
        encoder_channels = (1, 32, 16, 4)
        decoder_channels = (4, 4, 16, 32)
        self.encoder = nnx.List(
            nnx.Conv(a, b, kernel, rngs=rngs, **_LAYER_OPTIONS)
            for a, b in zip(encoder_channels[:-1], encoder_channels[1:])
        )
        self.decoder = nnx.List(
            nnx.Conv(a, b, kernel, rngs=rngs, **_LAYER_OPTIONS)
            for a, b in zip(decoder_channels[:-1], decoder_channels[1:])
        )
        self.output_conv = nnx.Conv(32, 1, kernel, rngs=rngs, **_LAYER_OPTIONS)

    def encode(self, x: jax.Array) -> jax.Array:
        _check_shape("SpectrogramAutoencoder", x, self.input_shape)
        for conv in self.encoder:
            x = max_pool(jax.nn.relu(convolution.apply(conv, x)), _POOL)
        return x

    def decode(self, code: jax.Array) -> jax.Array:
        for conv in self.decoder:
            code = upsample(jax.nn.relu(convolution.apply(conv, code)))
        return self.output_activation(convolution.apply(self.output_conv, code))

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.decode(self.encode(x))
