"""Bound-constrained minimization: L-BFGS-B.

:func:`lbfgsb` minimizes ``f(x)`` subject to ``lower <= x <= upper`` coordinate-wise, the
method of Byrd, Lu, Nocedal and Zhu, "A limited memory algorithm for bound constrained
optimization", SIAM J. Sci. Comput. 16(5), 1995 (BLNZ below), with the projected
subspace step of Morales and Nocedal, ACM TOMS 38(1), 2011 (L-BFGS-B 3.0, scipy's). Each
iteration

1. finds the *generalized Cauchy point* ``x_c``: the first local minimizer of the
   quadratic model ``m(z) = g.z + z.B z / 2`` along the projected gradient path
   ``P(x - t g)`` (``P`` clips into the box; BLNZ section 4);
2. minimizes the model over the coordinates that are free at ``x_c`` (the others stay at
   their bounds), projects that point into the box, and keeps the projection when it
   descends, else steps from ``x_c`` toward it only as far as the box allows (section 5.1);
3. searches the line from ``x`` to that point for a strong Wolfe step no longer than
   the box allows (``c1 = 1e-3``, ``c2 = 0.9``, scipy's), and clips the new iterate
   into the box.

``B = theta I - W M W^T`` is the limited-memory BFGS matrix of the last ``memory``
pairs in compact form (BLNZ eq. 3.2): ``W = [Y, theta S]`` and ``M`` the inverse of
``[[-D, L^T], [L, theta S^T S]]``. The Cauchy search visits the breakpoints in rounds
of a few, found by masks and sorted among themselves, with the model's slope on their
segments from prefix sums: no loop over breakpoints, and a sort of all ``n`` of them only
when a step crosses many (:func:`cauchy_point`).

Bounds are pytrees with the parameters' structure (each leaf broadcast to its
parameter's shape), or scalars for every coordinate; ``None`` or infinite entries leave
a side unbounded. :func:`optlab.stopping.projected_grad_norm` is the matching stopping
rule.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from optlab import line_search as line_searches
from optlab.status import Status

PyTree = Any
Bound = PyTree | float | None


def _check_bound(bound: Bound, name: str) -> None:
    """Refuses NaN entries of a concrete bound (traced bounds are checked by the caller)."""
    for leaf in jax.tree.leaves(bound):
        if isinstance(leaf, jax.core.Tracer):
            continue
        if np.any(np.isnan(np.asarray(leaf, dtype=float))):
            raise ValueError(f"{name} holds NaN; use -inf or inf for a side without bound")


def _flat_bound(bound: Bound, params: PyTree, name: str, fill: float) -> jax.Array:
    """``bound`` as one flat vector matching ``ravel_pytree(params)``."""
    leaves, structure = jax.tree.flatten(params)
    dtype = ravel_pytree(params)[0].dtype
    if bound is None:
        return jnp.full(sum(jnp.size(leaf) for leaf in leaves), fill, dtype)
    bound_leaves, bound_structure = jax.tree.flatten(bound)
    if jax.tree_util.treedef_is_leaf(bound_structure) and jnp.ndim(bound_leaves[0]) == 0:
        bound_leaves = [bound_leaves[0]] * len(leaves)  # one number for every coordinate
    elif bound_structure != structure:
        raise ValueError(f"{name} has structure {bound_structure}, the parameters have "
                         f"{structure}; pass a pytree like them or a scalar")
    flat = []
    for leaf, bound_leaf in zip(leaves, bound_leaves):
        try:
            flat.append(jnp.broadcast_to(jnp.asarray(bound_leaf, dtype), jnp.shape(leaf)))
        except ValueError:
            raise ValueError(f"{name} has a leaf of shape {jnp.shape(bound_leaf)} that does "
                             f"not broadcast to its parameter's shape {jnp.shape(leaf)}") from None
    return jnp.concatenate([leaf.ravel() for leaf in flat]) if flat else jnp.zeros(0, dtype)


def flat_bounds(lower: Bound, upper: Bound, params: PyTree) -> tuple[jax.Array, jax.Array]:
    """The bounds as flat vectors matching ``ravel_pytree(params)``.

    Raises ``ValueError`` when a bound's structure or shapes do not match the
    parameters', or when a concrete ``lower`` exceeds ``upper`` somewhere.
    """
    lo = _flat_bound(lower, params, "lower", -np.inf)
    hi = _flat_bound(upper, params, "upper", np.inf)
    if not isinstance(lo, jax.core.Tracer) and not isinstance(hi, jax.core.Tracer):
        crossed = np.flatnonzero(np.asarray(lo > hi))
        if crossed.size:
            i = crossed[0]
            raise ValueError(f"lower > upper at {crossed.size} coordinates, the first at flat "
                             f"index {i}: {float(lo[i])} > {float(hi[i])}")
    return lo, hi


class LBFGSBInfo(NamedTuple):
    """What an L-BFGS-B step reports (recorded per iteration by ``minimize``)."""

    active: jax.Array  # () int32, coordinates at a bound at the new iterate
    backtracked: jax.Array  # () bool: the projected subspace point did not descend, so
    # the step went from the Cauchy point only as far as the box allows


class LBFGSBState(NamedTuple):
    count: jax.Array  # () int32, steps taken
    # The memory is a ring: each pair is written over the oldest, in row `slot`.
    steps: jax.Array  # (m, n) S, the last secant steps s_i by rows; 0 when empty
    differences: jax.Array  # (m, n) Y, the gradient differences y_i
    sy: jax.Array  # (m, m) S Y^T: sy[i, j] = s_i . y_j, rows and columns as S's rows
    ss: jax.Array  # (m, m) S S^T
    pairs: jax.Array  # () int32, pairs stored: the rows before `slot`, cyclically
    slot: jax.Array  # () int32, the row the next pair goes to
    iterate: PyTree  # the new iterate, in the box (the driver moves there exactly)
    value: jax.Array  # () objective at the new iterate
    grad: PyTree  # gradient there
    evaluations: jax.Array  # () int32, of the objective and gradient in the last step
    status: jax.Array  # () int32 Status
    info: LBFGSBInfo


def _middle_matrix(sy, ss, theta, filled):
    """``M``, the inverse of ``[[-D, L^T], [L, theta S^T S]]`` (BLNZ eq. 3.4). An empty
    slot gets a unit diagonal entry: its rows of ``W`` are zero, so it adds nothing."""
    lower = jnp.tril(sy, -1)  # L_ij = s_i . y_j for i > j
    K = jnp.block([[-jnp.diag(jnp.diagonal(sy)), lower.T], [lower, theta * ss]])
    empty = ~jnp.concatenate([filled, filled])
    K = jnp.where(empty[:, None] | empty[None, :], 0.0, K) + jnp.diag(empty.astype(K.dtype))
    # Inverted at unit diagonal: the pairs of a badly scaled problem span many orders of
    # magnitude, and an unequilibrated inverse loses the digits that the Cauchy search's
    # slopes (differences of nearly equal terms) need.
    scale = jnp.sqrt(jnp.abs(jnp.diagonal(K)))
    scale = jnp.where(scale > 0, scale, 1.0)
    outer = scale[:, None] * scale[None, :]
    return jnp.linalg.inv(K / outer) / outer


def _compact_model(state: LBFGSBState, pairs) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(Wt, M, theta)``: ``B = theta I - W M W^T`` of the newest ``pairs`` pairs of the
    memory (``Wt = W^T``). ``W``'s rows stay in the memory's row order, so that nothing of
    size ``n`` moves; ``M`` is made in the pairs' order (which its ``L`` needs) and its rows
    and columns then permuted into the memory's order."""
    memory = state.sy.shape[0]
    rank = (jnp.arange(memory) - state.slot) % memory  # each row's age, 0 the oldest
    order = (state.slot + jnp.arange(memory)) % memory  # the rows, oldest first
    filled = rank >= memory - pairs
    newest = (state.slot - 1) % memory
    y, sy = state.differences[newest], state.sy[newest, newest]
    theta = jnp.where(pairs > 0, jnp.vdot(y, y) / jnp.where(pairs > 0, sy, 1.0), 1.0)
    Wt = jnp.where(jnp.concatenate([filled, filled])[:, None],
                   jnp.concatenate([state.differences, theta * state.steps]), 0.0)
    by_age = jnp.ix_(order, order)
    M = _middle_matrix(state.sy[by_age], state.ss[by_age], theta, filled[order])
    rows = jnp.concatenate([rank, rank + memory])
    return Wt, M[jnp.ix_(rows, rows)], theta


