"""Tests of the first-order update rules in optlab.first_order.

One table (``CASES``) lists each rule with its options, a NumPy loop of its formula,
written here from the docstrings' math, and optax's own rule where optax has one with the
same placement of ``eps``. The table is crossed with the checks: against optax and
against the NumPy loop on random pytrees fed a fresh random gradient at every step, with
constant and scheduled learning rates, under ``optax.inject_hyperparams`` and
``jax.vmap``, and inside ``optlab.minimize``. The remaining tests pin the noise's
determinism, the checks on hyperparameters and the modified Newton method.
"""

import dataclasses
import functools
import zlib
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree

import optlab
from optlab import Status
from optlab.stopping import grad_norm

STEPS = 50
RTOL = 1e-6  # relative error allowed on every parameter at every step
# Two paths through the same arithmetic (jitted and eager, injected and plain) differ by
# rounding only: relative, and absolute at the parameters' scale (about 1) for the
# entries that pass near zero.
ROUNDING = {"rtol": 1e-12, "atol": 1e-14}

# A pytree with a matrix, a vector, a scalar and nested tuples; the rules see it as is,
# the NumPy references see its flattening (the rules act elementwise). Few distinct shapes
# keep the eager runs' compilations few.
TEMPLATE = {
    "w": np.zeros((3, 2)),
    "b": np.zeros(4),
    "nested": (np.zeros(()), (np.zeros(4), np.zeros((3, 2)))),
}
SIZE = ravel_pytree(TEMPLATE)[0].size
UNRAVEL = ravel_pytree(TEMPLATE)[1]
LEAF_SHAPES = [np.shape(leaf) for leaf in jax.tree.leaves(TEMPLATE)]


# NumPy references. Each maps the gradients (steps, n) and the learning rate of each step
# (steps,) to the change of the parameters at each step (steps, n); the rules' updates do
# not depend on the parameters.


def _denominator(second_moment, eps, eps_in_sqrt):
    if eps_in_sqrt:
        return np.sqrt(second_moment + eps)
    return np.sqrt(second_moment) + eps


def sgd_reference(grads, rates):
    return np.stack([-a * g for g, a in zip(grads, rates)])


def gaussian_draws(seed, steps):
    """The standard normal draws of ``add_gaussian_noise``, flattened per step (steps, n).

    The rule splits its key into a new key and one key per leaf, in ``jax.tree.leaves``
    order, and draws ``jax.random.normal(leaf_key, shape)`` for each leaf.
    """
    key = jax.random.key(seed)
    draws = []
    for _ in range(steps):
        key, *leaf_keys = jax.random.split(key, len(LEAF_SHAPES) + 1)
        leaves = [
            np.ravel(jax.random.normal(k, shape, jnp.float64))
            for k, shape in zip(leaf_keys, LEAF_SHAPES)
        ]
        draws.append(np.concatenate(leaves))
    return np.stack(draws)


def noisy_sgd_reference(grads, rates, sigma, seed):
    noise = gaussian_draws(seed, len(grads))
    return np.stack([-a * (g + sigma * z) for g, a, z in zip(grads, rates, noise)])


def momentum_reference(grads, rates, beta):
    velocity, steps = np.zeros(SIZE), []
    for g, a in zip(grads, rates):
        velocity = beta * velocity + (1.0 - beta) * g
        steps.append(-a * velocity)
    return np.stack(steps)


def heavy_ball_reference(grads, rates, gamma):
    velocity, steps = np.zeros(SIZE), []
    for g, a in zip(grads, rates):
        velocity = gamma * velocity + a * g
        steps.append(-velocity)
    return np.stack(steps)


def nesterov_reference(grads, rates, gamma):
    """Sutskever's form on the look-ahead point ``u``: ``u <- u - (gamma v + a g)``, new ``v``."""
    velocity, steps = np.zeros(SIZE), []
    for g, a in zip(grads, rates):
        velocity = gamma * velocity + a * g
        steps.append(-(gamma * velocity + a * g))
    return np.stack(steps)


def adagrad_reference(grads, rates, eps, initial_accumulator=0.0, eps_in_sqrt=False):
    total, steps = np.full(SIZE, initial_accumulator), []
    for g, a in zip(grads, rates):
        total = total + g**2
        steps.append(-a * g / _denominator(total, eps, eps_in_sqrt))
    return np.stack(steps)


