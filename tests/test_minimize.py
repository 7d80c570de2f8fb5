"""Tests of the driver contract of optlab.minimize, its stopping rules and statuses.

One table of update rules (``METHODS``) is crossed with the contract's cases; the
remaining tests pin single behaviours: optax interoperability, pytrees, batching, and
the two ways Newton's method fails (a cycle, a singular Hessian).
"""

import functools
import operator

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optlab
from optlab import Status
from optlab.stopping import distance_to, grad_norm

METHODS = {
    "gradient_descent": lambda: optlab.gradient_descent(0.1),
    "steepest_descent": optlab.steepest_descent,
    "newton": optlab.newton,
    "bfgs": optlab.bfgs,
    "sr1": optlab.sr1,
    "lbfgs": optlab.lbfgs,
    "adam": lambda: optax.adam(0.1),
    "optax_lbfgs": optax.lbfgs,
}

MATRIX = jnp.array([[3.0, 1.0], [1.0, 2.0]])
MINIMIZER = jnp.linalg.solve(MATRIX, jnp.ones(2))


def bowl(x):
    """``1/2 x.Ax - sum(x)``, minimized at ``A^{-1} 1``; keeps the dtype of ``x``."""
    return 0.5 * x @ (MATRIX.astype(x.dtype) @ x) - jnp.sum(x)


def _status(result) -> Status:
    return Status(int(result.status))


# Three starts per run: an ordinary one, one that already satisfies the rule, and NaN.
START_NAMES = ("ordinary", "satisfied", "nan")
FLOAT32_METHODS = ["gradient_descent", "newton", "bfgs", "adam"]


@functools.cache
def _contract_run(method: str, dtype) -> optlab.Result:
    """One compiled batch per method and dtype, shared by the contract tests below."""
    x_star = MINIMIZER.astype(dtype)
    starts = jnp.stack([jnp.zeros(2, dtype), x_star + 1e-7, jnp.array([jnp.nan, 1.0], dtype)])

    def run(x0):
        return optlab.minimize(
            bowl, x0, METHODS[method](), stop=distance_to(x_star, 1e-5), max_iters=500
        )

    return jax.jit(jax.vmap(run))(starts)


def _member(result: optlab.Result, name: str) -> optlab.Result:
    return jax.tree.map(lambda leaf: leaf[START_NAMES.index(name)], result)


CONTRACT_CASES = [(method, jnp.float64) for method in METHODS] + [
    (method, jnp.float32) for method in FLOAT32_METHODS
]
CONTRACT_IDS = [f"{method}-{jnp.dtype(dtype).name}" for method, dtype in CONTRACT_CASES]