def _first_stop(M, theta, c, p, gg, start, end, valid=None):
    """The first of consecutive path segments on which the model stops decreasing.

    Segment ``j`` runs from ``start[j]`` to ``end[j]`` with the fixed and free sums
    ``c[j]``, ``p[j]`` and ``gg[j]`` (``sum_free g_i^2``), so the model's slope there is
    ``f1_j + t f2_j``. Returns ``(found, j, t)``: whether some segment's slope is
    non-negative at its start or its minimizer ``-f1_j / f2_j`` comes before its end,
    the first such ``j`` and the minimizer clipped to that segment; only segments where
    ``valid`` holds count. As in L-BFGS-B, ``f2`` is kept above ``eps`` times its first
    value, against the cancellation of the sums it is updated from.
    """
    Mp = p @ M
    f1 = -gg - jnp.sum(c * Mp, axis=1)
    f2 = theta * gg - jnp.sum(p * Mp, axis=1)
    f2 = jnp.maximum(f2, jnp.finfo(f2.dtype).eps * f2[0])
    minimizer = jnp.where(f2 > 0, -f1 / jnp.where(f2 > 0, f2, 1.0), jnp.inf)
    stops = (f1 + start * f2 >= 0) | (minimizer < end)
    if valid is not None:
        stops &= valid
    j = jnp.argmax(stops)
    return jnp.any(stops), j, jnp.clip(minimizer[j], start[j], end[j])