def rmsprop_reference(grads, rates, gamma, eps, eps_in_sqrt=False):
    mean_square, steps = np.zeros(SIZE), []
    for g, a in zip(grads, rates):
        mean_square = gamma * mean_square + (1.0 - gamma) * g**2
        steps.append(-a * g / _denominator(mean_square, eps, eps_in_sqrt))
    return np.stack(steps)


def adam_reference(grads, rates, b1, b2, eps, eps_in_sqrt=False, amsgrad=False):
    m, v, v_max, steps = np.zeros(SIZE), np.zeros(SIZE), np.zeros(SIZE), []
    for t, (g, a) in enumerate(zip(grads, rates), start=1):
        m = b1 * m + (1.0 - b1) * g
        v = b2 * v + (1.0 - b2) * g**2
        m_hat, v_hat = m / (1.0 - b1**t), v / (1.0 - b2**t)
        if amsgrad:
            v_max = np.maximum(v_max, v_hat)
            v_hat = v_max
        steps.append(-a * m_hat / _denominator(v_hat, eps, eps_in_sqrt))
    return np.stack(steps)


# The rules and the hyperparameters each takes, in its signature's order.
RULES = {
    "sgd": ("learning_rate",),
    "noisy_sgd": ("learning_rate", "sigma", "seed"),
    "momentum": ("learning_rate", "beta"),
    "heavy_ball": ("learning_rate", "gamma"),
    "nesterov": ("learning_rate", "gamma"),
    "adagrad": ("learning_rate", "eps"),
    "rmsprop": ("learning_rate", "gamma", "eps"),
    "adam": ("learning_rate", "b1", "b2", "eps"),
    "amsgrad": ("learning_rate", "b1", "b2", "eps"),
}
DECAYS = ("beta", "gamma", "b1", "b2")

SAMPLERS = {
    "learning_rate": lambda rng: float(rng.uniform(1e-3, 0.5)),
    **{name: lambda rng: float(rng.uniform(0.5, 0.99)) for name in DECAYS},
    "eps": lambda rng: float(10.0 ** rng.uniform(-8.0, -3.0)),
    "sigma": lambda rng: float(rng.uniform(0.1, 1.0)),
    "seed": lambda rng: int(rng.integers(2**31)),
}


@dataclasses.dataclass(frozen=True)
class Case:
    """A rule with fixed options, its NumPy reference and its optax twin (if any)."""

    rule: str
    reference: Callable
    options: dict = dataclasses.field(default_factory=dict)
    twin: Callable | None = None  # hyperparameters -> the same rule built from optax

    @property
    def factory(self):
        return getattr(optlab, self.rule)

    def make(self, **hyperparams):
        return self.factory(**hyperparams, **self.options)

    def draw(self, rng):
        return {name: SAMPLERS[name](rng) for name in RULES[self.rule]}

    def expected_steps(self, grads, rates, hyperparams):
        others = {k: v for k, v in hyperparams.items() if k != "learning_rate"}
        return self.reference(grads, rates, **others, **self.options)


