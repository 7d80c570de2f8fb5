"""Tests of optlab.line_search: the accepted step meets each search's conditions.

Every search is called on flat vectors, as the module's contract says, on random
quadratics and on Rosenbrock, with steepest-descent, preconditioned and random descent
directions. Objectives are data (a kind and its arrays) so that one compilation serves
every case of a shape.
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from optlab import line_search
from optlab.problems import ROSENBROCK_START, rosenbrock

C1, C2, SHRINK = 1e-4, 0.9, 0.5
SEARCHES = {
    "backtracking": lambda: line_search.backtracking(c1=C1, shrink=SHRINK),
    "wolfe": lambda: line_search.strong_wolfe(c1=C1, c2=C2),
    "exact": line_search.exact_quadratic,
}


class Case(NamedTuple):
    name: str
    kind: str  # "quadratic" (coefficients = (A, b)) or "rosenbrock" (coefficients = ())
    coefficients: tuple
    x: jax.Array
    direction: jax.Array
    step: float  # first trial step


def _objective(kind, coefficients):
    if kind == "rosenbrock":
        return rosenbrock
    a, b = coefficients
    return lambda x: 0.5 * x @ (a @ x) + b @ x


@functools.partial(jax.jit, static_argnums=0)
def _derivatives(kind, coefficients, x):
    """Value, gradient and Hessian at ``x``."""
    fun = _objective(kind, coefficients)
    value, grad = jax.value_and_grad(fun)(x)
    return value, grad, jax.hessian(fun)(x)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _search(search_name, kind, coefficients, x, direction, step):
    fun = _objective(kind, coefficients)
    value, grad = jax.value_and_grad(fun)(x)
    search = SEARCHES[search_name]()
    return search(jax.value_and_grad(fun), x, value, grad, direction, step)


def _quadratic_cases(seed: int, n: int, kappa: float) -> list[Case]:
    """``1/2 x.Ax + b.x`` with eigenvalues log-spaced in ``[1, kappa]``, built in NumPy so
    that these tests do not depend on optlab.problems."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    a = (q * np.logspace(0.0, np.log10(kappa), n)[None, :]) @ q.T
    b = rng.standard_normal(n)
    x = rng.standard_normal(n)
    g = a @ x + b
    m = rng.standard_normal((n, n))
    preconditioned = -(m @ m.T + np.eye(n)) @ g
    random = rng.standard_normal(n)
    random = -np.sign(random @ g) * random
    name = f"quadratic-n{n}-kappa{kappa:g}"
    coefficients = (jnp.asarray(a), jnp.asarray(b))
    return [
        Case(f"{name}-{label}", "quadratic", coefficients, jnp.asarray(x), jnp.asarray(d), 1.0)
        for label, d in (("gradient", -g), ("preconditioned", preconditioned), ("random", random))
    ]


def _rosenbrock_cases() -> list[Case]:
    points = {
        "classic": [-1.2, 1.0],
        "seed-start": list(ROSENBROCK_START),
        "origin": [0.0, 0.0],
        "4d": [-0.5, 1.5, 0.3, -1.0],
    }
    cases = []
    for name, point in points.items():
        x = jnp.asarray(point)
        g = jax.grad(rosenbrock)(x)
        cases.append(Case(f"rosenbrock-{name}-gradient", "rosenbrock", (), x, -g, 1.0))
        # A small first trial along the unit gradient: the searches must extrapolate.
        unit = -g / jnp.linalg.norm(g)
        cases.append(Case(f"rosenbrock-{name}-unit", "rosenbrock", (), x, unit, 1e-3))
    return cases


CASES = [
    *_quadratic_cases(0, 2, 10.0),
    *_quadratic_cases(1, 10, 1e3),
    *_quadratic_cases(2, 30, 1e5),
    *_rosenbrock_cases(),
]
CASE_IDS = [case.name for case in CASES]


@functools.cache
def _run(search_name: str, index: int) -> line_search.LineSearchResult:
    """One search on one case, computed once and shared by the tests below."""
    case = CASES[index]
    return _search(search_name, case.kind, case.coefficients, case.x, case.direction, case.step)


def _at(case: Case, step=0.0):
    """Value, gradient and Hessian at ``x + step * direction``, as NumPy."""
    derivatives = _derivatives(case.kind, case.coefficients, case.x + step * case.direction)
    return tuple(np.asarray(d) for d in derivatives)


@pytest.mark.parametrize("index", range(len(CASES)), ids=CASE_IDS)
def test_backtracking_step_satisfies_armijo_and_is_the_first_such(index):
    case = CASES[index]
    result = _run("backtracking", index)
    value, grad, _ = _at(case)
    slope = grad @ np.asarray(case.direction)
    step = float(result.step)
    assert not result.failed and step > 0
    assert _at(case, step)[0] <= value + C1 * step * slope
    # The k-th trial is step * shrink**k, and the trial before the accepted one failed.
    assert step == pytest.approx(case.step * SHRINK ** (int(result.evaluations) - 1), rel=1e-14)
    if int(result.evaluations) > 1:
        previous = step / SHRINK
        assert _at(case, previous)[0] > value + C1 * previous * slope