@pytest.mark.parametrize("method, dtype", CONTRACT_CASES, ids=CONTRACT_IDS)
def test_result_fields_and_dtypes(method, dtype):
    result = _member(_contract_run(method, dtype), "ordinary")
    assert result._fields == ("params", "value", "grad_norm", "iterations", "evaluations",
                              "status", "history")
    assert result.params.shape == (2,) and result.params.dtype == dtype
    assert result.value.shape == () and result.value.dtype == dtype
    assert result.grad_norm.shape == () and result.grad_norm.dtype == dtype
    assert result.iterations.shape == () and result.iterations.dtype == jnp.int32
    assert result.evaluations.dtype == jnp.int32
    assert int(result.evaluations) >= int(result.iterations) + 1
    assert result.status.shape == () and result.status.dtype == jnp.int32
    assert result.history is None
    assert _status(result) == Status.CONVERGED and int(result.iterations) > 0
    assert float(jnp.linalg.norm(result.params - MINIMIZER.astype(dtype))) < 1e-5
    np.testing.assert_allclose(result.value, bowl(result.params), rtol=1e-6)
    gradient_norm = jnp.linalg.norm(jax.grad(bowl)(result.params))
    np.testing.assert_allclose(result.grad_norm, gradient_norm, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("method, dtype", CONTRACT_CASES, ids=CONTRACT_IDS)
def test_start_that_satisfies_stop_takes_no_step(method, dtype):
    result = _member(_contract_run(method, dtype), "satisfied")
    assert int(result.iterations) == 0
    assert _status(result) == Status.CONVERGED
    np.testing.assert_array_equal(result.params, MINIMIZER.astype(dtype) + 1e-7)


@pytest.mark.parametrize("method, dtype", CONTRACT_CASES, ids=CONTRACT_IDS)
def test_nan_in_start_is_a_status_not_an_exception(method, dtype):
    result = _member(_contract_run(method, dtype), "nan")
    assert _status(result) == Status.NONFINITE
    assert int(result.iterations) == 0


def test_unbatched_run_has_scalar_fields():
    result = optlab.minimize(bowl, jnp.zeros(2), optlab.bfgs(), stop=grad_norm(1e-8), max_iters=50)
    assert _status(result) == Status.CONVERGED
    for field in (result.value, result.grad_norm, result.iterations, result.status):
        assert isinstance(field, jax.Array) and field.shape == ()
    assert result.params.shape == (2,) and result.history is None


def test_divergence_to_infinity_is_nonfinite():
    def quartic(x):
        return jnp.sum(x**4)

    result = optlab.minimize(
        quartic,
        jnp.full(2, 10.0),
        optlab.gradient_descent(1.0),
        stop=grad_norm(1e-8),
        max_iters=100,
    )
    assert _status(result) == Status.NONFINITE
    assert 0 < int(result.iterations) < 100


@pytest.mark.parametrize("max_iters", [0, 1, 7])
def test_iteration_budget_gives_max_iters(max_iters):
    result = optlab.minimize(
        bowl, jnp.zeros(2), optlab.gradient_descent(1e-3), stop=grad_norm(1e-8), max_iters=max_iters
    )
    assert _status(result) == Status.MAX_ITERS
    assert int(result.iterations) == max_iters


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"stop": distance_to(jnp.zeros(3), 1e-6)}, ValueError, "distance_to"),
        ({"stop": distance_to({"x": jnp.zeros(2)}, 1e-6)}, ValueError, "distance_to"),
        ({"fun": lambda x: x**2}, ValueError, "scalar"),
        ({"x0": jnp.zeros(2, jnp.int32)}, TypeError, "floating"),
        ({"x0": {}}, ValueError, "no array leaves"),
        ({"max_iters": -1}, ValueError, "max_iters"),
        ({"max_iters": 10.0}, ValueError, "max_iters"),
        ({"history": -1}, ValueError, "history"),
        ({"stop": lambda params, value, grad: True}, TypeError, "stop"),
    ],
    ids=[
        "x_star-shape",
        "x_star-structure",
        "vector-fun",
        "integer-x0",
        "empty-x0",
        "negative-max_iters",
        "float-max_iters",
        "negative-history",
        "stop-not-a-rule",
    ],
)
def test_invalid_arguments_raise(kwargs, error, match):
    arguments = {
        "fun": bowl,
        "x0": jnp.zeros(2),
        "opt": optlab.bfgs(),
        "stop": grad_norm(1e-6),
        "max_iters": 10,
    }
    arguments.update(kwargs)
    fun, x0, opt = arguments.pop("fun"), arguments.pop("x0"), arguments.pop("opt")
    with pytest.raises(error, match=match):
        optlab.minimize(fun, x0, opt, **arguments)


@pytest.mark.parametrize(
    "make",
    [
        lambda: distance_to(jnp.zeros(2), 0),
        lambda: distance_to(jnp.zeros(2), -1e-6),
        lambda: grad_norm(-1),
        lambda: grad_norm(0.0),
    ],
)
def test_non_positive_thresholds_raise(make):
    with pytest.raises(ValueError, match="must be positive"):
        make()


def test_rules_combine_with_or():
    x_star = jnp.zeros(2)
    near, far = jnp.array([0.1, 0.0]), jnp.array([3.0, 0.0])
    small, large = jnp.array([1e-9, 0.0]), jnp.array([1.0, 0.0])
    rule = grad_norm(1e-6) | distance_to(x_star, 0.5)
    assert bool(rule(near, None, large)) and bool(rule(far, None, small))
    assert bool(rule(near, None, small)) and not bool(rule(far, None, large))
    assert rule.target is x_star
    assert (grad_norm(1e-6) | grad_norm(1e-3)).target is None
    three = rule | grad_norm(1.0)
    assert len(three.rules) == 3  # flattened, not nested
    with pytest.raises(TypeError):
        grad_norm(1e-6) | 3


def test_combined_rule_stops_when_either_holds():
    x0 = jnp.array([2.0, -1.0])
    opt = optlab.gradient_descent(0.05)

    def iterations(stop):
        result = optlab.minimize(bowl, x0, opt, stop=stop, max_iters=1000)
        assert _status(result) == Status.CONVERGED
        return int(result.iterations)

    by_gradient, by_distance = grad_norm(1e-2), distance_to(MINIMIZER, 1e-6)
    first, second = iterations(by_gradient), iterations(by_distance)
    assert first < second
    assert iterations(by_gradient | by_distance) == first
    assert iterations(by_distance | by_gradient) == first


def _run_with_history(stop, history, record_params=False, max_iters=1000):
    x0 = jnp.array([2.0, -1.0])
    result = optlab.minimize(
        bowl,
        x0,
        optlab.gradient_descent(0.05),
        stop=stop,
        max_iters=max_iters,
        history=history,
        record_params=record_params,
    )
    return x0, result


