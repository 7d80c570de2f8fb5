"""Newton-CG, trust-region Newton-CG, trust-region SR1 and nonlinear CG against scipy, on
the Moré–Garbow–Hillstrom problems and random quadratics; Steihaug's subproblem solver;
what a run records (evaluations, each rule's info)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optlab
from experiments.kit.scipy_reference import minimize_trace
from optlab import problems, stopping
from optlab.status import Status
from optlab.trust_region import steihaug

MAX_ITERS = 1000


@functools.cache
def _mgh_iterations(method: str) -> dict[str, int | None]:
    """Iterations until each MGH problem is solved (None: never), from optlab's history.
    The 18 runs are one compiled program (a third faster to compile than 18)."""
    opt = {"newton_cg": optlab.newton_cg, "trust_ncg": optlab.trust_ncg,
           "trust_sr1": optlab.trust_sr1, "nonlinear_cg": optlab.nonlinear_cg}[method]()
    mgh = problems.mgh_problems()

    @jax.jit
    def values(starts):
        return [optlab.minimize(problem.fun, x0, opt, stop=stopping.grad_norm(1e-10),
                                max_iters=MAX_ITERS, history=MAX_ITERS + 1).history.values
                for problem, x0 in zip(mgh, starts)]

    found = values([jnp.asarray(problem.x0) for problem in mgh])
    return {problem.name: problems.iterations_to_solve(history, problem.f_star)
            for problem, history in zip(mgh, found)}


def _scipy_iterations(method: str) -> dict[str, int | None]:
    found = {}
    for problem in problems.mgh_problems():
        with np.errstate(all="ignore"):
            trace = minimize_trace(problem.fun, problem.x0, method=method, max_iters=MAX_ITERS,
                                   hessp=method in ("Newton-CG", "trust-ncg"))
        found[problem.name] = problems.iterations_to_solve(trace.values, problem.f_star)
    return found


def _compare(ours: dict, theirs: dict) -> tuple[int, int, float, float]:
    both = [name for name in ours if ours[name] is not None and theirs[name] is not None]
    solved = lambda found: sum(k is not None for k in found.values())  # noqa: E731
    return (solved(ours), solved(theirs), float(np.mean([ours[n] for n in both])),
            float(np.mean([theirs[n] for n in both])))


def test_newton_cg_solves_as_many_mgh_problems_as_scipy_in_no_more_iterations():
    ours, theirs, our_mean, their_mean = _compare(_mgh_iterations("newton_cg"),
                                                  _scipy_iterations("Newton-CG"))
    assert ours >= theirs >= 14
    # Fewer is allowed: scipy's search may start below the Newton step 1 (it extrapolates
    # the last decrease), and its runs on wood and powell_badly_scaled are twice as long.
    assert our_mean <= 1.25 * their_mean


def test_trust_ncg_solves_the_mgh_problems_as_scipy_does():
    ours, theirs, our_mean, their_mean = _compare(_mgh_iterations("trust_ncg"),
                                                  _scipy_iterations("trust-ncg"))
    assert ours >= theirs >= 14
    assert abs(our_mean - their_mean) <= 0.25 * their_mean


def test_trust_sr1_solves_as_many_mgh_problems_as_bfgs():
    ours, theirs, _, _ = _compare(_mgh_iterations("trust_sr1"), _scipy_iterations("BFGS"))
    assert ours >= theirs >= 14


def test_nonlinear_cg_solves_the_mgh_problems_as_scipys_cg_does():
    ours, theirs, our_mean, their_mean = _compare(_mgh_iterations("nonlinear_cg"),
                                                  _scipy_iterations("CG"))
    assert ours >= theirs >= 14
    assert abs(our_mean - their_mean) <= 0.25 * their_mean


@pytest.mark.parametrize("beta", ["fr", "pr+", "hs", "dy", "hz"])
def test_every_beta_is_linear_cg_on_a_quadratic_with_the_exact_search(beta):
    # Well conditioned, so that rounding does not stretch CG past n steps.
    fun, solution = _quadratic(20, 3, condition=10.0)
    result = optlab.minimize(fun, jnp.zeros(20), optlab.nonlinear_cg(beta, "exact"),
                             stop=stopping.grad_norm(1e-8), max_iters=40)
    assert int(result.status) == Status.CONVERGED and int(result.iterations) <= 20
    np.testing.assert_allclose(result.params, solution, rtol=1e-7, atol=1e-9)


def _quadratic(n: int, seed: int, condition: float = 1e3):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    matrix = (q * np.logspace(0, np.log10(condition), n)) @ q.T
    b = rng.standard_normal(n)
    return (lambda x: 0.5 * x @ jnp.asarray(matrix) @ x - jnp.asarray(b) @ x,
            np.linalg.solve(matrix, b))


@pytest.mark.parametrize("method, reference", [("newton_cg", "Newton-CG"),
                                               ("trust_ncg", "trust-ncg")])
def test_random_quadratics_against_scipy(method, reference):
    for seed in range(3):
        fun, solution = _quadratic(30, seed)
        f_star = float(fun(jnp.asarray(solution)))
        opt = getattr(optlab, method)()
        result = optlab.minimize(fun, jnp.zeros(30), opt, stop=stopping.grad_norm(1e-9),
                                 max_iters=200, history=201)
        assert int(result.status) == Status.CONVERGED
        np.testing.assert_allclose(result.params, solution, rtol=1e-7, atol=1e-9)
        trace = minimize_trace(fun, np.zeros(30), method=reference, max_iters=200, hessp=True)
        np.testing.assert_allclose(trace.result.x, solution, rtol=1e-5, atol=1e-7)
        # Iterations until f is within 1e-10 of f* (the forcing sequence solves the Newton
        # system loosely far from x*, exactly near it, in both).
        ours = problems.iterations_to_solve(result.history.values, f_star, 1e-10)
        theirs = problems.iterations_to_solve(trace.values, f_star, 1e-10)
        assert abs(ours - theirs) <= max(1, theirs // 4)


@pytest.mark.parametrize("method", ["newton_cg", "trust_ncg", "trust_sr1", "nonlinear_cg"])
def test_vmapped_runs_equal_single_runs_and_pytrees_work(method):
    opt = getattr(optlab, method)()
    starts = problems.rosenbrock_starts(4, 5)
    fun = problems.rosenbrock
    if method == "nonlinear_cg":
        # On Rosenbrock a batch's rounding (1e-16 relative) moves nonlinear CG's path by
        # tens of iterations after about 20; on a convex quartic the paths stay together.
        fun = lambda x: jnp.sum((x - 1.0) ** 2) + 0.1 * jnp.sum(x**4) + x[0] * x[1]  # noqa: E731
    run = jax.jit(lambda x0: optlab.minimize(fun, x0, opt, stop=stopping.grad_norm(1e-9),
                                             max_iters=300))
    batched = jax.vmap(run)(starts)
    for i, start in enumerate(starts):
        single = run(start)
        assert int(batched.iterations[i]) == int(single.iterations)
        assert int(batched.status[i]) == int(single.status) == Status.CONVERGED
        np.testing.assert_allclose(batched.params[i], single.params, rtol=1e-10)
    # The same problem with its parameters split into a dict of two leaves.
    split = lambda tree: fun(jnp.concatenate([tree["a"], tree["b"]]))  # noqa: E731
    tree = optlab.minimize(split, {"a": starts[0, :1], "b": starts[0, 1:]}, opt,
                           stop=stopping.grad_norm(1e-9), max_iters=300)
    # Rounded differently (the split's gradient is a concatenation's transpose), a path
    # may take other iterations (nonlinear CG's does), but it ends at the same minimizer.
    assert int(tree.status) == Status.CONVERGED
    np.testing.assert_allclose(jnp.concatenate([tree.params["a"], tree.params["b"]]),
                               batched.params[0], rtol=1e-8)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="0 < initial_radius <= max_radius"):
        optlab.trust_ncg(initial_radius=-1.0)
    with pytest.raises(ValueError, match="0 < initial_radius <= max_radius"):
        optlab.trust_sr1(initial_radius=10.0, max_radius=1.0)
    with pytest.raises(ValueError, match=r"eta must be in \[0, 0.25\)"):
        optlab.trust_ncg(eta=0.5)
    with pytest.raises(ValueError, match=r"eta must be in \[0, 0.001\)"):
        optlab.trust_sr1(eta=0.1)
    with pytest.raises(ValueError, match="skip must be in"):
        optlab.trust_sr1(skip=0.0)
    for method in (optlab.newton_cg, optlab.trust_ncg):
        with pytest.raises(ValueError, match="max_cg_iters must be a positive int"):
            method(max_cg_iters=0)
    with pytest.raises(ValueError, match="unknown line search"):
        optlab.newton_cg("armijo")
    with pytest.raises(ValueError, match="beta must be one of fr, pr\\+, hs, dy, hz"):
        optlab.nonlinear_cg("prp")
    with pytest.raises(ValueError, match="restart must be a positive int"):
        optlab.nonlinear_cg(restart=0)


def test_a_preconditioner_cuts_the_inner_iterations():
    # A badly scaled diagonal quadratic plus a weak coupling: the diagonal of the Hessian
    # as the preconditioner leaves CG little to do.
    scales = jnp.logspace(0, 4, 40)
    def fun(x):
        return 0.5 * jnp.sum(scales * x**2) + 0.01 * jnp.sum(x[1:] * x[:-1]) - x.sum()

    runs = {}
    diagonal = lambda params: lambda r: r / scales  # noqa: E731
    for name, preconditioner in (("plain", None), ("diagonal", diagonal)):
        opt = optlab.newton_cg(preconditioner=preconditioner)
        result = optlab.minimize(fun, jnp.zeros(40), opt, stop=stopping.grad_norm(1e-9),
                                 max_iters=50, history=51)
        assert int(result.status) == Status.CONVERGED
        runs[name] = int(result.history.info.cg_iterations[: int(result.iterations) + 1].sum())
    assert runs["diagonal"] < runs["plain"] / 3


def test_steihaug_stays_in_the_ball_and_beats_the_cauchy_point():
    rng = np.random.default_rng(7)
    for seed, (low, radius) in enumerate([(0.1, 100.0), (0.1, 0.3), (-1.0, 100.0), (-1.0, 0.3)]):
        q, _ = np.linalg.qr(rng.standard_normal((20, 20)))
        matrix = jnp.asarray((q * np.linspace(low, 5.0, 20)) @ q.T)
        g = jnp.asarray(rng.standard_normal(20))
        result = steihaug(lambda v: matrix @ v, g, radius, 1e-10, 100)
        p = result.step
        model = lambda s: g @ s + 0.5 * s @ matrix @ s  # noqa: E731
        np.testing.assert_allclose(result.model_product, matrix @ p, rtol=1e-10, atol=1e-12)
        assert float(jnp.linalg.norm(p)) <= radius * (1 + 1e-12)
        # The Cauchy point: the model's minimizer along -g inside the ball (N&W 4.4).
        curvature = float(g @ matrix @ g)
        t = radius / float(jnp.linalg.norm(g))
        if curvature > 0:
            t = min(t, float(g @ g) / curvature)
        assert float(model(p)) <= float(model(-t * g)) + 1e-12
        if low > 0 and radius == 100.0:  # SPD and a wide ball: the Newton step itself
            np.testing.assert_allclose(p, jnp.linalg.solve(matrix, -g), rtol=1e-8)
            assert not bool(result.boundary)
        else:
            assert bool(result.boundary)


def test_runs_record_evaluations_and_each_rules_info():
    fun, x0 = problems.rosenbrock, jnp.array([-1.2, 1.0])
    stop = stopping.grad_norm(1e-8)
    for opt, info_type in ((optlab.newton_cg(), optlab.second_order.NewtonCGInfo),
                           (optlab.trust_ncg(), optlab.trust_region.TrustRegionInfo),
                           (optlab.trust_sr1(), optlab.trust_region.TrustRegionInfo),
                           (optlab.bfgs(), None), (optax.adam(1e-2), None)):
        result = optlab.minimize(fun, x0, opt, stop=stop, max_iters=200, history=201)
        k = int(result.iterations)
        history = result.history
        evaluations = np.asarray(history.evaluations)
        assert evaluations[0] == 1 and evaluations[k] == int(result.evaluations)
        assert np.all(np.diff(evaluations[: k + 1]) >= 1)
        assert np.all(evaluations[k:] == evaluations[k])
        if info_type is None:
            assert history.info is None
        else:
            assert isinstance(history.info, info_type)
            assert jax.tree.leaves(history.info)[0].shape[0] == 201
    # optax's L-BFGS: its zoom search's steps are the evaluations, its info the record.
    lbfgs = optlab.minimize(fun, x0, optax.lbfgs(), stop=stop, max_iters=100, history=101)
    assert type(lbfgs.history.info).__name__ == "ZoomLinesearchInfo"
    steps = np.asarray(lbfgs.history.info.num_linesearch_steps[1: int(lbfgs.iterations) + 1])
    assert int(lbfgs.evaluations) == 1 + steps.sum()
    # A trust-region run evaluates once per step, accepted or not.
    trust = optlab.minimize(fun, x0, optlab.trust_ncg(), stop=stop, max_iters=200, history=201)
    assert int(trust.evaluations) == int(trust.iterations) + 1
    radii = np.asarray(trust.history.info.radius[: int(trust.iterations) + 1])
    assert radii[0] == 1.0 and np.all(radii > 0) and np.all(radii <= 1000.0)
    rejected = ~np.asarray(trust.history.info.accepted[1: int(trust.iterations) + 1])
    values = np.asarray(trust.history.values)
    steps = np.flatnonzero(rejected) + 1
    np.testing.assert_array_equal(values[steps], values[steps - 1])  # a rejected step stays
