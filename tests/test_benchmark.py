"""optlab.benchmark: problems of different sizes in groups of one compiled program each,
every start vmapped, against the same runs made one at a time."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import optlab
from optlab import benchmark, problems

MAX_ITERS = 60


@pytest.fixture(scope="module")
def mixed():
    """Three sizes, so that a group of two pads one problem; a user function among them."""
    chosen = [problems.mgh("helical_valley"), problems.mgh("rosenbrock"),
              problems.Problem("shifted_bowl", lambda x: jnp.sum((x - 1.5) ** 4 + x**2),
                               np.zeros(5)),
              problems.mgh("beale")]
    starts = [benchmark.perturbed_starts(problem, seeds=2, scale=0.2) for problem in chosen]
    return chosen, starts


def test_grouped_runs_equal_runs_made_one_at_a_time(mixed):
    chosen, starts = mixed
    stop = optlab.stopping.grad_norm(1e-8)
    runs = benchmark.run_problems(
        benchmark.minimize_solver(optlab.bfgs(), stop=stop, max_iters=MAX_ITERS),
        chosen, starts, group=2, repeats=0)
    assert runs.values.shape == (4, 3, MAX_ITERS + 1) and runs.iterations.shape == (4, 3)
    assert np.all(runs.seconds > 0) and runs.compile_seconds > 0
    for p, problem in enumerate(chosen):  # alone: this problem's starts, unpadded
        alone = jax.jit(jax.vmap(lambda x0, fun=problem.fun: optlab.minimize(
            fun, x0, optlab.bfgs(), stop=stop, max_iters=MAX_ITERS,
            history=MAX_ITERS + 1)))(jnp.asarray(starts[p]))
        np.testing.assert_array_equal(runs.iterations[p], alone.iterations, problem.name)
        np.testing.assert_array_equal(runs.status[p], alone.status)
        np.testing.assert_allclose(runs.values[p], alone.history.values, rtol=1e-8, atol=1e-14)
        np.testing.assert_array_equal(runs.evaluations[p], alone.history.evaluations)


def test_bounded_problems_run_lbfgsb_in_their_boxes(mixed):
    chosen, _ = mixed
    boxed = [problem._replace(lower=np.full(problem.n, -0.5), upper=np.full(problem.n, 0.8))
             for problem in chosen[1:3]]
    starts = [benchmark.perturbed_starts(problem, seeds=1, scale=1.0) for problem in boxed]
    assert all(np.all(np.abs(s[1:] - 0.15) <= 0.65) for s in starts)  # clipped into the box
    solve = benchmark.minimize_solver(
        optlab.lbfgsb, max_iters=MAX_ITERS,
        stop=lambda lower, upper: optlab.stopping.projected_grad_norm(lower, upper, 1e-8))
    runs = benchmark.run_problems(solve, boxed, starts, repeats=0)
    assert np.all(runs.status == optlab.Status.CONVERGED)
    # Rosenbrock's minimizer (1, 1) lies outside: its constrained minimum is at x1 = 0.8.
    x_star = np.array([0.8, 0.64])
    np.testing.assert_allclose(runs.values[0, :, -1], boxed[0].fun(jnp.asarray(x_star)),
                               rtol=1e-7)


def test_perturbed_starts_begin_with_the_standard_one_and_repeat():
    problem = problems.mgh("wood")
    starts = benchmark.perturbed_starts(problem, seeds=3)
    assert starts.shape == (4, 4)
    np.testing.assert_array_equal(starts[0], problem.x0)
    np.testing.assert_array_equal(starts, benchmark.perturbed_starts(problem, seeds=3))
    assert len({tuple(row) for row in starts}) == 4
    with pytest.raises(ValueError, match="non-negative"):
        benchmark.perturbed_starts(problem, seeds=-1)


def test_bad_starts_are_refused(mixed):
    chosen, starts = mixed
    solve = benchmark.minimize_solver(optlab.bfgs(), stop=optlab.stopping.grad_norm(1e-6),
                                      max_iters=5)
    with pytest.raises(ValueError, match="one .starts, n. array per problem"):
        benchmark.run_problems(solve, chosen, starts[:2])
    with pytest.raises(ValueError, match=r"rosenbrock: starts must be \(starts, 2\)"):
        benchmark.run_problems(solve, chosen[1:2], [np.zeros((2, 3))])
    with pytest.raises(ValueError, match="as many starts"):
        benchmark.run_problems(solve, chosen[1:3], [starts[1], starts[2][:1]])


def test_the_switch_runs_one_problem_per_call():
    """The problem's index is no batched value: a call evaluates its own branch only. The
    counted problem starts at its minimizer (one evaluation); the other one iterates."""
    calls = []

    def counting(x):
        jax.debug.callback(lambda: calls.append(1))
        return jnp.sum(x**2)

    chosen = [problems.Problem("counted", counting, np.zeros(2)),
              problems.Problem("plain", lambda x: jnp.sum((x - 1) ** 4), np.zeros(2))]
    solve = benchmark.minimize_solver(optlab.bfgs(), stop=optlab.stopping.grad_norm(1e-8),
                                      max_iters=10)
    runs = benchmark.run_problems(solve, chosen, [np.zeros((1, 2)), np.zeros((1, 2))],
                                  repeats=0)
    assert runs.iterations.tolist() == [[0], [10]] and len(calls) == 1
