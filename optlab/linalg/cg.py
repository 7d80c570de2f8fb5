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
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from optlab.linalg import operators
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
    precond = (lambda r: r) if precond is None else precond
    for name, value in (("tol", tol), ("rtol", rtol)):
        if value is not None and not isinstance(value, jax.core.Tracer) and not value >= 0:
            raise ValueError(f"{name} must be non-negative, got {value}")

    threshold = jnp.asarray(tol, real)
    if rtol is not None:
        threshold = jnp.maximum(threshold, rtol * jnp.linalg.norm(b))

    def classify(residual_norm, iteration, finite) -> jax.Array:
        """The status once x_k is known: non-finite wins, then convergence, then the budget."""
        status = jnp.where(iteration >= max_iters, Status.MAX_ITERS, Status.RUNNING)
        # A zero residual has solved the system, whatever the threshold (tol = 0, b = 0).
        solved = (residual_norm < threshold) | (residual_norm == 0)
        status = jnp.where(solved, Status.CONVERGED, status)
        finite = finite & jnp.isfinite(residual_norm)
        return jnp.where(finite, status, Status.NONFINITE).astype(jnp.int32)

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
        residual_norm = jnp.linalg.norm(r)
        iteration = carry.iteration + 1
        # x_{k+1} = x_k + alpha p_k is finite when alpha and p_k^T A p_k are (and x_k was):
        # scalars to test, not every entry of x in every iteration.
        status = classify(residual_norm, iteration, jnp.isfinite(alpha) & jnp.isfinite(curvature))

        keep = lambda new, old: jnp.where(advance, new, old)  # noqa: E731
        failed = jnp.where(jnp.isnan(curvature), Status.NONFINITE, Status.BREAKDOWN)
        residual_norms = carry.residual_norms
        if residual_norms is not None:
            # An out-of-range index drops the write, so a frozen member's buffer is untouched.
            slot = jnp.where(advance, iteration, history)
            residual_norms = residual_norms.at[slot].set(residual_norm, mode="drop")
        return _Carry(
            x=x,
            r=r,
            p=p,
            rz=keep(rz, carry.rz),
            residual_norm=keep(residual_norm, carry.residual_norm),
            iteration=keep(iteration, carry.iteration),
            status=jnp.where(
                carry.status == Status.RUNNING, keep(status, failed), carry.status
            ).astype(jnp.int32),
            residual_norms=residual_norms,
        )

    r0 = b if zero_start else b - matvec(x0)  # no product for the zero start
    z0 = precond(r0)
    residual_norm0 = jnp.linalg.norm(r0)
    residual_norms = None
    if history:
        residual_norms = jnp.full(history, jnp.nan, real).at[0].set(residual_norm0)
    iteration0 = jnp.zeros((), jnp.int32)
    carry = _Carry(
        x=x0,
        r=r0,
        p=z0,
        rz=jnp.real(jnp.vdot(r0, z0)),
        residual_norm=residual_norm0,
        iteration=iteration0,
        status=classify(residual_norm0, iteration0, jnp.all(jnp.isfinite(x0))),
        residual_norms=residual_norms,
    )
    carry = jax.lax.while_loop(lambda c: c.status == Status.RUNNING, body, carry)
    return CGResult(
        x=carry.x,
        iterations=carry.iteration,
        residual_norm=carry.residual_norm,
        status=carry.status,
        residual_norms=carry.residual_norms,
    )
