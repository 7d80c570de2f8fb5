"""Newton and quasi-Newton methods, and the plain gradient methods they are measured against.

Every method is an ``optax.GradientTransformationExtraArgs``: ``update(updates, state,
params, *, value, grad, value_fn)`` needs the objective's value and gradient at
``params`` and the objective itself, which the line search evaluates along the search
direction. ``updates`` is the gradient the direction is built from (a preceding
transformation in a chain may have changed it); ``grad`` is the true gradient, used for
the line search's slope. Parameters may be any pytree; the methods work on its
flattening (``jax.flatten_util.ravel_pytree``). Parameters must be real (float64
recommended: the secant updates and Hessian solves lose digits in float32); complex ones
are refused with a ``TypeError`` when the update is traced.

The line-search methods keep the objective's value and gradient at the point they
moved to in their state (fields ``value`` and ``grad``), and report failures in a
``status`` field (:class:`optlab.Status`): :func:`optlab.minimize` reads both.

Quasi-Newton methods store an approximation ``H`` of the *inverse* Hessian and step
along ``d = -H u``. The dense ones share one skeleton, :func:`quasi_newton`, whose hook
turns the secant pair ``s = x_{k+1} - x_k``, ``y = u_{k+1} - u_k`` (and ``H y``) into a
low-rank correction ``H <- H + U C U^T``; BFGS and SR1 only fill it in. Keeping
``H u`` from the previous step, each step costs one ``n x n`` matrix-vector product and
one fused rank-``k`` update: ``H y = H u_{k+1} - H u_k`` and the new direction follows
from vectors.

References: J. Nocedal and S. J. Wright, *Numerical Optimization*, 2nd ed., Springer
2006 (N&W below), chapters 3, 6 and 7.
"""

from __future__ import annotations

from typing import Any, Callable, Literal, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree

from optlab import first_order
from optlab import line_search as line_searches
from optlab.linalg import cg
from optlab.status import Status

PyTree = Any
InitialHessian = Literal["identity", "scaled", "exact"]


def gradient_descent(learning_rate: optax.ScalarOrSchedule) -> optax.GradientTransformationExtraArgs:
    """``x <- x - lr * g`` with a fixed learning rate or an optax schedule (:func:`optlab.sgd`)."""
    return optax.with_extra_args_support(first_order.sgd(learning_rate))


def _flat(value_fn: Callable, params: PyTree):
    """The flat point, the map back to a pytree, and value-and-grad of the flat objective."""
    x, unravel = ravel_pytree(params)
    if jnp.iscomplexobj(x):
        raise TypeError("the second-order rules take real parameters, got complex ones; "
                        "the first-order rules (sgd, adam, ...) take complex parameters")
    return x, unravel, jax.value_and_grad(lambda v: value_fn(unravel(v)))


def _first_step(u: jax.Array) -> jax.Array:
    """First trial step along ``-u`` when nothing is known of the scale: move at most 1.

    The same guess as scipy's BFGS, whose first direction is also ``-g``.
    """
    return jnp.minimum(1.0, 1.0 / jnp.maximum(jnp.linalg.norm(u), jnp.finfo(u.dtype).tiny))


def _outcome(result: line_searches.LineSearchResult, direction, unravel):
    """Step, updates, cached evaluation and status from a line search's result."""
    step = result.step * direction
    status = jnp.where(result.failed, Status.LINE_SEARCH_FAILED, Status.RUNNING)
    return step, unravel(step), result.value, unravel(result.grad), status.astype(jnp.int32)


def _search_name_or_none(line_search):
    return None if line_search is None else line_searches.get(line_search)


class SteepestDescentState(NamedTuple):
    step_size: jax.Array  # () last accepted step length (0 before the first step)
    slope: jax.Array  # () last directional derivative g.d
    value: jax.Array  # () objective at the current iterate
    grad: PyTree  # gradient at the current iterate
    evaluations: jax.Array  # () int32, of the objective and gradient in the last step
    status: jax.Array  # () int32 Status