def _only_if(flag, fn, operands, default):
    """``fn(*operands)`` where ``flag`` holds, else ``default``: a loop of zero or one
    pass, so that under ``jax.vmap`` (where ``lax.cond`` computes both branches) nothing
    is computed unless some member needs it. The operands pass an optimization barrier
    together with the loop's flag: a body of loop-invariant operands would otherwise be
    hoisted out of the loop by XLA and computed every time (BENCHMARKS.md, "Bound
    constraints", has what that cost)."""
    def body(carry):
        _, go, ops = carry
        ops, _ = jax.lax.optimization_barrier((ops, go))
        return fn(*ops), jnp.zeros((), bool), ops

    return jax.lax.while_loop(lambda carry: carry[1], body, (default, flag, operands))[0]


def _breakpoints(x, g, lower, upper):
    """``(t, hit, z)``: where each coordinate reaches its bound along ``x - t g`` (inf if
    never), the bound it reaches, and its move ``hit - x`` (0 if never)."""
    hit = jnp.where(g < 0, upper, lower)
    t = jnp.where(g != 0, (x - hit) / jnp.where(g != 0, g, 1.0), jnp.inf)
    t = jnp.where(jnp.isnan(t), jnp.inf, jnp.maximum(t, 0.0))  # inf - inf: no bound
    return t, hit, jnp.where(jnp.isfinite(t), hit - x, 0.0)


