"""Conjugate gradients, plain and preconditioned, as one ``lax.while_loop``.

``cg(A, b, x0, precond=M)`` solves ``A x = b`` for symmetric positive definite ``A``
and returns a :class:`CGResult`. Failures are values, not exceptions: the result's
``status`` (an :class:`optlab.Status` code) says whether the residual test held
(``CONVERGED``), the budget ran out (``MAX_ITERS``), ``p^T A p <= 0`` showed that ``A``
(or ``M``) is not positive definite (``BREAKDOWN``), or a NaN/inf appeared
(``NONFINITE``). The function is pure in its array arguments: ``jax.jit`` compiles it
and ``jax.vmap`` batches it (many right-hand sides, many starting points); each member
keeps its own iteration count and status, and a member that has stopped is frozen —
its state is carried unchanged and no division by a zero ``p^T A p`` is made for it.

A complex ``A`` or ``b`` makes a complex system, solved by Hermitian CG: the inner
products conjugate (``r^H z``, ``p^H A p``), so ``A`` (and ``M``) must be Hermitian positive
definite; a real ``A`` with a complex ``b`` solves the real and imaginary parts at once.

The stopping test uses the recursively updated residual ``r_k`` (not ``b - A x_k``
recomputed), as the classic exercises and scipy do: stop when ``||r_k||_2 < tol``,
or ``< max(tol, rtol ||b||_2)`` when ``rtol`` is given.

A CSR matrix stored renumbered (:class:`optlab.linalg.CSRMatrix`'s ``order``) is solved in
its stored numbering: ``b`` and ``x0`` are renumbered once, ``x`` back once.

A vmapped batch of right-hand sides of one real CSR matrix
(:class:`optlab.linalg.CSRMatrix`, with its native kernel), unpreconditioned or with
:func:`optlab.linalg.jacobi`, runs on the CPU as one native step per iteration for the
whole batch (the product, then each member's updates as one task), in place of XLA's
fusions of the same updates, which its CPU cost model splits over threads by size. The
results are those of the loop below up to rounding (the inner products are summed in
another order). Everything else runs that loop.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from optlab.linalg import native, operators
from optlab.status import Status


class CGResult(NamedTuple):
    """What :func:`cg` returns; every field is an array (batched under vmap)."""

    x: jax.Array  # (n,) the last iterate x_k
    iterations: jax.Array  # int32, updates of x applied (0 when x0 already passes the test)
    residual_norm: jax.Array  # ||r_k||_2 of the recursively updated residual
    status: jax.Array  # int32 Status code, never Status.RUNNING
    residual_norms: jax.Array | None  # (history,) ||r_k|| for k = 0..history-1; NaN after the end


class _Carry(NamedTuple):
    x: jax.Array  # (n,) iterate x_k
    r: jax.Array  # (n,) residual r_k = b - A x_k, updated recursively
    p: jax.Array  # (n,) search direction p_k
    rz: jax.Array  # () r_k^T z_k with z_k = M^{-1} r_k
    residual_norm: jax.Array  # () ||r_k||_2
    iteration: jax.Array  # () int32 k
    status: jax.Array  # () int32 Status code
    residual_norms: jax.Array | None  # (history,) or None


def cg(
    A,
    b: jax.Array,
    x0: jax.Array | None = None,
    *,
    precond: Callable[[jax.Array], jax.Array] | None = None,
    tol: float = 1e-7,
    rtol: float | None = None,
    max_iters: int | None = None,
    history: int = 0,
) -> CGResult:
    """Solves ``A x = b`` by (preconditioned) conjugate gradients.

    With ``r_0 = b - A x_0``, ``z_0 = M^{-1} r_0``, ``p_0 = z_0``, iteration ``k`` is

        alpha_k = r_k^T z_k / p_k^T A p_k
        x_{k+1} = x_k + alpha_k p_k
        r_{k+1} = r_k - alpha_k A p_k
        z_{k+1} = M^{-1} r_{k+1}
        beta_k  = r_{k+1}^T z_{k+1} / r_k^T z_k
        p_{k+1} = z_{k+1} + beta_k p_k

    Saad, *Iterative Methods for Sparse Linear Systems*, 2nd ed., Algorithm 6.18 (CG,
    ``M = I``) and Algorithm 9.1 (left-preconditioned CG, which keeps the unpreconditioned
    residual ``r_k``, so the stopping test measures ``||b - A x_k||`` in both cases). The
    algorithm is the same as ``scipy.sparse.linalg.cg``'s; iteration counts on
    ill-conditioned systems agree up to rounding (a few percent over thousands of
    iterations), not exactly.

    Args:
      A: SPD matrix as a dense ``(n, n)`` array, a ``jax.experimental.sparse.BCOO``, a
        scipy sparse matrix, or a callable ``v -> A v`` (see
        :func:`optlab.linalg.operators.as_matvec`).
      b: right-hand side, shape ``(n,)``.
      x0: starting point, shape ``(n,)``; zeros when omitted.
      precond: callable ``r -> z ~ M^{-1} r`` (e.g. :func:`optlab.linalg.jacobi`); none
        when omitted (``M = I``).
      tol: absolute threshold on ``||r_k||_2`` (stop when strictly below, or at a zero
        residual); non-negative.
      rtol: when given, also stop when ``||r_k||_2 < rtol ||b||_2``.
      max_iters: the most updates of ``x`` (a Python int); ``10 n`` when omitted.
      history: record ``||r_k||`` for ``k = 0..history-1`` (entry 0 is ``||b - A x0||``);
        entries after the last iteration are NaN, so a run's length can be read off and
        curves end where the run ended. 0 records nothing.

    Returns:
      A :class:`CGResult`.

    Example:
      >>> import jax.numpy as jnp
      >>> from optlab.linalg import cg
      >>> result = cg(jnp.array([[4.0, 1.0], [1.0, 3.0]]), jnp.array([1.0, 2.0]))
      >>> int(result.iterations), int(result.status)  # two steps for n = 2; 0 = CONVERGED
      (2, 0)
    """
    b = jnp.asarray(b)
    if not jnp.issubdtype(b.dtype, jnp.inexact):
        b = b.astype(jnp.result_type(float))
    if b.ndim != 1:
        raise ValueError(f"b must be a vector, got shape {b.shape} (vmap over right-hand sides)")
    zero_start = x0 is None
    x0 = jnp.zeros_like(b) if zero_start else jnp.asarray(x0, b.dtype)
    if x0.shape != b.shape:
        raise ValueError(f"x0 has shape {x0.shape}, b has shape {b.shape}")
    if max_iters is None:
        max_iters = 10 * b.shape[0]
    if not isinstance(max_iters, int) or max_iters < 0:
        raise ValueError(f"max_iters must be a non-negative int, got {max_iters!r}")
    if not isinstance(history, int) or history < 0:
        raise ValueError(f"history must be a non-negative int, got {history!r}")
    matvec = operators.as_matvec(A)
    out = jax.eval_shape(matvec, b)
    if out.shape != b.shape:
        raise ValueError(f"A maps a vector of shape {b.shape} to shape {out.shape}")
    # A complex A or b makes a complex system: Hermitian CG, whose inner products conjugate
    # (jnp.vdot) and whose p^H A p and r^H z are real for Hermitian positive definite A, M.
    dtype = jnp.result_type(b.dtype, out.dtype)
    b, x0 = b.astype(dtype), x0.astype(dtype)
    real = jnp.finfo(dtype).dtype  # the dtype of norms, thresholds and inner products
    position = None
    if getattr(A, "order", None) is not None:  # a renumbered CSR matrix: solve as stored
        b, x0, position = b[A.order], x0[A.order], A.position
        A, precond = _in_stored_numbering(A, precond)
        matvec = operators.as_matvec(A)
    fused = _fused_inputs(A, precond, dtype)
    precond = (lambda r: r) if precond is None else precond
    for name, value in (("tol", tol), ("rtol", rtol)):
        if value is not None and not isinstance(value, jax.core.Tracer) and not value >= 0:
            raise ValueError(f"{name} must be non-negative, got {value}")

    threshold = jnp.asarray(tol, real)
    if rtol is not None:
        threshold = jnp.maximum(threshold, rtol * jnp.linalg.norm(b))
    steps = _Steps(zero_start, max_iters, history)
    if fused is not None:
        result = _csr_cg(steps)(*fused, b, x0, threshold)
    else:
        result = _solve(matvec, precond, b, x0, threshold, steps)
    return result if position is None else result._replace(x=result.x[position])


def _in_stored_numbering(A, precond):
    """``(A, precond)`` of a renumbered CSR matrix's system in its stored numbering: the
    matrix as it lies (every product then reads a row's columns near the row, with no pass
    to renumber vectors), a Jacobi preconditioner's diagonal renumbered once, another
    preconditioner applied in the caller's numbering (two passes per application). ``cg``
    renumbers ``b`` and ``x0`` in and ``x`` out; norms and inner products do not change,
    so the run is the caller's up to rounding."""
    from optlab.linalg import preconditioners

    order, position = A.order, A.position
    stored = dataclasses.replace(A, order=None, position=None)
    if precond is None:
        return stored, None
    if isinstance(precond, preconditioners.Jacobi):
        return stored, preconditioners.Jacobi(precond.inverse_diagonal[order])
    return stored, lambda r: precond(r[position])[order]