def test_history_records_each_iteration_and_repeats_the_last():
    stop = distance_to(MINIMIZER, 1e-6)
    x0, result = _run_with_history(stop, history=400, record_params=True)
    k = int(result.iterations)
    assert 0 < k < 399 and _status(result) == Status.CONVERGED
    history = result.history
    assert history.values.shape == history.grad_norms.shape == history.distances.shape == (400,)
    assert history.params.shape == (400, 2)
    np.testing.assert_array_equal(history.params[0], x0)
    assert float(history.values[0]) == float(bowl(x0))
    np.testing.assert_allclose(history.grad_norms[0], jnp.linalg.norm(jax.grad(bowl)(x0)))
    np.testing.assert_allclose(history.distances[0], jnp.linalg.norm(x0 - MINIMIZER))
    # Entry j is the state after j iterations.
    values = jax.vmap(bowl)(history.params[: k + 1])
    np.testing.assert_allclose(history.values[: k + 1], values, rtol=1e-12)
    np.testing.assert_array_equal(history.params[k], result.params)
    assert history.distances[k] < 1e-6 <= history.distances[k - 1]
    # Entries past the last iteration repeat the final state.
    np.testing.assert_array_equal(history.values[k:], result.value)
    np.testing.assert_array_equal(history.grad_norms[k:], result.grad_norm)
    np.testing.assert_array_equal(history.distances[k:], history.distances[k])
    np.testing.assert_array_equal(history.params[k:], jnp.broadcast_to(result.params, (400 - k, 2)))
    assert np.all(np.diff(np.asarray(history.values[: k + 1])) < 0)  # gradient descent descends


def test_history_shorter_than_the_run_keeps_its_first_entries():
    stop = grad_norm(1e-8)
    _, short = _run_with_history(stop, history=5, max_iters=50)
    _, full = _run_with_history(stop, history=51, max_iters=50)
    assert int(short.iterations) == int(full.iterations) == 50
    np.testing.assert_allclose(short.history.values, full.history.values[:5], rtol=1e-14)
    np.testing.assert_allclose(short.history.grad_norms, full.history.grad_norms[:5], rtol=1e-14)


def test_history_fields_follow_the_rule_and_flags():
    _, plain = _run_with_history(grad_norm(1e-6), history=10)
    assert plain.history.distances is None and plain.history.params is None
    _, combined = _run_with_history(grad_norm(1e-6) | distance_to(MINIMIZER, 1e-6), history=10)
    assert combined.history.distances.shape == (10,)
    _, none = _run_with_history(grad_norm(1e-6), history=0, record_params=True)
    assert none.history is None


def _batch_problems():
    """Five quadratics; member 0 starts at its minimizer and member 1 at NaN."""
    problems = optlab.problems.seed_quadratics(4, 5)
    x0 = jnp.zeros((5, 4)).at[0].set(problems.minimizer[0]).at[1, 0].set(jnp.nan)
    return problems, x0


