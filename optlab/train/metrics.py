"""Evaluation metrics as pure JAX functions (jit- and vmap-safe).

Conventions follow scikit-learn so that numbers can be compared with it:

* ``confusion_matrix[i, j]`` counts samples of true class ``i`` predicted as class ``j``.
* Precision, recall and F1 of class ``c`` are ``TP / (TP + FP)``, ``TP / (TP + FN)`` and
  ``2 P R / (P + R)``; a ratio whose denominator is zero (no sample predicted as ``c``,
  no sample of class ``c``, or ``P = R = 0``) is 0, like scikit-learn's
  ``zero_division=0``.
* Macro averages are plain means over all ``num_classes`` classes, including classes
  absent from both labels and predictions (scikit-learn with ``labels=range(num_classes)``;
  without ``labels`` it averages only over the classes it has seen). Macro F1 is the mean
  of the per-class F1 scores, not the F1 of the macro precision and recall.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from optlab.train.losses import absolute_error


def accuracy(labels: jax.Array, predictions: jax.Array) -> jax.Array:
    """Fraction of samples whose predicted class equals the label (float32)."""
    return jnp.mean((labels == predictions).astype(jnp.float32))


def confusion_matrix(labels: jax.Array, predictions: jax.Array, num_classes: int) -> jax.Array:
    """``(num_classes, num_classes)`` int32 counts; row = true class, column = predicted.

    Labels or predictions outside ``range(num_classes)`` are not counted.
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be at least 1, got {num_classes}")
    if labels.shape != predictions.shape or labels.ndim != 1:
        raise ValueError(
            f"labels and predictions must be 1-D of the same length, got {labels.shape} and "
            f"{predictions.shape}"
        )
    counts = jnp.zeros((num_classes, num_classes), jnp.int32)
    return counts.at[labels, predictions].add(1, mode="drop")


class PrecisionRecallF1(NamedTuple):
    precision: jax.Array  # () macro average, or (classes,) per class
    recall: jax.Array
    f1: jax.Array


def _ratio(numerator: jax.Array, denominator: jax.Array) -> jax.Array:
    """``numerator / denominator``, 0 where the denominator is 0."""
    safe = jnp.where(denominator > 0, denominator, 1)
    return jnp.where(denominator > 0, numerator / safe, 0.0)


def precision_recall_f1(
    confusion: jax.Array, *, average: str | None = "macro"
) -> PrecisionRecallF1:
    """Precision, recall and F1 from a confusion matrix (see the module docstring).

    Args:
      confusion: ``(classes, classes)`` counts, rows true classes, columns predictions.
      average: ``"macro"`` for the means over classes, ``None`` for per-class arrays.
    """
    if average not in ("macro", None):
        raise ValueError(f"average must be 'macro' or None, got {average!r}")
    if confusion.ndim != 2 or confusion.shape[0] != confusion.shape[1]:
        raise ValueError(f"confusion must be a square matrix, got shape {confusion.shape}")
    counts = confusion.astype(jnp.float32)
    true_positives = jnp.diagonal(counts)
    precision = _ratio(true_positives, jnp.sum(counts, axis=0))
    recall = _ratio(true_positives, jnp.sum(counts, axis=1))
    f1 = _ratio(2 * precision * recall, precision + recall)
    scores = PrecisionRecallF1(precision, recall, f1)
    if average == "macro":
        return PrecisionRecallF1(*(jnp.mean(score) for score in scores))
    return scores


def per_sample_mae(inputs: jax.Array, reconstructions: jax.Array) -> jax.Array:
    """Mean absolute error of each sample over its features, shape ``(n,)``.

    The anomaly score of an autoencoder: ``mean_j |x_ij - r_ij|`` over all axes but the first.
    """
    if inputs.shape != reconstructions.shape or inputs.ndim < 1:
        raise ValueError(
            f"inputs and reconstructions need the same shape, got {inputs.shape} and "
            f"{reconstructions.shape}"
        )
    return absolute_error(reconstructions, inputs)