class _Steps(NamedTuple):
    zero_start: bool  # x0 is zeros: r_0 = b, no product
    max_iters: int
    history: int


def _classify(residual_norm, iteration, finite, threshold, max_iters: int) -> jax.Array:
    """The status once x_k is known: non-finite wins, then convergence, then the budget."""
    status = jnp.where(iteration >= max_iters, Status.MAX_ITERS, Status.RUNNING)
    # A zero residual has solved the system, whatever the threshold (tol = 0, b = 0).
    solved = (residual_norm < threshold) | (residual_norm == 0)
    status = jnp.where(solved, Status.CONVERGED, status)
    finite = finite & jnp.isfinite(residual_norm)
    return jnp.where(finite, status, Status.NONFINITE).astype(jnp.int32)


def _settle(carry: _Carry, rz, curvature, alpha, residual_norm, threshold, steps: _Steps):
    """A member's scalars after its step (``rz`` = r^T z, ``curvature`` = p^T A p and
    ``alpha`` of the step, ``residual_norm`` of the new r): only a member still running on
    positive curvature advances; one that meets a NaN or a non-positive curvature stops.
    Returns the new ``(rz, residual_norm, iteration, status, residual_norms)``."""
    advance = (carry.status == Status.RUNNING) & (curvature > 0)
    iteration = carry.iteration + 1
    # x_{k+1} = x_k + alpha p_k is finite when alpha and p_k^T A p_k are (and x_k was):
    # scalars to test, not every entry of x in every iteration.
    status = _classify(residual_norm, iteration, jnp.isfinite(alpha) & jnp.isfinite(curvature),
                       threshold, steps.max_iters)
    keep = lambda new, old: jnp.where(advance, new, old)  # noqa: E731
    failed = jnp.where(jnp.isnan(curvature), Status.NONFINITE, Status.BREAKDOWN)
    residual_norms = carry.residual_norms
    if residual_norms is not None:
        # An out-of-range index drops the write, so a frozen member's buffer is untouched.
        slot = jnp.where(advance, iteration, steps.history)
        residual_norms = residual_norms.at[slot].set(residual_norm, mode="drop")
    status = jnp.where(carry.status == Status.RUNNING, keep(status, failed), carry.status)
    return (keep(rz, carry.rz), keep(residual_norm, carry.residual_norm),
            keep(iteration, carry.iteration), status.astype(jnp.int32), residual_norms)