def steepest_descent(
    line_search: str | line_searches.LineSearch = "wolfe",
) -> optax.GradientTransformationExtraArgs:
    """Steepest descent ``x <- x - t g`` with ``t`` from a line search.

    The first trial step of each search extrapolates the last one so that the first-order
    change is the same (N&W eq. 3.60): ``t0 = t_prev * (g_prev.d_prev) / (g.d)``. With
    ``line_search="exact"`` on a quadratic this is the classic exact-step method.
    """
    search = line_searches.get(line_search)

    def init(params):
        flat, _ = ravel_pytree(params)
        zero = jnp.zeros((), flat.dtype)
        return SteepestDescentState(zero, zero, jnp.full((), jnp.inf, flat.dtype), params,
                                    jnp.zeros((), jnp.int32), jnp.asarray(-1, jnp.int32))

    def update(updates, state, params, *, value, grad, value_fn, **extra):
        del extra
        x, unravel, value_and_grad = _flat(value_fn, params)
        u, g = ravel_pytree(updates)[0], ravel_pytree(grad)[0]
        direction = -u
        slope = jnp.vdot(g, direction)
        extrapolated = state.step_size * state.slope / jnp.where(slope < 0, slope, -1.0)
        step0 = jnp.where(state.step_size > 0, extrapolated, _first_step(u))
        result = search(value_and_grad, x, value, g, direction, step0)
        _, updates, new_value, new_grad, status = _outcome(result, direction, unravel)
        return updates, SteepestDescentState(result.step, slope, new_value, new_grad,
                                             result.evaluations, status)

    return optax.GradientTransformationExtraArgs(init, update)


class NewtonState(NamedTuple):
    value: jax.Array  # () objective at the current iterate
    grad: PyTree  # gradient at the current iterate
    evaluations: jax.Array  # () int32, of the objective and gradient in the last step
    status: jax.Array  # () int32 Status: SINGULAR when the Hessian is singular
    # () bool: the last Hessian formed had an eigenvalue below -rcond * max|eigenvalue|;
    # optlab.minimize then reports a converged run as SADDLE
    negative_curvature: jax.Array


def newton(
    line_search: str | line_searches.LineSearch | None = None,
    *,
    rcond: float | None = None,
    min_curvature: float | None = None,
) -> optax.GradientTransformationExtraArgs:
    """Newton's method ``x <- x - t H(x)^{-1} g`` with the exact Hessian of ``value_fn``.

    The Hessian is formed with ``jax.hessian`` (forward over reverse mode) and solved
    through its eigendecomposition. A Hessian whose smallest eigenvalue in magnitude is
    below ``rcond * max|eigenvalue|`` (default ``n * machine eps``) stops the run with
    status ``SINGULAR`` instead of producing infinities. An indefinite Hessian is not an
    error: without a line search (``t = 1``, the default, the classic pure Newton
    method) the step is taken as it is, which is how Newton's method can cycle; with a
    line search a step that is not a descent direction ends the run as
    ``LINE_SEARCH_FAILED``. A run that converges where the last Hessian formed has an
    eigenvalue below ``-rcond * max|eigenvalue|`` ends as ``SADDLE``, not ``CONVERGED``:
    the gradient test holds at a stationary point that is not a minimum.

    ``min_curvature=delta`` makes it the modified Newton method of N&W section 3.4: each
    eigenvalue ``l`` of the Hessian is replaced by ``max(|l|, delta)``, so the modified
    Hessian is positive definite, every step descends, and nothing is singular, whatever
    ``rcond``. With a line search this is the damped, regularized Newton method that
    converges where pure Newton cycles: ``newton("wolfe", min_curvature=delta)`` is the
    robust choice (pure Newton can stop at a saddle point or cycle).
    """
    search = _search_name_or_none(line_search)
    if min_curvature is not None and not min_curvature > 0:
        raise ValueError(f"min_curvature must be positive, got {min_curvature!r}")

    def init(params):
        flat, _ = ravel_pytree(params)
        return NewtonState(jnp.full((), jnp.inf, flat.dtype), params, jnp.zeros((), jnp.int32),
                           jnp.asarray(-1, jnp.int32), jnp.zeros((), bool))

    def update(updates, state, params, *, value, grad, value_fn, **extra):
        del state, extra
        x, unravel, value_and_grad = _flat(value_fn, params)
        u, g = ravel_pytree(updates)[0], ravel_pytree(grad)[0]
        hessian = jax.hessian(lambda v: value_fn(unravel(v)))(x)
        eigenvalues, eigenvectors = jnp.linalg.eigh(hessian)
        scale = (x.size * jnp.finfo(x.dtype).eps if rcond is None else rcond) * jnp.max(
            jnp.abs(eigenvalues))
        negative_curvature = eigenvalues[0] < -scale
        if min_curvature is not None:
            eigenvalues = jnp.maximum(jnp.abs(eigenvalues), min_curvature)
        magnitudes = jnp.abs(eigenvalues)
        tolerance = (x.size * jnp.finfo(x.dtype).eps if rcond is None else rcond) * jnp.max(
            magnitudes
        )
        # The modified eigenvalues are all >= min_curvature > 0: nothing is singular then.
        singular = (~(jnp.min(magnitudes) > tolerance) if min_curvature is None
                    else jnp.zeros((), bool))
        safe = jnp.where(singular, 1.0, eigenvalues)
        direction = -eigenvectors @ ((eigenvectors.T @ u) / safe)
        direction = jnp.where(singular, 0.0, direction)
        if search is None:
            new_value, new_grad = value_and_grad(x + direction)
            result = line_searches.LineSearchResult(
                jnp.ones((), x.dtype), new_value, new_grad, jnp.ones((), jnp.int32), singular
            )
        else:
            result = search(value_and_grad, x, value, g, direction, jnp.ones((), x.dtype))
        _, updates, new_value, new_grad, status = _outcome(result, direction, unravel)
        status = jnp.where(singular, Status.SINGULAR, status).astype(jnp.int32)
        return updates, NewtonState(new_value, new_grad, result.evaluations, status,
                                    negative_curvature)

    return optax.GradientTransformationExtraArgs(init, update)


