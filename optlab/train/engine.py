"""Training Flax NNX models: many runs (seeds x hyperparameters) as one compiled program.

Contract:

* :func:`init_runs` builds the state of ``R`` runs of one model: every leaf has the runs
  axis first. A run has its own initialisation, shuffling and dropout keys and its own
  optimizer hyperparameters, traced values placed in the state of an
  ``optax.inject_hyperparams`` optimizer, and its own L1 / L2 penalty strengths
  (:mod:`optlab.train.losses`), so seeds and hyperparameters are vmapped together.
* :func:`fit` trains all runs at once and returns a :class:`FitResult` whose history has
  the shape ``(runs, max_epochs)``. Run ``i`` of a batch computes what the same run alone
  computes (up to float rounding); with several devices the runs axis is sharded over
  them, and the results depend on the number of devices only through that rounding
  (see :mod:`optlab.sweep`).
* :func:`evaluate` (loss and metrics) and :func:`predict` (outputs) apply every run's
  final model, in eval mode, to other data, e.g. a test set.

Example (8 runs: 8 seeds, two learning rates)::

    runs = train.init_runs(
        functools.partial(models.MLP, [784, 128, 10], dropout=0.2),
        optax.inject_hyperparams(optax.adam)(learning_rate=1e-3),
        seeds=range(8),
        hyperparams={"learning_rate": [1e-3] * 4 + [3e-3] * 4},
    )
    result = train.fit(runs, train.classification(), (x, y), validation=(x_val, y_val),
                       batch_size=256, max_epochs=100, patience=5,
                       on_epoch=train.progress_printer(100))
    result.history["val_accuracy"].shape  # (8, 100)

The model is split into a graph and its state at the jit boundary (``nnx.split(model,
nnx.Param, ...)``): the parameters, and the rest (dropout RNG counters, batch
statistics), which the train step carries along. The train mode (dropout on) and eval
mode (dropout off) are two graphs of the same state.

One epoch of one run: the rows of the training set are reshuffled with a fresh keyed
permutation (``fold_in(shuffle_key, epoch)``,
:func:`optlab.train.minibatch.random_permutation_at`), cut into ``n // batch_size``
minibatches (the last ``n mod batch_size`` rows of each
epoch's permutation are dropped), gathered once, and one ``lax.scan`` takes a step per
minibatch; no host work happens between steps. A step minimises ``mean loss(batch) +
penalty(params)``. Then the validation set is evaluated in eval mode.

History, per run and epoch: ``train_loss`` and ``train_<metric>`` are means over the
epoch's minibatches of the values at each step (as Keras reports them: the parameters
move during the epoch); ``val_loss`` and ``val_<metric>`` are those of the parameters at
the end of the epoch, on the whole validation set; ``penalty`` is the penalty at the end
of the epoch. Losses are data losses: unlike Keras, no penalty is added to them.

Early stopping (``patience`` set) and restore-best monitor ``val_loss`` (``train_loss``
without validation data) or any history name given as ``monitor``, e.g.
``"val_accuracy"``: names ending in ``loss`` are minimised and others maximised (as
Keras's ``mode="auto"``). An epoch improves when it beats the best so far by more than
``min_delta``; a run stops after ``patience`` epochs in a row without improvement. A
stopped run is frozen (every later update is discarded with ``jnp.where``; its history is
NaN from then on) while the others go on; the loop ends when all have stopped. With
``restore_best`` the returned parameters are those of each run's best epoch (of the
initial parameters if no epoch had a finite monitored loss).

Between compiled calls, each of ``epochs_per_call`` epochs, the host calls ``on_epoch``
(progress, JSON lines, W&B), checks whether all runs have stopped, and, with a
``checkpoint_dir``, saves the whole state (:mod:`optlab.train.checkpoint`) so that an
interrupted study resumes where it stopped and ends with the same result.

Runs and devices: the runs are vmapped (or, with ``runs_per_vmap=k``, vmapped ``k`` at a
time in a loop inside the program). With several devices the program is a
``jax.shard_map`` over the runs axis: each device trains its share of the runs with no
communication; the runs axis is padded to a multiple of the device count with copies of
the last run, which are dropped from the results.

Costs: one epoch costs about what a bare ``lax.scan`` of the steps costs, and less than
a Python loop over ``nnx.jit`` steps; whether vmapping the runs or looping over them is
faster depends on the model and the machine (BENCHMARKS.md measures both). Compiling
costs seconds, mostly the threefry random-number code (dropout, shuffling), and is
reported apart in :class:`FitResult`.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import math
import time
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax import lax
from jax.sharding import NamedSharding

from optlab import sweep
from optlab.train import metrics
from optlab.train.checkpoint import Checkpointer
from optlab.train.losses import Task, kernels, l1_penalty, l2_penalty
from optlab.train.minibatch import batches_per_epoch, random_permutation_at, take_batches

PyTree = Any
EpochCallback = Callable[[int, dict[str, np.ndarray]], None]

# Keys of a run are fold_in(key(seed), stream): independent streams from one seed.
_INIT_STREAM, _DROPOUT_STREAM, _SHUFFLE_STREAM = 0, 1, 2


class RunState(NamedTuple):
    """The trainable state of every run; each leaf has the runs axis first."""

    params: nnx.State  # the nnx.Param variables
    rest: nnx.State  # every other variable: dropout RNG key and count, batch statistics
    opt_state: PyTree  # optimizer state, with the run's injected hyperparameters
    shuffle_key: jax.Array  # (runs,) typed PRNG keys of the minibatch order
    l1: jax.Array  # (runs,) float32 L1 penalty strength
    l2: jax.Array  # (runs,) float32 L2 penalty strength


class Runs(NamedTuple):
    """What :func:`fit` needs: the model graphs, the optimizer, and the runs' state."""

    train_graph: nnx.GraphDef  # the model in train mode (dropout on)
    eval_graph: nnx.GraphDef  # the model in eval mode (dropout off)
    optimizer: optax.GradientTransformation
    state: RunState
    seeds: dict[str, list[int]]  # "init", "shuffle", "dropout": one seed per run
    penalized: tuple[bool, bool]  # whether any run has a nonzero L1 / L2 strength

    @property
    def count(self) -> int:
        return len(self.seeds["init"])

    def model(self, run: int) -> nnx.Module:
        """Run ``run``'s model as initialized, in eval mode."""
        return _run_model(self.eval_graph, (self.state.params, self.state.rest), run)


