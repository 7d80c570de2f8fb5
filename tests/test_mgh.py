"""optlab.problems.mgh: the 18 Moré–Garbow–Hillstrom problems, against sif2jax (CUTEst)
where it holds the same function, and against their known minimizers and start values."""

import importlib.util
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from optlab import problems


# sif2jax's problem for those whose SIF definition is MGH's (PENALTY1, PENALTY2,
# POWELLSG and TRIGON1 scale or define theirs differently; VARDIM fixes n = 200; sif2jax
# holds GULF and WATSON back, pending review).
SIF_NAMES = {"helical_valley": "HELIX", "biggs_exp6": "BIGGS6", "gaussian": "GAUSSIAN",
             "box_3d": "BOX3", "brown_badly_scaled": "BROWNBS", "brown_dennis": "BROWNDEN",
             "rosenbrock": "ROSENBR", "beale": "BEALE", "wood": "WOODS"}

# Known minimizers (MGH), where f* = 0 is reached at a closed-form point.
MINIMIZERS = {
    "helical_valley": [1.0, 0.0, 0.0],
    "biggs_exp6": [1.0, 10.0, 1.0, 5.0, 4.0, 3.0],
    "box_3d": [1.0, 10.0, 1.0],
    "variably_dimensioned": np.ones(10),
    "brown_badly_scaled": [1e6, 2e-6],
    "gulf": [50.0, 25.0, 1.5],
    "rosenbrock": [1.0, 1.0],
    "powell_singular": np.zeros(4),
    "beale": [3.0, 0.5],
    "wood": np.ones(4),
}


def test_eighteen_problems_in_the_papers_order():
    assert len(problems.MGH_PROBLEMS) == 18
    numbers = [problem.number for problem in problems.mgh_problems()]
    assert sorted(numbers) == [3, 4, 5, 7, 9, 11, 12, 14, 16, 18, 20, 21, 22, 23, 24, 25, 26, 35]
    for problem in problems.mgh_problems():
        assert problem.x0.dtype == np.float64 and problem.n == problem.x0.shape[0]
        value = problem.fun(jnp.asarray(problem.x0))
        assert value.shape == () and np.isfinite(value) and value > problem.f_star


@pytest.mark.skipif(importlib.util.find_spec("sif2jax") is None,
                    reason="sif2jax is not installed (the test extra)")
@pytest.mark.parametrize("name", sorted(SIF_NAMES))
def test_the_same_function_as_sif2jax(name):
    problem = problems.mgh(name)
    reference = problems.cutest(SIF_NAMES[name], n=problem.n if name == "wood" else None)
    rng = np.random.default_rng(0)
    for x in [problem.x0, *(problem.x0 + 0.1 * rng.standard_normal((3, problem.n)))]:
        np.testing.assert_allclose(problem.fun(jnp.asarray(x)), reference.fun(jnp.asarray(x)),
                                   rtol=1e-12)


@pytest.mark.parametrize("name", sorted(MINIMIZERS))
def test_zero_at_the_known_minimizers(name):
    problem = problems.mgh(name)
    x = jnp.asarray(MINIMIZERS[name], jnp.float64)
    assert float(problem.fun(x)) < 1e-20 and problem.f_star == 0.0
    assert float(jnp.linalg.norm(jax.grad(problem.fun)(x))) < 1e-8


