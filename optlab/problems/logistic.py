"""Sparse L2-regularized logistic regression: synthetic data and its loss, at any size.

:func:`sparse_logistic_data` draws ``n`` samples of ``n`` features with ``per_row``
nonzeros each (normal values in uniformly drawn columns) and labels in {-1, 1} from a
random ground truth, a tenth of them flipped. :func:`sparse_logistic_loss` is

    f(w) = mean(log(1 + exp(-y X w))) + 1e-3 ||w||^2 / 2,

with ``X w`` a gather and a sorted segment sum, which JAX differentiates in both modes.
The data is a tuple ``(rows, columns, values, labels)`` of arrays: pass it to a compiled
program as an argument rather than closing over it, so that the program holds no large
constants. With box bounds on ``w`` it is the large bound-constrained test problem of
``experiments.large_scale``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

REGULARIZATION = 1e-3  # the weight of ||w||^2 / 2
FLIPPED = 0.1  # the share of labels flipped


def sparse_logistic_data(n: int, seed: int = 0, *, per_row: int = 10,
                         pattern_seed: int | None = None) -> tuple[jax.Array, ...]:
    """``(rows, columns, values, labels)``: ``X`` as ``n * per_row`` entries by sorted
    rows, and the labels. ``pattern_seed`` takes the columns from that seed instead (the
    values and labels stay ``seed``'s), so that several data sets share one sparsity
    pattern: a vmap over them then gathers and scatters with shared indices."""
    if n < 1 or per_row < 1:
        raise ValueError(f"need n >= 1 and per_row >= 1, got n={n}, per_row={per_row}")
    rng = np.random.default_rng(seed)
    rows = jnp.asarray(np.repeat(np.arange(n), per_row))
    columns = rng.integers(0, n, n * per_row)  # drawn either way: the seed's stream goes on
    if pattern_seed is not None:
        columns = np.random.default_rng(pattern_seed).integers(0, n, n * per_row)
    columns = jnp.asarray(columns)
    values = jnp.asarray(rng.standard_normal(n * per_row))
    truth = jnp.asarray(rng.standard_normal(n))
    margins = jax.ops.segment_sum(values * truth[columns], rows, n)
    flips = jnp.asarray(np.where(rng.random(n) < FLIPPED, -1.0, 1.0))
    return rows, columns, values, jnp.where(margins > 0, 1.0, -1.0) * flips


def sparse_logistic_loss(w: jax.Array, data: tuple[jax.Array, ...]) -> jax.Array:
    """The regularized mean logistic loss of the weights ``w`` on ``data``."""
    rows, columns, values, labels = data
    z = labels * jax.ops.segment_sum(values * w[columns], rows, labels.shape[0])
    return jnp.mean(jnp.logaddexp(0.0, -z)) + 0.5 * REGULARIZATION * jnp.vdot(w, w)
