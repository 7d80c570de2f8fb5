"""Run a study function over many seeds as one compiled program, and time it honestly.

``run_seeds(fn, batch)`` maps ``fn`` over the leading (seed) axis of every leaf of
``batch`` with ``jax.vmap`` inside one ``jax.jit`` (or, with ``runs_per_vmap=k``, ``k``
seeds vmapped at a time and the groups in a loop inside the program: :func:`over_runs`).
When several devices are visible the
seed axis is sharded over them (``jax.sharding``); a seed count that does not divide
evenly is padded with copies of the last seed, which are dropped from the output. A
seed's run is the same computation on any number of devices, up to rounding: XLA may
order a batched reduction (a dot product, say) differently for another number of seeds
per device, and runs that amplify rounding (L-BFGS on a quadratic of condition 1e6)
can then take other iteration counts. The same seeds per device give the same bits.

Across processes (JAX's multi-controller runtime, after ``jax.distributed.initialize``),
``jax.devices()`` lists the devices of every process: each process builds the same batch,
places the slices its own devices hold, runs the same program on them, and
:func:`gather` brings the outputs back whole to every process.

With several devices the program is a ``jax.shard_map`` (:func:`per_device`): each device
runs ``jax.vmap`` over its own seeds with no communication, so a device's loops stop when
its own seeds are done. (Left to the SPMD partitioner, a vmapped ``while_loop`` would
agree on every iteration's condition across all devices.)

One exception, on the CPU: jaxlib from 0.10.0 splits a batched LAPACK call (``eigh``,
``cholesky``, ``solve``, ...) into tasks on XLA's intra-op thread pool and blocks until
they are done, so when several CPU devices of one process make such calls at once, every
thread of the pool can block and the program hangs (jax compiled that path out of its
open-source builds later: jax-ml/jax#36927). jaxlib splits only a batch of more than one
matrix whose flop estimate reaches its minimum work per task, so an unbatched call (a
seed's own, with ``runs_per_vmap=1``) or a batch of small matrices is safe. Where a
program has a call that might be split and a process holds several CPU devices,
:func:`run_seeds` and :func:`run_settings` use one device per process and warn; the
results are the same.

Timing separates what a user waits for once from what they wait for per call: the
compile time (``lower().compile()``), then a warm-up call, then the median of
``repeats`` calls, each ended by ``jax.block_until_ready``.
"""

from __future__ import annotations

import collections
import re
import statistics
import time
import warnings
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
    return place(batch, NamedSharding(seeds_mesh(devices), SEEDS)), padding


SEEDS = PartitionSpec("seeds")  # split along the seed axis
WHOLE = PartitionSpec()  # the same on every device


def seeds_mesh(devices: Sequence[jax.Device]) -> Mesh:
    """The one-axis mesh (``"seeds"``) that :func:`shard_seeds` splits batches over."""
    return Mesh(np.array(list(devices)), ("seeds",))


def per_device(fn: Callable, mesh: Mesh, in_specs, out_specs) -> Callable:
    """``fn`` run by every device of ``mesh`` on its own share, with no communication
    (``jax.shard_map``): ``in_specs`` and ``out_specs`` say which arguments and outputs
    are split along the seed axis (:data:`SEEDS`) and which are whole (:data:`WHOLE`)."""
    # check_vma=False: every output is split over the devices, never claimed to be
    # replicated, so the check could only reject the constants that start loops' sums.
    return jax.shard_map(fn, mesh=mesh, in_specs=in_specs, out_specs=out_specs, check_vma=False)


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


# The jaxlib releases whose batched LAPACK kernels wait on the pool that runs them (above).
_POOLED_LAPACK = ((0, 10, 0), (0, 11, 2))
# Their rule: a batch is split when its flop estimate reaches _POOL_MIN_WORK; a matrix's
# estimate is at most 10 D^3 for its largest dimension D (an SVD's 10 m n min(m, n)),
# three times that for complex values.
_POOL_MIN_WORK = 200_000
_LAPACK_CALL = re.compile(r"custom_call @(lapack_\w+)\(.*:\s*\(([^()]*)\)\s*->")
_TENSOR = re.compile(r"tensor<((?:\d+x)+)(\w+)>")


def _jaxlib_version() -> tuple[int, ...]:
    import jaxlib.version

    return tuple(map(int, re.match(r"(\d+)\.(\d+)\.(\d+)", jaxlib.version.__version__).groups()))


def _without_pool_deadlock(devices: list[jax.Device], program: Callable, *args) -> list[jax.Device]:
    """``devices``, or the first of every process's where the program's batched LAPACK
    calls could hang several CPU devices of one process (see the module docstring)."""
    per_process = collections.Counter(device.process_index for device in devices)
    first, last = _POOLED_LAPACK
    if (max(per_process.values()) == 1 or any(d.platform != "cpu" for d in devices)
            or not first <= _jaxlib_version() < last):
        return devices
    calls = _splittable_lapack_calls(jax.jit(program).lower(*args).as_text())
    if not calls:
        return devices
    firsts = {}
    for device in devices:
        firsts.setdefault(device.process_index, device)
    firsts = list(firsts.values())
    warnings.warn(
        f"jaxlib {'.'.join(map(str, _jaxlib_version()))}'s batched LAPACK kernels "
        f"({', '.join(calls)}) can hang when several CPU devices of one process run them at "
        f"once; running on {len(firsts)} device(s), one per process, instead (the results "
        "are the same)", RuntimeWarning, stacklevel=3)
    return firsts


