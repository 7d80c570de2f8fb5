"""Minibatch training as one pure function: an optax rule over shuffled minibatches.

Contract: :func:`run_minibatch` takes a loss, an optax ``GradientTransformation``, initial
parameters (any pytree) and the minibatches of every step, arrays of shape
``(steps, batch_size, ...)``; it returns a :class:`MinibatchRun`. It is one ``lax.scan``
over the steps (two nested scans when recording every ``k`` steps), with no Python loop
over steps and no host round-trip, so it runs under ``jax.jit`` and ``jax.vmap`` (over
hyperparameters passed through ``optax.inject_hyperparams``, over seeds, or both).

* The gradient is that of ``loss_fn(params, *batch)``, which must be the *mean* loss over
  the rows it is given, so a step's gradient is the minibatch mean.
* :func:`shuffled_batches` draws the row indices: every epoch a fresh pseudo-random
  permutation of the ``n`` rows, from its own key (``fold_in(key, epoch)``). When
  ``batch_size`` does not divide ``n``, the last ``n mod batch_size`` rows of each
  epoch's permutation are dropped (a different set each epoch), so every minibatch has
  exactly ``batch_size`` rows and each row appears at most once per epoch.
  :func:`take_batches` gathers them.
* The minibatches are gathered before the loop, not inside it: runs that share a seed
  (a sweep over hyperparameters) then share one shuffle and one gather, and the loop
  reads contiguous memory. (On the CPU a gather inside the loop from a large array made
  each step two to three times slower: XLA splits even a 32-row gather over threads when
  the array it reads is large.) The price is memory: ``steps * batch_size`` rows per seed.
* ``MinibatchRun.losses`` holds ``evaluate(params)`` before the first step and after
  every ``record_every`` steps. A full-data loss costs ``O(n)`` per record: either record
  sparsely or pass an exact cheaper form (for least squares,
  ``optlab.problems.regression.LeastSquares.mse``, ``O(d^2)``).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax import lax

PyTree = Any


class MinibatchRun(NamedTuple):
    """The outcome of one run; under ``jax.vmap`` every leaf gains the batch axis first."""

    params: PyTree  # the parameters after the last step
    losses: jax.Array  # (steps // record_every + 1,) evaluate(params) at steps 0, k, 2k, ...
    trajectory: PyTree | None  # params at the same steps, leaves (records + 1, ...), if kept


def batches_per_epoch(n: int, batch_size: int) -> int:
    """Full minibatches in one pass over ``n`` rows (the partial last one is dropped)."""
    return n // batch_size


def shuffled_batches(key: jax.Array, n: int, batch_size: int, steps: int) -> jax.Array:
    """Row indices of each step's minibatch, shape ``(steps, batch_size)``, int32.

    Epoch ``e`` reads the rows in the order of a fresh random permutation of
    ``range(n)`` keyed by ``fold_in(key, e)``, cut into ``n // batch_size`` minibatches;
    the remaining ``n mod batch_size`` positions of that permutation are dropped.

    The permutation is a keyed bijection evaluated only at the positions the steps use
    (:func:`random_permutation_at`), so the cost is ``O(steps * batch_size)`` whatever
    ``n``. ``jax.random.permutation`` sorts all ``n`` rows every epoch, which at ``n = 150
    000`` costs several times what the steps of a whole sweep cost. The bijection is pseudo-random (a keyed Feistel network), not a uniform
    draw from all ``n!`` orders: ample for shuffling data, not meant for cryptography.

    Raises:
      ValueError: ``batch_size`` not in ``[1, n]``, ``steps < 1`` or ``n >= 2**31``.
    """
    if not 1 <= batch_size <= n:
        raise ValueError(f"batch_size must be between 1 and n = {n}, got {batch_size}")
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    per_epoch = batches_per_epoch(n, batch_size)
    epochs = -(-steps // per_epoch)
    # Positions within an epoch that the steps reach: all of an epoch's minibatches, or
    # only the first `steps` when the run ends within its first epoch.
    used = min(per_epoch, steps)
    positions = jnp.arange(used * batch_size).reshape(used, batch_size)
    rows = jax.vmap(
        lambda epoch: random_permutation_at(jax.random.fold_in(key, epoch), n, positions)
    )(jnp.arange(epochs))
    return rows.reshape(epochs * used, batch_size)[:steps]


# Luby and Rackoff: 4 rounds of random functions already give a random-looking permutation.
_FEISTEL_ROUNDS = 6


def _mix32(x: jax.Array) -> jax.Array:
    """A 32-bit integer hash with good avalanche (Wellons's "lowbias32")."""
    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x7FEB352D)
    x = x ^ (x >> 15)
    x = x * jnp.uint32(0x846CA68B)
    return x ^ (x >> 16)