class NewtonCGInfo(NamedTuple):
    """What a Newton-CG step reports (recorded per iteration by ``minimize``)."""

    cg_iterations: jax.Array  # () int32, CG iterations: Hessian-vector products
    negative_curvature: jax.Array  # () bool: CG met a direction with p.Hp <= 0


class NewtonCGState(NamedTuple):
    value: jax.Array  # () objective at the current iterate
    grad: PyTree  # gradient at the current iterate
    evaluations: jax.Array  # () int32, of the objective and gradient in the last step
    status: jax.Array  # () int32 Status
    info: NewtonCGInfo


def newton_cg(
    line_search: str | line_searches.LineSearch = "wolfe",
    *,
    preconditioner: Callable[[PyTree], Callable[[PyTree], PyTree]] | None = None,
    max_cg_iters: int | None = None,
) -> optax.GradientTransformationExtraArgs:
    """Truncated Newton: the Newton system solved inexactly by CG, then a line search
    (N&W Algorithm 7.1, line-search Newton-CG).

    The direction ``p`` approximately solves ``H p = -g`` by
    :func:`optlab.linalg.cg` from ``p = 0`` on Hessian-vector products (forward over
    reverse mode: ``jax.linearize`` of the gradient, so the Hessian is never formed and
    memory stays O(n)), stopped when the residual falls below
    ``min(0.5, sqrt(||g||)) ||g||`` (the forcing sequence that makes the convergence
    superlinear) or after ``max_cg_iters`` products (default ``20 n``, as scipy's
    ``"Newton-CG"``). When CG meets a direction of non-positive curvature it stops and
    the iterate it had is the direction; at the first iteration that is ``-g``. The
    line search (strong Wolfe by default) starts from the step 1.

    ``preconditioner(params)`` may return a map ``r -> M^{-1} r`` on pytrees like the
    parameters (``M`` symmetric positive definite, e.g. a diagonal approximation of the
    Hessian at ``params``); CG then runs preconditioned. The CG iterations and whether
    negative curvature was met are in the state's ``info`` (:class:`NewtonCGInfo`).

    >>> import jax.numpy as jnp, optlab
    >>> fun = optlab.problems.rosenbrock
    >>> result = optlab.minimize(fun, jnp.array([-1.2, 1.0]), optlab.newton_cg(),
    ...                          stop=optlab.stopping.grad_norm(1e-8), max_iters=100)
    >>> optlab.Status(int(result.status)).name, bool(jnp.allclose(result.params, 1.0))
    ('CONVERGED', True)
    """
    search = line_searches.get(line_search)
    if max_cg_iters is not None and (not isinstance(max_cg_iters, int) or max_cg_iters < 1):
        raise ValueError(f"max_cg_iters must be a positive int, got {max_cg_iters!r}")

    def init(params):
        flat, _ = ravel_pytree(params)
        info = NewtonCGInfo(jnp.zeros((), jnp.int32), jnp.zeros((), bool))
        return NewtonCGState(jnp.full((), jnp.inf, flat.dtype), params, jnp.zeros((), jnp.int32),
                             jnp.asarray(Status.RUNNING, jnp.int32), info)

    def update(updates, state, params, *, value, grad, value_fn, **extra):
        del state, extra
        x, unravel, value_and_grad = _flat(value_fn, params)
        u, g = ravel_pytree(updates)[0], ravel_pytree(grad)[0]
        _, hessian_product = jax.linearize(lambda v: value_and_grad(v)[1], x)
        precond = None
        if preconditioner is not None:
            apply = preconditioner(params)
            precond = lambda r: ravel_pytree(apply(unravel(r)))[0]  # noqa: E731
        norm = jnp.linalg.norm(u)
        solve = cg(hessian_product, -u, precond=precond,
                   tol=jnp.minimum(0.5, jnp.sqrt(norm)) * norm,
                   max_iters=20 * x.size if max_cg_iters is None else max_cg_iters)
        negative = solve.status == Status.BREAKDOWN
        direction = jnp.where(negative & (solve.iterations == 0), -u, solve.x)
        result = search(value_and_grad, x, value, g, direction, jnp.ones((), x.dtype))
        _, updates, new_value, new_grad, status = _outcome(result, direction, unravel)
        info = NewtonCGInfo(solve.iterations, negative)
        return updates, NewtonCGState(new_value, new_grad, result.evaluations, status, info)

    return optax.GradientTransformationExtraArgs(init, update)