def _start(matvec, precond, b, x0, threshold, steps: _Steps) -> _Carry:
    """The carry at ``x_0``: ``r_0``, ``z_0 = p_0``, and the status of ``x_0`` itself."""
    real = jnp.finfo(b.dtype).dtype
    r0 = b if steps.zero_start else b - matvec(x0)  # no product for the zero start
    z0 = precond(r0)
    residual_norm0 = jnp.linalg.norm(r0)
    residual_norms = None
    if steps.history:
        residual_norms = jnp.full(steps.history, jnp.nan, real).at[0].set(residual_norm0)
    iteration0 = jnp.zeros((), jnp.int32)
    return _Carry(
        x=x0,
        r=r0,
        p=z0,
        rz=jnp.real(jnp.vdot(r0, z0)),
        residual_norm=residual_norm0,
        iteration=iteration0,
        status=_classify(residual_norm0, iteration0, jnp.all(jnp.isfinite(x0)), threshold,
                         steps.max_iters),
        residual_norms=residual_norms,
    )


def _result(carry: _Carry) -> CGResult:
    return CGResult(x=carry.x, iterations=carry.iteration, residual_norm=carry.residual_norm,
                    status=carry.status, residual_norms=carry.residual_norms)


def _solve(matvec, precond, b, x0, threshold, steps: _Steps) -> CGResult:
    """The iteration of :func:`cg` in JAX, for one right-hand side (vmap batches it)."""

    def body(carry: _Carry) -> _Carry:
        q = matvec(carry.p)
        curvature = jnp.real(jnp.vdot(carry.p, q))
        # Under vmap the body also runs for members that have stopped; only members still
        # running on positive curvature take the step, so a converged member (p ~ 0) or a
        # broken-down one never divides by a zero or negative p^T A p. A member that does
        # not advance takes a zero step: x and r stay as they are. (Its p is never used
        # again: it stops here, or has stopped.)
        advance = (carry.status == Status.RUNNING) & (curvature > 0)
        alpha = jnp.where(advance, carry.rz / jnp.where(advance, curvature, 1), 0)
        x = carry.x + alpha * carry.p
        r = carry.r - alpha * q
        z = precond(r)
        rz = jnp.real(jnp.vdot(r, z))
        beta = rz / jnp.where(advance & (carry.rz != 0), carry.rz, 1)
        p = z + beta * carry.p
        settled = _settle(carry, rz, curvature, alpha, jnp.linalg.norm(r), threshold, steps)
        return _Carry(x, r, p, *settled)

    carry = _start(matvec, precond, b, x0, threshold, steps)
    return _result(jax.lax.while_loop(lambda c: c.status == Status.RUNNING, body, carry))


