"""Trust-region methods: Newton-CG (Steihaug–Toint) and SR1.

Each step minimizes a quadratic model ``m(p) = g.p + p.B p / 2`` of the objective inside
a ball ``||p|| <= radius``, tries ``x + p``, and compares the actual reduction of ``f``
with the model's prediction (N&W Algorithm 4.1): a good agreement accepts the step and
may widen the ball, a poor one rejects it and shrinks the ball. The model is minimized by
:func:`steihaug`, conjugate gradients stopped at the boundary or at negative curvature
(N&W Algorithm 7.2), which needs only products ``B v``:

* :func:`trust_ncg` takes ``B`` the exact Hessian, through Hessian-vector products
  (forward over reverse mode): O(n) memory, as scipy's ``"trust-ncg"``;
* :func:`trust_sr1` takes ``B`` a dense symmetric rank-one approximation (N&W
  Algorithm 6.2).

Both are ``optax.GradientTransformationExtraArgs`` run by :func:`optlab.minimize` on any
pytree of real parameters. A rejected step is an iteration that returns a zero update.
The state keeps the value and gradient at the current point (fields ``value`` and
``grad``), one evaluation of the objective per step (``evaluations``), a ``status`` and
an ``info`` field (:class:`TrustRegionInfo`) that ``minimize`` records in its history.

References: J. Nocedal and S. J. Wright, *Numerical Optimization*, 2nd ed., Springer
2006 (N&W), chapters 4, 6 and 7; T. Steihaug, SIAM J. Numer. Anal. 20(3), 1983.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree

from optlab.second_order import _flat
from optlab.status import Status

PyTree = Any
_VALUE_NOISE = 1e-10  # relative changes of f below this are rounding (strong_wolfe's default)


class SteihaugResult(NamedTuple):
    step: jax.Array  # (n,) p, with ||p|| <= radius
    model_product: jax.Array  # (n,) B p, for the model's value without another product
    iterations: jax.Array  # () int32, products B v used
    boundary: jax.Array  # () bool: p lies on the boundary (negative curvature or too long)


class _SteihaugLoop(NamedTuple):
    z: jax.Array
    r: jax.Array  # B z + g
    d: jax.Array
    rr: jax.Array  # r.r
    step: jax.Array
    model_product: jax.Array
    iterations: jax.Array
    boundary: jax.Array
    done: jax.Array


def steihaug(product: Callable[[jax.Array], jax.Array], g: jax.Array, radius, tol,
             max_iters: int) -> SteihaugResult:
    """Approximately minimizes ``g.p + p.B p / 2`` over ``||p|| <= radius`` (N&W
    Algorithm 7.2, Steihaug's conjugate gradients).

    From ``p = 0``, CG on ``B p = -g`` runs until its residual ``||B p + g||`` falls below
    ``tol``, its next iterate would leave the ball (the step then ends on the boundary
    along the current direction), or a direction of non-positive curvature appears (the
    step goes to the boundary along it, to whichever of its two crossings has the lower
    model value), or after ``max_iters`` products. A non-finite curvature stops it at the
    last iterate.
    """
    g_norm2 = jnp.vdot(g, g)
    zeros = jnp.zeros_like(g)

    def to_boundary(z, d):
        """Both roots of ||z + t d|| = radius, smaller first."""
        a, b, c = jnp.vdot(d, d), 2 * jnp.vdot(z, d), jnp.vdot(z, z) - radius**2
        root = jnp.sqrt(jnp.maximum(b * b - 4 * a * c, 0.0))
        a = jnp.where(a > 0, a, 1.0)
        # The stable pair of formulas (no cancellation between -b and the root).
        q = -0.5 * (b + jnp.where(b >= 0, root, -root))
        t1, t2 = q / a, c / jnp.where(q != 0, q, 1.0)
        return jnp.minimum(t1, t2), jnp.maximum(t1, t2)

    def body(s: _SteihaugLoop) -> _SteihaugLoop:
        bd = product(s.d)
        curvature = jnp.vdot(s.d, bd)
        finite = jnp.isfinite(curvature)
        positive = curvature > 0
        alpha = s.rr / jnp.where(positive, curvature, 1.0)
        z_next = s.z + alpha * s.d
        leaves = ~positive | (jnp.linalg.norm(z_next) >= radius)
        low, high = to_boundary(s.z, s.d)
        # Along d the model changes by t r.d + t^2 d.Bd / 2 from z: pick the better crossing.
        change = lambda t: t * jnp.vdot(s.r, s.d) + 0.5 * t * t * curvature  # noqa: E731
        t = jnp.where(positive | (change(high) <= change(low)), high, low)
        r_next = s.r + alpha * bd
        rr_next = jnp.vdot(r_next, r_next)
        iterations = s.iterations + 1
        converged = jnp.sqrt(rr_next) < tol
        boundary = finite & leaves
        step = jnp.where(boundary, s.z + t * s.d, jnp.where(finite, z_next, s.z))
        model_product = jnp.where(boundary, s.r - g + t * bd,
                                  jnp.where(finite, r_next - g, s.r - g))
        beta = rr_next / jnp.where(s.rr > 0, s.rr, 1.0)
        return _SteihaugLoop(
            z=z_next, r=r_next, d=-r_next + beta * s.d, rr=rr_next, step=step,
            model_product=model_product, iterations=iterations, boundary=boundary,
            done=~finite | boundary | converged | (iterations >= max_iters))

    init = _SteihaugLoop(
        z=zeros, r=g, d=-g, rr=g_norm2, step=zeros, model_product=zeros,
        iterations=jnp.zeros((), jnp.int32), boundary=jnp.zeros((), bool),
        done=(jnp.sqrt(g_norm2) < tol) | (max_iters == 0))
    s = jax.lax.while_loop(lambda s: ~s.done, body, init)
    return SteihaugResult(s.step, s.model_product, s.iterations, s.boundary)


class TrustRegionInfo(NamedTuple):
    """What a trust-region step reports (recorded per iteration by ``minimize``)."""

    radius: jax.Array  # () the radius after the step
    ratio: jax.Array  # () actual / predicted reduction of the step tried (-inf if non-finite)
    accepted: jax.Array  # () bool
    cg_iterations: jax.Array  # () int32, Steihaug's products B v


class TrustRegionState(NamedTuple):
    radius: jax.Array  # () current trust radius
    value: jax.Array  # () objective at the current iterate
    grad: PyTree  # gradient at the current iterate
    evaluations: jax.Array  # () int32, of the objective and gradient in the last step
    status: jax.Array  # () int32 Status
    info: TrustRegionInfo


class TrustSR1State(NamedTuple):
    hessian: jax.Array  # (n, n) B, the SR1 approximation of the Hessian
    radius: jax.Array
    value: jax.Array
    grad: PyTree
    evaluations: jax.Array
    status: jax.Array
    info: TrustRegionInfo


def _check_radii(initial_radius, max_radius, eta, eta_bound):
    if not 0 < initial_radius <= max_radius:
        raise ValueError("need 0 < initial_radius <= max_radius, got "
                         f"initial_radius={initial_radius!r}, max_radius={max_radius!r}")
    if not 0 <= eta < eta_bound:
        raise ValueError(f"eta must be in [0, {eta_bound}), got {eta!r}")


def _initial_state(params, radius):
    flat, _ = ravel_pytree(params)
    dtype = flat.dtype
    info = TrustRegionInfo(jnp.asarray(radius, dtype), jnp.zeros((), dtype),
                           jnp.zeros((), bool), jnp.zeros((), jnp.int32))
    return dict(radius=jnp.asarray(radius, dtype), value=jnp.full((), jnp.inf, dtype),
                grad=params, evaluations=jnp.zeros((), jnp.int32),
                status=jnp.asarray(Status.RUNNING, jnp.int32), info=info)


def _trial(value_and_grad, x, value, g, u, model: SteihaugResult):
    """The trial point's evaluation and the ratio of actual to predicted reduction."""
    p = model.step
    predicted = -(jnp.vdot(u, p) + 0.5 * jnp.vdot(p, model.model_product))
    new_value, new_grad = value_and_grad(x + p)
    actual = value - new_value
    # Near a minimizer the change of f drowns in its rounding (as in strong_wolfe's
    # approximate Wolfe test); the gradients stay accurate there, and the trapezoid rule
    # on them, exact for a quadratic, measures the reduction instead.
    noisy = jnp.abs(actual) <= _VALUE_NOISE * jnp.abs(value)
    actual = jnp.where(noisy, -0.5 * jnp.vdot(g + new_grad, p), actual)
    ratio = actual / jnp.where(predicted > 0, predicted, 1.0)
    ratio = jnp.where((predicted > 0) & jnp.isfinite(ratio), ratio, -jnp.inf)
    return new_value, new_grad, ratio


def _collapsed(radius, x):
    """The radius has shrunk below rounding at x: no step can be tried any more."""
    return radius <= jnp.finfo(x.dtype).eps * jnp.maximum(1.0, jnp.linalg.norm(x))


def trust_ncg(
    initial_radius: float = 1.0,
    max_radius: float = 1000.0,
    eta: float = 0.15,
    *,
    max_cg_iters: int | None = None,
) -> optax.GradientTransformationExtraArgs:
    """Trust-region Newton-CG (Steihaug–Toint; N&W Algorithms 4.1 and 7.2).

    Each step solves the Newton model by :func:`steihaug` on Hessian-vector products,
    to the residual ``min(0.5, sqrt(||g||)) ||g||`` (the forcing sequence of N&W
    Algorithm 7.1), and within ``max_cg_iters`` products (default ``20 n``, as scipy).
    With ``rho`` the ratio of actual to predicted reduction, the radius shrinks to a
    quarter when ``rho < 1/4``, doubles (up to ``max_radius``) when ``rho > 3/4`` and the
    step reached the boundary, and the step is accepted when ``rho > eta``: the rules and
    defaults of scipy's ``"trust-ncg"``. Where the change of ``f`` is lost in its
    rounding (below ``1e-10 |f|``), the actual reduction is measured by the trapezoid
    rule on the gradients instead (exact for a quadratic), so that the radius does not
    shrink for nothing near a minimizer. A radius that shrinks below rounding all the
    same ends the run as ``LINE_SEARCH_FAILED``. The radius and ``rho`` are in the
    state's ``info`` (:class:`TrustRegionInfo`).

    >>> import jax.numpy as jnp, optlab
    >>> fun = optlab.problems.rosenbrock
    >>> result = optlab.minimize(fun, jnp.array([-1.2, 1.0]), optlab.trust_ncg(),
    ...                          stop=optlab.stopping.grad_norm(1e-8), max_iters=100)
    >>> optlab.Status(int(result.status)).name, bool(jnp.allclose(result.params, 1.0))
    ('CONVERGED', True)
    """
    _check_radii(initial_radius, max_radius, eta, 0.25)
    if max_cg_iters is not None and (not isinstance(max_cg_iters, int) or max_cg_iters < 1):
        raise ValueError(f"max_cg_iters must be a positive int, got {max_cg_iters!r}")

    def init(params):
        return TrustRegionState(**_initial_state(params, initial_radius))

    def update(updates, state, params, *, value, grad, value_fn, **extra):
        del extra
        x, unravel, value_and_grad = _flat(value_fn, params)
        u, g = ravel_pytree(updates)[0], ravel_pytree(grad)[0]
        _, hessian_product = jax.linearize(lambda v: value_and_grad(v)[1], x)
        norm = jnp.linalg.norm(u)
        limit = 20 * x.size if max_cg_iters is None else max_cg_iters
        model = steihaug(hessian_product, u, state.radius,
                         jnp.minimum(0.5, jnp.sqrt(norm)) * norm, limit)
        new_value, new_grad, ratio = _trial(value_and_grad, x, value, g, u, model)
        radius = jnp.where(ratio < 0.25, 0.25 * state.radius,
                           jnp.where((ratio > 0.75) & model.boundary,
                                     jnp.minimum(2 * state.radius, max_radius), state.radius))
        updates, fields = _outcome(x, unravel, value, g, model, new_value, new_grad, ratio,
                                   ratio > eta, radius)
        return updates, TrustRegionState(**fields)

    return optax.GradientTransformationExtraArgs(init, update)


def _outcome(x, unravel, value, g, model: SteihaugResult, new_value, new_grad, ratio,
             accepted, radius) -> tuple[PyTree, dict]:
    """The update (zero for a rejected step) and the fields every trust-region state has."""
    status = jnp.where(~accepted & _collapsed(radius, x), Status.LINE_SEARCH_FAILED,
                       Status.RUNNING).astype(jnp.int32)
    fields = dict(
        radius=radius,
        value=jnp.where(accepted, new_value, value),
        grad=unravel(jnp.where(accepted, new_grad, g)),
        evaluations=jnp.ones((), jnp.int32),
        status=status,
        info=TrustRegionInfo(radius, ratio, accepted, model.iterations),
    )
    return unravel(jnp.where(accepted, model.step, 0.0)), fields


def trust_sr1(
    initial_radius: float = 1.0,
    max_radius: float = 1000.0,
    eta: float = 1e-4,
    *,
    skip: float = 1e-8,
) -> optax.GradientTransformationExtraArgs:
    """SR1 in a trust region (N&W Algorithm 6.2).

    Keeps a dense symmetric rank-one approximation ``B`` of the Hessian (``B0 = I``) and
    minimizes its model by :func:`steihaug` (at most ``n`` products, the forcing
    sequence of :func:`trust_ncg`). With ``rho`` the ratio of actual to predicted
    reduction, the step is accepted when ``rho > eta``; the radius doubles (up to
    ``max_radius``) when ``rho > 3/4`` and the step is longer than ``0.8 radius``, and
    halves when ``rho < 0.1``. After every trial, accepted or not, ``B`` takes the SR1
    correction ``B + v v^T / v.s`` with ``v = y - B s`` (``s`` the step tried, ``y`` the
    change of the gradient over it), skipped when ``|v.s| < skip ||v|| ||s||`` (N&W 6.26).

    How it differs from the line-search :func:`optlab.sr1`: that one keeps the *inverse*
    ``H``, steps along ``-H g`` with a strong-Wolfe search and, when ``H`` is indefinite
    and ``-H g`` does not descend, resets ``H`` to the identity. Here ``B`` may stay
    indefinite — the trust region bounds the step instead, so SR1's negative curvature
    information is used rather than discarded — and the rejected trials update ``B`` too.
    """
    _check_radii(initial_radius, max_radius, eta, 1e-3)
    if not 0 < skip < 1:
        raise ValueError(f"skip must be in (0, 1), got {skip!r}")

    def init(params):
        flat, _ = ravel_pytree(params)
        return TrustSR1State(hessian=jnp.eye(flat.size, dtype=flat.dtype),
                             **_initial_state(params, initial_radius))

    def update(updates, state, params, *, value, grad, value_fn, **extra):
        del extra
        x, unravel, value_and_grad = _flat(value_fn, params)
        u, g = ravel_pytree(updates)[0], ravel_pytree(grad)[0]
        b = state.hessian
        norm = jnp.linalg.norm(u)
        model = steihaug(lambda v: b @ v, u, state.radius,
                         jnp.minimum(0.5, jnp.sqrt(norm)) * norm, x.size)
        new_value, new_grad, ratio = _trial(value_and_grad, x, value, g, u, model)
        s = model.step
        long_step = jnp.linalg.norm(s) > 0.8 * state.radius
        radius = jnp.where((ratio > 0.75) & long_step, jnp.minimum(2 * state.radius, max_radius),
                           jnp.where(ratio < 0.1, 0.5 * state.radius, state.radius))
        v = new_grad - g - model.model_product  # y - B s
        vs = jnp.vdot(v, s)
        ok = jnp.isfinite(vs) & (jnp.abs(vs) >= skip * jnp.linalg.norm(v) * jnp.linalg.norm(s))
        ok &= vs != 0
        hessian = b + jnp.where(ok, 1.0 / jnp.where(ok, vs, 1.0), 0.0) * jnp.outer(v, v)
        updates, fields = _outcome(x, unravel, value, g, model, new_value, new_grad, ratio,
                                   ratio > eta, radius)
        return updates, TrustSR1State(hessian=hessian, **fields)

    return optax.GradientTransformationExtraArgs(init, update)