def _sorted_cauchy_step(t, g, z, Wt, M, theta):
    """The Cauchy point's ``t`` from all breakpoints sorted: prefix sums over the fixed
    coordinates, suffix sums over the free ones (no cancellation), every segment at once."""
    order = jnp.argsort(t)
    ts, gs, zs = t[order], g[order], z[order]
    ws = Wt[:, order].T  # (n, 2m)
    zero_row = jnp.zeros((1, Wt.shape[0]), g.dtype)
    c = jnp.concatenate([zero_row, jnp.cumsum(ws * zs[:, None], axis=0)])
    p = -jnp.concatenate([jnp.cumsum((ws * gs[:, None])[::-1], axis=0)[::-1], zero_row])
    gg = jnp.concatenate([jnp.cumsum((gs * gs)[::-1])[::-1], jnp.zeros(1, g.dtype)])
    start = jnp.concatenate([jnp.zeros(1, g.dtype), ts])
    end = jnp.concatenate([ts, jnp.full(1, jnp.inf, g.dtype)])
    # The last segment (nothing free) always stops: f1 = f2 = 0.
    return _first_stop(M, theta, c, p, gg, start, end)[2]


class _Search(NamedTuple):
    rounds: jax.Array  # () int32
    done: jax.Array  # () bool: t_c is known
    overflow: jax.Array  # () bool: a round met more breakpoints than it takes
    t_c: jax.Array  # () the Cauchy point's t, once done
    segment_start: jax.Array  # () where the current segment starts
    scanned: jax.Array  # () every breakpoint <= scanned is fixed