CASES = {
    "sgd": Case("sgd", sgd_reference, twin=optax.sgd),
    "noisy_sgd": Case("noisy_sgd", noisy_sgd_reference),
    "momentum": Case("momentum", momentum_reference),
    "heavy_ball": Case(
        "heavy_ball",
        heavy_ball_reference,
        twin=lambda learning_rate, gamma: optax.sgd(learning_rate, momentum=gamma),
    ),
    "nesterov": Case(
        "nesterov",
        nesterov_reference,
        twin=lambda learning_rate, gamma: optax.sgd(learning_rate, momentum=gamma, nesterov=True),
    ),
    "adagrad": Case("adagrad", adagrad_reference),
    "adagrad-eps_in_sqrt": Case(
        "adagrad",
        adagrad_reference,
        {"eps_in_sqrt": True},
        twin=lambda learning_rate, eps: optax.adagrad(
            learning_rate, initial_accumulator_value=0.0, eps=eps
        ),
    ),
    "adagrad-initial_accumulator": Case("adagrad", adagrad_reference, {"initial_accumulator": 0.1}),
    "rmsprop": Case(
        "rmsprop",
        rmsprop_reference,
        twin=lambda learning_rate, gamma, eps: optax.rmsprop(
            learning_rate, decay=gamma, eps=eps, eps_in_sqrt=False
        ),
    ),
    "rmsprop-eps_in_sqrt": Case(
        "rmsprop",
        rmsprop_reference,
        {"eps_in_sqrt": True},
        twin=lambda learning_rate, gamma, eps: optax.rmsprop(learning_rate, decay=gamma, eps=eps),
    ),
    "adam": Case("adam", adam_reference, twin=optax.adam),
    "adam-eps_in_sqrt": Case(
        "adam",
        adam_reference,
        {"eps_in_sqrt": True},
        twin=lambda learning_rate, b1, b2, eps: optax.adam(
            learning_rate, b1, b2, eps=0.0, eps_root=eps
        ),
    ),
    "amsgrad": Case("amsgrad", functools.partial(adam_reference, amsgrad=True), twin=optax.amsgrad),
    "amsgrad-eps_in_sqrt": Case(
        "amsgrad",
        functools.partial(adam_reference, amsgrad=True),
        {"eps_in_sqrt": True},
        twin=lambda learning_rate, b1, b2, eps: optax.amsgrad(
            learning_rate, b1, b2, eps=0.0, eps_root=eps
        ),
    ),
}
TWINNED = [name for name, case in CASES.items() if case.twin is not None]


def _problem(name: str, steps: int = STEPS):
    """A generator seeded by ``name``, a flat start (n,) and flat gradients (steps, n)."""
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    return rng, rng.normal(size=SIZE), rng.normal(size=(steps, SIZE))


def _run(opt, x0, grads):
    """Flat parameters after each step (steps, n), ``grads[t]`` (unraveled) fed at step t."""

    def step(carry, flat_grad):
        params, state = carry
        updates, state = opt.update(UNRAVEL(flat_grad), state, params)
        params = optax.apply_updates(params, updates)
        return (params, state), ravel_pytree(params)[0]

    params = UNRAVEL(x0)
    _, flat_params = jax.lax.scan(step, (params, opt.init(params)), grads)
    return flat_params


def trajectory(opt, x0, grads):
    """``_run`` as a Python loop, run eagerly with concrete hyperparameters.

    Eager steps reuse the compiled primitives across tests, where a jitted scan would be
    compiled anew for each rule and draw; the jitted paths have tests of their own. Under
    jit the loop unrolls: keep ``grads`` short there.
    """
    params, state = UNRAVEL(x0), opt.init(UNRAVEL(x0))
    flat_params = []
    for flat_grad in grads:
        updates, state = opt.update(UNRAVEL(flat_grad), state, params)
        params = optax.apply_updates(params, updates)
        flat_params.append(ravel_pytree(params)[0])
    return jnp.stack(flat_params)


def _replay(x0, steps):
    """The parameters after each of ``steps`` applied in turn to ``x0``."""
    return x0 + np.cumsum(steps, axis=0)


@pytest.mark.parametrize("name", TWINNED)
def test_matches_optax(name):
    case = CASES[name]
    rng, x0, grads = _problem(f"optax/{name}")
    hyperparams = case.draw(rng)
    got = trajectory(case.make(**hyperparams), x0, grads)
    expected = trajectory(case.twin(**hyperparams), x0, grads)
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=0)


@pytest.mark.parametrize("name", CASES)
def test_matches_numpy_loop(name):
    case = CASES[name]
    rng, x0, grads = _problem(f"numpy/{name}")
    hyperparams = case.draw(rng)
    rates = np.full(STEPS, hyperparams["learning_rate"])
    got = trajectory(case.make(**hyperparams), x0, grads)
    expected = _replay(x0, case.expected_steps(grads, rates, hyperparams))
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=0)


@pytest.mark.parametrize("name", CASES)
def test_learning_rate_schedule_matches_numpy_loop(name):
    case = CASES[name]
    rng, x0, grads = _problem(f"schedule/{name}")
    hyperparams = case.draw(rng)
    # A rate that changes at every step, so that an off-by-one in the step count shows. The
    # rules count steps in int32, for which this schedule computes in float32: the reference
    # takes the same rates.
    schedule = optax.exponential_decay(hyperparams["learning_rate"], 1, decay_rate=0.9)
    rates = np.array([float(schedule(jnp.asarray(t, jnp.int32))) for t in range(STEPS)])
    got = trajectory(case.make(**{**hyperparams, "learning_rate": schedule}), x0, grads)
    expected = _replay(x0, case.expected_steps(grads, rates, hyperparams))
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=0)