def _fused_inputs(A, precond, dtype):
    """``(A, inverse diagonal or None)`` where a vmapped batch of right-hand sides can run
    the native CG step: a real CSR matrix whose native kernel is loaded, unpreconditioned
    or Jacobi-preconditioned; None otherwise."""
    from optlab.linalg import csr, preconditioners

    if (not isinstance(A, csr.CSRMatrix) or native.native_status() is not None
            or dtype not in (jnp.float32, jnp.float64) or A.data.dtype != dtype):
        return None
    if precond is None:
        return A, None
    if isinstance(precond, preconditioners.Jacobi) and precond.inverse_diagonal.dtype == dtype:
        return A, precond.inverse_diagonal
    return None


@functools.cache
def _csr_cg(steps: _Steps):
    """CG on a CSR matrix whose vmapped batch of right-hand sides (the matrix and the
    preconditioner shared) is one loop of native steps on the CPU (``optlab_csr_cg_step``):
    one call per iteration does the batched product and every member's vector updates,
    where XLA would split each update over threads. Unbatched, or with a batched matrix,
    it is :func:`_solve`."""
    def plain(A, inverse_diagonal, b, x0, threshold):
        return _solve(operators.as_matvec(A), _jacobi(inverse_diagonal), b, x0, threshold,
                      steps)

    @jax.custom_batching.custom_vmap
    def solve(A, inverse_diagonal, b, x0, threshold):
        return plain(A, inverse_diagonal, b, x0, threshold)

    @solve.def_vmap
    def solve_vmap(axis_size, in_batched, A, inverse_diagonal, b, x0, threshold):
        A_batched, diagonal_batched, *rest = in_batched
        axes = [0 if batched else None for batched in rest]
        if any(jax.tree.leaves(A_batched)) or any(jax.tree.leaves(diagonal_batched)):
            out = jax.vmap(plain, in_axes=(
                jax.tree.map(lambda batched: 0 if batched else None, A_batched),
                jax.tree.map(lambda batched: 0 if batched else None, diagonal_batched),
                *axes))(A, inverse_diagonal, b, x0, threshold)
        else:
            b, x0, threshold = (x if batched else jnp.broadcast_to(x, (axis_size, *x.shape))
                                for x, batched in zip((b, x0, threshold), rest))
            out = jax.lax.platform_dependent(
                A, inverse_diagonal, b, x0, threshold,
                cpu=functools.partial(_batched_native, steps=steps),
                default=jax.vmap(plain, in_axes=(None, None, 0, 0, 0)))
        return out, jax.tree.map(lambda _: True, out)

    return solve


def _jacobi(inverse_diagonal):
    from optlab.linalg import preconditioners

    if inverse_diagonal is None:
        return lambda r: r
    return preconditioners.Jacobi(inverse_diagonal)


def _batched_native(A, inverse_diagonal, B, X0, thresholds, *, steps: _Steps) -> CGResult:
    """CG on every row of ``B`` at once: one native step per iteration, the members'
    scalars settled by :func:`_settle` (vmapped, on arrays of the batch's size)."""
    batch, n = B.shape
    matvec, precond = operators.as_matvec(A), _jacobi(inverse_diagonal)
    carry = jax.vmap(lambda b, x0, threshold: _start(matvec, precond, b, x0, threshold, steps))(
        B, X0, thresholds)
    diagonal = jnp.zeros((0,), B.dtype) if inverse_diagonal is None else inverse_diagonal
    vectors = jax.ShapeDtypeStruct((batch, n), B.dtype)
    scalars = jax.ShapeDtypeStruct((batch,), B.dtype)
    step = jax.ffi.ffi_call(native.CSR_CG_STEP, (vectors,) * 4 + (scalars,) * 4,
                            input_output_aliases={4: 0, 5: 1, 6: 2}, vmap_method="sequential")
    settle = jax.vmap(functools.partial(_settle, steps=steps))

    def body(carry: _Carry) -> _Carry:
        running = (carry.status == Status.RUNNING).astype(jnp.int32)
        x, r, p, _, rz, curvature, alpha, residual_norm = step(
            A.indptr, A.indices, A.data, diagonal, carry.x, carry.r, carry.p, carry.rz, running)
        settled = settle(carry, rz, curvature, alpha, residual_norm, thresholds)
        return _Carry(x, r, p, *settled)

    carry = jax.lax.while_loop(lambda c: jnp.any(c.status == Status.RUNNING), body, carry)
    return _result(carry)