@pytest.mark.parametrize(
    "method, max_iters, statuses",
    [
        ("bfgs", 200, {Status.CONVERGED, Status.NONFINITE}),
        ("gradient_descent", 50, {Status.CONVERGED, Status.NONFINITE, Status.MAX_ITERS}),
    ],
)
def test_vmap_members_run_independently(method, max_iters, statuses):
    problems, x0 = _batch_problems()
    opt = METHODS[method]()

    def run(problem, start):
        return optlab.minimize(
            problem.value,
            start,
            opt,
            stop=distance_to(problem.minimizer, 1e-8),
            max_iters=max_iters,
            history=max_iters + 1,
        )

    batched = jax.jit(jax.vmap(run))(problems, x0)
    single = jax.jit(run)
    assert {Status(int(s)) for s in batched.status} == statuses
    assert int(batched.iterations[0]) == 0 and int(batched.iterations[1]) == 0
    assert len({int(k) for k in batched.iterations[2:]}) > 1 or method == "gradient_descent"
    for i in range(5):
        member = jax.tree.map(operator.itemgetter(i), problems)
        alone = single(member, x0[i])
        assert int(batched.iterations[i]) == int(alone.iterations)
        assert int(batched.status[i]) == int(alone.status)
        np.testing.assert_allclose(batched.params[i], alone.params, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(
            batched.history.values[i], alone.history.values, rtol=1e-12, atol=1e-12
        )


def shifted_bowl(x):
    return jnp.sum((x - 3.0) ** 2)


def test_plain_optax_transform_converges():
    result = optlab.minimize(
        shifted_bowl, jnp.zeros(3), optax.adam(0.1), stop=grad_norm(1e-6), max_iters=5000
    )
    assert _status(result) == Status.CONVERGED
    np.testing.assert_allclose(result.params, 3.0, atol=1e-6)


@pytest.mark.parametrize(
    "make",
    [
        lambda: optax.chain(optax.clip_by_global_norm(1.0), optlab.bfgs()),
        lambda: optax.chain(optax.clip_by_global_norm(1.0), optlab.gradient_descent(0.1)),
        lambda: optax.inject_hyperparams(optlab.gradient_descent)(learning_rate=0.1),
    ],
    ids=["clip-bfgs", "clip-gradient_descent", "inject_hyperparams"],
)
def test_update_rules_compose_with_optax(make):
    result = optlab.minimize(
        shifted_bowl, jnp.zeros(3), make(), stop=grad_norm(1e-6), max_iters=2000
    )
    assert _status(result) == Status.CONVERGED
    np.testing.assert_allclose(result.params, 3.0, atol=1e-6)


PYTREE_TARGET = {"vector": jnp.array([1.0, -2.0]), "matrix": jnp.array([[0.5, 3.0], [-1.0, 2.0]])}
PYTREE_WEIGHTS = {"vector": jnp.array([1.0, 3.0]), "matrix": jnp.array([[2.0, 0.5], [1.0, 4.0]])}


def separable(params):
    """``sum w (p - target)^2`` over both leaves: minimized at ``PYTREE_TARGET``."""
    terms = jax.tree.map(
        lambda p, w, t: jnp.sum(w * (p - t) ** 2), params, PYTREE_WEIGHTS, PYTREE_TARGET
    )
    return sum(jax.tree.leaves(terms))


@pytest.mark.parametrize("method", ["bfgs", "lbfgs", "sr1", "newton", "steepest_descent"])
def test_pytree_parameters_converge_to_the_minimizer(method):
    x0 = jax.tree.map(jnp.zeros_like, PYTREE_TARGET)
    result = optlab.minimize(
        separable,
        x0,
        METHODS[method](),
        stop=distance_to(PYTREE_TARGET, 1e-8),
        max_iters=500,
        history=501,
        record_params=True,
    )
    assert _status(result) == Status.CONVERGED
    assert jax.tree.structure(result.params) == jax.tree.structure(PYTREE_TARGET)
    for name, target in PYTREE_TARGET.items():
        np.testing.assert_allclose(result.params[name], target, atol=1e-8)
        assert result.history.params[name].shape == (501, *target.shape)
        np.testing.assert_array_equal(result.history.params[name][0], x0[name])


def test_newton_cycles_on_the_newton_cycle_function():
    minimizer = optlab.problems.newton_cycle_minimizer()
    result = optlab.minimize(
        optlab.problems.newton_cycle,
        jnp.array([0.0, 2.0]),
        optlab.newton(),
        stop=grad_norm(1e-8) | distance_to(minimizer, 1e-6),
        max_iters=50,
        history=51,
        record_params=True,
    )
    assert _status(result) in (Status.CYCLING, Status.MAX_ITERS)
    k = int(result.iterations)
    assert k >= 3
    iterates = np.asarray(result.history.params[: k + 1])
    np.testing.assert_allclose(iterates[:4, 0], [0.0, 1.0, 0.0, 1.0], atol=1e-12)
    np.testing.assert_allclose(iterates[:, 0], np.arange(k + 1) % 2, atol=1e-12)
    assert iterates[0, 1] == 2.0
    np.testing.assert_allclose(iterates[1:, 1], 1.0, atol=1e-12)


def test_newton_on_singular_hessian_reports_singular():
    matrix = jnp.array([[1.0, 0.0], [0.0, 0.0]])
    linear = jnp.array([-1.0, 0.0])

    def fun(x):
        return 0.5 * x @ (matrix @ x) + linear @ x

    result = optlab.minimize(
        fun, jnp.zeros(2), optlab.newton(), stop=grad_norm(1e-10), max_iters=20
    )
    assert _status(result) == Status.SINGULAR
    assert bool(jnp.all(jnp.isfinite(result.params)))
    assert bool(jnp.isfinite(result.value))


@pytest.mark.parametrize("status", list(Status))
def test_status_describe(status):
    expected = f"{status.name.lower()}: {status.message}"
    assert Status.describe(int(status)) == expected
    assert Status.describe(jnp.asarray(int(status), jnp.int32)) == expected
    assert status.message  # every member carries a message


def test_status_describe_names_the_failure():
    assert (
        Status.describe(4) == "singular: the (approximate) Hessian is singular to working precision"
    )
    with pytest.raises(ValueError):
        Status.describe(99)


def test_never_runs_every_step_even_from_the_minimizer():
    result = optlab.minimize(lambda x: jnp.sum(x**2), jnp.zeros(2), optlab.sgd(0.1),
                             stop=optlab.stopping.never(), max_iters=7)
    assert int(result.iterations) == 7 and optlab.Status(int(result.status)) == optlab.Status.MAX_ITERS