@pytest.mark.parametrize("name", CASES)
def test_inject_hyperparams_equals_plain_call(name):
    case = CASES[name]
    rng, x0, grads = _problem(f"inject/{name}", steps=20)
    hyperparams = case.draw(rng)
    injected = optax.inject_hyperparams(case.factory)(**hyperparams, **case.options)
    assert set(hyperparams) <= set(injected.init(UNRAVEL(x0)).hyperparams)
    got = trajectory(injected, x0, grads)
    expected = trajectory(case.make(**hyperparams), x0, grads)
    np.testing.assert_allclose(got, expected, **ROUNDING)


@pytest.mark.parametrize("rule", RULES)
def test_vmap_over_learning_rates_equals_single_runs(rule):
    """In the jitted scan all injected hyperparameters are traced, the rates also batched."""
    case = CASES[rule]
    rng, x0, grads = _problem(f"vmap/{rule}", steps=20)
    hyperparams = case.draw(rng)
    others = {k: v for k, v in hyperparams.items() if k != "learning_rate"}
    rates = [1e-3, 0.05, 0.2, 0.5]

    def injected(learning_rate):
        return optax.inject_hyperparams(case.factory)(learning_rate=learning_rate, **others)

    batched = jax.jit(jax.vmap(lambda rate: _run(injected(rate), x0, grads)))(jnp.array(rates))
    assert batched.shape == (len(rates), 20, SIZE)
    for run, rate in zip(batched, rates):
        single = trajectory(injected(rate), x0, grads)
        np.testing.assert_allclose(run, single, **ROUNDING)


@pytest.mark.parametrize("rule", RULES)
def test_traced_hyperparameters_pass_through_under_jit(rule):
    case = CASES[rule]
    rng, x0, grads = _problem(f"traced/{rule}", steps=2)
    hyperparams = case.draw(rng)
    run = jax.jit(lambda traced: trajectory(case.make(**traced), x0, grads))
    got = run({k: jnp.asarray(v) for k, v in hyperparams.items()})
    expected = trajectory(case.make(**hyperparams), x0, grads)
    np.testing.assert_allclose(got, expected, **ROUNDING)


@pytest.mark.parametrize("rule", ["adagrad", "rmsprop", "adam", "amsgrad"])
def test_eps_placement_changes_the_trajectory(rule):
    """Keeps the comparisons above able to tell the two placements apart."""
    _, x0, grads = _problem(f"eps/{rule}", steps=10)
    outside, inside = (
        trajectory(getattr(optlab, rule)(0.1, eps=1e-3, eps_in_sqrt=flag), x0, grads)
        for flag in (False, True)
    )
    assert np.max(np.abs(outside - inside) / np.abs(inside)) > 1e3 * RTOL


def test_chain_with_clipping_matches_optax():
    _, x0, grads = _problem("chain")
    clipped_adam = optax.chain(optax.clip_by_global_norm(1.0), optlab.adam(0.1))
    got = trajectory(clipped_adam, x0, 10.0 * grads)
    expected = trajectory(
        optax.chain(optax.clip_by_global_norm(1.0), optax.adam(0.1)), x0, 10.0 * grads
    )
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=0)


def shifted_bowl(x):
    return jnp.sum((x - 1.0) ** 2)


MINIMIZE_RULES = {
    "sgd": lambda: optlab.sgd(0.1),
    "noisy_sgd": lambda: optlab.noisy_sgd(0.1, 1e-6, seed=3),
    "momentum": lambda: optlab.momentum(0.1, 0.9),
    "heavy_ball": lambda: optlab.heavy_ball(0.05, 0.9),
    "nesterov": lambda: optlab.nesterov(0.05, 0.9),
    "adagrad": lambda: optlab.adagrad(0.5),
    "rmsprop": lambda: optlab.rmsprop(0.01),
    "adam": lambda: optlab.adam(0.1),
    "amsgrad": lambda: optlab.amsgrad(0.1),
    "clipped_adam": lambda: optax.chain(optax.clip_by_global_norm(1.0), optlab.adam(0.1)),
}


