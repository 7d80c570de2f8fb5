"""L-BFGS-B against scipy's "L-BFGS-B" and against dense references of its pieces: the
compact BFGS matrix, the generalized Cauchy point, the subspace minimizer; bounds that
are pytrees, infinite, crossed or malformed; iterates that never leave the box."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import optlab
from experiments.kit.scipy_reference import minimize_trace
from optlab import bounded, problems, stopping
from optlab.status import Status


def _pairs(n: int, count: int, seed: int):
    """``count`` secant pairs of a random SPD quadratic (so s.y > 0)."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, n))
    A = A @ A.T + np.eye(n)
    S = rng.standard_normal((count, n))
    return S, S @ A


def _model(memory: int, S, Y):
    """``(Wt, M, theta)`` of the pairs through the rule's own state, push and model."""
    state = optlab.lbfgsb(memory=memory).init(jnp.zeros(S.shape[1]))
    for s, y in zip(S, Y):
        state = bounded._push(state, jnp.asarray(s), jnp.asarray(y), state.pairs)
    return bounded._compact_model(state, state.pairs)


def _dense_bfgs(S, Y, theta):
    B = theta * np.eye(S.shape[1])
    for s, y in zip(S, Y):
        Bs = B @ s
        B = B - np.outer(Bs, Bs) / (s @ Bs) + np.outer(y, y) / (y @ s)
    return B


@pytest.mark.parametrize("memory, count", [(5, 3), (4, 4), (3, 3), (3, 5), (4, 11)])
def test_compact_form_is_the_bfgs_matrix(memory, count):
    # More pairs than the memory holds: the ring keeps the newest, wrapped around.
    S, Y = _pairs(7, count, seed=memory)
    Wt, M, theta = _model(memory, S, Y)
    S, Y = S[-memory:], Y[-memory:]
    assert theta == pytest.approx(Y[-1] @ Y[-1] / (S[-1] @ Y[-1]), rel=1e-14)
    compact = theta * np.eye(7) - np.asarray(Wt.T @ M @ Wt)
    np.testing.assert_allclose(compact, _dense_bfgs(S, Y, theta), rtol=1e-10, atol=1e-10)


