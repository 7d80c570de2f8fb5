"""Synthetic linear least squares: the data, its loss, and the best loss any method can reach.

Recipe of :func:`make_regression` (the classic first-order exercise, with its scaling):

* features ``X ~ U(-5, 5)^(n x d)``, then column ``j = 0, ..., d-1`` multiplied by ``2j + 1``,
  so the columns have scales 1, 3, 5, ... and the loss is ill-conditioned
  (Hessian eigenvalues about ``2 (25/3) (2j + 1)^2``: 17 to 2800 at ``d = 7``);
* true weights ``w ~ N(0, I_d)``;
* targets ``y = X w + e`` with noise ``e ~ N(0, I_n)``.

The loss is the plain mean squared error ``L(w) = mean((X w - y)^2)``, *without* a factor
1/2, so its gradient is ``(2/n) X^T (X w - y)`` and the best achievable loss (that of the
least-squares solution ``w*``) is about the noise variance, 1. Targets such as
"1.1 times the least-squares loss" refer to this ``L``.

Because ``L`` is quadratic and ``X^T (X w* - y) = 0`` at the least-squares solution,
``L(w) = L(w*) + (w - w*)^T G (w - w*)`` exactly, with ``G = X^T X / n``
(:class:`LeastSquares`). That evaluates the full-data loss in ``O(d^2)`` instead of
``O(n d)``, which lets a study record it at every step on 150 000 rows.

Everything here is JAX and jit-friendly; sizes are static Python ints.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

FEATURE_RANGE = 5.0  # features are drawn from U(-5, 5) before the column scaling


class Regression(NamedTuple):
    """One synthetic data set; a pytree."""

    features: jax.Array  # (n, d) X, column j scaled by 2j + 1
    targets: jax.Array  # (n,) y = X w + N(0, 1) noise
    true_weights: jax.Array  # (d,) w ~ N(0, I), the weights the targets were made with


class LeastSquares(NamedTuple):
    """The least-squares solution of one data set and the loss around it; a pytree."""

    weights: jax.Array  # (d,) w*, from jnp.linalg.lstsq
    loss: jax.Array  # () L(w*), the smallest mean squared error (about the noise variance)
    gram: jax.Array  # (d, d) G = X^T X / n, half the Hessian of the loss

    def mse(self, weights: jax.Array) -> jax.Array:
        """The full-data ``mse_loss(weights, X, y)``, as ``L(w*) + (w - w*)^T G (w - w*)``.

        Exact up to rounding (see the module docstring), in ``O(d^2)``, and never below
        ``L(w*)``, so it does not suffer the cancellation of ``mean((Xw - y)^2)`` near the
        minimum either.
        """
        error = weights - self.weights
        return self.loss + error @ (self.gram @ error)


def column_scales(d: int, dtype=jnp.float32) -> jax.Array:
    """``(1, 3, 5, ..., 2d - 1)``: the factor of each feature column."""
    return (2 * jnp.arange(d) + 1).astype(dtype)


def make_regression(
    key_or_seed: int | jax.Array, n: int, d: int, *, dtype=jnp.float32
) -> Regression:
    """Draws ``n`` samples of a ``d``-dimensional linear model (recipe in the module docstring).

    Args:
      key_or_seed: a PRNG key, or an int seed for ``jax.random.key``.
      n: number of samples (rows), at least 1.
      d: number of features (columns), at least 1.
      dtype: floating dtype of every array; float32 by default, as for training, so the
        data of a seed does not depend on ``jax_enable_x64``.

    Raises:
      ValueError: ``n`` or ``d`` not a positive integer.

    >>> data = make_regression(0, n=100, d=3)
    >>> data.features.shape, data.targets.shape, data.true_weights.shape
    ((100, 3), (100,), (3,))
    """
    for name, size in (("n", n), ("d", d)):
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"{name} must be a positive integer, got {size!r}")
    key = key_or_seed if isinstance(key_or_seed, jax.Array) else jax.random.key(key_or_seed)
    feature_key, weight_key, noise_key = jax.random.split(key, 3)
    uniform = jax.random.uniform(
        feature_key, (n, d), dtype, minval=-FEATURE_RANGE, maxval=FEATURE_RANGE
    )
    features = uniform * column_scales(d, dtype)[None, :]
    true_weights = jax.random.normal(weight_key, (d,), dtype)
    targets = features @ true_weights + jax.random.normal(noise_key, (n,), dtype)
    return Regression(features, targets, true_weights)


def mse_loss(weights: jax.Array, features: jax.Array, targets: jax.Array) -> jax.Array:
    """Mean squared error ``mean((X w - y)^2)`` over the rows given (no factor 1/2).

    Called on a minibatch it is the minibatch *mean*, so its gradient
    ``(2/B) X_B^T (X_B w - y_B)`` does not grow with the batch size ``B``.
    """
    residuals = features @ weights - targets
    return jnp.mean(residuals**2)


def least_squares(features: jax.Array, targets: jax.Array) -> LeastSquares:
    """The least-squares solution (``jnp.linalg.lstsq``), its loss and the Gram matrix."""
    weights, *_ = jnp.linalg.lstsq(features, targets)
    gram = features.T @ features / features.shape[0]
    return LeastSquares(weights, mse_loss(weights, features, targets), gram)