class NonlinearCGInfo(NamedTuple):
    """What a nonlinear-CG step reports (recorded per iteration by ``minimize``)."""

    beta: jax.Array  # () the beta of the direction taken (0 on a restart)
    restarted: jax.Array  # () bool: the direction was -g (first, periodic or no descent)


class NonlinearCGState(NamedTuple):
    count: jax.Array  # () int32, steps taken
    direction: jax.Array  # (n,) d_{k-1}
    gradient: jax.Array  # (n,) u_{k-1}
    previous_value: jax.Array  # () f(x_{k-1}), for the first trial step
    value: jax.Array  # () objective at the current iterate
    grad: PyTree  # gradient at the current iterate
    evaluations: jax.Array  # () int32, of the objective and gradient in the last step
    status: jax.Array  # () int32 Status
    info: NonlinearCGInfo


_BETAS = ("fr", "pr+", "hs", "dy", "hz")
_SUFFICIENT_DESCENT = 0.01  # scipy's sigma_3


def _beta(rule: str, u, u_prev, d_prev):
    """beta_k of the direction d_k = -u_k + beta_k d_{k-1} (N&W section 5.2; Hager and
    Zhang, SIAM J. Optim. 16(1), 2005, for "hz")."""
    y = u - u_prev
    tiny = jnp.finfo(u.dtype).tiny
    safe = lambda a: jnp.where(jnp.abs(a) > tiny, a, tiny)  # noqa: E731
    if rule == "fr":
        return jnp.vdot(u, u) / safe(jnp.vdot(u_prev, u_prev))
    if rule == "pr+":
        return jnp.maximum(0.0, jnp.vdot(u, y) / safe(jnp.vdot(u_prev, u_prev)))
    dy = jnp.vdot(d_prev, y)
    if rule == "hs":
        return jnp.vdot(u, y) / safe(dy)
    if rule == "dy":
        return jnp.vdot(u, u) / safe(dy)
    # Hager-Zhang, with their lower bound eta_k = -1 / (||d|| min(0.01, ||u_prev||)).
    beta = jnp.vdot(y - 2.0 * d_prev * jnp.vdot(y, y) / safe(dy), u) / safe(dy)
    bound = -1.0 / safe(jnp.linalg.norm(d_prev) * jnp.minimum(0.01, jnp.linalg.norm(u_prev)))
    return jnp.maximum(beta, bound)


