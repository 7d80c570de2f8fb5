"""Per-sample losses, kernel penalties, and the :class:`Task` that pairs a loss with metrics.

Contract: every loss and metric here maps a batch of model outputs and targets to one
value *per sample*, shape ``(batch,)``; the training engine averages them. Per-sample
values let the engine weigh a padded last validation batch exactly and let callers
reduce as they like (mean, median, per class).

Penalties follow Keras's ``kernel_regularizer``: they apply to the weight matrices and
convolution kernels only, never to biases or normalisation scales. A *kernel* is an
``nnx.Param`` whose attribute name is ``kernel`` (the name ``nnx.Linear``, ``nnx.Conv``
and ``nnx.LinearGeneral`` use). For strengths ``a1`` and ``a2``

    penalty(W) = a1 * sum_k sum_ij |W_k,ij|  +  a2 * sum_k sum_ij W_k,ij^2,

with no factor 1/2 on the squared term (as Keras ``l2``; optax's ``add_decayed_weights``
adds ``a2 * W`` to the gradient, i.e. the gradient of ``a2/2 * sum W^2``).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

PyTree = Any
PerSample = Callable[[jax.Array, jax.Array], jax.Array]

KERNEL_NAME = "kernel"


def softmax_cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """``-log softmax(logits)[label]`` per sample.

    ``logits`` ``(batch, classes)``, ``labels`` ``(batch,)`` integers.
    """
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels)


def _per_sample_mean(values: jax.Array) -> jax.Array:
    """Mean over every axis but the first (a sample's features, pixels, channels)."""
    return jnp.mean(values.reshape(values.shape[0], -1), axis=1)


def squared_error(predictions: jax.Array, targets: jax.Array) -> jax.Array:
    """Mean squared error of each sample over its features: ``mean_j (p_ij - t_ij)^2``."""
    return _per_sample_mean(optax.squared_error(predictions, targets))


def absolute_error(predictions: jax.Array, targets: jax.Array) -> jax.Array:
    """Mean absolute error of each sample over its features: ``mean_j |p_ij - t_ij|``."""
    return _per_sample_mean(jnp.abs(predictions - targets))


def correct(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """1.0 where ``argmax(logits)`` equals the label, else 0.0 (its mean is the accuracy)."""
    return (jnp.argmax(logits, axis=-1) == labels).astype(logits.dtype)


def is_kernel(path: tuple) -> bool:
    """Whether a pytree path (from ``jax.tree_util.tree_flatten_with_path``) names a kernel."""
    return any(getattr(entry, "key", getattr(entry, "name", None)) == KERNEL_NAME for entry in path)


def kernels(params: PyTree) -> list[jax.Array]:
    """The kernel arrays of ``params`` (see the module docstring), in tree order."""
    return [leaf for path, leaf in jax.tree_util.tree_leaves_with_path(params) if is_kernel(path)]


def l1_penalty(params: PyTree, strength) -> jax.Array:
    """``strength * sum |W|`` over every kernel ``W`` of ``params``."""
    return strength * sum(jnp.sum(jnp.abs(kernel)) for kernel in kernels(params))


def l2_penalty(params: PyTree, strength) -> jax.Array:
    """``strength * sum W^2`` over every kernel ``W`` of ``params`` (no factor 1/2, as Keras)."""
    return strength * sum(jnp.sum(jnp.square(kernel)) for kernel in kernels(params))


class Task(NamedTuple):
    """What a model is trained to do: its loss, its metrics, and where its targets come from.

    ``loss`` and every entry of ``metrics`` map ``(outputs, targets)`` to per-sample values
    ``(batch,)``; history reports their means. With ``targets_are_inputs`` (autoencoders)
    the data is ``(x,)`` and the targets are the inputs themselves; otherwise ``(x, y)``.
    """

    name: str  # identifies the task in checkpoint fingerprints
    loss: PerSample
    metrics: dict[str, PerSample]
    targets_are_inputs: bool


def classification() -> Task:
    """Softmax cross-entropy on integer labels; metric ``accuracy``."""
    return Task("classification", softmax_cross_entropy, {"accuracy": correct}, False)


_ERRORS = {"mse": squared_error, "mae": absolute_error}


def _check_error(loss: str) -> None:
    if loss not in _ERRORS:
        raise ValueError(f"loss must be one of {sorted(_ERRORS)}, got {loss!r}")


def regression(loss: str = "mse") -> Task:
    """Targets ``y`` of the outputs' shape; loss ``"mse"`` or ``"mae"``; metrics both."""
    _check_error(loss)
    return Task(f"regression-{loss}", _ERRORS[loss], dict(_ERRORS), False)


def reconstruction(loss: str = "mse") -> Task:
    """Autoencoders: the inputs are the targets; loss ``"mse"`` or ``"mae"``; metrics both."""
    _check_error(loss)
    return Task(f"reconstruction-{loss}", _ERRORS[loss], dict(_ERRORS), True)
