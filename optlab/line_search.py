"""Line searches along a descent direction, on flat parameter vectors.

A line search is called as ``search(value_and_grad, x, value, grad, direction, step)``
with ``value_and_grad`` a function of a flat vector, the current point ``x`` with its
value and gradient, a search ``direction`` and the first trial ``step``; an optional
``max_step`` (a traced scalar) caps every trial, for a direction that leaves a feasible
box beyond it (:func:`optlab.lbfgsb`). It returns a :class:`LineSearchResult` holding
the accepted step together with the objective and gradient there, so the caller never
evaluates the accepted point twice.

Each search is one ``lax.while_loop`` doing one evaluation per pass, so that under
``jax.vmap`` members needing few trials wait for the others without extra work per
pass. A direction that does not descend (``grad . direction >= 0``) fails at once.

* :func:`backtracking` — Armijo sufficient decrease by step halving (Nocedal & Wright,
  *Numerical Optimization*, 2nd ed., Algorithm 3.1).
* :func:`strong_wolfe` — strong Wolfe conditions by bracketing and zoom with cubic
  interpolation (Nocedal & Wright, Algorithms 3.5 and 3.6), the search of scipy's BFGS.
* :func:`exact_quadratic` — the exact minimizer along the line for a quadratic,
  ``step = -g.d / d.Hd`` with ``Hd`` a Hessian-vector product.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Protocol

import jax
import jax.numpy as jnp

ValueAndGrad = Callable[[jax.Array], tuple[jax.Array, jax.Array]]


class LineSearchResult(NamedTuple):
    step: jax.Array  # () accepted step length; 0 when the search failed
    value: jax.Array  # () objective at x + step * direction
    grad: jax.Array  # (n,) gradient there
    evaluations: jax.Array  # () int32, objective-and-gradient evaluations used
    failed: jax.Array  # () bool


class LineSearch(Protocol):
    def __call__(
        self,
        value_and_grad: ValueAndGrad,
        x: jax.Array,
        value: jax.Array,
        grad: jax.Array,
        direction: jax.Array,
        step: jax.Array,
        max_step: jax.Array | None = None,
    ) -> LineSearchResult: ...


def _failed(value, grad) -> LineSearchResult:
    zero = jnp.zeros((), jnp.result_type(value))
    return LineSearchResult(zero, value, grad, jnp.zeros((), jnp.int32), jnp.ones((), bool))


def backtracking(c1: float = 1e-4, shrink: float = 0.5, max_evaluations: int = 40) -> LineSearch:
    """Armijo backtracking: the first ``step * shrink**k`` with sufficient decrease.

    Accepts ``t`` when ``f(x + t d) <= f(x) + c1 * t * g.d``.
    """
    if not 0 < c1 < 1 or not 0 < shrink < 1:
        raise ValueError(f"need 0 < c1 < 1 and 0 < shrink < 1, got c1={c1}, shrink={shrink}")

    def search(value_and_grad, x, value, grad, direction, step, max_step=None):
        slope = jnp.vdot(grad, direction)
        if max_step is not None:
            step = jnp.minimum(step, max_step)

        def body(state):
            t, _, _, k, _ = state
            t = jnp.where(k > 0, t * shrink, t)
            trial_value, trial_grad = value_and_grad(x + t * direction)
            accepted = trial_value <= value + c1 * t * slope
            return t, trial_value, trial_grad, k + 1, accepted

        def cond(state):
            return ~state[4] & (state[3] < max_evaluations)

        init = (jnp.asarray(step, value.dtype), value, grad, jnp.zeros((), jnp.int32), slope >= 0)
        t, new_value, new_grad, evaluations, accepted = jax.lax.while_loop(cond, body, init)
        ok = accepted & (slope < 0)
        return LineSearchResult(
            step=jnp.where(ok, t, 0.0),
            value=jnp.where(ok, new_value, value),
            grad=jnp.where(ok, new_grad, grad),
            evaluations=evaluations,
            failed=~ok,
        )

    return search


class _WolfeState(NamedTuple):
    zooming: jax.Array  # () bool: a bracket [lo, hi] holding an acceptable step is known
    done: jax.Array  # () bool: lo satisfies the strong Wolfe conditions
    trial: jax.Array  # () next step to evaluate
    lo: jax.Array  # () lowest-valued step so far with sufficient decrease (0 at first)
    lo_value: jax.Array
    lo_slope: jax.Array
    lo_grad: jax.Array  # (n,)
    hi: jax.Array  # () other end of the bracket (unused while bracketing)
    hi_value: jax.Array
    hi_slope: jax.Array
    evaluations: jax.Array


def _cubic_minimizer(a, fa, da, b, fb, db):
    """Minimizer of the cubic through (a, fa, da) and (b, fb, db); NaN when it has none."""
    d1 = da + db - 3.0 * (fa - fb) / (a - b)
    d2 = jnp.sign(b - a) * jnp.sqrt(d1**2 - da * db)
    return b - (b - a) * (db + d2 - d1) / (db - da + 2.0 * d2)


def strong_wolfe(
    c1: float = 1e-4,
    c2: float = 0.9,
    max_evaluations: int = 30,
    max_step: float = 1e10,
    value_noise: float = 1e-10,
) -> LineSearch:
    """A step satisfying the strong Wolfe conditions, by bracketing then zooming.

    Accepts ``t`` with ``f(x + t d) <= f(x) + c1 t g.d`` and ``|g(x + t d).d| <= c2 |g.d|``.
    The bracketing phase doubles the step until the conditions hold or a bracket is
    found; the zoom phase shrinks the bracket with cubic interpolation, clipped to stay
    0.1% of the bracket inside its ends (bisection when the cubic has no minimizer).

    Close to a minimizer, differences of ``f`` fall below its rounding error. Changes
    of ``f`` smaller than ``value_noise * |f(x)|`` are therefore treated as ties, and
    sufficient decrease is also accepted in Hager and Zhang's approximate form
    ``g(x + t d).d <= (2 c1 - 1) g.d`` (SIAM J. Optim. 16(1), 2005), which is exact for
    quadratics and measured from gradients, which stay accurate there. When the
    evaluation budget runs out, the best step with sufficient decrease found so far is
    accepted if there is one; otherwise the search fails. No trial exceeds ``max_step``
    (or the call's smaller ``max_step``), and a trial there with sufficient decrease that
    still descends is accepted: the search may go no further.
    """
    if not 0 < c1 < c2 < 1:
        raise ValueError(f"need 0 < c1 < c2 < 1, got c1={c1}, c2={c2}")
    longest = max_step

    def search(value_and_grad, x, value, grad, direction, step, max_step=None):
        slope0 = jnp.vdot(grad, direction)
        dtype = value.dtype
        zero = jnp.zeros((), dtype)
        cap = jnp.asarray(longest if max_step is None else
                          jnp.minimum(max_step, longest), dtype)

        def body(s: _WolfeState) -> _WolfeState:
            t = s.trial
            f, g = value_and_grad(x + t * direction)
            slope = jnp.vdot(g, direction)
            # Both phases share the test of Algorithms 3.5 and 3.6: a trial without
            # sufficient decrease, or no better than lo, closes the bracket at hi = t.
            # Near a minimizer the decrease in f drowns in rounding; there the slope
            # test (2 c1 - 1) g.d >= g(t).d, which is Armijo's on a quadratic, decides
            # (Hager & Zhang's approximate Wolfe conditions).
            noise = value_noise * jnp.abs(value)
            armijo = f <= value + c1 * t * slope0
            approximate = (f <= value + noise) & (slope <= (2.0 * c1 - 1.0) * slope0)
            too_far = ~(armijo | approximate) | (f > s.lo_value + noise)
            # At the cap a descending trial is as far as the search may go.
            capped = (t >= cap) & (slope <= 0)
            accept = ~too_far & ((jnp.abs(slope) <= -c2 * slope0) | capped)
            moves_lo = ~too_far & ~accept
            # t becomes lo; the old lo becomes hi when the slope points back past it.
            flip = moves_lo & jnp.where(s.zooming, slope * (s.hi - s.lo) >= 0, slope >= 0)
            hi = jnp.where(too_far, t, jnp.where(flip, s.lo, s.hi))
            hi_value = jnp.where(too_far, f, jnp.where(flip, s.lo_value, s.hi_value))
            hi_slope = jnp.where(too_far, slope, jnp.where(flip, s.lo_slope, s.hi_slope))
            takes_t = moves_lo | accept
            lo = jnp.where(takes_t, t, s.lo)
            lo_value = jnp.where(takes_t, f, s.lo_value)
            lo_slope = jnp.where(takes_t, slope, s.lo_slope)
            zooming = s.zooming | too_far | flip

            # The cubic's minimizer, kept 0.1% of the bracket away from its ends so the
            # bracket always shrinks. Clipping rather than bisecting matters: on a
            # quadratic the first interpolant is the exact minimizer, often near lo.
            cubic = _cubic_minimizer(lo, lo_value, lo_slope, hi, hi_value, hi_slope)
            left, right = jnp.minimum(lo, hi), jnp.maximum(lo, hi)
            margin = 1e-3 * (right - left)
            interpolated = jnp.where(
                jnp.isfinite(cubic),
                jnp.clip(cubic, left + margin, right - margin),
                0.5 * (lo + hi),
            )
            return _WolfeState(
                zooming=zooming,
                done=accept,
                trial=jnp.where(zooming, interpolated, jnp.minimum(2.0 * t, cap)),
                lo=lo,
                lo_value=lo_value,
                lo_slope=lo_slope,
                lo_grad=jnp.where(takes_t, g, s.lo_grad),
                hi=hi,
                hi_value=hi_value,
                hi_slope=hi_slope,
                evaluations=s.evaluations + 1,
            )

        def cond(s: _WolfeState):
            collapsed = s.zooming & (jnp.abs(s.hi - s.lo) <= 1e-14 * jnp.maximum(s.lo, 1.0))
            return ~s.done & ~collapsed & (s.evaluations < max_evaluations)

        init = _WolfeState(
            zooming=jnp.zeros((), bool),
            done=slope0 >= 0,  # not a descent direction: nothing to search
            trial=jnp.minimum(jnp.asarray(step, dtype), cap),
            lo=zero,
            lo_value=value,
            lo_slope=slope0,
            lo_grad=grad,
            hi=zero,
            hi_value=value,
            hi_slope=slope0,
            evaluations=jnp.zeros((), jnp.int32),
        )
        s = jax.lax.while_loop(cond, body, init)
        # Out of budget or collapsed bracket: keep the best decreasing step, if any.
        ok = (slope0 < 0) & (s.done | (s.lo > 0))
        return LineSearchResult(
            step=jnp.where(ok, s.lo, 0.0),
            value=jnp.where(ok, s.lo_value, value),
            grad=jnp.where(ok, s.lo_grad, grad),
            evaluations=s.evaluations,
            failed=~ok,
        )

    return search


def exact_quadratic() -> LineSearch:
    """The exact line minimizer of a quadratic: ``step = -g.d / d.Hd``.

    ``Hd`` is a Hessian-vector product (forward over reverse mode), so the search costs
    one gradient-sized JVP plus one evaluation at the accepted point. On a non-quadratic
    it is one Newton step along the line; it fails when the curvature ``d.Hd`` is not
    positive.
    """

    def search(value_and_grad, x, value, grad, direction, step, max_step=None):
        del step
        grad_fn = lambda y: value_and_grad(y)[1]  # noqa: E731
        _, hessian_direction = jax.jvp(grad_fn, (x,), (direction,))
        curvature = jnp.vdot(direction, hessian_direction)
        slope = jnp.vdot(grad, direction)
        ok = (curvature > 0) & (slope < 0)
        t = jnp.where(ok, -slope / jnp.where(ok, curvature, 1.0), 0.0)
        if max_step is not None:
            t = jnp.minimum(t, max_step)
        new_value, new_grad = value_and_grad(x + t * direction)
        return LineSearchResult(
            step=t,
            value=jnp.where(ok, new_value, value),
            grad=jnp.where(ok, new_grad, grad),
            evaluations=jnp.ones((), jnp.int32),
            failed=~ok,
        )

    return search


_BY_NAME = {"backtracking": backtracking, "wolfe": strong_wolfe, "exact": exact_quadratic}


def get(line_search: str | LineSearch) -> LineSearch:
    """A line search from its name (``"backtracking"``, ``"wolfe"``, ``"exact"``) or itself."""
    if callable(line_search):
        return line_search
    try:
        return _BY_NAME[line_search]()
    except KeyError:
        raise ValueError(
            f"unknown line search {line_search!r}; choose one of {sorted(_BY_NAME)} "
            "or pass a callable"
        ) from None
