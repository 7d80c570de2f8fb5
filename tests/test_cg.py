"""Tests of optlab.linalg.cg, its preconditioners and operators (float64, see conftest)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse
import scipy.sparse.linalg
from jax.experimental import sparse

from optlab import linalg
from optlab.linalg import (
    DiagonalMatrix,
    as_matvec,
    cg,
    diagonal,
    ic0,
    ideal,
    jacobi,
    poisson2d,
    read_matrix_market,
    sparse_matrix,
    to_bcoo,
)
from experiments.kit.scipy_reference import scipy_cg, scipy_preconditioner
from optlab.status import Status


def random_spd(n, seed, condition=100.0):
    """A dense SPD matrix with eigenvalues spread log-uniformly over [1, condition]."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    eigenvalues = np.logspace(0, np.log10(condition), n)
    return (q * eigenvalues) @ q.T, rng.standard_normal(n)


def as_kind(matrix, kind):
    if kind == "dense":
        return jnp.asarray(matrix)
    if kind == "bcoo":
        return sparse.BCOO.fromdense(jnp.asarray(matrix))
    dense = jnp.asarray(matrix)
    return lambda v: dense @ v


@pytest.mark.parametrize("kind", ["dense", "bcoo", "callable"])
@pytest.mark.parametrize("seed", [0, 1])
def test_cg_solves_random_spd_systems(kind, seed):
    # Condition 2: CG ends after 14 of n = 30 steps, long before the loss of orthogonality
    # near n steps lets rounding (which differs between dense and sparse products) change
    # the path. At condition 10 it needs 28 steps, and the BCOO product took 29 for seed 1.
    matrix, b = random_spd(30, seed, condition=2.0)
    result = cg(as_kind(matrix, kind), b, tol=1e-10, history=40)
    reference = cg(jnp.asarray(matrix), b, tol=1e-10, history=40)

    assert int(result.status) == Status.CONVERGED
    assert float(result.residual_norm) < 1e-10
    np.testing.assert_allclose(result.x, np.linalg.solve(matrix, b), rtol=1e-8, atol=1e-9)
    # Same algorithm through every kind of operator: same iterates, same counts.
    assert int(result.iterations) == int(reference.iterations)
    np.testing.assert_allclose(result.x, reference.x, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(
        result.residual_norms, reference.residual_norms, rtol=1e-6, atol=1e-9
    )


@pytest.mark.parametrize("kind", ["dense", "bcoo", "scipy"])
def test_jacobi_and_ideal_preconditioners(kind):
    matrix, b = random_spd(40, 2, condition=1e4)
    # A badly scaled diagonal, which Jacobi undoes.
    scale = np.logspace(0, 2, 40)
    matrix = scale[:, None] * matrix * scale[None, :]
    given = scipy.sparse.csr_matrix(matrix) if kind == "scipy" else as_kind(matrix, kind)
    operator = jnp.asarray(matrix)
    expected = np.linalg.solve(matrix, b)

    plain = cg(operator, b, tol=1e-9, rtol=1e-12)
    with_jacobi = cg(operator, b, precond=jacobi(given), tol=1e-9, rtol=1e-12)
    with_ideal = cg(operator, b, precond=ideal(given), tol=1e-9, rtol=1e-12)

    for result in (plain, with_jacobi, with_ideal):
        assert int(result.status) == Status.CONVERGED
        np.testing.assert_allclose(result.x, expected, rtol=1e-6)
    assert int(with_jacobi.iterations) < int(plain.iterations)
    assert 1 <= int(with_ideal.iterations) <= 2


def test_preconditioner_setup_errors():
    with pytest.raises(ValueError, match="diagonal entry 1"):
        jacobi(jnp.array([[1.0, 0.5], [0.5, 0.0]]))
    with pytest.raises(ValueError, match="not symmetric positive definite"):
        ideal(jnp.diag(jnp.array([1.0, -1.0])))
    with pytest.raises(TypeError):
        jacobi(lambda v: v)


def test_breakdown_on_indefinite_matrix():
    result = cg(jnp.diag(jnp.array([1.0, -1.0])), jnp.array([1.0, 1.0]))
    assert int(result.status) == Status.BREAKDOWN
    assert int(result.iterations) == 0
    assert np.all(np.isfinite(result.x))


def test_nonfinite_right_hand_side():
    matrix, b = random_spd(10, 3)
    b[4] = np.nan
    result = cg(jnp.asarray(matrix), b)
    assert int(result.status) == Status.NONFINITE
    assert int(result.iterations) == 0


def test_a_nan_or_inf_that_appears_mid_run_stops_it():
    # A tridiagonal operator that overflows once p_k reaches its last unknown (after a few
    # steps from b = e_0).
    matrix = jnp.asarray(np.diag(np.full(12, 4.0)) + np.diag(np.full(11, -1.0), 1)
                         + np.diag(np.full(11, -1.0), -1))
    A = lambda v: matrix @ v + jnp.where(v[11] != 0, jnp.inf, 0.0)  # noqa: E731
    result = cg(A, jnp.eye(12)[0])
    assert int(result.status) == Status.NONFINITE
    assert 1 <= int(result.iterations) <= 12


def test_max_iters_with_a_small_budget():
    matrix, b = random_spd(30, 4, condition=1e4)
    result = cg(jnp.asarray(matrix), b, max_iters=5)
    assert int(result.status) == Status.MAX_ITERS
    assert int(result.iterations) == 5
    assert float(result.residual_norm) >= 1e-7


def test_history_records_residual_norms_then_nan():
    matrix, b = random_spd(20, 5)
    x0 = np.ones(20)
    result = cg(jnp.asarray(matrix), b, x0, tol=1e-9, history=50)
    k = int(result.iterations)
    norms = np.asarray(result.residual_norms)

    assert norms.shape == (50,)
    assert k < 49
    np.testing.assert_allclose(norms[0], np.linalg.norm(b - matrix @ x0), rtol=1e-12)
    assert np.all(np.isfinite(norms[: k + 1]))
    assert norms[k] == float(result.residual_norm)
    assert np.all(np.isnan(norms[k + 1 :]))
    assert cg(jnp.asarray(matrix), b).residual_norms is None


def test_rtol_scales_with_b():
    matrix, b = random_spd(30, 6, condition=1e3)
    b = 1e4 * b
    result = cg(jnp.asarray(matrix), b, rtol=1e-6)
    assert int(result.status) == Status.CONVERGED
    assert float(result.residual_norm) < 1e-6 * np.linalg.norm(b)
    assert float(result.residual_norm) > 1e-7  # stopped before the absolute test held


def test_vmap_over_right_hand_sides_matches_single_solves():
    # Well conditioned (CG ends long before n steps), so that batched and single products,
    # rounded differently, cannot change the iteration counts.
    matrix, _ = random_spd(60, 7, condition=5.0)
    rng = np.random.default_rng(8)
    bs = rng.standard_normal((20, 60)) * np.logspace(-3, 3, 20)[:, None]
    bs[3] = 0.0  # converged at x0 = 0: must stay frozen and finite
    operator = sparse.BCOO.fromdense(jnp.asarray(matrix))
    precond = jacobi(operator)
    solve_one = lambda b: cg(operator, b, precond=precond, history=60)  # noqa: E731
    batched = jax.jit(jax.vmap(solve_one))(jnp.asarray(bs))

    assert len(set(np.asarray(batched.iterations).tolist())) > 1
    for i, b in enumerate(bs):
        single = jax.jit(solve_one)(b)
        assert int(batched.iterations[i]) == int(single.iterations)
        assert int(batched.status[i]) == int(single.status) == Status.CONVERGED
        scale = max(float(np.linalg.norm(single.x)), 1.0)
        np.testing.assert_allclose(batched.x[i], single.x, rtol=1e-8, atol=1e-10 * scale)
        np.testing.assert_allclose(
            batched.residual_norms[i],
            single.residual_norms,
            rtol=1e-6,
            atol=1e-8 * float(single.residual_norms[0]),
        )
    assert int(batched.iterations[3]) == 0
    assert np.all(np.isfinite(batched.x))


def test_input_errors():
    with pytest.raises(ValueError, match="square"):
        cg(jnp.ones((2, 3)), jnp.ones(3))
    with pytest.raises(ValueError, match="vector"):
        cg(jnp.eye(2), jnp.ones((2, 1)))
    with pytest.raises(ValueError, match="max_iters"):
        cg(jnp.eye(2), jnp.ones(2), max_iters=-1)


def test_poisson2d_matches_hand_built_matrix():
    N = 4
    expected = np.zeros((N * N, N * N))
    for i in range(N):
        for j in range(N):
            row = i * N + j
            expected[row, row] = 4.0
            for di, dj in ((-1, 0), (1, 0), (0, -1), (0, 1)):
                if 0 <= i + di < N and 0 <= j + dj < N:
                    expected[row, (i + di) * N + j + dj] = -1.0
    matrix = poisson2d(N)
    assert isinstance(matrix, sparse.BCOO)
    np.testing.assert_array_equal(matrix.todense(), expected)
    np.testing.assert_array_equal(diagonal(matrix), np.full(N * N, 4.0))
    np.testing.assert_array_equal(as_matvec(matrix)(jnp.ones(N * N)), expected @ np.ones(N * N))


@pytest.mark.parametrize("preconditioner", ["none", "jacobi", "ic0", "ideal"])
def test_iteration_counts_match_scipy_on_1138_bus(preconditioner):
    A = read_matrix_market("1138_bus")
    n = A.shape[0]
    b = 20.0 * np.random.default_rng(0).standard_normal(n)
    x0 = np.ones(n)
    expected = scipy_cg(A, b, x0, tol=1e-7, M=scipy_preconditioner(preconditioner, A))
    precond = {"none": None, "jacobi": jacobi, "ic0": ic0, "ideal": ideal}[preconditioner]
    result = cg(to_bcoo(A), b, x0, precond=precond and precond(A), tol=1e-7)

    assert expected.info == 0
    assert int(result.status) == Status.CONVERGED
    assert np.linalg.norm(b - A @ np.asarray(result.x)) < 1e-6
    # Thousands of iterations at cond ~ 1e7: rounding differs, the counts nearly agree.
    assert abs(int(result.iterations) - expected.iterations) <= 0.03 * expected.iterations


def test_diagonal_layout_products_and_cg_equal_bcoo():
    rng = np.random.default_rng(0)
    banded = scipy.sparse.diags(
        [rng.standard_normal(40 - abs(k)) for k in (-7, -1, 0, 3)], [-7, -1, 0, 3], shape=(40, 40)
    )
    v = rng.standard_normal(40)
    stored = DiagonalMatrix.from_scipy(banded)
    assert stored.offsets == (-7, -1, 0, 3)
    np.testing.assert_allclose(jax.jit(lambda A, v: A @ v)(stored, v), banded @ v, rtol=1e-13)
    np.testing.assert_allclose(diagonal(stored), banded.diagonal())
    assert abs(stored.to_scipy() - banded).max() == 0

    laplacian = poisson2d(9, as_scipy=True)
    b = rng.standard_normal(81)
    by_diagonals = cg(sparse_matrix(laplacian), b, tol=1e-10, history=100)
    by_bcoo = cg(to_bcoo(laplacian), b, tol=1e-10, history=100)
    assert int(by_diagonals.iterations) == int(by_bcoo.iterations)
    np.testing.assert_allclose(by_diagonals.x, by_bcoo.x, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ic0(DiagonalMatrix.from_scipy(laplacian))(b), ic0(laplacian)(b))


def test_sparse_matrix_chooses_diagonals_for_stencils_only():
    assert isinstance(sparse_matrix(poisson2d(10, as_scipy=True)), DiagonalMatrix)
    assert sparse_matrix(read_matrix_market("494_bus")).layout == "csr"
    assert isinstance(sparse_matrix(poisson2d(4, as_scipy=True), "bcoo"), sparse.BCOO)
    with pytest.raises(ValueError, match="layout"):
        sparse_matrix(poisson2d(4, as_scipy=True), "ell")
    with pytest.raises(TypeError, match="scipy.sparse"):
        sparse_matrix(np.eye(3))
    with pytest.raises(ValueError, match="shape"):
        DiagonalMatrix.from_scipy(poisson2d(3, as_scipy=True)) @ jnp.ones(4)


def test_eigenvalue_bounds_dense_and_by_shift_invert_agree():
    A = linalg.poisson2d(12, as_scipy=True)  # 144 unknowns
    expected = linalg.poisson2d_eigenvalue_bounds(12)
    dense = linalg.eigenvalue_bounds(A)
    iterative = linalg.eigenvalue_bounds(A, dense_max_n=100)
    assert dense[2] == "numpy.linalg.eigvalsh" and "eigsh" in iterative[2]
    for low, high, _ in (dense, iterative):
        np.testing.assert_allclose((low, high), expected, rtol=1e-9)


def test_a_zero_residual_is_convergence_even_at_tol_zero():
    # With tol = 0 (or b = 0) the step that solves the system exactly leaves p^T A p = 0;
    # that is convergence, not a breakdown of positive definiteness.
    solved = cg(jnp.eye(3), jnp.array([1.0, -2.0, 3.0]), tol=0.0)
    assert int(solved.status) == Status.CONVERGED and int(solved.iterations) == 1
    np.testing.assert_array_equal(solved.x, [1.0, -2.0, 3.0])
    zero = cg(jnp.array([[4.0, 1.0], [1.0, 3.0]]), jnp.zeros(2), tol=0.0)
    assert int(zero.status) == Status.CONVERGED and int(zero.iterations) == 0


@pytest.mark.parametrize("tolerances", [dict(tol=-1e-8), dict(rtol=-0.1), dict(tol=float("nan"))])
def test_negative_tolerances_are_refused(tolerances):
    with pytest.raises(ValueError, match="must be non-negative"):
        cg(jnp.eye(2), jnp.ones(2), **tolerances)


@pytest.mark.parametrize("kind", ["real A, complex b", "Hermitian A"])
@pytest.mark.parametrize("preconditioner", [None, "jacobi", "ic0", "ideal"])
def test_complex_systems_are_solved_by_hermitian_cg(kind, preconditioner):
    rng = np.random.default_rng(3)
    n = 12
    m = rng.normal(size=(n, n)) + (1j * rng.normal(size=(n, n)) if kind == "Hermitian A" else 0)
    A = m @ m.conj().T + n * np.eye(n)
    b = rng.normal(size=n) + 1j * rng.normal(size=n)
    precond = {None: None, "jacobi": jacobi, "ic0": ic0, "ideal": ideal}[preconditioner]
    result = cg(jnp.asarray(A), jnp.asarray(b), tol=1e-10,
                precond=None if precond is None else precond(A))
    assert int(result.status) == Status.CONVERGED
    np.testing.assert_allclose(result.x, np.linalg.solve(A, b), rtol=1e-8, atol=1e-10)
    reference, info = scipy.sparse.linalg.cg(A, b, rtol=0, atol=1e-10, maxiter=10 * n)
    assert info == 0 and np.allclose(result.x, reference, atol=1e-8)