@pytest.mark.parametrize("index", range(len(CASES)), ids=CASE_IDS)
def test_strong_wolfe_step_satisfies_both_conditions(index):
    case = CASES[index]
    result = _run("wolfe", index)
    value, grad, _ = _at(case)
    direction = np.asarray(case.direction)
    slope = grad @ direction
    step = float(result.step)
    assert not result.failed and step > 0
    new_value, new_grad, _ = _at(case, step)
    assert new_value <= value + C1 * step * slope  # sufficient decrease
    assert abs(new_grad @ direction) <= C2 * abs(slope)  # strong curvature condition


@pytest.mark.parametrize("index", range(len(CASES)), ids=CASE_IDS)
def test_exact_step_is_the_line_minimizer(index):
    """On a quadratic, the closed form ``-g.d / d.Ad``; on Rosenbrock, the docstring's one
    Newton step along the line where the curvature is positive, failure where it is not."""
    case = CASES[index]
    result = _run("exact", index)
    _, grad, hessian = _at(case)
    direction = np.asarray(case.direction)
    curvature = direction @ hessian @ direction
    if case.kind == "quadratic":
        np.testing.assert_allclose(hessian, case.coefficients[0], rtol=1e-12)
        assert curvature > 0
    if curvature > 0:
        assert not result.failed
        np.testing.assert_allclose(float(result.step), -(grad @ direction) / curvature, rtol=1e-12)
    else:
        assert result.failed and float(result.step) == 0.0


@pytest.mark.parametrize("search_name", SEARCHES)
@pytest.mark.parametrize("index", range(len(CASES)), ids=CASE_IDS)
def test_returned_value_and_grad_are_those_at_the_accepted_point(search_name, index):
    case = CASES[index]
    result = _run(search_name, index)
    value, grad, _ = _at(case, float(result.step))
    np.testing.assert_allclose(result.value, value, rtol=1e-12)
    np.testing.assert_allclose(result.grad, grad, rtol=1e-12, atol=1e-12 * np.abs(grad).max())
    assert result.evaluations.dtype == jnp.int32 and int(result.evaluations) >= 1


@pytest.mark.parametrize("search_name", SEARCHES)
@pytest.mark.parametrize("index", [4, len(CASES) - 2], ids=[CASE_IDS[4], CASE_IDS[-2]])
def test_non_descent_direction_fails_with_zero_step(search_name, index):
    case = CASES[index]
    value, grad, _ = _at(case)
    result = _search(search_name, case.kind, case.coefficients, case.x, jnp.asarray(grad), 1.0)
    assert bool(result.failed)
    assert float(result.step) == 0.0
    np.testing.assert_array_equal(result.value, value)
    np.testing.assert_array_equal(result.grad, grad)


@pytest.mark.parametrize(
    "make",
    [
        lambda: line_search.backtracking(c1=0.0),
        lambda: line_search.backtracking(c1=1.0),
        lambda: line_search.backtracking(shrink=0.0),
        lambda: line_search.backtracking(shrink=1.0),
        lambda: line_search.strong_wolfe(c1=0.0),
        lambda: line_search.strong_wolfe(c1=0.5, c2=0.4),
        lambda: line_search.strong_wolfe(c1=0.5, c2=0.5),
        lambda: line_search.strong_wolfe(c2=1.0),
    ],
)
def test_invalid_constants_raise(make):
    with pytest.raises(ValueError, match="need 0 <"):
        make()


def test_get_by_name_and_unknown_name():
    for name in SEARCHES:
        assert callable(line_search.get(name))
    search = line_search.backtracking()
    assert line_search.get(search) is search
    with pytest.raises(ValueError, match="nope") as error:
        line_search.get("nope")
    for name in ("backtracking", "exact", "wolfe"):
        assert name in str(error.value)


@pytest.mark.parametrize("search_name", SEARCHES)
def test_searches_batch_under_vmap_over_directions(search_name):
    """Three descent directions on one quadratic and ``d = +g``: each member of the batch
    equals its own unbatched search, the failing one included."""
    indices = [3, 4, 5]
    case = CASES[indices[0]]
    _, grad, _ = _at(case)
    directions = jnp.stack([CASES[i].direction for i in indices] + [jnp.asarray(grad)])
    search = functools.partial(_search, search_name, case.kind, case.coefficients, case.x)

    batched = jax.vmap(search, in_axes=(0, None))(directions, 1.0)

    assert batched.step.shape == (4,) and batched.grad.shape == (4, case.x.size)
    np.testing.assert_array_equal(batched.failed, [False, False, False, True])
    for i, direction in enumerate(directions):
        single = search(direction, 1.0)
        np.testing.assert_allclose(batched.step[i], single.step, rtol=1e-12)
        np.testing.assert_allclose(batched.value[i], single.value, rtol=1e-12)
        np.testing.assert_allclose(batched.grad[i], single.grad, rtol=1e-12, atol=1e-14)
        assert int(batched.evaluations[i]) == int(single.evaluations)