def random_permutation_at(key: jax.Array, n: int, positions: jax.Array) -> jax.Array:
    """``perm[positions]`` for a pseudo-random permutation ``perm`` of ``range(n)``, keyed.

    ``perm`` is a balanced Feistel network with random round keys on the smallest even
    number of bits that holds ``n - 1``, restricted to ``range(n)`` by cycle walking
    (applied again while the image is ``>= n``; the image stays a bijection of
    ``range(n)``). Each position costs a few integer operations, so a few minibatches of
    a huge ``n`` cost no more than those of a small one. ``positions`` must lie in
    ``range(n)``; the result is int32 of the same shape.
    """
    if not 1 <= n < 2**31:
        raise ValueError(f"n must be between 1 and 2**31 - 1, got {n}")
    bits = max(2, (n - 1).bit_length())
    half = (bits + 1) // 2
    mask = jnp.uint32((1 << half) - 1)
    round_keys = jax.random.bits(key, (_FEISTEL_ROUNDS,), jnp.uint32)

    def permute(x):
        left, right = x >> half, x & mask
        for r in range(_FEISTEL_ROUNDS):
            left, right = right, left ^ (_mix32(right ^ round_keys[r]) & mask)
        return (left << half) | right

    image = permute(positions.astype(jnp.uint32))
    image = lax.while_loop(
        lambda y: jnp.any(y >= n), lambda y: jnp.where(y >= n, permute(y), y), image
    )
    return image.astype(jnp.int32)


def take_batches(data: tuple[jax.Array, ...], batch_indices: jax.Array) -> tuple[jax.Array, ...]:
    """The minibatches themselves: each array of ``data`` indexed by ``batch_indices``.

    Returns arrays of shape ``(steps, batch_size, ...)``, the input of :func:`run_minibatch`.
    """
    return tuple(jnp.take(array, batch_indices, axis=0) for array in data)


def run_minibatch(
    loss_fn: Callable[..., jax.Array],
    optimizer: optax.GradientTransformation,
    params: PyTree,
    batches: tuple[jax.Array, ...],
    *,
    evaluate: Callable[[PyTree], jax.Array],
    record_every: int = 1,
    keep_trajectory: bool = False,
) -> MinibatchRun:
    """Runs ``optimizer`` for one step per minibatch in ``batches``.

    Step ``t`` applies ``optimizer`` to ``grad(loss_fn)(params, *(b[t] for b in batches))``.

    Args:
      loss_fn: ``loss_fn(params, *arrays) -> scalar``, the mean loss over the given rows.
      optimizer: any optax transformation (the state is initialised here).
      params: initial parameters, any pytree.
      batches: arrays of shape ``(steps, batch_size, ...)``, e.g. ``take_batches(data,
        shuffled_batches(key, n, batch_size, steps))``.
      evaluate: ``params -> scalar`` recorded in ``losses``, e.g. the full-data loss.
      record_every: record after every this many steps; must divide the number of steps.
      keep_trajectory: also return the parameters at every recorded step.

    Raises:
      ValueError: arrays in ``batches`` without common ``(steps, batch_size)`` leading axes,
        or ``record_every`` not dividing the steps.

    >>> import jax, jax.numpy as jnp, optlab
    >>> from optlab.problems import regression
    >>> data = regression.make_regression(0, n=64, d=2)
    >>> full = lambda w: regression.mse_loss(w, data.features, data.targets)
    >>> order = shuffled_batches(jax.random.key(1), 64, batch_size=8, steps=40)
    >>> batches = take_batches((data.features, data.targets), order)
    >>> run = run_minibatch(regression.mse_loss, optlab.sgd(1e-2), jnp.zeros(2), batches,
    ...                     evaluate=full, record_every=10)
    >>> run.losses.shape
    (5,)
    """
    leading = {tuple(array.shape[:2]) for array in batches}
    if len(leading) != 1 or len(next(iter(leading))) != 2:
        raise ValueError(
            f"every array in batches needs the leading axes (steps, batch_size), got {leading}"
        )
    steps = next(iter(leading))[0]
    if record_every < 1 or steps % record_every:
        raise ValueError(f"record_every must divide the {steps} steps, got {record_every}")

    def record(p):
        return jnp.asarray(evaluate(p)), (p if keep_trajectory else None)

    def step(carry, batch):
        p, opt_state = carry
        grads = jax.grad(loss_fn)(p, *batch)
        updates, opt_state = optimizer.update(grads, opt_state, p)
        return (optax.apply_updates(p, updates), opt_state), None

    def steps_then_record(carry, block):
        # The inner scan keeps the recording out of the steps in between, so a costly
        # evaluate is paid once per record, not once per step.
        carry, _ = lax.scan(step, carry, block)
        return carry, record(carry[0])

    blocks = tuple(
        array.reshape(steps // record_every, record_every, *array.shape[1:]) for array in batches
    )
    (final, _), (losses, trajectory) = lax.scan(
        steps_then_record, (params, optimizer.init(params)), blocks
    )
    first_loss, first_params = record(params)
    losses = jnp.concatenate([first_loss[None], losses])
    if keep_trajectory:
        trajectory = jax.tree.map(
            lambda first, rest: jnp.concatenate([first[None], rest]), first_params, trajectory
        )
    return MinibatchRun(final, losses, trajectory)