@pytest.mark.parametrize("name", MINIMIZE_RULES)
def test_minimize_converges_on_a_quadratic(name):
    result = optlab.minimize(
        shifted_bowl,
        jnp.array([0.0, -2.0, 3.0]),
        MINIMIZE_RULES[name](),
        stop=grad_norm(1e-4),
        max_iters=2000,
    )
    assert Status(int(result.status)) == Status.CONVERGED
    assert 0 < int(result.iterations) < 2000
    np.testing.assert_allclose(result.params, 1.0, atol=1e-4)


def _noisy_run(seed):
    _, x0, grads = _problem("noise", steps=20)
    return trajectory(optlab.noisy_sgd(0.1, 0.5, seed), x0, grads)


def test_noisy_sgd_is_deterministic_per_seed():
    np.testing.assert_array_equal(_noisy_run(7), _noisy_run(7))
    assert not np.allclose(_noisy_run(7), _noisy_run(8))


def test_noisy_sgd_accepts_a_prng_key():
    np.testing.assert_array_equal(_noisy_run(jax.random.key(7)), _noisy_run(7))


def test_noisy_sgd_vmap_over_seeds_equals_single_runs():
    _, x0, grads = _problem("noise", steps=20)
    seeds = jnp.arange(4)
    batched = jax.jit(jax.vmap(lambda seed: _run(optlab.noisy_sgd(0.1, 0.5, seed), x0, grads)))(
        seeds
    )
    for i in range(len(seeds)):
        np.testing.assert_allclose(batched[i], _noisy_run(i), **ROUNDING)


VALID = {"learning_rate": 0.1, "sigma": 0.5}  # for the required arguments
BAD_VALUES = {
    "learning_rate": [-0.1, float("nan")],
    **{name: [-0.1, 1.0, 1.5, float("nan")] for name in DECAYS},
    "eps": [-1e-8],
    "sigma": [-0.1],
}
BAD_CASES = [
    (rule, name, value)
    for rule, names in RULES.items()
    for name in names
    for value in BAD_VALUES.get(name, [])
]


def _arguments(rule, **overrides):
    required = {name: VALID[name] for name in RULES[rule] if name in VALID}
    return {**required, **overrides}


@pytest.mark.parametrize(
    "rule, name, value", BAD_CASES, ids=[f"{r}-{n}={v}" for r, n, v in BAD_CASES]
)
def test_bad_hyperparameter_raises_naming_it(rule, name, value):
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        getattr(optlab, rule)(**_arguments(rule, **{name: value}))


@pytest.mark.parametrize("rule", RULES)
def test_boundary_hyperparameters_are_accepted(rule):
    edges = {"learning_rate": 0.0, "sigma": 0.0, "eps": 0.0, **dict.fromkeys(DECAYS, 0.0)}
    getattr(optlab, rule)(**_arguments(rule, **{n: edges[n] for n in RULES[rule] if n in edges}))


@pytest.mark.parametrize("rule", RULES)
def test_concrete_array_hyperparameters_are_checked(rule):
    with pytest.raises(ValueError, match="learning_rate"):
        getattr(optlab, rule)(**_arguments(rule, learning_rate=jnp.asarray(-0.1)))


def test_newton_with_min_curvature_and_line_search_converges_where_newton_cycles():
    minimizer = optlab.problems.newton_cycle_minimizer()
    x0 = jnp.array([0.0, 2.0])

    def run(opt):
        return optlab.minimize(
            optlab.problems.newton_cycle, x0, opt, stop=grad_norm(1e-10), max_iters=100
        )

    modified = run(optlab.newton(line_search="backtracking", min_curvature=1e-3))
    assert Status(int(modified.status)) == Status.CONVERGED
    assert float(jnp.linalg.norm(modified.params - minimizer)) < 1e-8
    assert Status(int(run(optlab.newton()).status)) == Status.CYCLING


@pytest.mark.parametrize("min_curvature", [0, 0.0, -1e-3])
def test_non_positive_min_curvature_raises(min_curvature):
    with pytest.raises(ValueError, match="min_curvature"):
        optlab.newton(min_curvature=min_curvature)


