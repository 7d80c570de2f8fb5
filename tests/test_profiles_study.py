"""experiments.profiles: the peers' recorded runs against the peers run directly, and the
study's reading of runs into costs, budgets and tables on a hand-made case."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize

from configs import profiles as default_config
from experiments import profiles as study
from experiments.kit import peer_solvers
from optlab import benchmark, problems

STEPS = 25


@pytest.mark.parametrize("name", ["BFGS", "LBFGS"])  # LBFGS's state holds a jaxpr
def test_optimistix_history_follows_optimistix_minimise(name):
    optimistix = pytest.importorskip("optimistix")
    rosenbrock = problems.mgh("rosenbrock")
    x0 = jnp.asarray(rosenbrock.x0)
    solve = peer_solvers.optimistix_solver(name, gtol=1e-300, max_steps=STEPS)
    trace = jax.jit(lambda x: solve(rosenbrock.fun, x, None, None))(x0)
    assert int(trace.iterations) == STEPS and int(trace.status) == 1  # MAX_ITERS
    np.testing.assert_array_equal(trace.evaluations, np.maximum(np.arange(STEPS + 1), 1))
    for steps in (3, 11, STEPS):
        solution = optimistix.minimise(lambda y, args: rosenbrock.fun(y),
                                       getattr(optimistix, name)(rtol=0.0, atol=0.0), x0,
                                       max_steps=steps, throw=False)
        assert float(trace.values[steps]) == pytest.approx(
            float(rosenbrock.fun(solution.value)), rel=1e-12)
    with pytest.raises(ValueError, match="unknown optimistix solver"):
        peer_solvers.optimistix_solver("Newton", gtol=1e-6, max_steps=1)


def test_scipy_history_is_scipys_own():
    chosen = [problems.mgh("rosenbrock"), problems.mgh("helical_valley")]  # not done in 25
    starts = [problem.x0[None] for problem in chosen]
    runs = peer_solvers.scipy_runs("BFGS", chosen, starts, gtol=1e-300, max_iters=STEPS)
    assert runs.values.shape == (2, 1, STEPS + 1)
    for p, problem in enumerate(chosen):
        values = [float(problem.fun(jnp.asarray(problem.x0)))]
        result = scipy.optimize.minimize(
            lambda x: float(problem.fun(jnp.asarray(x))), problem.x0,
            jac=lambda x: np.asarray(jax.grad(problem.fun)(jnp.asarray(x))), method="BFGS",
            callback=lambda intermediate_result: values.append(intermediate_result.fun),
            options={"gtol": 0.0, "maxiter": STEPS})
        kept = len(values)
        np.testing.assert_allclose(runs.values[p, 0, :kept], values, rtol=1e-6)  # jit rounds
        assert runs.iterations[p, 0] == result.nit == kept - 1
        assert runs.evaluations[p, 0, kept - 1] == result.nfev
    beale = problems.mgh("beale")
    for method in ("BFGS", "Newton-CG", "trust-ncg"):  # the last two with Hessian products
        converged = peer_solvers.scipy_runs(method, [beale], [beale.x0[None]], gtol=1e-6,
                                            max_iters=STEPS)
        assert converged.status[0, 0] == 0 and converged.iterations[0, 0] < STEPS, method
        assert converged.values[0, 0, -1] < 1e-10


def _runs(values, evaluations, status, seconds) -> benchmark.Runs:
    values = np.asarray(values, np.float64)
    return benchmark.Runs(values, np.asarray(evaluations), np.full(values.shape[:2], 3),
                          np.asarray(status), np.full(values.shape[:2], seconds), 0.5)


def test_costs_budgets_and_dropped_starts_on_a_hand_made_case():
    """Two problems (f* = 0 and unknown), two starts each, two solvers, three entries."""
    chosen = [problems.Problem("known", lambda x: x @ x, np.ones(1), f_star=0.0),
              problems.Problem("unknown", lambda x: x @ x, np.ones(2))]
    fast = _runs([[[4, 1e-9, 0], [8, 1, 1]], [[2, 1.5, 1.0], [np.nan, np.nan, np.nan]]],
                 [[[1, 2, 3], [1, 2, 3]], [[1, 2, 3], [1, 1, 1]]], [[0, 1], [0, 2]], 1.0)
    slow = _runs([[[4, 2, 1e-9], [8, 4, 1e-9]], [[2, 1.2, 1.2], [np.nan, np.nan, np.nan]]],
                 [[[1, 5, 30], [1, 9, 12]], [[1, 4, 8], [1, 1, 1]]], [[0, 0], [0, 2]], 2.0)
    config = dataclasses.replace(default_config.get_config(), max_evaluations=20,
                                 tolerance=1e-6, data_tolerances=(1e-6,))
    results = study.analyse(config, chosen, {"fast": fast, "slow": slow})
    # The NaN start is dropped; f_L is 0 (known) and 1.0 (the best found on "unknown").
    assert results["instances"] == 3 and results["dropped"] == 1
    fast_row, slow_row = results["summary"]
    # fast: solves known/0 at 2 evaluations, never known/1, unknown/0 at 3.
    # slow: known/0 needs 30 > 20 evaluations (unsolved), known/1 at 12, never unknown/0.
    assert fast_row["solved"] == "2/3" and slow_row["solved"] == "1/3"
    assert fast_row["median_evaluations"] == 2.5 and slow_row["median_evaluations"] == 12
    assert fast_row["wins_evaluations"] == pytest.approx(2 / 3)
    assert slow_row["wins_seconds"] == pytest.approx(1 / 3)
    assert fast_row["converged"] == 2 and fast_row["stopped_otherwise"] == 1
    rows = {(row["problem"], row["solver"]): row for row in results["per_problem"]}
    assert rows["unknown", "fast"]["starts"] == 1 and rows["known", "slow"]["solved"] == 1
    performance = results["performance_profiles"]["evaluations"]
    np.testing.assert_allclose(np.asarray(performance["fractions"])[:, -1], [2 / 3, 1 / 3])
    data = results["data_profiles"]["1e-06"]  # simplex gradients: 2/2, 3/3 and 12/2
    np.testing.assert_allclose(data["x"], [1.0, 6.0])
    np.testing.assert_allclose(data["fractions"], [[2 / 3, 2 / 3], [0.0, 1 / 3]])
    assert "| known" in study.render_tables(config, results)


def test_a_bounded_set_takes_only_solvers_with_bounds():
    config = dataclasses.replace(default_config.get_config(), problems="cutest_bounded")
    with pytest.raises(ValueError, match="takes lbfgsb, scipy_lbfgsb, not bfgs"):
        study.validate(config)
    with pytest.raises(ValueError, match=r"tolerances must lie in \(0, 1\), got 0"):
        study.validate(dataclasses.replace(config, solvers=("lbfgsb",), tolerance=0.0))
