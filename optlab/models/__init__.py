"""Flax NNX models of the coursework, with the parameter counts of its Keras models.

Contract shared by every model:

* It is an ``nnx.Module`` built as ``Model(..., rngs=nnx.Rngs(params=..., dropout=...))``
  (a plain ``nnx.Rngs(seed)`` works too); its parameters are float32 whatever
  ``jax_enable_x64``; kernels are Glorot-uniform and biases zeros unless stated.
* Dropout is ``nnx.Dropout``, so its key is part of the model state (``nnx.split``
  carries it, and vmapping the construction over keys gives one stream per member);
  ``model.train()`` / ``model.eval()`` switch it on and off. Models without dropout need
  no ``dropout`` stream.
* ``model(x)`` returns logits (classifiers, no softmax) or reconstructions
  (autoencoders, which also have ``encode`` and ``decode``).

:mod:`optlab.models.manual_mlp` is the same MLP with a hand-written backward pass, a
teaching reference checked against ``jax.grad``.
"""

import jax
from flax import nnx

from optlab.models import activations, convolution, manual_mlp
from optlab.models.activations import (
    PowerActivation,
    leaky_relu,
    power_activation,
    project_exponents,
)
from optlab.models.autoencoders import (
    ConvAutoencoder1D,
    ConvAutoencoder2D,
    DenseAutoencoder,
    SpectrogramAutoencoder,
)
from optlab.models.cnn import CNN
from optlab.models.mlp import MLP, kernel_initializer


def count_params(model: nnx.Module) -> int:
    """The number of scalars in the ``nnx.Param`` leaves of ``model`` (trainable
    parameters, as Keras's ``count_params``). For a model built under ``vmap`` it counts
    every member."""
    return sum(leaf.size for leaf in jax.tree.leaves(nnx.state(model, nnx.Param)))


__all__ = [
    "CNN",
    "ConvAutoencoder1D",
    "ConvAutoencoder2D",
    "DenseAutoencoder",
    "MLP",
    "PowerActivation",
    "SpectrogramAutoencoder",
    "activations",
    "convolution",
    "count_params",
    "kernel_initializer",
    "leaky_relu",
    "manual_mlp",
    "power_activation",
    "project_exponents",
]
