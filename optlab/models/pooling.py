"""Non-overlapping max-pooling written as a reshape and a max, for fast gradients.

``max_pool(x, (2, 2))`` equals ``nnx.max_pool(x, (2, 2), strides=(2, 2))`` with 'VALID'
padding (Keras's default ``MaxPooling2D``: a trailing odd row or column is dropped), on
channels-last inputs ``(N, *spatial, C)``. The difference is the gradient: XLA lowers
``reduce_window``'s gradient to ``select_and_scatter``, which on the CPU is several times
slower than the gradient of this reshape-and-max, and it dominated the training step of
the convolutional models. Where a window holds several equal maxima the gradient is shared among them
(``jnp.max``'s rule) instead of going to the first; after a ReLU such ties are zeros,
whose gradient the ReLU discards anyway.
"""

from __future__ import annotations

from typing import Sequence

import jax


def max_pool(x: jax.Array, window: Sequence[int]) -> jax.Array:
    """Max over non-overlapping windows of the spatial axes of ``x`` (``(N, *spatial, C)``).

    Each spatial size is floored to a multiple of its window first (VALID pooling).
    """
    window = tuple(int(w) for w in window)
    spatial = x.shape[1:-1]
    if len(window) != len(spatial) or min(window) < 1:
        raise ValueError(f"window {window} does not fit the spatial shape {spatial}")
    kept = tuple(size - size % w for size, w in zip(spatial, window))
    x = x[(slice(None), *(slice(0, k) for k in kept), slice(None))]
    shape = [x.shape[0]]
    for size, w in zip(kept, window):
        shape += [size // w, w]
    x = x.reshape(*shape, x.shape[-1])
    return x.max(axis=tuple(range(2, 2 * len(window) + 1, 2)))