def test_gradient_descent_equals_sgd():
    rng, x0, grads = _problem("gradient_descent")
    learning_rate = SAMPLERS["learning_rate"](rng)
    np.testing.assert_array_equal(
        trajectory(optlab.gradient_descent(learning_rate), x0, grads),
        trajectory(optlab.sgd(learning_rate), x0, grads),
    )


def test_noisy_sgd_accepts_a_raw_prng_key():
    raw = optlab.noisy_sgd(0.1, 1.0, jax.random.PRNGKey(3))
    typed = optlab.noisy_sgd(0.1, 1.0, jax.random.wrap_key_data(jax.random.PRNGKey(3)))
    gradient = jnp.ones(4)
    raw_update, _ = raw.update(gradient, raw.init(gradient))
    typed_update, _ = typed.update(gradient, typed.init(gradient))
    np.testing.assert_array_equal(raw_update, typed_update)


@pytest.mark.parametrize("rule", [
    optlab.sgd(0.1), optlab.noisy_sgd(0.1, 0.5), optlab.momentum(0.1), optlab.heavy_ball(0.1),
    optlab.nesterov(0.1), optlab.adagrad(0.1), optlab.rmsprop(0.1), optlab.adam(0.1),
    optlab.amsgrad(0.1)])
def test_every_rule_takes_the_extra_arguments_that_optax_passes(rule):
    # optax.chain and the line searches pass value=, grad=, value_fn= to every member.
    params = jnp.array([1.0, -2.0])
    updates, _ = rule.update(params, rule.init(params), params, value=jnp.float32(1.0))
    assert updates.shape == params.shape


def test_adam_keeps_two_moment_trees_and_amsgrad_three():
    params = jnp.zeros(100_000)
    sizes = {name: sum(leaf.size for leaf in jax.tree.leaves(rule.init(params)))
             for name, rule in (("adam", optlab.adam(0.1)), ("amsgrad", optlab.amsgrad(0.1)))}
    optax_size = sum(leaf.size for leaf in jax.tree.leaves(optax.adam(0.1).init(params)))
    assert sizes == {"adam": optax_size, "amsgrad": 300_001} and optax_size == 200_001


@pytest.mark.parametrize("rule", [optlab.heavy_ball, optlab.nesterov, optlab.momentum])
def test_momentum_states_keep_their_dtypes_under_scan(rule):
    # bfloat16 parameters, a float32 rate: the state must not turn float32 after a step.
    opt = rule(jnp.float32(0.1))
    params = jnp.ones(3, jnp.bfloat16)

    def step(carry, _):
        params, state = carry
        updates, state = opt.update(params, state, params)
        return (optax.apply_updates(params, updates), state), None

    (params, state), _ = jax.lax.scan(step, (params, opt.init(params)), None, length=3)
    assert params.dtype == jnp.bfloat16
    assert {leaf.dtype for leaf in jax.tree.leaves(state) if leaf.ndim} == {jnp.dtype(jnp.bfloat16)}


def test_a_decay_rounded_to_one_by_bfloat16_says_how_to_keep_it():
    opt = optax.inject_hyperparams(optlab.adam)(learning_rate=0.1)
    with pytest.raises(ValueError, match=r"b2 must be in \[0.0, 1.0\).*rounded to bfloat16.*"
                                         r"hyperparam_dtype=jnp.float32"):
        opt.init(jnp.ones(3, jnp.bfloat16))
    opt = optax.inject_hyperparams(optlab.adam, hyperparam_dtype=jnp.float32)(learning_rate=0.1)
    opt.init(jnp.ones(3, jnp.bfloat16))


@pytest.mark.parametrize("name", TWINNED)
def test_complex_parameters_match_optax(name):
    # Second moments are of |g|^2, as in optax: g * g would be wrong for complex g.
    case = CASES[name]
    rng, x0, grads = _problem(f"complex/{name}")
    _, y0, imaginary = _problem(f"complex-imaginary/{name}")
    hyperparams = case.draw(rng)

    def run(opt):
        params = jnp.asarray(x0 + 1j * y0)
        state, path = opt.init(params), []
        for grad in grads + 1j * imaginary:
            updates, state = opt.update(jnp.asarray(grad), state, params)
            params = optax.apply_updates(params, updates)
            path.append(params)
        return np.stack(path)

    np.testing.assert_allclose(run(case.make(**hyperparams)), run(case.twin(**hyperparams)),
                               rtol=RTOL, atol=1e-12)