def _run_model(graph: nnx.GraphDef, state: tuple, run: int) -> nnx.Module:
    """One run's model; its leaves are cut on the host (indexing each device array would
    compile a program per leaf), but for random keys, which have no host form."""

    def cut(leaf):
        if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            return leaf[run]
        return np.asarray(leaf)[run]

    return nnx.merge(graph, *jax.tree.map(cut, state))


def _seed_array(name: str, seeds, count: int | None = None) -> np.ndarray:
    array = np.asarray(seeds)
    if array.ndim != 1 or array.size == 0 or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must be a non-empty 1-D sequence of ints, got {seeds!r}")
    if count is not None and array.size != count:
        raise ValueError(f"{name} needs one seed per run ({count}), got {array.size}")
    return array


def _stream_key(seed: jax.Array, stream: int) -> jax.Array:
    return jax.random.fold_in(jax.random.key(seed), stream)


def _per_run(name: str, value, count: int) -> np.ndarray:
    """A scalar broadcast to ``(count,)``, or a ``(count,)`` array, as float32."""
    array = np.asarray(value, np.float32)
    if array.ndim == 0:
        return np.full((count,), array)
    if array.shape != (count,):
        raise ValueError(f"{name} must be a scalar or have shape ({count},), got {array.shape}")
    return array


def init_runs(
    model_fn: Callable[[nnx.Rngs], nnx.Module],
    optimizer: optax.GradientTransformation,
    seeds: Sequence[int],
    *,
    shuffle_seeds: Sequence[int] | None = None,
    dropout_seeds: Sequence[int] | None = None,
    hyperparams: dict[str, Any] | None = None,
    l1: Any = 0.0,
    l2: Any = 0.0,
) -> Runs:
    """The initial state of ``len(seeds)`` runs of the model ``model_fn`` builds.

    Run ``i`` builds ``model_fn(nnx.Rngs(params=k_init, dropout=k_dropout))`` and shuffles
    with ``k_shuffle``, where ``k_stream = fold_in(key(seed), stream)`` with the streams
    0 (init, from ``seeds[i]``), 1 (dropout, from ``dropout_seeds[i]``) and 2 (shuffle,
    from ``shuffle_seeds[i]``); the latter two default to ``seeds``, and passing them
    varies one source of randomness while the others stay fixed. The models are built by
    one vmapped, compiled function.

    Args:
      model_fn: builds the model from its ``nnx.Rngs``; parameters must be floating
        (float32 for the speeds and tolerances optlab states).
      optimizer: an optax transformation; to give runs different hyperparameters wrap the
        rule in ``optax.inject_hyperparams`` (e.g. ``optax.inject_hyperparams(optax.adam)(
        learning_rate=1e-3)``; a schedule passed there is evaluated at every step).
      seeds: one int per run.
      hyperparams: name -> a scalar or one value per run, written into the injected
        hyperparameters of the optimizer state (``optax.tree_utils.tree_set``).
      l1, l2: penalty strengths (scalars or one per run), see :mod:`optlab.train.losses`.

    Raises:
      ValueError: bad seeds, a hyperparameter the optimizer state does not hold (or holds
        more than once), values of the wrong shape, penalties on a model without kernels.
      TypeError: non-floating parameters.
    """
    seeds = _seed_array("seeds", seeds)
    count = seeds.size
    shuffle_seeds = _seed_array(
        "shuffle_seeds", seeds if shuffle_seeds is None else shuffle_seeds, count
    )
    dropout_seeds = _seed_array(
        "dropout_seeds", seeds if dropout_seeds is None else dropout_seeds, count
    )

    abstract = nnx.eval_shape(lambda: model_fn(rngs=nnx.Rngs(params=0, dropout=0)))
    abstract.train()
    train_graph, abstract_params, _ = nnx.split(abstract, nnx.Param, ...)
    abstract.eval()
    eval_graph = nnx.split(abstract, nnx.Param, ...)[0]
    for leaf in jax.tree.leaves(abstract_params):
        if not jnp.issubdtype(leaf.dtype, jnp.floating):
            raise TypeError(f"model parameters must be floating, got a {leaf.dtype} parameter")

    l1, l2 = _per_run("l1", l1, count), _per_run("l2", l2, count)
    penalized = (bool(np.any(l1 != 0)), bool(np.any(l2 != 0)))
    if any(penalized) and not kernels(abstract_params):
        raise ValueError("L1/L2 penalties apply to parameters named 'kernel'; the model has none")
    hyperparams = _per_run_hyperparams(
        jax.eval_shape(optimizer.init, abstract_params), hyperparams or {}, count
    )

    try:
        build = _run_builder(model_fn, optimizer)
    except TypeError:  # an unhashable model_fn or optimizer: a program of its own
        build = _run_builder.__wrapped__(model_fn, optimizer)
    state = build(
        seeds.astype(np.uint32), dropout_seeds.astype(np.uint32), shuffle_seeds.astype(np.uint32),
        l1, l2, hyperparams,
    )
    seed_lists = {
        "init": seeds.tolist(), "shuffle": shuffle_seeds.tolist(), "dropout": dropout_seeds.tolist()
    }
    return Runs(train_graph, eval_graph, optimizer, state, seed_lists, penalized)