def nonlinear_cg(
    beta: str = "pr+",
    line_search: str | line_searches.LineSearch | None = None,
    *,
    restart: int | None = None,
) -> optax.GradientTransformationExtraArgs:
    """Nonlinear conjugate gradients: ``d_k = -g_k + beta_k d_{k-1}`` with a line search
    (N&W Algorithm 5.4 and section 5.2).

    ``beta`` names the formula, with ``y = g_k - g_{k-1}``: ``"fr"`` Fletcher–Reeves
    ``g_k.g_k / g_{k-1}.g_{k-1}``; ``"pr+"`` Polak–Ribière+ ``max(0, g_k.y / g_{k-1}.g_{k-1})``
    (scipy's ``"CG"``); ``"hs"`` Hestenes–Stiefel ``g_k.y / d_{k-1}.y``; ``"dy"``
    Dai–Yuan ``g_k.g_k / d_{k-1}.y``; ``"hz"`` Hager–Zhang ``(y - 2 d_{k-1} |y|^2 /
    d_{k-1}.y).g_k / d_{k-1}.y``, bounded below as in their paper. The search restarts
    along ``-g`` on the first step, every ``restart`` steps when that is given (default:
    never, as scipy), and whenever ``d_k`` descends too little,
    ``g_k.d_k > -0.01 g_k.g_k`` (Powell's safeguard, scipy's too). The ``beta`` taken and
    the restarts are in the state's ``info`` (:class:`NonlinearCGInfo`).

    The line search defaults to strong Wolfe with ``c2 = 0.4`` (scipy's; ``c2 < 1/2``
    makes every Fletcher–Reeves direction descend). Its first trial step is
    ``min(1, 1.01 * 2 (f_k - f_{k-1}) / g_k.d_k)``, as in scipy (``min(1, 1 / ||g||)``
    on the first step). With ``line_search="exact"`` on a quadratic every
    formula is linear CG and ends in at most ``n`` steps.
    """
    if beta not in _BETAS:
        raise ValueError(f"beta must be one of {', '.join(_BETAS)}, got {beta!r}")
    if restart is not None and (not isinstance(restart, int) or restart < 1):
        raise ValueError(f"restart must be a positive int, got {restart!r}")
    search = (line_searches.strong_wolfe(c2=0.4) if line_search is None
              else line_searches.get(line_search))

    def init(params):
        flat, _ = ravel_pytree(params)
        zeros, zero = jnp.zeros_like(flat), jnp.zeros((), flat.dtype)
        return NonlinearCGState(
            count=jnp.zeros((), jnp.int32), direction=zeros, gradient=zeros,
            previous_value=jnp.full((), jnp.inf, flat.dtype),
            value=jnp.full((), jnp.inf, flat.dtype), grad=params,
            evaluations=jnp.zeros((), jnp.int32),
            status=jnp.asarray(Status.RUNNING, jnp.int32),
            info=NonlinearCGInfo(zero, jnp.ones((), bool)))

    def update(updates, state, params, *, value, grad, value_fn, **extra):
        del extra
        x, unravel, value_and_grad = _flat(value_fn, params)
        u, g = ravel_pytree(updates)[0], ravel_pytree(grad)[0]
        fresh = state.count == 0
        if restart is not None:
            fresh |= state.count % restart == 0
        b = jnp.where(fresh, 0.0, _beta(beta, u, state.gradient, state.direction))
        direction = -u + b * state.direction
        slope = jnp.vdot(u, direction)
        # Powell's safeguard, as scipy: a direction that descends too little restarts.
        descends = jnp.isfinite(slope) & (slope <= -_SUFFICIENT_DESCENT * jnp.vdot(u, u))
        restarted = fresh | ~descends
        direction = jnp.where(descends, direction, -u)
        slope = jnp.where(descends, slope, -jnp.vdot(u, u))
        b = jnp.where(descends, b, 0.0)
        # scipy's first trial: the step that repeats the last decrease along a quadratic.
        guess = 1.01 * 2.0 * (value - state.previous_value) / slope
        step0 = jnp.where(state.count == 0, _first_step(u),
                          jnp.where(jnp.isfinite(guess) & (guess > 0),
                                    jnp.minimum(1.0, guess), 1.0)).astype(x.dtype)
        result = search(value_and_grad, x, value, g, direction, step0)
        _, updates, new_value, new_grad, status = _outcome(result, direction, unravel)
        return updates, NonlinearCGState(
            count=state.count + 1, direction=direction, gradient=u,
            previous_value=value, value=new_value, grad=new_grad,
            evaluations=result.evaluations, status=status,
            info=NonlinearCGInfo(b, restarted))

    return optax.GradientTransformationExtraArgs(init, update)


class QuasiNewtonState(NamedTuple):
    count: jax.Array  # () int32, steps taken
    inverse_hessian: jax.Array  # (n, n) H used for the last direction
    step: jax.Array  # (n,) s = x_k - x_{k-1}
    gradient: jax.Array  # (n,) u_{k-1}, the gradient the last direction was built from
    inverse_hessian_gradient: jax.Array  # (n,) H u_{k-1}
    value: jax.Array  # () objective at the current iterate
    grad: PyTree  # gradient at the current iterate
    evaluations: jax.Array  # () int32, of the objective and gradient in the last step
    status: jax.Array  # () int32 Status


# A correction maps (s, y, H y) to (U, C) with U of shape (n, k) and C of shape (k, k),
# so that the updated inverse Hessian is H + U C U^T; C = 0 skips the update.
Correction = Callable[[jax.Array, jax.Array, jax.Array], tuple[jax.Array, jax.Array]]


