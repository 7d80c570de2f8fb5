"""Tests of optlab.problems: the seed recipe equals scikit-learn's, minimizers are minimizers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sklearn.datasets

from optlab import problems


@pytest.mark.parametrize("n, seed", [(1, 0), (2, 0), (5, 3), (50, 7), (228, 1)])
def test_make_spd_matrix_equals_scikit_learn(n, seed):
    expected = sklearn.datasets.make_spd_matrix(n, random_state=seed)
    np.testing.assert_allclose(problems.make_spd_matrix(n, seed), expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("n, seed", [(2, 0), (50, 7), (228, 1)])
def test_make_spd_matrix_is_symmetric_positive_definite(n, seed):
    matrix = problems.make_spd_matrix(n, seed)
    np.testing.assert_array_equal(matrix, matrix.T)
    assert np.linalg.eigvalsh(matrix).min() > 0
    np.linalg.cholesky(matrix)  # raises if not positive definite


@pytest.mark.parametrize("n, seed", [(2, 0), (50, 3), (228, 5)])
def test_seed_quadratic_minimizer_has_zero_gradient(n, seed):
    problem = problems.seed_quadratic(n, seed)
    assert problem.matrix.shape == (n, n) and problem.linear.shape == problem.minimizer.shape == (
        n,
    )
    assert problem.matrix.dtype == jnp.float64
    np.testing.assert_array_equal(problem.matrix, problems.make_spd_matrix(n, seed))
    residual = problem.matrix @ problem.minimizer + problem.linear
    assert float(jnp.linalg.norm(residual)) <= 1e-9 * float(jnp.linalg.norm(problem.linear))
    gradient = jax.grad(problem.value)(problem.minimizer)
    assert float(jnp.linalg.norm(gradient)) <= 1e-9 * float(jnp.linalg.norm(problem.linear))


def test_seed_quadratics_stack_the_seeds():
    stacked = problems.seed_quadratics(5, 3)
    assert stacked.matrix.shape == (3, 5, 5) and stacked.minimizer.shape == (3, 5)
    for seed in range(3):
        single = problems.seed_quadratic(5, seed)
        for got, expected in zip(stacked, single, strict=True):
            np.testing.assert_array_equal(got[seed], expected)


def test_seed_condition_numbers_at_n_228():
    condition_numbers = np.asarray(problems.seed_quadratics(228, 20).condition_number())
    assert condition_numbers.shape == (20,)
    assert np.all((condition_numbers > 1e3) & (condition_numbers < 1e7)), condition_numbers


@pytest.mark.parametrize("n, kappa", [(2, 10.0), (20, 1e4), (50, 1e6)])
def test_conditioned_quadratic_has_the_requested_condition_number(n, kappa):
    problem = problems.conditioned_quadratic(jax.random.key(n), n, kappa)
    np.testing.assert_array_equal(problem.matrix, problem.matrix.T)
    np.testing.assert_allclose(problem.condition_number(), kappa, rtol=1e-6)
    eigenvalues = jnp.linalg.eigvalsh(problem.matrix)
    np.testing.assert_allclose(eigenvalues[0], 1.0, rtol=1e-6)
    residual = problem.matrix @ problem.minimizer + problem.linear
    assert float(jnp.linalg.norm(residual)) <= 1e-9 * kappa * float(
        jnp.linalg.norm(problem.minimizer)
    )


def test_conditioned_quadratic_is_vmappable_over_keys():
    keys = jax.random.split(jax.random.key(0), 4)
    batch = jax.vmap(lambda key: problems.conditioned_quadratic(key, 6, 100.0))(keys)
    assert batch.matrix.shape == (4, 6, 6) and batch.minimizer.shape == (4, 6)
    np.testing.assert_allclose(batch.condition_number(), 100.0, rtol=1e-6)
    for i, key in enumerate(keys):
        single = problems.conditioned_quadratic(key, 6, 100.0)
        np.testing.assert_allclose(batch.matrix[i], single.matrix, rtol=1e-12, atol=1e-12)
    assert not np.allclose(batch.matrix[0], batch.matrix[1])  # different keys, different problems


@pytest.mark.parametrize("n", [2, 3, 10])
def test_rosenbrock_minimizer(n):
    minimizer = problems.rosenbrock_minimizer(n)
    np.testing.assert_array_equal(minimizer, jnp.ones(n))
    value, gradient = jax.value_and_grad(problems.rosenbrock)(minimizer)
    assert float(value) == 0.0
    np.testing.assert_array_equal(gradient, jnp.zeros(n))
    start = jnp.asarray(problems.ROSENBROCK_START)
    assert float(problems.rosenbrock(start)) > 0


@pytest.mark.parametrize("x", [jnp.ones(1), jnp.ones((2, 2))], ids=["length-1", "matrix"])
def test_rosenbrock_rejects_other_shapes(x):
    with pytest.raises(ValueError, match="rosenbrock"):
        problems.rosenbrock(x)


def test_rosenbrock_starts_depend_on_the_seed_only():
    starts = problems.rosenbrock_starts(3, 4)
    assert starts.shape == (4, 3)
    assert bool(jnp.all((starts >= -2.0) & (starts <= 2.0)))
    np.testing.assert_array_equal(problems.rosenbrock_starts(3, 2), starts[:2])


def test_newton_cycle_minimizer_has_zero_gradient():
    minimizer = problems.newton_cycle_minimizer()
    assert minimizer.shape == (2,) and float(minimizer[1]) == 1.0
    gradient = jax.grad(problems.newton_cycle)(minimizer)
    np.testing.assert_allclose(gradient, 0.0, atol=1e-12)
    hessian = jax.hessian(problems.newton_cycle)(minimizer)
    assert float(jnp.linalg.eigvalsh(hessian).min()) > 0  # a minimizer, not a saddle


@pytest.mark.parametrize(
    "make",
    [
        lambda: problems.seed_quadratics(3, 0),
        lambda: problems.seed_quadratics(3, -1),
        lambda: problems.seed_quadratics(0, 3),
        lambda: problems.seed_quadratic(0, 0),
        lambda: problems.make_spd_matrix(-2, 0),
        lambda: problems.conditioned_quadratic(jax.random.key(0), 0, 10.0),
        lambda: problems.conditioned_quadratic(jax.random.key(0), 3, 0.5),
    ],
    ids=[
        "no-seeds",
        "negative-seeds",
        "n-0",
        "seed_quadratic-n-0",
        "make_spd_matrix-negative-n",
        "conditioned-n-0",
        "conditioned-kappa-below-1",
    ],
)
def test_invalid_sizes_raise(make):
    with pytest.raises(ValueError):
        make()


@pytest.mark.parametrize("argnums", [0, 1, 2, (0, 1, 2)])
def test_quadratic_value_custom_derivative_matches_autodiff(argnums):
    """The one-matvec gradient rule equals plain autodiff, for every argument."""
    from optlab.problems.quadratic import quadratic_value

    problem = problems.seed_quadratic(9, 4)
    x = jnp.linspace(-1.0, 2.0, 9)
    plain = lambda a, b, y: 0.5 * y @ (a @ y) + b @ y  # noqa: E731
    ours = jax.grad(quadratic_value, argnums)(problem.matrix, problem.linear, x)
    reference = jax.grad(plain, argnums)(problem.matrix, problem.linear, x)
    for got, want in zip(jax.tree.leaves(ours), jax.tree.leaves(reference)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(jax.hessian(problem.value)(x), problem.matrix, rtol=0, atol=1e-12)


def test_sparse_logistic_loss_is_the_dense_formula():
    data = problems.sparse_logistic_data(30, seed=3)
    rows, columns, values, labels = map(np.asarray, data)
    assert rows.shape == columns.shape == values.shape == (300,)
    dense = np.zeros((30, 30))
    np.add.at(dense, (rows, columns), values)
    assert set(np.unique(labels)) == {-1.0, 1.0}
    w = np.random.default_rng(0).standard_normal(30)
    expected = np.mean(np.log1p(np.exp(-labels * (dense @ w)))) + 0.5e-3 * w @ w
    np.testing.assert_allclose(problems.sparse_logistic_loss(jnp.asarray(w), data), expected,
                               rtol=1e-12)
    # Another seed on seed 3's pattern: the same columns, its own values and labels.
    other = problems.sparse_logistic_data(30, seed=4, pattern_seed=3)
    np.testing.assert_array_equal(other[1], data[1])
    np.testing.assert_array_equal(other[2], problems.sparse_logistic_data(30, seed=4)[2])
    with pytest.raises(ValueError, match="per_row"):
        problems.sparse_logistic_data(30, per_row=0)
