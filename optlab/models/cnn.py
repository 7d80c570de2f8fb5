"""The coursework's convolutional classifier (Flax NNX), as its Keras model.

Contract: ``CNN()`` maps images ``(N, 28, 28, 1)`` (channels last) to logits ``(N, 10)``:

    Conv 256 3x3 -> max-pool 2 -> Conv 128 3x3 -> max-pool 2 -> flatten
    -> Dense 100 -> Dense 100 -> Dense 10

with ReLU after every convolution and hidden dense layer, 'valid' convolutions and
pooling that drops a trailing odd row or column, as Keras's defaults
(28 -> 26 -> 13 -> 11 -> 5, flattened to 5 * 5 * 128 = 3200): 628,810 parameters.
Kernels are Glorot-uniform and biases zeros (the Keras defaults); parameters are float32.

Dropout placements: ``input_dropout`` on the input image, ``conv_dropout`` after each
pooling, ``dense_dropout`` after each hidden dense layer (0 means no dropout layer
there). Dropout layers draw from the ``dropout`` stream: given separate ``params`` and
``dropout`` streams (as :func:`optlab.train.init_runs` gives), the initial weights do not
depend on the placements.

The convolutions are ``nnx.Conv`` layers applied through
:func:`optlab.models.convolution.apply` (matrix products, the same values), which
train many times faster on a CPU inside ``optlab.train.fit``'s loops.
"""

from __future__ import annotations

from typing import Callable, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from optlab.models import convolution
from optlab.models.activations import activation_function
from optlab.models.mlp import apply_optional, dropout_or_none
from optlab.models.pooling import max_pool

_POOL = (2, 2)


def _valid_conv_then_pool(size: int, kernel_size: int) -> int:
    """Spatial size after a 'valid' convolution and a 2x2 max-pool that floors."""
    return (size - kernel_size + 1) // 2


class CNN(nnx.Module):
    """Convolution blocks (conv 'valid' -> activation -> max-pool 2 -> dropout), then dense
    layers, returning logits.

    Args:
      input_shape: ``(height, width, channels)`` of one image.
      conv_features: output channels of each convolution block.
      dense_features: widths of the hidden dense layers.
      num_classes: number of logits.
      kernel_size: side of the square convolution kernels.
      activation: after convolutions and hidden dense layers (a name or a function).
      input_dropout: rate on the input image; 0 for none.
      conv_dropout: rate after each pooling; 0 for none.
      dense_dropout: rate after each hidden dense layer; 0 for none.
      rngs: ``params`` (or default) and ``dropout`` (or default) streams.

    Raises:
      ValueError: an image too small for the blocks, or a rate outside ``[0, 1)``.
    """

    def __init__(
        self,
        *,
        input_shape: Sequence[int] = (28, 28, 1),
        conv_features: Sequence[int] = (256, 128),
        dense_features: Sequence[int] = (100, 100),
        num_classes: int = 10,
        kernel_size: int = 3,
        activation: str | Callable = "relu",
        input_dropout: float = 0.0,
        conv_dropout: float = 0.0,
        dense_dropout: float = 0.0,
        rngs: nnx.Rngs,
    ):
        height, width, channels = input_shape
        self.input_shape = (height, width, channels)
        self.activation = activation_function(activation)
        glorot = nnx.initializers.glorot_uniform()
        layer_options = dict(kernel_init=glorot, dtype=jnp.float32, param_dtype=jnp.float32)

        self.input_dropout = dropout_or_none("input_dropout", input_dropout, rngs)
        convs, in_channels = [], channels
        for features in conv_features:
            convs.append(
                nnx.Conv(
                    in_channels, features, (kernel_size, kernel_size), padding="VALID",
                    rngs=rngs, **layer_options,
                )
            )
            in_channels = features
            height = _valid_conv_then_pool(height, kernel_size)
            width = _valid_conv_then_pool(width, kernel_size)
            if min(height, width) < 1:
                raise ValueError(f"input_shape {tuple(input_shape)} is too small for the blocks")
        self.convs = nnx.List(convs)
        self.conv_dropouts = nnx.List(
            dropout_or_none("conv_dropout", conv_dropout, rngs) for _ in conv_features
        )

        widths = (height * width * in_channels, *dense_features, num_classes)
        self.dense = nnx.List(
            nnx.Linear(fan_in, fan_out, rngs=rngs, **layer_options)
            for fan_in, fan_out in zip(widths[:-1], widths[1:])
        )
        self.dense_dropouts = nnx.List(
            dropout_or_none("dense_dropout", dense_dropout, rngs) for _ in dense_features
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        """Logits ``(N, num_classes)`` of images ``(N, *input_shape)``; raises ValueError
        on another shape."""
        if jnp.ndim(x) != 4 or tuple(jnp.shape(x)[1:]) != self.input_shape:
            raise ValueError(f"CNN expects images (N, {self.input_shape}), got {jnp.shape(x)}")
        x = apply_optional(self.input_dropout, x)
        for conv, dropout in zip(self.convs, self.conv_dropouts):
            x = max_pool(self.activation(convolution.apply(conv, x)), _POOL)
            x = apply_optional(dropout, x)
        x = x.reshape(x.shape[0], -1)
        for dense, dropout in zip(self.dense, self.dense_dropouts):
            x = apply_optional(dropout, self.activation(dense(x)))
        return self.dense[-1](x)