def quasi_newton(
    correction: Correction,
    *,
    init: InitialHessian = "identity",
    line_search: str | line_searches.LineSearch = "wolfe",
) -> optax.GradientTransformationExtraArgs:
    """A dense quasi-Newton method from its inverse-Hessian correction.

    Args:
      correction: the method's hook, ``(s, y, Hy) -> (U, C)`` (see :func:`bfgs`).
      init: the first inverse Hessian. ``"identity"``: ``H0 = I``, as scipy.
        ``"scaled"``: ``H0 = I`` for the first step, then ``(s.y / y.y) I`` before the
        first update (N&W eq. 6.20). ``"exact"``: the inverse of the exact Hessian at
        ``x0``, formed on the first call with ``jax.hessian`` -- a reference point, not a
        practical method: on a quadratic it makes the first step Newton's. (Under
        ``jax.vmap`` the first-call branch is a select, so the Hessian is formed on
        every step; use it for small problems.)
      line_search: ``"wolfe"`` (default), ``"backtracking"``, ``"exact"`` or a callable.

    A direction that is not a descent direction (possible for SR1, whose ``H`` may be
    indefinite) resets ``H`` to the identity and steps along ``-u`` instead.
    """
    if init not in ("identity", "scaled", "exact"):
        raise ValueError(f"init must be 'identity', 'scaled' or 'exact', got {init!r}")
    search = line_searches.get(line_search)

    def init_fn(params):
        flat, _ = ravel_pytree(params)
        n, dtype = flat.size, flat.dtype
        zeros = jnp.zeros(n, dtype)
        return QuasiNewtonState(
            count=jnp.zeros((), jnp.int32),
            inverse_hessian=jnp.eye(n, dtype=dtype),
            step=zeros,
            gradient=zeros,
            inverse_hessian_gradient=zeros,
            value=jnp.full((), jnp.inf, dtype),
            grad=params,
            evaluations=jnp.zeros((), jnp.int32),
            status=jnp.asarray(Status.RUNNING, jnp.int32),
        )

    def update_fn(updates, state, params, *, value, grad, value_fn, **extra):
        del extra
        x, unravel, value_and_grad = _flat(value_fn, params)
        u, g = ravel_pytree(updates)[0], ravel_pytree(grad)[0]
        first = state.count == 0
        h = state.inverse_hessian
        if init == "exact":
            h = jax.lax.cond(first, lambda: _exact_inverse_hessian(value_fn, unravel, x), lambda: h)
        hu = h @ u
        s, y = state.step, u - state.gradient
        scale = jnp.ones((), x.dtype)
        if init == "scaled":
            # Before the first update, H0 = I becomes (s.y / y.y) I.
            yy = jnp.vdot(y, y)
            scale = jnp.where((state.count == 1) & (yy > 0), jnp.vdot(s, y) / jnp.where(yy > 0, yy, 1.0), 1.0)
            scale = jnp.where(scale > 0, scale, 1.0)
        hu, hy = scale * hu, scale * (hu - state.inverse_hessian_gradient)
        basis, coefficients = correction(s, y, hy)
        coefficients = jnp.where(first, 0.0, coefficients)
        hu = hu + basis @ (coefficients @ (basis.T @ u))
        descent = jnp.vdot(u, hu) > 0
        direction = jnp.where(descent, -hu, -u)
        hu = jnp.where(descent, hu, u)
        # One fused pass over H: scale, rank-k correction, and reset when not descending.
        factors = basis @ coefficients
        corrected = scale * h + sum(
            factors[:, i, None] * basis[None, :, i] for i in range(basis.shape[1])
        )
        h = jnp.where(descent, corrected, jnp.eye(x.size, dtype=x.dtype))

        step0 = jnp.ones((), x.dtype)
        if init != "exact":
            step0 = jnp.where(first, _first_step(u), step0)
        result = search(value_and_grad, x, value, g, direction, step0)
        step, updates, new_value, new_grad, status = _outcome(result, direction, unravel)
        new_state = QuasiNewtonState(
            count=state.count + 1,
            inverse_hessian=h,
            step=step,
            gradient=u,
            inverse_hessian_gradient=hu,
            value=new_value,
            grad=new_grad,
            evaluations=result.evaluations,
            status=status,
        )
        return updates, new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _exact_inverse_hessian(value_fn, unravel, x):
    return jnp.linalg.inv(jax.hessian(lambda v: value_fn(unravel(v)))(x))


def bfgs_correction(s: jax.Array, y: jax.Array, hy: jax.Array):
    """BFGS: ``H <- (I - r s y^T) H (I - r y s^T) + r s s^T`` with ``r = 1 / y.s`` (N&W 6.17).

    Expanded as ``H + U C U^T`` with ``U = [s, Hy]``. Skipped unless the curvature
    condition ``y.s > 0`` holds (relative to ``eps ||s|| ||y||``), which keeps ``H``
    positive definite.
    """
    sy = jnp.vdot(s, y)
    ok = sy > jnp.finfo(s.dtype).eps * jnp.linalg.norm(s) * jnp.linalg.norm(y)
    rho = jnp.where(ok, 1.0 / jnp.where(ok, sy, 1.0), 0.0)
    yhy = jnp.vdot(y, hy)
    coefficients = jnp.array([[rho + rho**2 * yhy, -rho], [-rho, 0.0]])
    return jnp.stack([s, hy], axis=1), coefficients