@functools.lru_cache(maxsize=64)
def _run_builder(model_fn: Callable, optimizer: optax.GradientTransformation) -> Callable:
    """The compiled function that builds runs of ``model_fn`` with ``optimizer``, kept per
    pair: every eager op would compile a small program, and the grids and searches of a
    study build many runs of the same model."""

    def build(init_seed, dropout_seed, shuffle_seed, l1, l2, hyperparams):
        rngs = nnx.Rngs(
            params=_stream_key(init_seed, _INIT_STREAM),
            dropout=_stream_key(dropout_seed, _DROPOUT_STREAM),
        )
        _, params, rest = nnx.split(model_fn(rngs=rngs), nnx.Param, ...)
        opt_state = optax.tree_utils.tree_set(optimizer.init(params), **hyperparams)
        return RunState(params, rest, opt_state, _stream_key(shuffle_seed, _SHUFFLE_STREAM), l1, l2)

    return jax.jit(jax.vmap(build))


def _per_run_hyperparams(
    opt_state: PyTree, hyperparams: dict[str, Any], count: int
) -> dict[str, np.ndarray]:
    """One value per run of each hyperparameter, in the dtype ``opt_state`` holds it in."""
    values = {}
    for name, value in hyperparams.items():
        try:
            current = optax.tree_utils.tree_get(opt_state, name)
        except KeyError as error:  # the name occurs at several places of the state
            raise ValueError(f"hyperparameter {name!r} is ambiguous: {error}") from None
        if current is None:
            raise ValueError(
                f"the optimizer state has no hyperparameter {name!r}; wrap the rule in "
                "optax.inject_hyperparams to vary it per run"
            )
        values[name] = _per_run(name, value, count).astype(current.dtype)
    return values


class FitResult(NamedTuple):
    """The outcome of :func:`fit`; arrays have the runs axis first."""

    train_graph: nnx.GraphDef
    eval_graph: nnx.GraphDef
    params: nnx.State  # final parameters (each run's best epoch's, with restore_best)
    rest: nnx.State  # the matching non-parameter state
    history: dict[str, np.ndarray]  # name -> (runs, max_epochs); NaN where a run did not train
    best_epoch: np.ndarray  # (runs,) index of the best epoch in the history, -1 if none
    epochs_trained: np.ndarray  # (runs,)
    stopped_early: np.ndarray  # (runs,) bool
    # Tracing, lowering and compiling the epoch program, and the wall time of the epoch loop
    # (host work included), of this call only: NaN when it had nothing left to train.
    compile_seconds: float
    run_seconds: float
    first_epoch: int = 0  # where this call started: > 0 when it resumed from a checkpoint

    def model(self, run: int) -> nnx.Module:
        """Run ``run``'s model in eval mode, e.g. for predictions."""
        return _run_model(self.eval_graph, (self.params, self.rest), run)


class _Carry(NamedTuple):
    """Everything :func:`fit` carries from epoch to epoch, per run (and checkpoints)."""

    run: RunState
    best: tuple[nnx.State, nnx.State] | None  # params and rest of the best epoch (restore_best)
    # () float32 best monitored value (negated when maximised); +inf before a finite one
    best_loss: jax.Array
    best_epoch: jax.Array  # () int32, -1 before it
    wait: jax.Array  # () int32 epochs since the last improvement
    stopped_epoch: jax.Array  # () int32 epoch at which the run stopped, -1 while it trains
    epochs_trained: jax.Array  # () int32
    history: dict[str, jax.Array]  # name -> (max_epochs,) float32


