"""The minimization driver: any update rule, one ``lax.while_loop``.

``minimize(fun, x0, opt, stop=..., max_iters=...)`` repeats

    updates, state = opt.update(grad, state, params, value=value, grad=grad, value_fn=fun)
    params = params + updates

until the stopping rule holds, the rule reports a failure, the values turn non-finite,
the iterates cycle, or ``max_iters`` is reached, and returns a :class:`Result`. It is a
pure function of its array arguments: ``jax.jit`` compiles it once and ``jax.vmap``
batches it, each member keeping its own iteration count and status (finished members
are frozen while the others go on).

``opt`` is any ``optax.GradientTransformation``; plain ones (``optax.adam``) receive the
extra arguments through ``optax.with_extra_args_support``.

The result counts the evaluations of the objective and its gradient: a rule's state may
say how many a step made, in a field ``evaluations`` (optax's zoom line search's
``num_linesearch_steps`` is read too); otherwise the driver's one per step counts. The
history records them per iteration, with what the rule reports of each step (its
state's ``info`` field, e.g. inner CG iterations or the trust radius).

Rules that evaluate the objective at the new iterate (every line-search and
trust-region method here, and ``optax.lbfgs``) keep that value and gradient in their
state as fields ``value`` and ``grad``; the driver takes them from there instead of
evaluating ``fun`` again. As with optax's
``value_and_grad_from_state``, such a rule must then be the last transformation of a
chain, so that the point it evaluated is the point the driver moves to. A rule whose
iterates must be exact (:func:`optlab.lbfgsb`, whose iterates stay in a box that
``params + updates`` may leave by an ulp) keeps the new point in a state field
``iterate``, and the driver moves there.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.flatten_util
import jax.numpy as jnp
import optax

from optlab import stopping
from optlab.status import Status

PyTree = Any


class History(NamedTuple):
    """Per-iteration record of a run; entry ``k`` is the state after ``k`` iterations.

    Entries past the run's last iteration repeat its final state, so curves of runs
    that stopped early stay flat (and medians over seeds stay meaningful).
    """

    values: jax.Array  # (history,) objective values
    grad_norms: jax.Array  # (history,) Euclidean norms of the gradient
    distances: jax.Array | None  # (history,) ||x_k - x*|| when the stop rule names x*
    params: PyTree | None  # leaves (history, *leaf.shape) when record_params=True
    # (history,) int32: evaluations of the objective and its gradient up to x_k, the one
    # at x0 included (line-search trials count; Hessian-vector products do not)
    evaluations: jax.Array | None = None
    # what the rule reports of each iteration (its state's `info` field: inner CG
    # iterations, trust radius, ...), leaves (history, *leaf.shape); None if it has none
    info: PyTree | None = None


class Result(NamedTuple):
    """What :func:`minimize` returns; every field is an array (batched under vmap)."""

    params: PyTree  # the last iterate
    value: jax.Array  # fun(params)
    grad_norm: jax.Array  # ||grad fun(params)||_2
    iterations: jax.Array  # int32, updates applied (0 when x0 already satisfies `stop`)
    evaluations: jax.Array  # int32, of the objective and its gradient, x0's included
    status: jax.Array  # int32 Status code, never Status.RUNNING
    history: History | None  # present when history > 0


class _Carry(NamedTuple):
    params: PyTree
    opt_state: Any
    value: jax.Array
    grad: PyTree
    iteration: jax.Array
    evaluations: jax.Array  # int32, of the objective and gradient so far
    status: jax.Array
    previous: jax.Array  # flat x_{k-1}, for the cycle test
    before_previous: jax.Array  # flat x_{k-2}
    history: History | None


def minimize(
    fun: Callable[[PyTree], jax.Array],
    x0: PyTree,
    opt: optax.GradientTransformation,
    *,
    stop: stopping.StopRule,
    max_iters: int,
    history: int = 0,
    record_params: bool = False,
) -> Result:
    """Minimizes ``fun`` from ``x0`` with the update rule ``opt``.

    Args:
      fun: scalar objective of a pytree of parameters, differentiable by JAX.
      x0: initial parameters (any pytree of floating arrays).
      opt: the update rule, e.g. ``optlab.bfgs()`` or ``optax.chain(...)``.
      stop: a rule from :mod:`optlab.stopping`, e.g. ``distance_to(x_star, 1e-6)``.
      max_iters: the most updates to apply (a Python int).
      history: record the first ``history`` iterations (entry 0 is ``x0``); 0 records
        nothing. Use ``max_iters + 1`` for the whole run.
      record_params: also record the iterates themselves in the history.

    Returns:
      A :class:`Result`. ``status`` tells why the run stopped (:class:`optlab.Status`);
      a period-two cycle of the iterates (``x_k = x_{k-2} != x_{k-1}`` to a relative
      ``sqrt(machine eps)``) stops the run as ``CYCLING``.

    Example:
      >>> import jax.numpy as jnp, optlab
      >>> fun = lambda x: jnp.sum((x - 3.0) ** 2)
      >>> result = optlab.minimize(fun, jnp.zeros(2), optlab.bfgs(),
      ...                          stop=optlab.stopping.grad_norm(1e-6), max_iters=50)
      >>> int(result.iterations), optlab.Status(int(result.status)).name
      (1, 'CONVERGED')
    """
    if not isinstance(max_iters, int) or max_iters < 0:
        raise ValueError(f"max_iters must be a non-negative int, got {max_iters!r}")
    if not isinstance(history, int) or history < 0:
        raise ValueError(f"history must be a non-negative int, got {history!r}")
    if not isinstance(stop, stopping.StopRule):
        raise TypeError(f"stop must be an optlab.stopping rule, got {type(stop).__name__}")
    _check_objective(fun, x0)

    opt = optax.with_extra_args_support(opt)
    value_and_grad = jax.value_and_grad(fun)
    flat = lambda tree: jax.flatten_util.ravel_pytree(tree)[0]  # noqa: E731
    target = stop.target

    def record(buffers: History, k, params, value, grad, evaluations, opt_state) -> History:
        if buffers is None:
            return None
        write = lambda buf, x: buf.at[k].set(x, mode="drop")  # noqa: E731
        maybe = lambda buf, x: None if buf is None else jax.tree.map(write, buf, x)  # noqa: E731
        return History(
            values=write(buffers.values, value),
            grad_norms=write(buffers.grad_norms, optax.tree.norm(grad)),
            distances=None if buffers.distances is None
            else write(buffers.distances, _distance(params, target)),
            params=maybe(buffers.params, params),
            evaluations=write(buffers.evaluations, evaluations),
            info=maybe(buffers.info, _info(opt_state)),
        )

    def classify(carry: _Carry, cycling, opt_status, saddle=None) -> jax.Array:
        """The status after a step: a failure wins, then convergence (``SADDLE`` where the
        rule saw negative curvature), then the limits."""
        finite = (
            jnp.isfinite(carry.value)
            & jnp.all(jnp.isfinite(carry.previous))
            & jnp.all(jnp.isfinite(flat(carry.grad)))
        )
        converged = stop(carry.params, carry.value, carry.grad)
        status = jnp.where(carry.iteration >= max_iters, Status.MAX_ITERS, Status.RUNNING)
        if cycling is not None:
            status = jnp.where(cycling, Status.CYCLING, status)
        status = jnp.where(converged, Status.CONVERGED, status)
        if saddle is not None:
            status = jnp.where(converged & saddle, Status.SADDLE, status)
        status = jnp.where(finite, status, Status.NONFINITE)
        if opt_status is not None:
            status = jnp.where(opt_status != Status.RUNNING, opt_status, status)
        return status.astype(jnp.int32)

    def body(carry: _Carry) -> _Carry:
        # Under vmap the body also runs for members that have stopped (their results are
        # discarded). A zero gradient makes their line searches end at once instead of
        # searching again, every iteration, from a point where the search may struggle.
        active = carry.status == Status.RUNNING
        grad = jax.tree.map(lambda g: jnp.where(active, g, jnp.zeros_like(g)), carry.grad)
        updates, opt_state = opt.update(
            grad, carry.opt_state, carry.params, value=carry.value, grad=grad, value_fn=fun
        )
        params = optax.apply_updates(carry.params, updates)
        landed = optax.tree.get(opt_state, "iterate")
        if landed is not None:  # the rule's own point, exactly (lbfgsb: in the box)
            params = landed
        cached = _cached_evaluation(opt_state)
        value, grad = cached if cached is not None else value_and_grad(params)
        evaluations = carry.evaluations + _step_evaluations(opt_state, cached is None)
        iteration = carry.iteration + 1
        params_flat = flat(params)
        cycling = (iteration >= 2) & _returns_to(params_flat, carry.previous, carry.before_previous)
        carry = carry._replace(
            params=params,
            opt_state=opt_state,
            value=value,
            grad=grad,
            iteration=iteration,
            evaluations=evaluations,
            previous=params_flat,
            before_previous=carry.previous,
            history=record(carry.history, iteration, params, value, grad, evaluations,
                           opt_state),
        )
        return carry._replace(status=classify(carry, cycling, _reported_status(opt_state),
                                              _negative_curvature(opt_state)))

    value, grad = value_and_grad(x0)
    x0_flat = flat(x0)
    opt_state = opt.init(x0)
    one = jnp.ones((), jnp.int32)
    buffers = None
    if history:
        dtype = jnp.result_type(value)
        rows = lambda tree: jax.tree.map(  # noqa: E731
            lambda x: jnp.zeros((history, *jnp.shape(x)), jnp.result_type(x)), tree)
        info = _info(opt_state)
        buffers = History(
            values=jnp.zeros(history, dtype),
            grad_norms=jnp.zeros(history, dtype),
            distances=None if target is None else jnp.zeros(history, dtype),
            params=rows(x0) if record_params else None,
            evaluations=jnp.zeros(history, jnp.int32),
            info=None if info is None else rows(info),
        )
    carry = _Carry(
        params=x0,
        opt_state=opt_state,
        value=value,
        grad=grad,
        iteration=jnp.zeros((), jnp.int32),
        evaluations=one,
        status=jnp.asarray(Status.RUNNING, jnp.int32),
        previous=x0_flat,
        before_previous=x0_flat,
        history=record(buffers, 0, x0, value, grad, one, opt_state),
    )
    carry = carry._replace(status=classify(carry, None, None))
    carry = jax.lax.while_loop(lambda c: c.status == Status.RUNNING, body, carry)

    return Result(
        params=carry.params,
        value=carry.value,
        grad_norm=optax.tree.norm(carry.grad),
        iterations=carry.iteration,
        evaluations=carry.evaluations,
        status=carry.status,
        history=None if carry.history is None else _fill_forward(carry.history, carry.iteration),
    )


def _check_objective(fun: Callable, x0: PyTree) -> None:
    """Trace-time checks that turn shape mistakes into readable errors."""
    leaves = jax.tree.leaves(x0)
    if not leaves:
        raise ValueError("x0 has no array leaves")
    for leaf in leaves:
        if not jnp.issubdtype(jnp.result_type(leaf), jnp.floating):
            raise TypeError(f"x0 must hold floating-point arrays, got dtype {jnp.result_type(leaf)}")
    out = jax.eval_shape(fun, x0)
    if not hasattr(out, "shape") or out.shape != ():
        shape = getattr(out, "shape", type(out).__name__)
        raise ValueError(f"fun must return a scalar, got output of shape {shape}")


def _distance(params: PyTree, target: PyTree) -> jax.Array:
    return optax.tree.norm(jax.tree.map(jnp.subtract, params, target))


def _returns_to(x: jax.Array, previous: jax.Array, before_previous: jax.Array) -> jax.Array:
    """True when ``x`` is back at ``before_previous`` after a real move to ``previous``."""
    tolerance = jnp.sqrt(jnp.finfo(x.dtype).eps)
    step = jnp.linalg.norm(x - previous)
    return (step > 0) & (jnp.linalg.norm(x - before_previous) <= tolerance * step)


def _reported_status(opt_state) -> jax.Array | None:
    """The worst ``status`` field found in the (possibly chained) optimizer state."""
    found = optax.tree.get_all_with_path(opt_state, "status")
    if not found:
        return None
    return jnp.max(jnp.stack([jnp.asarray(s, jnp.int32) for _, s in found]))


def _negative_curvature(opt_state) -> jax.Array | None:
    """Whether a rule that forms Hessians saw a clearly negative eigenvalue in its last one
    (a ``negative_curvature`` field of the state, e.g. :func:`optlab.newton`'s)."""
    found = optax.tree.get_all_with_path(opt_state, "negative_curvature")
    if not found:
        return None
    return jnp.any(jnp.stack([jnp.asarray(flag, bool) for _, flag in found]))


def _cached_evaluation(opt_state) -> tuple[jax.Array, PyTree] | None:
    value = optax.tree.get(opt_state, "value")
    grad = optax.tree.get(opt_state, "grad")
    if value is None or grad is None:
        return None
    return value, grad


def _step_evaluations(opt_state, by_driver: bool) -> jax.Array:
    """Evaluations of the objective and gradient in one step: what the rule's state counts
    (``evaluations``, or optax's zoom line search's ``num_linesearch_steps``), else the
    driver's own one."""
    for name in ("evaluations", "num_linesearch_steps"):
        found = optax.tree.get_all_with_path(opt_state, name)
        if found:
            counted = sum(jnp.asarray(count, jnp.int32) for _, count in found)
            return counted + (1 if by_driver else 0)
    return jnp.ones((), jnp.int32)


def _info(opt_state) -> PyTree | None:
    """The rule's report of its last step (the first ``info`` field of its state)."""
    found = optax.tree.get_all_with_path(opt_state, "info")
    return found[0][1] if found else None


def _fill_forward(history: History, iterations: jax.Array) -> History:
    def fill(buffer):
        k = jnp.arange(buffer.shape[0])
        last = buffer[jnp.minimum(iterations, buffer.shape[0] - 1)]
        mask = (k > iterations).reshape((-1,) + (1,) * (buffer.ndim - 1))
        return jnp.where(mask, last, buffer)

    return jax.tree.map(fill, history)