def sr1_correction(s: jax.Array, y: jax.Array, hy: jax.Array, skip: float = 1e-8):
    """SR1: ``H <- H + r r^T / (r.y)`` with ``r = s - H y`` (N&W 6.25, inverse form).

    Skipped when ``|r.y| < skip ||r|| ||y||`` (N&W 6.26), the safeguard against a
    vanishing denominator.
    """
    r = s - hy
    ry = jnp.vdot(r, y)
    ok = jnp.abs(ry) >= skip * jnp.linalg.norm(r) * jnp.linalg.norm(y)
    ok &= ry != 0
    return r[:, None], jnp.where(ok, 1.0 / jnp.where(ok, ry, 1.0), 0.0).reshape(1, 1)


def bfgs(
    init: InitialHessian = "identity", line_search: str | line_searches.LineSearch = "wolfe"
) -> optax.GradientTransformationExtraArgs:
    """BFGS with a dense inverse Hessian and a strong-Wolfe line search (N&W Algorithm 6.1).

    >>> import jax.numpy as jnp, optlab
    >>> A = jnp.array([[3.0, 1.0], [1.0, 2.0]])
    >>> fun = lambda x: 0.5 * x @ A @ x - x.sum()
    >>> result = optlab.minimize(fun, jnp.zeros(2), optlab.bfgs(),
    ...                          stop=optlab.stopping.grad_norm(1e-8), max_iters=20)
    >>> jnp.allclose(A @ result.params, 1.0, atol=1e-6).item()
    True
    """
    return quasi_newton(bfgs_correction, init=init, line_search=line_search)


def sr1(
    init: InitialHessian = "identity", line_search: str | line_searches.LineSearch = "wolfe"
) -> optax.GradientTransformationExtraArgs:
    """Symmetric rank-one quasi-Newton with a line search (N&W section 6.2).

    SR1's ``H`` need not stay positive definite; a non-descent direction resets it (see
    :func:`quasi_newton`). ``init="scaled"`` suits SR1 poorly: with ``H0 = (s.y / y.y) I``
    the vector ``r = s - H0 y`` is orthogonal to ``y``, so the first update is always
    skipped and ``H`` stays ``H0`` for one more step. ``init="exact"`` reproduces the seed study, which started SR1
    from the exact inverse Hessian: on a quadratic its first step is then Newton's.
    """
    return quasi_newton(sr1_correction, init=init, line_search=line_search)


class LBFGSMemory(NamedTuple):
    """The last ``m`` secant pairs, oldest first, with what the compact product needs.

    An empty slot has ``s = y = 0`` and a unit diagonal entry in ``inverse_r``; it then
    contributes nothing to ``H u``.
    """

    steps: jax.Array  # (m, n) s_i
    differences: jax.Array  # (m, n) y_i
    inverse_r: jax.Array  # (m, m) R^-1, R the upper triangle of S^T Y (R_ij = s_i.y_j, i <= j)
    gram: jax.Array  # (m, m) Y^T Y


def _empty_memory(memory: int, n: int, dtype) -> LBFGSMemory:
    return LBFGSMemory(
        steps=jnp.zeros((memory, n), dtype),
        differences=jnp.zeros((memory, n), dtype),
        inverse_r=jnp.eye(memory, dtype=dtype),
        gram=jnp.zeros((memory, memory), dtype),
    )


def _push(memory: LBFGSMemory, s: jax.Array, y: jax.Array) -> LBFGSMemory:
    """Drops the oldest pair and appends ``(s, y)``, which must satisfy ``s.y > 0``.

    For an upper-triangular ``R`` the inverse of a trailing block is the trailing block
    of the inverse, and appending a column ``(c, d)`` appends ``(-R^-1 c / d, 1 / d)`` to
    the inverse: ``O(m n)`` work per pair instead of forming ``S^T Y`` and solving.
    """
    kept_steps, kept_differences = memory.steps[1:], memory.differences[1:]
    kept_inverse = memory.inverse_r[1:, 1:]
    d = jnp.vdot(s, y)
    column = -(kept_inverse @ (kept_steps @ y)) / d
    inverse_r = jnp.block(
        [[kept_inverse, column[:, None]], [jnp.zeros((1, column.size), d.dtype), (1.0 / d)[None, None]]]
    )
    cross = kept_differences @ y
    gram = jnp.block(
        [[memory.gram[1:, 1:], cross[:, None]], [cross[None, :], jnp.vdot(y, y)[None, None]]]
    )
    return LBFGSMemory(
        steps=jnp.concatenate([kept_steps, s[None]]),
        differences=jnp.concatenate([kept_differences, y[None]]),
        inverse_r=inverse_r,
        gram=gram,
    )