def _loop_value(name: str, x: np.ndarray) -> float:
    """The residuals written out one by one from the paper, for the problems above
    without a closed-form minimizer or a sif2jax twin."""
    n = len(x)
    if name == "powell_badly_scaled":
        r = [1e4 * x[0] * x[1] - 1, math.exp(-x[0]) + math.exp(-x[1]) - 1.0001]
    elif name == "penalty_1":
        r = [math.sqrt(1e-5) * (xi - 1) for xi in x] + [sum(xi * xi for xi in x) - 0.25]
    elif name == "penalty_2":
        a = math.sqrt(1e-5)
        r = [x[0] - 0.2]
        for i in range(2, n + 1):
            y = math.exp(i / 10) + math.exp((i - 1) / 10)
            r.append(a * (math.exp(x[i - 1] / 10) + math.exp(x[i - 2] / 10) - y))
        for i in range(n + 1, 2 * n):
            r.append(a * (math.exp(x[i - n] / 10) - math.exp(-1 / 10)))
        r.append(sum((n - j + 1) * x[j - 1] ** 2 for j in range(1, n + 1)) - 1)
    elif name == "trigonometric":
        total = sum(math.cos(xj) for xj in x)
        r = [n - total + i * (1 - math.cos(x[i - 1])) - math.sin(x[i - 1])
             for i in range(1, n + 1)]
    elif name == "variably_dimensioned":
        weighted = sum(j * (x[j - 1] - 1) for j in range(1, n + 1))
        r = [xi - 1 for xi in x] + [weighted, weighted**2]
    elif name == "powell_singular":
        r = []
        for i in range(0, n, 4):
            a, b, c, d = x[i:i + 4]
            r += [a + 10 * b, math.sqrt(5) * (c - d), (b - 2 * c) ** 2,
                  math.sqrt(10) * (a - d) ** 2]
    elif name == "watson":
        r = []
        for i in range(1, 30):
            t = i / 29
            derivative = sum((j - 1) * x[j - 1] * t ** (j - 2) for j in range(2, n + 1))
            value = sum(x[j - 1] * t ** (j - 1) for j in range(1, n + 1))
            r.append(derivative - value**2 - 1)
        r += [x[0], x[1] - x[0] ** 2 - 1]
    elif name == "gulf":
        r = []
        for i in range(1, 100):
            t = i / 100
            y = 25 + (-50 * math.log(t)) ** (2 / 3)
            r.append(math.exp(-abs(y - x[1]) ** x[2] / x[0]) - t)
    elif name == "chebyquad":
        r = []
        for i in range(1, n + 1):
            # T_i(u) = cos(i arccos u) on [-1, 1]
            mean = sum(math.cos(i * math.acos(2 * xj - 1)) for xj in x) / n
            r.append(mean - (0.0 if i % 2 else -1.0 / (i * i - 1)))
    return sum(ri * ri for ri in r)


@pytest.mark.parametrize("name", ["powell_badly_scaled", "penalty_1", "penalty_2",
                                  "trigonometric", "variably_dimensioned", "powell_singular",
                                  "chebyquad", "watson", "gulf"])
def test_values_equal_the_papers_residuals_written_out(name):
    problem = problems.mgh(name)
    rng = np.random.default_rng(1)
    for x in [problem.x0, *(problem.x0 + 0.05 * rng.standard_normal((2, problem.n)))]:
        np.testing.assert_allclose(float(problem.fun(jnp.asarray(x))), _loop_value(name, x),
                                   rtol=1e-12)


def test_sizes_and_errors():
    assert problems.mgh("watson", n=9).f_star == 1.39976e-6
    assert math.isnan(problems.mgh("penalty_1", n=5).f_star)
    assert problems.mgh("rosenbrock", n=10).x0.tolist() == [-1.2, 1.0] * 5
    assert problems.mgh("powell_singular", n=8).f_star == 0.0
    with pytest.raises(ValueError, match="unknown MGH problem 'himmelblau'"):
        problems.mgh("himmelblau")
    with pytest.raises(ValueError, match="rosenbrock takes an even n >= 2, got n=3"):
        problems.mgh("rosenbrock", n=3)
    with pytest.raises(ValueError, match="beale takes n = 2 only"):
        problems.mgh("beale", n=4)
    with pytest.raises(TypeError, match="n must be an int"):
        problems.mgh("watson", n=6.0)


def test_solved_and_iterations_to_solve():
    assert problems.solved(1.0 + 5e-7, 1.0) and not problems.solved(1.0 + 2e-6, 1.0)
    assert problems.solved(85822.2 + 0.05, 85822.2)  # relative above |f*| = 1
    assert problems.iterations_to_solve([3.0, 1e-3, 1e-7, 0.0], 0.0) == 2
    assert problems.iterations_to_solve([3.0, 1.0], 0.0) is None