def _splittable_lapack_calls(text: str) -> list[str]:
    """The LAPACK calls of a lowered program (StableHLO ``text``) that jaxlib's pooled
    kernels might split into tasks: a batch of more than one matrix costing at least
    ``_POOL_MIN_WORK`` flops by a bound on jaxlib's estimate. A call whose types cannot be
    read counts as splittable."""
    calls = set()
    for line in text.splitlines():
        if "custom_call @lapack_" not in line:
            continue
        match = _LAPACK_CALL.search(line)
        operands = [] if match is None else [
            (tuple(int(d) for d in dims.rstrip("x").split("x")), element)
            for dims, element in _TENSOR.findall(match[2])]
        matrices = [shape for shape, _ in operands if len(shape) >= 2]
        if not matrices:
            calls.add(match[1] if match else re.search(r"@(lapack_\w+)", line)[1])
            continue
        batch = int(np.prod(matrices[0][:-2]))
        largest = max(max(shape[-2:]) for shape in matrices)
        cost = 10 * largest**3 * (3 if operands[0][1].startswith("complex") else 1)
        if batch > 1 and batch * cost >= _POOL_MIN_WORK:
            calls.add(match[1])
    return sorted(calls)


def over_runs(fn: Callable, runs_per_vmap: int | None = None) -> Callable:
    """``fn`` mapped over the leading axis of every leaf of its arguments, in one program.

    ``runs_per_vmap=None`` is ``jax.vmap(fn)``; ``k`` vmaps ``k`` runs at a time and loops
    over the groups inside the program (``jax.lax.map`` with ``batch_size=k``; 1: one run
    after another, not vmapped at all). Which is faster depends on the method and the
    machine: a vmapped ``while_loop`` takes as many iterations as its slowest member, and
    each of its operations then works on the whole batch, which on a GPU runs at once but
    on a CPU costs about as much as the members one by one, or more (a batched sort or
    gather). On the CPU, a solver of many small operations in nested loops runs faster in
    sequence: BENCHMARKS.md measures L-BFGS-B both ways.
    """
    if runs_per_vmap is None:
        return jax.vmap(fn)
    if not isinstance(runs_per_vmap, int) or isinstance(runs_per_vmap, bool) or runs_per_vmap < 1:
        raise ValueError(f"runs_per_vmap must be None or a positive int, got {runs_per_vmap!r}")

    def in_groups(*args):
        # One at a time, the body is not vmapped at all: a vmap over one member would
        # still batch its operations (an in-place row update becomes a scatter, say).
        return jax.lax.map(lambda member: fn(*member), args,
                           batch_size=None if runs_per_vmap == 1 else runs_per_vmap)

    return in_groups


def run_seeds(
    fn: Callable[..., PyTree],
    batch: PyTree,
    *shared: Any,
    repeats: int = 3,
    devices: Sequence[jax.Device] | None = None,
    runs_per_vmap: int | None = None,
) -> tuple[PyTree, Timing]:
    """``fn(member, *shared)`` for every seed's slice of ``batch``, as one compiled
    program (``jax.vmap`` by default), sharded over devices, timed.

    Args:
      fn: the study for one seed, a function of the seed's slice of ``batch`` and of the
        ``shared`` arguments.
      batch: pytree whose leaves all have the seed axis first.
      shared: arguments every seed takes whole (data, say), passed as arguments so that
        the program holds no large constants; copied to every device.
      repeats: timed calls after the warm-up (their median is ``Timing.run_seconds``).
      devices: the devices to shard over (default: all visible ones).
      runs_per_vmap: ``None`` vmaps a device's seeds all at once; ``k`` vmaps ``k`` at a
        time, the groups in a loop inside the program (:func:`over_runs`).

    Returns:
      The outputs, leaves with the seed axis first, and the :class:`Timing` of the
      whole batch.
    """
    devices = list(jax.devices() if devices is None else devices)
    seeds = seed_count(batch)
    over_runs(fn, runs_per_vmap)  # a bad runs_per_vmap fails here, before any tracing

    def program(batch, *shared):
        return over_runs(lambda member: fn(member, *shared), runs_per_vmap)(batch)

    devices = _without_pool_deadlock(devices, program, batch, *shared)
    placed, padding = shard_seeds(batch, devices)
    if len(devices) > 1:
        mesh = seeds_mesh(devices)
        shared = place(shared, NamedSharding(mesh, WHOLE))
        program = per_device(program, mesh, (SEEDS,) + (WHOLE,) * len(shared), SEEDS)
    output, timing = time_compiled(program, placed, *shared, repeats=repeats)
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
    devices = list(jax.devices() if devices is None else devices)
    seeds = seed_count(batch)

    def program(settings, batch, *shared):
        def every_setting(member):
            return jax.vmap(lambda setting: fn(setting, member, *shared))(settings)

        return jax.tree.map(lambda leaf: jnp.swapaxes(leaf, 0, 1), jax.vmap(every_setting)(batch))

    devices = _without_pool_deadlock(devices, program, settings, batch, *shared)
    placed, padding = shard_seeds(batch, devices)
    if len(devices) > 1:
        mesh = seeds_mesh(devices)
        whole = NamedSharding(mesh, WHOLE)
        settings, shared = place(settings, whole), place(shared, whole)
        program = per_device(program, mesh, (WHOLE, SEEDS) + (WHOLE,) * len(shared),
                             PartitionSpec(None, "seeds"))
    output, timing = time_compiled(program, settings, placed, *shared, repeats=repeats)
    output = gather(output)
    if padding:
        output = jax.tree.map(lambda leaf: leaf[:, :seeds], output)
    return output, timing