def cauchy_point(x, g, lower, upper, Wt, M, theta, *, chunk: int = 64, rounds: int = 16,
                 cuts: int = 16):
    """The generalized Cauchy point of the model ``g.z + z.B z / 2``, ``B = theta I - W M
    W^T`` (``Wt = W^T``, shape ``(2m, n)``), along ``P(x - t g)``: BLNZ Algorithm CP.

    The path bends where a coordinate reaches its bound, at ``t_i``. On a segment where
    the coordinates with ``t_i`` below it are fixed (moved by ``z_i = bound_i - x_i``)
    and the others free (moved by ``-t g_i``), the model's slope is ``f1 + t f2`` with

        f1 = -sum_free g_i^2 - c.M p,   f2 = theta sum_free g_i^2 - p.M p,
        c = sum_fixed w_i z_i,          p = -sum_free w_i g_i

    (``w_i`` the rows of ``W``). The Cauchy point lies on the first segment whose slope is
    non-negative at its start or whose minimizer ``-f1 / f2`` comes before its end.

    Sorting all ``n`` breakpoints is the expensive part on XLA's CPU and is rarely
    needed: the point usually lies before all but a few of them. So the search goes in
    rounds. Each round takes the current segment's minimizer ``t*``, gathers the
    breakpoints between the last round's and ``t*`` (found by a mask, not a sort), sorts
    just those and checks their segments with prefix sums; a round's sums over the fixed
    and free sets are computed afresh, ``O(n m)``. When more than ``chunk`` breakpoints
    come before ``t*``, the round takes those up to the largest of ``cuts`` geometric
    thresholds that holds at most ``chunk`` and leaves the rest to the next. Most
    Cauchy points take one round. When ``rounds`` rounds do not end the search, or more
    than ``chunk`` breakpoints share one value, every breakpoint is sorted instead (a
    loop of zero or one pass, so that under ``jax.vmap`` only a batch that needs it
    pays).

    Returns ``(x_c, t_c, free)``: the point, its ``t`` and the coordinates not at a bound
    there (``t_i > t_c``).
    """
    t, hit, z = _breakpoints(x, g, lower, upper)
    dtype = g.dtype
    proper = (t > 0) & jnp.isfinite(t)
    k = min(chunk, t.size)
    steps = jnp.arange(k + 1)

    def round_(s: _Search) -> _Search:
        free = t > s.scanned
        c = Wt @ jnp.where(free, 0.0, z)
        p = -(Wt @ jnp.where(free, g, 0.0))
        gg = jnp.sum(jnp.where(free, g * g, 0.0))
        Mp = M @ p
        f1, f2 = -gg - c @ Mp, theta * gg - p @ Mp
        descends = f1 + s.segment_start * f2 < 0
        minimizer = jnp.where(f2 > 0, -f1 / jnp.where(f2 > 0, f2, 1.0), jnp.inf)
        window = proper & (t > s.scanned) & (t <= minimizer)
        count = jnp.sum(window)
        ends_here = ~descends | (count == 0)
        here = jnp.where(descends, minimizer, s.segment_start)
        # More than k breakpoints before the minimizer: take those up to the largest of
        # `cuts` thresholds (geometric between the window's first and last) that holds
        # at most k, and go on from there in the next round.
        first = jnp.min(jnp.where(window, t, jnp.inf))
        ratio = jnp.max(jnp.where(window, t, 0.0)) / jnp.where(count > 0, first, 1.0)
        thresholds = first * ratio ** jnp.linspace(0.0, 1.0, cuts, dtype=dtype)
        # Counted in float32 (exact below 2**24 coordinates), which XLA's CPU sums faster
        # than the int64 that a sum of booleans would be.
        held = jnp.sum(jnp.where(window, t, jnp.inf)[None, :] <= thresholds[:, None], axis=1,
                       dtype=jnp.float32 if t.size < 2**24 else jnp.int32)
        fitting = jnp.sum(held <= k)  # held grows with the threshold
        crowded = count > k
        cut = jnp.where(crowded, thresholds[jnp.maximum(fitting - 1, 0)], minimizer)
        window &= t <= cut
        count = jnp.sum(window)

        # The window's breakpoints in order; segment j has the first j of them fixed, and
        # the last one runs to the cut (no breakpoint lies between).
        # top_k of the mask puts the window's (at most k) indices first, without the
        # prefix sum over all n that jnp.nonzero takes.
        index = jax.lax.top_k(window.astype(jnp.float32), k)[1]
        taken = jnp.arange(k) < count
        tk = jnp.where(taken, t[index], jnp.inf)
        order = jnp.argsort(tk)
        index, taken, tk = index[order], taken[order], tk[order]
        gk, zk = jnp.where(taken, g[index], 0.0), jnp.where(taken, z[index], 0.0)
        wk = jnp.where(taken[:, None], Wt[:, index].T, 0.0)  # (k, 2m)
        zero_row = jnp.zeros((1, Wt.shape[0]), dtype)
        cj = c[None, :] + jnp.concatenate([zero_row, jnp.cumsum(wk * zk[:, None], axis=0)])
        pj = p[None, :] + jnp.concatenate([zero_row, jnp.cumsum(wk * gk[:, None], axis=0)])
        ggj = gg - jnp.concatenate([jnp.zeros(1, dtype), jnp.cumsum(gk * gk)])
        start = jnp.concatenate([s.segment_start[None], tk])
        end = jnp.where(steps < count, jnp.concatenate([tk, jnp.full(1, jnp.inf, dtype)]),
                        cut)
        found, j, t_j = _first_stop(M, theta, cj, pj, ggj, start, end, steps <= count)
        overflow = ~ends_here & crowded & (fitting == 0)  # a cluster of > k equal t_i
        done = ends_here | (~overflow & found)
        last = tk[jnp.clip(count - 1, 0, k - 1)]
        return _Search(
            rounds=s.rounds + 1, done=done, overflow=overflow,
            t_c=jnp.where(ends_here, here, t_j),
            segment_start=jnp.where(count > 0, last, s.segment_start),
            scanned=jnp.where(count > 0, cut, s.scanned))

    zero = jnp.zeros((), dtype)
    searched = jax.lax.while_loop(
        lambda s: ~s.done & ~s.overflow & (s.rounds < rounds), round_,
        _Search(jnp.zeros((), jnp.int32), jnp.zeros((), bool), jnp.zeros((), bool), zero,
                zero, zero))
    t_c = _only_if(~searched.done, functools.partial(_sorted_cauchy_step, M=M, theta=theta),
                   (t, g, z, Wt), searched.t_c)
    free = t > t_c
    x_c = jnp.clip(jnp.where(free, x - t_c * g, hit), lower, upper)
    return x_c, t_c, free