def _reference_cauchy(x, g, lower, upper, B):
    """The first local minimizer of ``g.z + z.B z / 2`` along ``P(x - t g) - x``, segment
    by segment with the dense ``B`` (BLNZ Algorithm CP written out directly)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(g < 0, (x - upper) / g, np.where(g > 0, (x - lower) / g, np.inf))
    t = np.where(np.isnan(t), np.inf, np.maximum(t, 0.0))
    ends = np.unique(np.concatenate([t[np.isfinite(t)], [np.inf]]))
    start = 0.0
    for end in ends:
        z = np.clip(x - start * g, lower, upper) - x
        dz = np.where(t > start, -g, 0.0)
        slope, curvature = (g + B @ z) @ dz, dz @ B @ dz
        if slope >= 0:
            return start
        minimizer = start - slope / curvature if curvature > 0 else np.inf
        if minimizer < end:
            return minimizer
        start = end
    return start


@pytest.mark.parametrize("seed", range(4))
def test_cauchy_point_is_the_first_local_minimizer_along_the_projected_path(seed):
    rng = np.random.default_rng(seed)
    n, memory = 12, 4
    S, Y = _pairs(n, 3, seed)
    Wt, M, theta = _model(memory, S, Y)
    B = _dense_bfgs(S, Y, theta)
    lower = np.where(rng.random(n) < 0.7, -rng.random(n), -np.inf)
    upper = np.where(rng.random(n) < 0.7, rng.random(n), np.inf)
    x = np.clip(0.5 * rng.standard_normal(n), lower, upper)
    x = np.where((np.arange(n) < 3) & np.isfinite(lower), lower, x)  # some at a bound
    g = 3.0 * rng.standard_normal(n)
    g[2] = 0.0
    x_c, t_c, free = bounded.cauchy_point(*map(jnp.asarray, (x, g, lower, upper)), Wt, M, theta)
    expected = _reference_cauchy(x, g, lower, upper, B)
    np.testing.assert_allclose(float(t_c), expected, rtol=1e-9)
    np.testing.assert_allclose(np.asarray(x_c), np.clip(x - expected * g, lower, upper),
                               rtol=1e-9, atol=1e-12)
    assert np.all(np.asarray(free) == ~np.isin(np.asarray(x_c), np.concatenate([lower, upper]))
                  | (g == 0))


def test_subspace_point_minimizes_the_model_over_the_free_coordinates():
    rng = np.random.default_rng(3)
    n = 10
    S, Y = _pairs(n, 4, seed=3)
    Wt, M, theta = _model(6, S, Y)
    B = _dense_bfgs(S, Y, theta)
    x, g = rng.standard_normal(n), rng.standard_normal(n)
    free = rng.random(n) < 0.6
    x_c = x + np.where(free, 0.1, -0.3) * g
    unbounded = jnp.full(n, jnp.inf)
    x_bar, backtracked = bounded.subspace_point(
        *map(jnp.asarray, (x, g)), -unbounded, unbounded, jnp.asarray(x_c), jnp.asarray(free),
        Wt, M, theta)
    F = np.flatnonzero(free)
    reduced = (g + B @ (x_c - x))[F]
    expected = x_c.copy()
    expected[F] -= np.linalg.solve(B[np.ix_(F, F)], reduced)
    np.testing.assert_allclose(np.asarray(x_bar), expected, rtol=1e-9, atol=1e-12)
    assert not backtracked


def _ours(fun, x0, lower, upper, *, tol=1e-10, max_iters=500, **kwargs):
    return optlab.minimize(fun, x0, optlab.lbfgsb(lower, upper),
                           stop=stopping.projected_grad_norm(lower, upper, tol),
                           max_iters=max_iters, history=max_iters + 1, **kwargs)


def _iterations(values, f_star, tol=1e-8) -> int | None:
    """Iterations to reach ``f*`` from the first iterate in the box (entry 1 here, where
    x0 may lie outside; scipy's trace starts at the projection)."""
    k = problems.iterations_to_solve(np.asarray(values)[1:], f_star, tol)
    return None if k is None else k + 1


def _known_active_set(seed: int, n: int = 20):
    """A strictly convex quadratic whose minimizer in [-1, 1]^n has a third of its
    coordinates at each bound, with positive multipliers."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, n))
    H = A @ A.T / n + 0.1 * np.eye(n)
    side = rng.integers(-1, 2, n)  # -1 lower, 0 inside, 1 upper
    x_star = np.where(side == 0, rng.uniform(-0.9, 0.9, n), side.astype(float))
    multiplier = rng.uniform(0.5, 2.0, n) * side  # the gradient points out of the box
    b = H @ x_star + multiplier
    return H, b, x_star, side


def _quadratic(x, H, b):
    return 0.5 * x @ H @ x - b @ x


@jax.jit
def _solve_quadratic(H, b):
    return _ours(lambda x: _quadratic(x, H, b), jnp.zeros(b.shape), -1.0, 1.0)


def test_quadratics_end_at_their_known_active_set_as_scipy_does():
    ours, theirs = [], []
    for seed in range(4):
        H, b, x_star, side = _known_active_set(seed)
        fun = functools.partial(_quadratic, H=jnp.asarray(H), b=jnp.asarray(b))
        result = _solve_quadratic(jnp.asarray(H), jnp.asarray(b))
        assert result.status == Status.CONVERGED
        np.testing.assert_allclose(np.asarray(result.params), x_star, atol=1e-8)
        x = np.asarray(result.params)
        np.testing.assert_array_equal(np.where(x == 1, 1, np.where(x == -1, -1, 0)), side)
        assert int(result.history.info.active[int(result.iterations)]) == np.sum(side != 0)
        trace = minimize_trace(fun, np.zeros(20), method="L-BFGS-B", max_iters=500,
                               bounds=(-np.ones(20), np.ones(20)))
        f_star = float(fun(jnp.asarray(x_star)))
        ours.append(_iterations(result.history.values, f_star))
        theirs.append(_iterations(trace.values, f_star))
    assert abs(np.mean(ours) - np.mean(theirs)) <= 0.25 * np.mean(theirs)


def _rosenbrock(x):
    return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


@pytest.mark.parametrize("n", [2, 10])
def test_rosenbrock_in_a_box_that_cuts_off_its_minimizer_matches_scipy(n):
    """A two-sided box, one with some bounds infinite, and no bounds at all (plain
    L-BFGS, to x* = 1 with no coordinate at a bound); one compiled program."""
    boxes = [(np.full(n, -2.0), np.full(n, 0.8), np.full(n, -1.2)),
             (np.where(np.arange(n) % 2 == 0, -np.inf, 0.0),
              np.where(np.arange(n) % 3 == 0, 0.5, np.inf), np.full(n, 0.3)),
             (np.full(n, -np.inf), np.full(n, np.inf), np.full(n, -1.2))]
    solve = jax.jit(lambda x0, lower, upper: _ours(_rosenbrock, x0, lower, upper))
    for lower, upper, x0 in boxes:
        result = solve(*map(jnp.asarray, (x0, lower, upper)))
        trace = minimize_trace(_rosenbrock, x0, method="L-BFGS-B", max_iters=500,
                               bounds=(lower, upper))
        assert result.status == Status.CONVERGED
        np.testing.assert_allclose(np.asarray(result.params), trace.result.x, atol=1e-6)
        f_star = min(float(result.value), float(trace.result.fun))
        ours = _iterations(result.history.values, f_star)
        theirs = _iterations(trace.values, f_star)
        assert abs(ours - theirs) <= max(2, 0.25 * theirs)
    np.testing.assert_allclose(np.asarray(result.params), np.ones(n), atol=1e-8)
    assert not np.any(np.asarray(result.history.info.active))


def _kkt(x, g, lower, upper, tol):
    """Projected-gradient optimality: interior coordinates have ~zero gradient, those at a
    bound a gradient pointing out of the box."""
    return np.linalg.norm(np.clip(x - g, lower, upper) - x) <= tol


def test_mgh_problems_with_their_minimizers_cut_off_match_scipy():
    """Every MGH problem in a box that excludes its unconstrained minimizer x_u: ``x_u -
    2 (1 + |x_u|) <= x``, and ``x <= x_u - (1 + |x_u|) / 4`` on every other coordinate
    (the rest unbounded above). One compiled program (``problems.stack``); the padding
    coordinates are fixed at 0 by their bounds."""
    mgh = problems.mgh_problems()
    batch = problems.stack(mgh)
    boxes = []
    for problem in mgh:
        x_u = minimize_trace(problem.fun, problem.x0, method="L-BFGS-B", max_iters=1000,
                             bounds=(-np.inf, np.inf)).result.x
        odd = np.arange(problem.n) % 2 == 1
        boxes.append((x_u - 2 * (1 + np.abs(x_u)),
                      np.where(odd, np.inf, x_u - 0.25 * (1 + np.abs(x_u)))))

    @jax.jit
    @jax.vmap
    def runs(k, x0, lower, upper):
        return _ours(functools.partial(batch.fun, k), x0, lower, upper, max_iters=1000)

    ks = jnp.arange(len(mgh))
    results = runs(ks, batch.x0, batch.pad([lower for lower, _ in boxes]),
                   batch.pad([upper for _, upper in boxes]))
    grads = jax.jit(jax.vmap(jax.grad(batch.fun, argnums=1)))(ks, results.params)
    ours, theirs, counts = 0, 0, []
    for k, (problem, (lower, upper)) in enumerate(zip(mgh, boxes)):
        x = np.asarray(results.params[k, : problem.n])
        grad = np.asarray(grads[k, : problem.n])
        assert np.all((lower <= x) & (x <= upper)), problem.name
        with np.errstate(all="ignore"):
            trace = minimize_trace(problem.fun, problem.x0, method="L-BFGS-B",
                                   max_iters=1000, bounds=(lower, upper))
        f_star = min(float(results.value[k]), float(trace.result.fun))
        mine = _iterations(results.history.values[k], f_star)
        scipys = _iterations(trace.values, f_star)
        ours += mine is not None
        theirs += scipys is not None
        if mine is not None:  # a solved run ends at a KKT point
            assert _kkt(x, grad, lower, upper, 1e-5 * max(1.0, np.linalg.norm(grad))), \
                problem.name
        if mine is not None and scipys is not None:
            counts.append((mine, scipys))
    assert ours >= theirs >= 16
    mine, scipys = np.mean(counts, axis=0)
    assert abs(mine - scipys) <= 0.25 * scipys


def test_vmapped_runs_over_starts_and_bounds_equal_single_runs():
    H, b, _, _ = _known_active_set(7, n=8)
    fun = lambda x: 0.5 * x @ jnp.asarray(H) @ x - jnp.asarray(b) @ x  # noqa: E731
    rng = np.random.default_rng(0)
    starts = jnp.asarray(rng.uniform(-2, 2, (3, 8)))  # partly outside: projected first
    uppers = jnp.asarray([0.5, 1.0, 2.0])

    def run(x0, upper):
        return _ours(fun, x0, -1.0, upper, max_iters=100)

    batched = jax.jit(jax.vmap(run))(starts, uppers)
    for k in range(3):
        single = jax.jit(run)(starts[k], uppers[k])
        assert int(batched.iterations[k]) == int(single.iterations)
        np.testing.assert_allclose(np.asarray(batched.params[k]), np.asarray(single.params),
                                   rtol=1e-12, atol=1e-14)


def test_pytree_parameters_and_bounds_run_as_the_flat_problem():
    H, b, x_star, _ = _known_active_set(5, n=6)
    flat_fun = lambda x: 0.5 * x @ jnp.asarray(H) @ x - jnp.asarray(b) @ x  # noqa: E731
    tree_fun = lambda p: flat_fun(jnp.concatenate([p["a"].ravel(), p["b"]]))  # noqa: E731
    x0 = {"a": jnp.zeros((2, 2)), "b": jnp.zeros(2)}
    lower = {"a": -1.0, "b": jnp.array([-1.0, -1.0])}  # leaves broadcast to their shapes
    upper = {"a": jnp.ones((2, 2)), "b": 1.0}
    tree = _ours(tree_fun, x0, lower, upper, max_iters=100)
    flat = _ours(flat_fun, jnp.zeros(6), -1.0, 1.0, max_iters=100)
    np.testing.assert_allclose(np.concatenate([np.ravel(tree.params["a"]), tree.params["b"]]),
                               np.asarray(flat.params), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(np.asarray(flat.params), x_star, atol=1e-8)


def test_iterates_stay_in_the_box_exactly_even_where_updates_would_round_out():
    """The minimizer sits on a lower bound of 1e-300: ``x + (1e-300 - x)`` rounds to 0,
    outside the box, where log is -inf. The driver moves to the rule's clipped iterate."""
    fun = lambda x: jnp.sum(x**2 + x + 1e-3 * jnp.log(x))  # noqa: E731
    lower = 1e-300
    result = _ours(fun, jnp.array([0.3, 0.7]), lower, 2.0, max_iters=50, record_params=True)
    assert result.status == Status.CONVERGED
    visited = np.asarray(result.history.params)[: int(result.iterations) + 1]
    assert np.all(visited >= lower)
    np.testing.assert_array_equal(np.asarray(result.params), [lower, lower])
    assert np.isfinite(float(result.value))


def test_a_start_outside_the_box_is_projected_first_as_scipy_does():
    lower, upper = np.full(4, -0.5), np.full(4, 0.5)
    x0 = np.array([3.0, -2.0, 0.1, 0.9])
    result = _ours(_rosenbrock, jnp.asarray(x0), lower, upper)
    trace = minimize_trace(_rosenbrock, x0, method="L-BFGS-B", max_iters=500,
                           bounds=(lower, upper))
    np.testing.assert_allclose(np.asarray(result.params), trace.result.x, atol=1e-7)
    history = result.history
    assert float(history.values[0]) == pytest.approx(float(_rosenbrock(jnp.asarray(x0))))
    # The first step evaluated the projection once more than its line search did.
    assert int(history.evaluations[1]) >= 3
    assert np.all(np.asarray(history.values[1:]) <= trace.values[0] + 1e-12)


def test_projected_grad_norm_measures_only_what_points_into_the_box():
    rule = stopping.projected_grad_norm({"w": 0.0}, {"w": 1.0}, 1e-3)
    at_bound = {"w": jnp.array([0.0, 1.0, 0.5])}
    assert rule(at_bound, None, {"w": jnp.array([5.0, -5.0, 0.0])})  # pushed outward
    assert not rule(at_bound, None, {"w": jnp.array([-5.0, 0.0, 0.0])})  # into the box
    assert not rule(at_bound, None, {"w": jnp.array([0.0, 0.0, 1e-2])})  # inside
    with pytest.raises(ValueError, match="structure"):
        rule(jnp.zeros(3), None, jnp.zeros(3))


@pytest.mark.parametrize("lower, upper, match", [
    (1.0, 0.0, "lower > upper"),
    (jnp.array([0.0, jnp.nan]), None, "NaN"),
    (None, jnp.array([jnp.nan, 1.0]), "NaN"),
    ({"w": 0.0}, None, "structure"),
    (jnp.zeros(3), None, "broadcast"),
])
def test_bad_bounds_get_clear_errors(lower, upper, match):
    with pytest.raises(ValueError, match=match):
        opt = optlab.lbfgsb(lower, upper)
        optlab.minimize(lambda x: jnp.sum(x**2), jnp.ones(2), opt,
                        stop=stopping.grad_norm(1e-6), max_iters=5)


def test_memory_must_be_positive():
    with pytest.raises(ValueError, match="memory"):
        optlab.lbfgsb(memory=0)


def test_the_cauchy_search_in_rounds_equals_sorting_every_breakpoint():
    """Rounds of a few breakpoints (3 here: crowded rounds cut at a threshold, and fall
    back to the full sort after 16) find the same point as sorting them all, where the
    path crosses many breakpoints before it."""
    chunk = 3
    rng = np.random.default_rng(chunk)
    n = 200
    S, Y = _pairs(n, 4, seed=chunk)
    Wt, M, theta = _model(5, S, Y)
    lower, upper = -0.01 * rng.random(n), 0.01 * rng.random(n)  # tight: many breakpoints
    for _ in range(3):
        x = jnp.asarray(rng.uniform(lower, upper))
        g = jnp.asarray(rng.standard_normal(n))
        bounds = jnp.asarray(lower), jnp.asarray(upper)
        x_c, t_c, free = bounded.cauchy_point(x, g, *bounds, Wt, M, theta, chunk=chunk)
        t, _, z = bounded._breakpoints(x, g, *bounds)
        expected = bounded._sorted_cauchy_step(t, g, z, Wt, M, theta)
        assert int(jnp.sum(t < expected)) > 3  # the search crossed breakpoints
        np.testing.assert_allclose(float(t_c), float(expected), rtol=1e-10)