def _as_data(task: Task, data, name: str) -> tuple[np.ndarray, ...]:
    """``(inputs, targets)`` or ``(inputs,)`` as host arrays: floats as float32, labels int32.

    Data is prepared on the host once and placed on the devices with the state.
    """
    arrays = tuple(data) if isinstance(data, (tuple, list)) else (data,)
    expected = 1 if task.targets_are_inputs else 2
    if len(arrays) != expected:
        form = "(x,)" if expected == 1 else "(x, y)"
        raise ValueError(
            f"{name} must be {form} for a {task.name} task, got {len(arrays)} arrays"
        )
    lengths = {np.shape(array)[0] for array in arrays}
    if len(lengths) != 1:
        raise ValueError(f"the arrays of {name} have different numbers of rows: {sorted(lengths)}")

    def convert(array):
        array = np.asarray(array)
        return array.astype(np.float32 if np.issubdtype(array.dtype, np.floating) else np.int32)

    return tuple(convert(array) for array in arrays)


def _split_targets(task: Task, arrays: tuple[jax.Array, ...]) -> tuple[jax.Array, jax.Array]:
    return (arrays[0], arrays[0]) if task.targets_are_inputs else (arrays[0], arrays[1])


def _padded_batches(arrays: tuple[np.ndarray, ...], batch_size: int):
    """Arrays cut into ``(batches, batch_size, ...)`` (zero-padded) and the row weights."""
    n = arrays[0].shape[0]
    count = -(-n // batch_size)
    padding = count * batch_size - n
    cut = tuple(
        np.pad(a, [(0, padding)] + [(0, 0)] * (a.ndim - 1)).reshape(count, batch_size, *a.shape[1:])
        for a in arrays
    )
    weights = (np.arange(count * batch_size) < n).reshape(count, batch_size)
    return cut, weights


def _digest(tree: PyTree) -> str:
    hasher = hashlib.sha256()
    for leaf in jax.tree.leaves(tree):
        if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            leaf = jax.random.key_data(leaf)
        leaf = np.asarray(leaf)
        hasher.update(f"{leaf.dtype}{leaf.shape}".encode())
        hasher.update(np.ascontiguousarray(leaf).tobytes())
    return hasher.hexdigest()


def fit(
    runs: Runs,
    task: Task,
    data: tuple,
    *,
    batch_size: int,
    max_epochs: int,
    validation: tuple | None = None,
    eval_batch_size: int | None = None,
    patience: int | None = None,
    min_delta: float = 0.0,
    restore_best: bool = True,
    monitor: str | None = None,
    epochs_per_call: int = 1,
    runs_per_vmap: int | None = None,
    on_epoch: EpochCallback | None = None,
    checkpoint_dir: str | None = None,
    checkpoint_every: int = 1,
    devices: Sequence[jax.Device] | None = None,
) -> FitResult:
    """Trains every run of ``runs`` for up to ``max_epochs`` epochs (module docstring).

    Args:
      runs: from :func:`init_runs`.
      task: :func:`~optlab.train.losses.classification`, ``regression`` or ``reconstruction``.
      data: the training set, ``(x, y)`` or ``(x,)`` when the inputs are the targets;
        floating arrays are cast to float32, labels to int32.
      batch_size: rows per step, in ``[1, n]``.
      max_epochs: the length of the history.
      validation: a validation set of the same form (see :func:`validation_split`).
      eval_batch_size: rows per evaluation batch (default: the whole validation set).
      patience, min_delta, restore_best: early stopping; ``patience=None`` never stops.
      monitor: the history name that early stopping and restore-best watch (default
        ``val_loss``, or ``train_loss`` without validation); minimised when it ends in
        ``loss``, maximised otherwise.
      epochs_per_call: epochs per compiled call: more saves host round-trips; callbacks,
        the all-stopped check and checkpoints happen between calls.
      runs_per_vmap: ``None`` vmaps all the runs (of a device) at once; ``k`` vmaps ``k``
        at a time and loops over the groups inside the program (``lax.map``); which is
        faster depends on the model and the machine (BENCHMARKS.md).
      on_epoch: ``on_epoch(epoch, metrics)`` after every epoch (0-based index) in which
        some run trained; ``metrics`` maps each history name to a NumPy array ``(runs,)``
        for that epoch, plus ``"stopped"`` (bool, ``(runs,)``: stopped by then).
      checkpoint_dir: save the whole state there every ``checkpoint_every`` epochs (at the
        end of a call) and at the end, and resume from the newest checkpoint there. After a
        resume the epochs since the last checkpoint are computed, and reported to
        ``on_epoch``, again; a writer of per-epoch records should key them by epoch.
        ``FitResult.first_epoch`` says where the call resumed; its timings cover only
        the epochs from there on (NaN when the checkpoint was of the finished fit).
        The configuration that must match covers the task, the seeds, the initial state
        (parameters, optimizer state with its hyperparameters, penalties), the data, the
        batch sizes, ``max_epochs`` and the early-stopping settings; it cannot see
        Python-side constants such as those of a schedule or the model's code. Across
        processes (``jax.distributed``) every process names the same directory, which
        all of them must see (a shared filesystem); orbax has one process write it.
      devices: devices to shard the runs axis over (default: all).

    Raises:
      ValueError: bad sizes or settings, data not of the task's form, or a checkpoint in
        ``checkpoint_dir`` from a different configuration.
    """
    arrays = _as_data(task, data, "data")
    n = arrays[0].shape[0]
    if not 1 <= batch_size <= n:
        raise ValueError(
            f"batch_size must be between 1 and the {n} training rows, got {batch_size}"
        )
    counts = {
        "max_epochs": max_epochs,
        "epochs_per_call": epochs_per_call,
        "checkpoint_every": checkpoint_every,
        "runs_per_vmap": 1 if runs_per_vmap is None else runs_per_vmap,
    }
    for name, value in counts.items():
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    if patience is not None and patience < 1:
        raise ValueError(f"patience must be at least 1 or None, got {patience}")
    if min_delta < 0:
        raise ValueError(f"min_delta must be >= 0, got {min_delta}")

    val_arrays = None if validation is None else _as_data(task, validation, "validation")
    if val_arrays is not None:
        val_rows = val_arrays[0].shape[0]
        eval_batch_size = val_rows if eval_batch_size is None else eval_batch_size
        if eval_batch_size < 1:
            raise ValueError(f"eval_batch_size must be at least 1, got {eval_batch_size}")
        val_batches = _padded_batches(val_arrays, min(eval_batch_size, val_rows))
    else:
        val_batches = None

    history_names = ["train_loss", *(f"train_{m}" for m in task.metrics), "penalty"]
    if val_arrays is not None:
        history_names += ["val_loss", *(f"val_{m}" for m in task.metrics)]
    if monitor is None:
        monitor = "val_loss" if val_arrays is not None else "train_loss"
    if monitor not in history_names or monitor == "penalty":
        raise ValueError(
            f"monitor must be one of {[n for n in history_names if n != 'penalty']}, got {monitor!r}"
        )

    epoch_program = _epoch_program(
        runs, task, n, batch_size, max_epochs, epochs_per_call, patience, min_delta,
        restore_best, has_validation=val_arrays is not None, runs_per_vmap=runs_per_vmap,
        monitor=monitor,
    )
    carry = _initial_carry(runs.state, history_names, max_epochs, restore_best)
    config = {
        "task": task.name,
        "seeds": runs.seeds,
        "initial_state": _digest(runs.state),
        "state_structure": str(jax.tree.structure(runs.state)),
        "data": _digest(arrays),
        "validation": None if val_arrays is None else _digest(val_arrays),
        "eval_batch_size": eval_batch_size,
        "batch_size": batch_size,
        "max_epochs": max_epochs,
        "early_stopping": [patience, min_delta, restore_best, monitor],
    }
    checkpointer = None if checkpoint_dir is None else Checkpointer(checkpoint_dir)
    try:
        return _train(
            runs, epoch_program, carry, arrays, val_batches, max_epochs=max_epochs,
            epochs_per_call=epochs_per_call, restore_best=restore_best, on_epoch=on_epoch,
            checkpointer=checkpointer, checkpoint_every=checkpoint_every, config=config,
            devices=devices,
        )
    finally:
        if checkpointer is not None:
            checkpointer.close()


def _initial_carry(state: RunState, history_names, max_epochs: int, restore_best: bool) -> _Carry:
    count = state.l1.shape[0]
    return _Carry(
        run=state,
        best=(state.params, state.rest) if restore_best else None,
        best_loss=np.full((count,), np.inf, np.float32),
        best_epoch=np.full((count,), -1, np.int32),
        wait=np.zeros((count,), np.int32),
        stopped_epoch=np.full((count,), -1, np.int32),
        epochs_trained=np.zeros((count,), np.int32),
        history={name: np.full((count, max_epochs), np.nan, np.float32) for name in history_names},
    )


def _penalty(runs: Runs, params: nnx.State, l1: jax.Array, l2: jax.Array) -> jax.Array:
    """The L1 and L2 penalties of ``params``; terms no run uses are left out of the program."""
    use_l1, use_l2 = runs.penalized
    total = jnp.zeros((), jnp.float32)
    if use_l1:
        total += l1_penalty(params, l1)
    if use_l2:
        total += l2_penalty(params, l2)
    return total


def train_step(
    runs: Runs, task: Task, run: RunState, batch: tuple[jax.Array, ...]
) -> tuple[RunState, tuple[jax.Array, dict[str, jax.Array]]]:
    """One optimizer step of one run (leaves without the runs axis): a pure function.

    Minimises ``mean(task.loss(model(x), targets)) + penalty(params)`` over the minibatch
    ``batch`` (``(x, y)``, or ``(x,)`` when the inputs are the targets) with the model in
    train mode; the dropout RNG counts (and any batch statistics) advance in ``rest``.
    Returns the new state and ``(data loss, {metric: batch mean})`` before the step. This
    is the body of :func:`fit`'s ``lax.scan``; vmap it over runs like any pure function.
    """
    inputs, targets = _split_targets(task, batch)

    def objective(params):
        # Fresh Variables (copy=True): the dropout RNG count is updated in this trace.
        model = nnx.merge(runs.train_graph, params, run.rest, copy=True)
        outputs = model(inputs)
        _, _, rest = nnx.split(model, nnx.Param, ...)
        data_loss = jnp.mean(task.loss(outputs, targets))
        metrics = {name: jnp.mean(fn(outputs, targets)) for name, fn in task.metrics.items()}
        return data_loss + _penalty(runs, params, run.l1, run.l2), (data_loss, rest, metrics)

    grads, (data_loss, rest, metrics) = jax.grad(objective, has_aux=True)(run.params)
    updates, opt_state = runs.optimizer.update(grads, run.opt_state, run.params)
    params = optax.apply_updates(run.params, updates)
    return run._replace(params=params, rest=rest, opt_state=opt_state), (data_loss, metrics)


def _epoch_program(
    runs: Runs, task: Task, n: int, batch_size: int, max_epochs: int, epochs_per_call: int,
    patience: int | None, min_delta: float, restore_best: bool, *, has_validation: bool,
    runs_per_vmap: int | None, monitor: str,
) -> Callable:
    """``program(carry, first_epoch, data, val_batches) -> carry``: ``epochs_per_call``
    epochs of every run (the runs axis of ``carry`` first), see :func:`fit`."""
    steps = batches_per_epoch(n, batch_size)

    train_step_of_run = functools.partial(train_step, runs, task)
    positions = np.arange(steps * batch_size, dtype=np.int32).reshape(steps, batch_size)

    def one_epoch(carry: _Carry, epoch, data, val_batches) -> _Carry:
        active = (carry.stopped_epoch < 0) & (epoch < max_epochs)
        rows = random_permutation_at(jax.random.fold_in(carry.run.shuffle_key, epoch), n, positions)
        run, (losses, metrics) = lax.scan(train_step_of_run, carry.run, take_batches(data, rows))
        scores = {"train_loss": jnp.mean(losses)}
        scores |= {f"train_{name}": jnp.mean(values) for name, values in metrics.items()}
        scores["penalty"] = _penalty(runs, run.params, run.l1, run.l2)
        if has_validation:
            model = nnx.merge(runs.eval_graph, run.params, run.rest)
            scores |= {f"val_{k}": v for k, v in _evaluate(model, task, val_batches).items()}
        # Minimise a loss, maximise anything else: compare sign-flipped values.
        monitored = scores[monitor] if monitor.endswith("loss") else -scores[monitor]
        improved = monitored < carry.best_loss - min_delta
        wait = jnp.where(improved, 0, carry.wait + 1)
        stops = (wait >= patience) if patience is not None else jnp.zeros((), bool)
        best = carry.best
        if restore_best:
            best = jax.tree.map(
                lambda new, old: jnp.where(improved, new, old), (run.params, run.rest), best
            )
        updated = _Carry(
            run=run,
            best=best,
            best_loss=jnp.where(improved, monitored, carry.best_loss),
            best_epoch=jnp.where(improved, epoch, carry.best_epoch),
            wait=wait,
            stopped_epoch=jnp.where(stops, epoch, carry.stopped_epoch),
            epochs_trained=carry.epochs_trained + 1,
            history={
                name: values.at[epoch].set(scores[name], mode="drop")
                for name, values in carry.history.items()
            },
        )
        # A stopped run (or an epoch past max_epochs) keeps its state: its updates are discarded.
        return jax.tree.map(lambda new, old: jnp.where(active, new, old), updated, carry)

    def epochs(carry, first_epoch, data, val_batches):
        def body(carry, offset):
            return one_epoch(carry, first_epoch + offset, data, val_batches), None

        carry, _ = lax.scan(body, carry, jnp.arange(epochs_per_call, dtype=jnp.int32))
        return carry

    def program(carry, first_epoch, data, val_batches):
        def of_one_run(run_carry):
            return epochs(run_carry, first_epoch, data, val_batches)

        return sweep.over_runs(of_one_run, runs_per_vmap)(carry)

    return program


def _distribute(program: Callable, devices: Sequence[jax.Device] | None):
    """The program over ``devices`` and the functions that place its inputs there.

    Returns ``(program, place, replicate)``: ``place(carry)`` splits the runs axis over
    the devices (padding it with copies of the last run, see :func:`optlab.sweep.shard_seeds`)
    and ``replicate(tree)`` copies the data to every device. With several devices the
    program is a ``shard_map``: each device trains its own runs, with no communication.
    """
    devices = list(jax.devices() if devices is None else devices)
    if len(devices) == 1:
        def place(tree):
            return jax.device_put(tree, devices[0])

        return program, place, place
    mesh = sweep.seeds_mesh(devices)
    runs, shared = sweep.SEEDS, sweep.WHOLE
    program = sweep.per_device(program, mesh, (runs, shared, shared, shared), runs)

    def place(tree):
        return sweep.shard_seeds(tree, devices)[0]

    def replicate(tree):
        return sweep.place(tree, NamedSharding(mesh, shared))

    return program, place, replicate


def _train(
    runs, epoch_program, carry, arrays, val_batches, *, max_epochs, epochs_per_call,
    restore_best, on_epoch, checkpointer, checkpoint_every, config, devices,
) -> FitResult:
    """The host loop of :func:`fit`: resume, place, compile, run, report, checkpoint."""
    count = runs.count
    first_epoch = 0
    if checkpointer is not None:
        restored = checkpointer.restore(carry, config)
        if restored is not None:
            first_epoch, carry = restored
    epoch_program, place, replicate = _distribute(epoch_program, devices)
    # The program donates its carry: give it buffers of its own, not the caller's arrays
    # (runs.state), nor one buffer twice (the best parameters start as the parameters).
    carry = place(jax.device_put(carry, may_alias=False))
    arrays, val_batches = replicate((arrays, val_batches))

    padded = carry.run.l1.shape[0] != count

    def unpadded(tree):
        """The real runs, readable by this process (gathered from every process's devices
        when the runs are spread over several processes)."""
        tree = sweep.gather(tree)
        return jax.tree.map(lambda leaf: leaf[:count], tree) if padded else tree

    def all_stopped(carry) -> bool:
        return bool((np.asarray(unpadded(carry.stopped_epoch)) >= 0).all())

    epoch, saved_epoch = first_epoch, first_epoch
    compile_seconds = run_seconds = math.nan  # a fit restored finished is not timed
    trains = epoch < max_epochs and not all_stopped(carry)
    if trains:
        start = time.perf_counter()
        program = (
            jax.jit(epoch_program, donate_argnums=0)
            .lower(carry, jnp.int32(epoch), arrays, val_batches)
            .compile()
        )
        compile_seconds = time.perf_counter() - start

    start = time.perf_counter()
    while epoch < max_epochs and not all_stopped(carry):
        # Wait for the whole carry: outputs that merely forward an input (stopped_epoch
        # when no run can stop) are ready at once and would end the timing early.
        carry = jax.block_until_ready(program(carry, jnp.int32(epoch), arrays, val_batches))
        done = min(epoch + epochs_per_call, max_epochs)
        if on_epoch is not None:
            stopped_epoch = np.asarray(unpadded(carry.stopped_epoch))
            _report(on_epoch, jax.device_get(unpadded(carry.history)), stopped_epoch, epoch, done)
        epoch = done
        finished = epoch >= max_epochs or all_stopped(carry)
        if checkpointer is not None and (finished or epoch - saved_epoch >= checkpoint_every):
            checkpointer.save(epoch, jax.device_get(unpadded(carry)), config)
            saved_epoch = epoch
    if trains:
        run_seconds = time.perf_counter() - start

    carry = unpadded(carry)
    params, rest = carry.best if restore_best else (carry.run.params, carry.run.rest)
    return FitResult(
        train_graph=runs.train_graph,
        eval_graph=runs.eval_graph,
        params=params,
        rest=rest,
        history={name: np.asarray(values) for name, values in carry.history.items()},
        best_epoch=np.asarray(carry.best_epoch),
        epochs_trained=np.asarray(carry.epochs_trained),
        stopped_early=np.asarray(carry.stopped_epoch) >= 0,
        compile_seconds=compile_seconds,
        run_seconds=run_seconds,
        first_epoch=first_epoch,
    )


def _report(
    on_epoch: EpochCallback, history, stopped_epoch: np.ndarray, first: int, end: int
) -> None:
    """Calls ``on_epoch`` for the epochs ``first..end-1`` in which some run trained."""
    for epoch in range(first, end):
        stopped_by_then = (stopped_epoch >= 0) & (stopped_epoch <= epoch)
        trained = (stopped_epoch < 0) | (stopped_epoch >= epoch)
        if trained.any():
            metrics = {name: values[:, epoch] for name, values in history.items()}
            on_epoch(epoch, metrics | {"stopped": stopped_by_then})


def validation_split(data: tuple, fraction: float, seed: int) -> tuple[tuple, tuple]:
    """``(train, validation)``: a random ``fraction`` of the rows of every array of ``data``.

    The rows are drawn by a NumPy permutation keyed by ``seed`` (Keras's
    ``validation_split`` takes the last rows instead, unshuffled); the validation set has
    ``round(fraction * n)`` rows, at least one, and the training set keeps the rest in
    their original order.
    """
    arrays = tuple(data)
    n = np.shape(arrays[0])[0]
    if any(np.shape(array)[0] != n for array in arrays):
        raise ValueError("every array of data needs the same number of rows")
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    held_out = max(1, round(fraction * n))
    if held_out >= n:
        raise ValueError(f"a fraction of {fraction} of {n} rows leaves no training rows")
    order = np.random.default_rng(seed).permutation(n)
    validation_rows, train_rows = np.sort(order[:held_out]), np.sort(order[held_out:])
    return (
        tuple(np.asarray(a)[train_rows] for a in arrays),
        tuple(np.asarray(a)[validation_rows] for a in arrays),
    )


def _evaluate(model: nnx.Module, task: Task, batches) -> dict[str, jax.Array]:
    """Mean loss and metrics of ``model`` over padded batches (see :func:`_padded_batches`)."""
    arrays, weights = batches

    def add_batch(sums, batch):
        batch_arrays, weight = batch
        inputs, targets = _split_targets(task, batch_arrays)
        outputs = model(inputs)
        values = {"loss": task.loss(outputs, targets)}
        values |= {name: fn(outputs, targets) for name, fn in task.metrics.items()}
        # Padding rows may hold anything (even inf): mask them, do not multiply by 0.
        return {k: sums[k] + jnp.sum(jnp.where(weight, v, 0.0)) for k, v in values.items()}, None

    zeros = {name: jnp.zeros((), jnp.float32) for name in ["loss", *task.metrics]}
    sums, _ = lax.scan(add_batch, zeros, (arrays, weights))
    rows = jnp.sum(weights)
    return {name: total / rows for name, total in sums.items()}


def evaluate(
    result: FitResult, task: Task, data: tuple, *, batch_size: int | None = None
) -> dict[str, np.ndarray]:
    """Loss and metrics of every run's final model on ``data``, in eval mode.

    Returns name -> NumPy array ``(runs,)``: ``loss`` and the task's metrics, means over
    the rows; ``batch_size`` rows are evaluated at a time (default: all).
    """
    arrays = _as_data(task, data, "data")
    rows = arrays[0].shape[0]
    batches = _padded_batches(arrays, min(batch_size or rows, rows))

    def one_run(params, rest):
        return _evaluate(nnx.merge(result.eval_graph, params, rest), task, batches)

    return jax.device_get(jax.jit(jax.vmap(one_run))(result.params, result.rest))


def predict(result: FitResult, inputs, *, batch_size: int | None = None) -> jax.Array:
    """Every run's outputs (logits or reconstructions) for ``inputs``, in eval mode.

    Returns ``(runs, n, ...)``; ``batch_size`` rows are evaluated at a time (default: all).
    Feed the argmax of logits to :func:`~optlab.train.metrics.confusion_matrix`, or
    reconstructions to :func:`~optlab.train.metrics.per_sample_mae`.
    """
    inputs = np.asarray(inputs, np.float32)
    rows = inputs.shape[0]
    (batches,), _ = _padded_batches((inputs,), min(batch_size or rows, rows))
    return _predict(result.eval_graph, rows, result.params, result.rest, batches)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _predict(graph: nnx.GraphDef, rows: int, params, rest, batches) -> jax.Array:
    """:func:`predict`'s program, one per model graph and shapes: the fits of a grid or a
    search that share a model compile it once."""

    def one_run(params, rest):
        outputs = lax.map(nnx.merge(graph, params, rest), batches)
        return outputs.reshape(-1, *outputs.shape[2:])[:rows]

    return jax.vmap(one_run)(params, rest)


def class_scores(
    result: FitResult, data: tuple, num_classes: int, *, batch_size: int | None = None
) -> dict[str, np.ndarray]:
    """Every run's ``accuracy``, macro ``f1`` (both ``(runs,)``) and ``confusion`` matrix
    ``(runs, num_classes, num_classes)`` on ``data = (inputs, labels)``, in eval mode.

    The classes are the argmax of the logits; see :mod:`optlab.train.metrics` for the
    conventions (scikit-learn's).
    """
    inputs, labels = data
    logits = predict(result, inputs, batch_size=batch_size)
    confusion, f1 = jax.device_get(_class_scores(logits, jnp.asarray(labels), num_classes))
    return {"accuracy": np.trace(confusion, axis1=1, axis2=2) / len(labels), "f1": f1,
            "confusion": confusion}


@functools.partial(jax.jit, static_argnums=2)
@functools.partial(jax.vmap, in_axes=(0, None, None))
def _class_scores(logits, labels, num_classes):
    confusion = metrics.confusion_matrix(labels, jnp.argmax(logits, -1), num_classes)
    return confusion, metrics.precision_recall_f1(confusion).f1


def _mean_of_trained(values: np.ndarray) -> float:
    """Mean over the runs that trained (NaN marks the others); NaN if none did."""
    trained = values[~np.isnan(values)]
    return float(trained.mean()) if trained.size else float("nan")


def progress_printer(
    total_epochs: int, *, every_seconds: float = 10.0, print_fn: Callable[[str], None] = print
) -> EpochCallback:
    """An ``on_epoch`` callback that prints a progress line at most every ``every_seconds``.

    The line reads ``epoch 12/100  train 0.123  val 0.145  (3/8 runs stopped)  ETA 0:00:41``:
    means over the runs that trained that epoch; the ETA assumes the remaining epochs take
    as long as the mean epoch since the first call. The first epoch reported, the last
    one and the one where every run has stopped are always printed.
    """
    if total_epochs < 1:
        raise ValueError(f"total_epochs must be at least 1, got {total_epochs}")
    first_call: tuple[float, int] | None = None  # (time, epoch) of the first report
    last_printed = -np.inf

    def on_epoch(epoch: int, metrics: dict[str, np.ndarray]) -> None:
        nonlocal first_call, last_printed
        now = time.perf_counter()
        if first_call is None:
            first_call = (now, epoch)
        stopped = metrics["stopped"]
        final = epoch + 1 >= total_epochs or stopped.all()
        if not (epoch == first_call[1] or final or now - last_printed >= every_seconds):
            return
        last_printed = now
        parts = [
            f"epoch {epoch + 1}/{total_epochs}",
            f"train {_mean_of_trained(metrics['train_loss']):.4g}",
        ]
        if "val_loss" in metrics:
            parts.append(f"val {_mean_of_trained(metrics['val_loss']):.4g}")
        parts.append(f"({int(stopped.sum())}/{stopped.size} runs stopped)")
        started, first_epoch = first_call
        if not final and epoch > first_epoch:
            seconds_per_epoch = (now - started) / (epoch - first_epoch)
            eta = datetime.timedelta(seconds=round(seconds_per_epoch * (total_epochs - epoch - 1)))
            parts.append(f"ETA {eta}")
        print_fn("  ".join(parts))

    return on_epoch