def subspace_point(x, g, lower, upper, x_c, free, Wt, M, theta):
    """The model's minimizer over the coordinates free at ``x_c``, projected into the box
    (BLNZ section 5.1, direct primal method; the projection is L-BFGS-B 3.0's).

    With ``Z`` selecting the free coordinates, the reduced gradient is ``r = Z^T (g +
    theta (x_c - x) - W M W^T (x_c - x))`` and the reduced model's Hessian ``theta I - U M
    U^T``, ``U = Z^T W``, is inverted by Sherman-Morrison-Woodbury: a ``2m x 2m`` solve.
    When the projected point does not descend from ``x`` (``(x_bar - x).g > 0``), the step
    goes from ``x_c`` along the unconstrained one only as far as the box allows.

    Returns ``(x_bar, backtracked)``.
    """
    Wf = jnp.where(free[None, :], Wt, 0.0)
    r = jnp.where(free, g + theta * (x_c - x) - Wt.T @ (M @ (Wt @ (x_c - x))), 0.0)
    v = M @ (Wf @ r)
    N = jnp.eye(M.shape[0], dtype=M.dtype) - (M @ (Wf @ Wf.T)) / theta
    v = jnp.linalg.solve(N, v)
    du = jnp.where(free, -r / theta - (Wf.T @ v) / theta**2, 0.0)
    unconstrained = x_c + du
    projected = jnp.clip(unconstrained, lower, upper)
    clipped = jnp.any(projected != unconstrained)
    backtracked = clipped & (jnp.vdot(projected - x, g) > 0)
    room = jnp.where(du > 0, (upper - x_c) / jnp.where(du > 0, du, 1.0),
                     jnp.where(du < 0, (lower - x_c) / jnp.where(du < 0, du, 1.0), jnp.inf))
    alpha = jnp.minimum(1.0, jnp.min(room, initial=jnp.inf))
    truncated = jnp.clip(x_c + alpha * du, lower, upper)
    return jnp.where(backtracked, truncated, projected), backtracked


def _longest_step(x, d, lower, upper):
    """The largest ``t`` with ``x + t d`` in the box (inf when nothing bounds it)."""
    room = jnp.where(d > 0, (upper - x) / jnp.where(d > 0, d, 1.0),
                     jnp.where(d < 0, (lower - x) / jnp.where(d < 0, d, 1.0), jnp.inf))
    return jnp.min(room, initial=jnp.inf)


def _push(state: LBFGSBState, s, y, pairs, stores=True) -> LBFGSBState:
    """The memory with ``(s, y)`` written over its oldest pair where ``stores``, after a
    step that used its newest ``pairs``: one row of ``S`` and ``Y`` and ``O(m n)``
    products, in place."""
    memory, slot = state.sy.shape[0], state.slot
    S = state.steps.at[slot].set(jnp.where(stores, s, state.steps[slot]))
    Y = state.differences.at[slot].set(jnp.where(stores, y, state.differences[slot]))
    Ss = S @ s
    sy = state.sy.at[slot, :].set(Y @ s).at[:, slot].set(S @ y)
    ss = state.ss.at[slot, :].set(Ss).at[:, slot].set(Ss)
    keep = lambda new, old: jnp.where(stores, new, old)  # noqa: E731
    return state._replace(
        steps=S, differences=Y, sy=keep(sy, state.sy), ss=keep(ss, state.ss),
        pairs=keep(jnp.minimum(pairs + 1, memory), pairs).astype(jnp.int32),
        slot=keep((slot + 1) % memory, slot).astype(jnp.int32))


