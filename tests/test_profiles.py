"""optlab.profiles: performance and data profiles on hand-worked cases, and the test that
reads the cost to solve off a history."""

import numpy as np
import pytest

from optlab import profiles

INF = np.inf


def test_a_solver_fastest_on_every_problem_has_rho_one_at_tau_one():
    costs = np.array([[1.0, 2.0, 4.0], [3.0, 6.0, 3.5], [10.0, 11.0, 40.0]])
    profile = profiles.performance_profile(costs)
    np.testing.assert_array_equal(profile.at(1.0), [1.0, 0.0, 0.0])
    # Ratios: solver 1 is (2, 2, 1.1), solver 2 is (4, 7/6, 4).
    np.testing.assert_allclose(profile.at(1.1), [1.0, 1 / 3, 0.0])
    np.testing.assert_allclose(profile.at(2.0), [1.0, 1.0, 1 / 3])
    np.testing.assert_allclose(profile.at(4.0), [1.0, 1.0, 1.0])
    assert profile.x[0] == 1.0 and np.all(np.diff(profile.x) > 0)


def test_ties_count_for_every_solver_that_ties():
    costs = np.array([[5.0, 5.0], [2.0, 4.0], [7.0, 7.0]])
    profile = profiles.performance_profile(costs)
    np.testing.assert_allclose(profile.at(1.0), [1.0, 2 / 3])
    np.testing.assert_allclose(profile.at(2.0), [1.0, 1.0])


def test_a_problem_no_solver_solves_keeps_every_fraction_below_one():
    costs = np.array([[1.0, 2.0], [INF, INF], [3.0, 1.0], [2.0, 2.0]])
    profile = profiles.performance_profile(costs)
    np.testing.assert_allclose(profile.at(1.0), [0.5, 0.5])
    np.testing.assert_allclose(profile.at(1e9), [0.75, 0.75])  # 3 of 4 at most
    np.testing.assert_allclose(profile.fractions[:, -1], [0.75, 0.75])


def test_a_solver_that_fails_everywhere_stays_at_zero():
    costs = np.array([[1.0, INF, 3.0], [2.0, INF, 1.0]])
    profile = profiles.performance_profile(costs, taus=[1.0, 2.0, 3.0, 100.0])
    np.testing.assert_array_equal(profile.fractions[1], 0.0)
    np.testing.assert_allclose(profile.fractions[0], [0.5, 1.0, 1.0, 1.0])
    np.testing.assert_allclose(profile.fractions[2], [0.5, 0.5, 1.0, 1.0])
    assert np.all(profile.at(0.5) == 0.0)  # below the first step


def test_data_profile_counts_simplex_gradients():
    # Problems of size 1 and 3: one simplex gradient is 2 and 4 evaluations.
    evaluations = np.array([[2.0, 8.0], [8.0, INF]])
    profile = profiles.data_profile(evaluations, sizes=[1, 3])
    np.testing.assert_allclose(profile.x, [1.0, 2.0, 4.0])
    np.testing.assert_allclose(profile.fractions, [[0.5, 1.0, 1.0], [0.0, 0.0, 0.5]])


def test_cost_to_solve_is_the_first_entry_that_passes():
    values = np.array([[10.0, 4.0, 1.0 + 1e-6, 1.0, 1.0],   # passes at entry 2 (tol 1e-5)
                       [10.0, 5.0, 3.0, 3.0, 3.0],           # never
                       [10.0, np.nan, 1.0, 1.0, 1.0]])       # NaN never passes; entry 2
    evaluations = np.array([[1, 3, 4, 7, 7], [1, 2, 3, 3, 3], [1, 5, 9, 9, 9]])
    f0, f_low = values[:, 0], np.ones(3)
    np.testing.assert_array_equal(
        profiles.costs_to_solve(values, evaluations, f0, f_low, 1e-5), [4, INF, 9])
    np.testing.assert_array_equal(
        profiles.costs_to_solve(values, np.arange(5), f0, f_low, 1e-8), [3, INF, 2])
    np.testing.assert_array_equal(  # a loose test passes earlier: 5 <= 1 + 0.5 * 9
        profiles.costs_to_solve(values, np.arange(5), f0, f_low, 0.5), [1, 1, 2])
    with pytest.raises(ValueError, match="tol must lie in"):
        profiles.costs_to_solve(values, evaluations, f0, f_low, 1.0)


def test_lowest_values_take_the_known_minimum_where_it_is_lower():
    np.testing.assert_array_equal(
        profiles.lowest_values([1.0, 0.5, 2.0], [0.0, 0.6, np.nan]), [0.0, 0.5, 2.0])
    np.testing.assert_array_equal(profiles.lowest_values([1.0, 0.5]), [1.0, 0.5])


@pytest.mark.parametrize("costs, message", [
    (np.array([1.0, 2.0]), "problems, solvers"),
    (np.array([[1.0, 0.0]]), "positive"),
    (np.array([[1.0, np.nan]]), "positive"),
])
def test_bad_costs_are_refused(costs, message):
    with pytest.raises(ValueError, match=message):
        profiles.performance_profile(costs)
    with pytest.raises(ValueError, match="taus must be increasing"):
        profiles.performance_profile(np.ones((2, 2)), taus=[2.0, 1.5])
    with pytest.raises(ValueError, match="sizes must be 2 positive"):
        profiles.data_profile(np.ones((2, 2)), sizes=[3])