def _inverse_hessian_product(memory: LBFGSMemory, u: jax.Array) -> jax.Array:
    """``H u`` for the L-BFGS matrix of the stored pairs.

    The product the two-loop recursion (N&W Algorithm 7.4) computes, in the compact form
    of Byrd, Nocedal and Schnabel (Math. Programming 63, 1994, eq. 3.1) instead:

        H = g I + [S  gY] [[R^-T (D + g Y^T Y) R^-1, -R^-T], [-R^-1, 0]] [S^T; g Y^T]

    with ``D`` the diagonal of ``S^T Y`` and ``g = s.y / y.y`` of the newest pair. With
    ``R^-1`` and ``Y^T Y`` kept up to date by :func:`_push`, that is six small
    matrix-vector products; the recursion's ``4m`` dependent vector operations, and
    forming ``S^T Y`` each step, dominate the time of a step under ``jax.vmap``.
    """
    diagonal = jnp.diagonal(memory.inverse_r)
    filled = jnp.diagonal(memory.gram) > 0
    sy = jnp.where(filled, 1.0 / diagonal, 0.0)  # D
    yy = memory.gram[-1, -1]
    gamma = jnp.where(filled[-1], sy[-1] / jnp.where(filled[-1], yy, 1.0), 1.0)
    a = memory.inverse_r @ (memory.steps @ u)
    rhs = sy * a + gamma * (memory.gram @ a) - gamma * (memory.differences @ u)
    b = memory.inverse_r.T @ rhs
    return gamma * u + memory.steps.T @ b - gamma * (memory.differences.T @ a)


class LBFGSState(NamedTuple):
    count: jax.Array  # () int32, steps taken
    memory: LBFGSMemory  # the last `memory` secant pairs
    step: jax.Array  # (n,) last step s
    gradient: jax.Array  # (n,) last gradient u
    value: jax.Array  # () objective at the current iterate
    grad: PyTree  # gradient at the current iterate
    evaluations: jax.Array  # () int32, of the objective and gradient in the last step
    status: jax.Array  # () int32 Status


def lbfgs(
    memory: int = 10, line_search: str | line_searches.LineSearch = "wolfe"
) -> optax.GradientTransformationExtraArgs:
    """Limited-memory BFGS over the last ``memory`` secant pairs (N&W chapter 7).

    ``H0 = (s.y / y.y) I`` from the newest pair (N&W eq. 7.20); pairs that fail the
    curvature condition ``y.s > 0`` are not stored. ``H u`` is computed in compact form
    (see :func:`_inverse_hessian_product`), which equals the two-loop recursion.
    """
    if not isinstance(memory, int) or memory < 1:
        raise ValueError(f"memory must be a positive int, got {memory!r}")
    search = line_searches.get(line_search)

    def init(params):
        flat, _ = ravel_pytree(params)
        n, dtype = flat.size, flat.dtype
        return LBFGSState(
            count=jnp.zeros((), jnp.int32),
            memory=_empty_memory(memory, n, dtype),
            step=jnp.zeros(n, dtype),
            gradient=jnp.zeros(n, dtype),
            value=jnp.full((), jnp.inf, dtype),
            grad=params,
            evaluations=jnp.zeros((), jnp.int32),
            status=jnp.asarray(Status.RUNNING, jnp.int32),
        )

    def update(updates, state, params, *, value, grad, value_fn, **extra):
        del extra
        x, unravel, value_and_grad = _flat(value_fn, params)
        u, g = ravel_pytree(updates)[0], ravel_pytree(grad)[0]
        first = state.count == 0
        s, y = state.step, u - state.gradient
        sy = jnp.vdot(s, y)
        ok = ~first & (sy > jnp.finfo(x.dtype).eps * jnp.linalg.norm(s) * jnp.linalg.norm(y))
        pushed = _push(state.memory, s, jnp.where(ok, y, s))  # any y with s.y > 0 when skipped
        memory_ = jax.tree.map(lambda new, old: jnp.where(ok, new, old), pushed, state.memory)

        hu = _inverse_hessian_product(memory_, u)
        descent = jnp.vdot(u, hu) > 0
        direction = jnp.where(descent, -hu, -u)
        step0 = jnp.where(first, _first_step(u), 1.0).astype(x.dtype)
        result = search(value_and_grad, x, value, g, direction, step0)
        step, updates, new_value, new_grad, status = _outcome(result, direction, unravel)
        return updates, LBFGSState(
            count=state.count + 1,
            memory=memory_,
            step=step,
            gradient=u,
            value=new_value,
            grad=new_grad,
            evaluations=result.evaluations,
            status=status,
        )

    return optax.GradientTransformationExtraArgs(init, update)
