"""Run a study function over many seeds as one compiled program, and time it honestly.

``run_seeds(fn, batch)`` maps ``fn`` over the leading (seed) axis of every leaf of
``batch`` with ``jax.vmap`` inside one ``jax.jit``. When several devices are visible the
seed axis is sharded over them (``jax.sharding``); a seed count that does not divide
evenly is padded with copies of the last seed, which are dropped from the output, so
results never depend on the number of devices.

Across processes (JAX's multi-controller runtime, after ``jax.distributed.initialize``),
``jax.devices()`` lists the devices of every process: each process builds the same batch,
places the slices its own devices hold, runs the same program on them, and
:func:`gather` brings the outputs back whole to every process.

Timing separates what a user waits for once from what they wait for per call: the
compile time (``lower().compile()``), then a warm-up call, then the median of
``repeats`` calls, each ended by ``jax.block_until_ready``.
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from optlab import report

PyTree = Any


class Timing(NamedTuple):
    compile_seconds: float  # tracing, lowering and compiling
    run_seconds: float  # median wall time of one call of the compiled program
    repeats: tuple[float, ...]  # every timed call, in order

    def __str__(self) -> str:
        """E.g. ``"3.21 ms (compiled in 412 ms)"``: a call's median time, then the compile's."""
        run, compile_ = map(report.format_seconds, (self.run_seconds, self.compile_seconds))
        return f"{run} (compiled in {compile_})"


def time_compiled(fn: Callable, *args, repeats: int = 5) -> tuple[Any, Timing]:
    """Compiles ``jax.jit(fn)`` for ``args``, then times calls apart from the compile.

    Returns the output of the last call and the :class:`Timing`.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    start = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    compile_seconds = time.perf_counter() - start
    output = jax.block_until_ready(compiled(*args))  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        output = jax.block_until_ready(compiled(*args))
        times.append(time.perf_counter() - start)
    return output, Timing(compile_seconds, statistics.median(times), tuple(times))


def timed(fn: Callable[[], Any], repeats: int) -> tuple[Any, float]:
    """``fn()``'s last value and the median wall time of ``repeats`` calls, each waited
    for (``jax.block_until_ready``): set-ups, products and solves of either library, or
    calls of a program compiled apart."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        value = jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return value, statistics.median(times)


def seed_count(batch: PyTree) -> int:
    """The common leading dimension of every leaf of ``batch``."""
    sizes = {np.shape(leaf)[0] if np.ndim(leaf) else None for leaf in jax.tree.leaves(batch)}
    if len(sizes) != 1 or None in sizes:
        raise ValueError(f"every leaf of the batch needs the same leading (seed) axis, got {sizes}")
    return sizes.pop()


def shard_seeds(batch: PyTree, devices: Sequence[jax.Device] | None = None) -> tuple[PyTree, int]:
    """Places ``batch`` with its seed axis split over ``devices``; returns it and the padding.

    With one device the batch is returned as it is (padding 0).
    """
    devices = list(jax.devices() if devices is None else devices)
    seeds = seed_count(batch)
    if len(devices) == 1:
        return batch, 0
    padding = -seeds % len(devices)
    if padding:
        batch = jax.tree.map(
            lambda x: jnp.concatenate([x, jnp.repeat(x[-1:], padding, axis=0)]), batch
        )
    sharding = NamedSharding(Mesh(np.array(devices), ("seeds",)), PartitionSpec("seeds"))
    return place(batch, sharding), padding


def place(tree: PyTree, sharding: jax.sharding.Sharding) -> PyTree:
    """``jax.device_put(tree, sharding)``; where the sharding spans other processes'
    devices, every process (holding the same ``tree``) fills the slices of its own."""
    if sharding.is_fully_addressable:
        return jax.device_put(tree, sharding)

    def global_array(leaf):
        if jax.dtypes.issubdtype(jnp.result_type(leaf), jax.dtypes.prng_key):  # typed keys
            return jax.random.wrap_key_data(global_array(jax.random.key_data(leaf)),
                                            impl=jax.random.key_impl(leaf))
        host = np.asarray(leaf)
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    return jax.tree.map(global_array, tree)


def gather(tree: PyTree) -> PyTree:
    """Every leaf readable whole by this process: leaves spread over other processes'
    devices are gathered (``multihost_utils.process_allgather``, a collective that every
    process calls) into NumPy arrays; the others are returned as they are."""
    from jax.experimental import multihost_utils

    def whole(leaf):
        if not isinstance(leaf, jax.Array) or leaf.is_fully_addressable:
            return leaf
        if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):  # typed keys
            return jax.random.wrap_key_data(whole(jax.random.key_data(leaf)),
                                            impl=jax.random.key_impl(leaf))
        return multihost_utils.process_allgather(leaf, tiled=True)

    return jax.tree.map(whole, tree)


def run_seeds(
    fn: Callable[[PyTree], PyTree],
    batch: PyTree,
    *,
    repeats: int = 3,
    devices: Sequence[jax.Device] | None = None,
) -> tuple[PyTree, Timing]:
    """``jax.vmap(fn)(batch)`` as one compiled program, sharded over devices, timed.

    Args:
      fn: the study for one seed, a function of one pytree (the seed's slice of ``batch``).
      batch: pytree whose leaves all have the seed axis first.
      repeats: timed calls after the warm-up (their median is ``Timing.run_seconds``).
      devices: the devices to shard over (default: all visible ones).

    Returns:
      The outputs, leaves with the seed axis first, and the :class:`Timing` of the
      whole batch.
    """
    seeds = seed_count(batch)
    placed, padding = shard_seeds(batch, devices)
    output, timing = time_compiled(jax.vmap(fn), placed, repeats=repeats)
    output = gather(output)
    if padding:
        output = jax.tree.map(lambda x: x[:seeds], output)
    return output, timing


def run_settings(
    fn: Callable[..., PyTree],
    settings: PyTree,
    batch: PyTree,
    *shared: Any,
    repeats: int = 3,
    devices: Sequence[jax.Device] | None = None,
) -> tuple[PyTree, Timing]:
    """``fn(setting, member, *shared)`` for every setting and every seed, one program.

    Args:
      fn: one run, of one setting (e.g. a dict of hyperparameters, traced) and one seed's
        slice of ``batch``; ``shared`` are arguments every run takes whole (data, say),
        passed as arguments so that the program holds no large constants.
      settings: pytree whose leaves have the settings axis first.
      batch: pytree whose leaves have the seed axis first; sharded over ``devices`` as
        :func:`run_seeds` does.
      repeats: timed calls after the warm-up.

    Returns:
      The outputs, leaves with the axes ``(settings, seeds, ...)``, and the
      :class:`Timing` of the whole program. Seeds are vmapped outside and settings inside,
      so the settings of a seed share its inputs (its minibatches, its noise).
    """
    seeds = seed_count(batch)
    placed, padding = shard_seeds(batch, devices)

    def program(settings, batch, *shared):
        def every_setting(member):
            return jax.vmap(lambda setting: fn(setting, member, *shared))(settings)

        return jax.tree.map(lambda leaf: jnp.swapaxes(leaf, 0, 1), jax.vmap(every_setting)(batch))

    output, timing = time_compiled(program, settings, placed, *shared, repeats=repeats)
    output = gather(output)
    if padding:
        output = jax.tree.map(lambda leaf: leaf[:, :seeds], output)
    return output, timing
