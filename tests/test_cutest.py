"""optlab.problems.cutest: sif2jax's unconstrained and bound-constrained CUTEst problems as
optlab problems, without importing the rest of the collection."""

import importlib.util
import math
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from optlab import problems

pytestmark = pytest.mark.skipif(importlib.util.find_spec("sif2jax") is None,
                                reason="sif2jax is not installed (the bench and test extras)")


def test_a_problem_is_its_sif2jax_function_at_its_standard_start():
    problem = problems.cutest("ROSENBR")
    assert problem.name == "ROSENBR" and problem.n == 2 and problem.f_star == 0.0
    np.testing.assert_array_equal(problem.x0, [-1.2, 1.0])
    x = jnp.array([0.3, -0.7])
    assert float(problem.fun(x)) == pytest.approx(100 * (-0.7 - 0.09) ** 2 + 0.7**2, rel=1e-14)
    assert float(jnp.linalg.norm(jax.grad(problem.fun)(jnp.ones(2)))) == 0.0
    assert not problem.bounded


def test_sets_are_chosen_by_kind_size_name_and_known_minimum():
    small = problems.cutest_problems(max_n=3)
    assert small and all(1 <= problem.n <= 3 for problem in small)
    assert len({problem.name for problem in small}) == len(small)
    known = problems.cutest_problems(max_n=3, known_minimum=True)
    assert known and all(not math.isnan(problem.f_star) for problem in known)
    assert {problem.name for problem in known} < {problem.name for problem in small}
    named = problems.cutest_problems(names=["BEALE", "ROSENBR", "CHNROSNB"], max_n=10)
    assert [problem.name for problem in named] == ["BEALE", "ROSENBR"]  # CHNROSNB has n = 50
    # The collection's other kinds are not imported.
    assert "sif2jax.cutest._constrained_minimisation" not in sys.modules


def test_bounded_problems_carry_their_boxes():
    boxed = problems.cutest_problems("bounded", max_n=4)
    assert boxed and all(problem.bounded for problem in boxed)
    for problem in boxed:
        lower, upper = problem.box()
        assert lower.shape == upper.shape == (problem.n,) and np.all(lower <= upper)
        assert np.isfinite(problem.fun(jnp.asarray(np.clip(problem.x0, lower, upper))))
    hs1 = problems.cutest("HS1")
    assert hs1.lower[1] == -1.5 and np.isinf(hs1.lower[0]) and np.all(np.isinf(hs1.upper))


def test_sizes_and_errors():
    resized = problems.cutest("ARWHEAD", n=10)
    assert resized.n == 10 and math.isnan(resized.f_star)
    with pytest.raises(ValueError, match="unknown CUTEst problem 'NOPE'"):
        problems.cutest("NOPE")
    with pytest.raises(ValueError, match="ROSENBR has a fixed size 2, got n=4"):
        problems.cutest("ROSENBR", n=4)
    with pytest.raises(ValueError, match="unknown CUTEst problems: NOPE"):
        problems.cutest_problems(names=["NOPE"])
    with pytest.raises(ValueError, match="kind must be one of"):
        problems.cutest_problems("constrained")