def lbfgsb(
    lower: Bound = None,
    upper: Bound = None,
    memory: int = 10,
    *,
    line_search: line_searches.LineSearch | None = None,
) -> optax.GradientTransformationExtraArgs:
    """L-BFGS-B: limited-memory BFGS within the box ``lower <= x <= upper``.

    Args:
      lower, upper: the bounds: pytrees with the parameters' structure whose leaves
        broadcast to the parameters' shapes, or one number for every coordinate; ``None``
        or ``-inf``/``inf`` entries leave a side unbounded. NaN entries and ``lower >
        upper`` are refused (a ``ValueError``; for traced bounds, only the structure is
        checked).
      memory: the secant pairs kept (scipy's ``maxcor``, default 10).
      line_search: the search along each step; strong Wolfe with scipy's ``c1 = 1e-3``,
        ``c2 = 0.9`` when omitted. It is called with a ``max_step`` that keeps every
        trial in the box.

    The algorithm is in the module's docstring. Parameters outside the box are projected
    into it first: the first step then starts from the projection, with one more
    evaluation of the objective (as scipy projects ``x0``); the driver has evaluated the
    objective at the given ``x0``, so it must be finite there. A pair with ``s.y <= eps
    |t g.d|`` (too little curvature) is not stored, as in scipy. The first step, with no
    pairs, goes to the Cauchy point of ``B = I``, with the first trial step ``min(1,
    1/||d||)`` when some coordinate is not bounded on both sides (scipy's rule). A search
    that fails with pairs in memory drops them and tries again from the same point with
    ``B = I``, within the same step, as scipy does; a failure then is the run's
    ``LINE_SEARCH_FAILED``. A run's history entry 0 is the given ``x0``, outside the box
    or not.

    The state's ``iterate`` is the new point exactly, clipped into the box; ``updates``
    is its difference from ``params``, which in floating point may add back to a point an
    ulp outside the box: :func:`optlab.minimize` moves to ``iterate`` instead. The
    gradient the model uses is ``grad``, the objective's; ``updates`` passed in are
    ignored (a preceding transformation would break the bounds' meaning). The state's
    ``info`` (:class:`LBFGSBInfo`) holds the active-set size of each step and whether
    its subspace point was backtracked.

    Example:
      >>> import jax.numpy as jnp, optlab
      >>> fun = lambda x: jnp.sum((x - 3.0) ** 2)
      >>> result = optlab.minimize(fun, jnp.zeros(2), optlab.lbfgsb(upper=1.0),
      ...     stop=optlab.stopping.projected_grad_norm(None, 1.0, 1e-8), max_iters=20)
      >>> result.params.tolist(), int(result.iterations)  # scipy: the same in 2
      ([1.0, 1.0], 2)
    """
    if not isinstance(memory, int) or memory < 1:
        raise ValueError(f"memory must be a positive int, got {memory!r}")
    _check_bound(lower, "lower")
    _check_bound(upper, "upper")
    search = line_searches.strong_wolfe(c1=1e-3, c2=0.9) if line_search is None else line_search

    def init(params):
        x, _ = ravel_pytree(params)
        flat_bounds(lower, upper, params)  # the bounds must match the parameters
        n, dtype = x.size, x.dtype
        zero = jnp.zeros((), jnp.int32)
        return LBFGSBState(
            count=zero, steps=jnp.zeros((memory, n), dtype),
            differences=jnp.zeros((memory, n), dtype),
            sy=jnp.zeros((memory, memory), dtype), ss=jnp.zeros((memory, memory), dtype),
            pairs=zero, slot=zero, iterate=params, value=jnp.full((), jnp.inf, dtype),
            grad=params, evaluations=zero, status=jnp.asarray(Status.RUNNING, jnp.int32),
            info=LBFGSBInfo(zero, jnp.zeros((), bool)))

    def update(updates, state, params, *, value, grad, value_fn, **extra):
        del updates, extra
        given, unravel = ravel_pytree(params)
        if jnp.iscomplexobj(given):
            raise TypeError("lbfgsb takes real parameters, got complex ones")
        value_and_grad = jax.value_and_grad(lambda v: value_fn(unravel(v)))
        lo, hi = flat_bounds(lower, upper, params)
        g = ravel_pytree(grad)[0]
        # Parameters outside the box (x0): move to the projection and evaluate there.
        x = jnp.clip(given, lo, hi)
        moved = jnp.any(x != given)
        value, g = _only_if(moved, value_and_grad, (x,), (value, g))

        bounded = jnp.isfinite(lo) | jnp.isfinite(hi)
        boxed = jnp.all(jnp.isfinite(lo) & jnp.isfinite(hi))
        first = state.count == 0

        def attempt(pairs):
            """One iteration from x with the newest ``pairs`` pairs of the memory."""
            Wt, M, theta = _compact_model(state, pairs)
            x_c, _, free = cauchy_point(x, g, lo, hi, Wt, M, theta)
            x_bar, backtracked = subspace_point(x, g, lo, hi, x_c, free, Wt, M, theta)
            x_bar = jnp.where(pairs > 0, x_bar, x_c)  # B = I: the Cauchy point (scipy)
            direction = x_bar - x
            longest = jnp.where(
                jnp.any(bounded),
                jnp.where(first, 1.0, jnp.maximum(_longest_step(x, direction, lo, hi), 1.0)),
                jnp.inf)
            norm = jnp.linalg.norm(direction)
            step0 = jnp.where(first & ~boxed,
                              jnp.minimum(1.0 / jnp.maximum(norm, jnp.finfo(x.dtype).tiny),
                                          longest), 1.0).astype(x.dtype)
            # Trials are evaluated at their clipped points: one at the longest step may
            # round to just outside the box, where f may not even be defined.
            result = search(lambda v: value_and_grad(jnp.clip(v, lo, hi)), x, value, g,
                            direction, step0, max_step=longest)
            new_x = jnp.where(result.step == 1, x_bar, x + result.step * direction)
            decrease = -result.step * jnp.vdot(g, direction)
            return (jnp.clip(new_x, lo, hi), result, decrease, (pairs > 0) & backtracked)

        # A failed search with pairs in memory drops them and tries again from x with B =
        # I, as scipy does: a second pass only when some member needs it.
        def again(carry):
            tries, pairs, (_, result, *_), _ = carry
            return (tries == 0) | ((tries == 1) & result.failed & (pairs > 0))

        def body(carry):
            tries, pairs, _, evaluations = carry
            pairs = jnp.where(tries == 0, pairs, 0)
            outcome = attempt(pairs)
            return tries + 1, pairs, outcome, evaluations + outcome[1].evaluations

        blank = jax.eval_shape(attempt, state.pairs)
        blank = jax.tree.map(lambda leaf: jnp.zeros(leaf.shape, leaf.dtype), blank)
        _, pairs, (new_x, result, decrease, backtracked), evaluations = jax.lax.while_loop(
            again, body, (jnp.zeros((), jnp.int32), state.pairs, blank,
                          moved.astype(jnp.int32)))
        status = jnp.where(result.failed, Status.LINE_SEARCH_FAILED, Status.RUNNING)

        s, y = new_x - x, result.grad - g
        stores = ~result.failed & (jnp.vdot(s, y) > jnp.finfo(x.dtype).eps * decrease)
        active = jnp.sum((new_x == lo) | (new_x == hi)).astype(jnp.int32)
        iterate = unravel(new_x)
        new_state = _push(state, s, y, pairs, stores)._replace(
            count=state.count + 1, iterate=iterate, value=result.value, grad=unravel(result.grad),
            evaluations=evaluations, status=status.astype(jnp.int32),
            info=LBFGSBInfo(active, backtracked))
        return jax.tree.map(jnp.subtract, iterate, params), new_state

    return optax.GradientTransformationExtraArgs(init, update)
