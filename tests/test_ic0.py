"""Tests of IC(0) (optlab.linalg.ic0_factor, ic0) and of level-scheduled triangular solves."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
import scipy.sparse
import scipy.sparse.linalg
from jax.experimental import sparse

from optlab.linalg import (
    PivotError,
    SparseTriangular,
    cg,
    ic0,
    ic0_factor,
    level_schedule,
    read_matrix_market,
    to_bcoo,
)
from optlab.linalg.preconditioners import AUTO_SHIFT_START
from optlab.status import Status

# Kershaw's matrix: SPD (eigenvalues 3 -+ 2 sqrt 2), yet IC(0) meets a negative pivot.
KERSHAW = np.array(
    [[3.0, -2.0, 0.0, 2.0], [-2.0, 3.0, -2.0, 0.0], [0.0, -2.0, 3.0, -2.0], [2.0, 0.0, -2.0, 3.0]]
)


def dense_ic0(A):
    """IC(0) by its definition, entry by entry on a dense array: the O(n^3) reference."""
    n = A.shape[0]
    pattern = np.tril(A != 0)
    L = np.zeros_like(A)
    for i in range(n):
        for k in range(i):
            if pattern[i, k]:
                both = pattern[i, :k] & pattern[k, :k]
                L[i, k] = (A[i, k] - L[i, :k][both] @ L[k, :k][both]) / L[k, k]
        L[i, i] = np.sqrt(A[i, i] - L[i, :i] @ L[i, :i])
    return L


def random_sparse_spd(n, density, seed):
    """A sparse, diagonally dominant SPD matrix with a random pattern."""
    off = scipy.sparse.random(n, n, density=density, random_state=seed).toarray()
    off = -(off + off.T)
    return off + np.diag(np.abs(off).sum(axis=1) + 1.0)


@pytest.mark.parametrize("seed", range(4))
def test_ic0_factor_equals_dense_definition(seed):
    A = random_sparse_spd(40, 0.1, seed)
    L = ic0_factor(scipy.sparse.csr_array(A)).toarray()

    np.testing.assert_allclose(L, dense_ic0(A), rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(L != 0, np.tril(A != 0))  # the pattern of tril(A)
    on_pattern = np.tril(A != 0)
    np.testing.assert_allclose((L @ L.T)[on_pattern], A[on_pattern], rtol=1e-12, atol=1e-12)


def test_ic0_of_a_full_matrix_is_the_cholesky_factor():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((12, 12))
    A = X @ X.T + 12 * np.eye(12)
    np.testing.assert_allclose(ic0_factor(A).toarray(), np.linalg.cholesky(A), rtol=1e-12)


def test_ic0_factor_on_1138_bus_matches_a_on_its_pattern():
    A = read_matrix_market("1138_bus")
    L = ic0_factor(A)
    lower = scipy.sparse.tril(A).tocoo()
    product = (L @ L.T).tocsr()
    np.testing.assert_allclose(
        product[lower.row, lower.col], lower.data, rtol=1e-12, atol=1e-9
    )
    assert L.nnz == lower.nnz


def test_ic0_inputs_give_the_same_factor():
    A = random_sparse_spd(25, 0.15, 7)
    expected = ic0_factor(scipy.sparse.csr_array(A)).toarray()
    for given in (A, jnp.asarray(A), scipy.sparse.coo_matrix(A)):
        np.testing.assert_allclose(ic0_factor(given).toarray(), expected, rtol=1e-14)
    # The preconditioner also accepts BCOO and applies L^{-T} L^{-1}.
    r = np.random.default_rng(1).standard_normal(25)
    z = ic0(sparse.BCOO.fromdense(jnp.asarray(A)))(jnp.asarray(r))
    np.testing.assert_allclose(z, np.linalg.solve(expected @ expected.T, r), rtol=1e-10)


def test_ic0_breakdown_raises_and_suggests_shift():
    np.testing.assert_array_less(0, np.linalg.eigvalsh(KERSHAW))
    with pytest.raises(PivotError, match=r"row 3.*shift"):
        ic0_factor(KERSHAW)
    with pytest.raises(PivotError, match="shift"):
        ic0(np.array([[1.0, 2.0], [2.0, 1.0]]))  # indefinite
    shifted = ic0_factor(KERSHAW, shift=0.5).toarray()
    target = KERSHAW + 0.5 * np.diag(np.diag(KERSHAW))
    np.testing.assert_allclose(shifted, dense_ic0(target), rtol=1e-12)


@pytest.mark.parametrize(
    "matrix, message",
    [
        (np.ones((2, 3)), "square"),
        (np.array([[2.0, 1.0], [0.0, 2.0]]), "symmetric"),
        (np.array([[1.0, 0.0], [0.0, 0.0]]), "positive diagonal"),
        (np.array([[-1.0, 0.0], [0.0, 1.0]]), "positive diagonal"),
        (np.array([[np.nan, 0.0], [0.0, 1.0]]), "non-finite"),
    ],
)
def test_ic0_rejects_bad_matrices(matrix, message):
    with pytest.raises(ValueError, match=message):
        ic0_factor(matrix)


def test_ic0_rejects_bad_shift_and_callables():
    with pytest.raises(ValueError, match="shift"):
        ic0_factor(np.eye(2), shift=-1.0)
    with pytest.raises(TypeError, match="matvec"):
        ic0(lambda v: v)


def longest_chain_levels(T):
    """Levels by their definition, row by row in dependency order."""
    dense = T.toarray()
    n = dense.shape[0]
    order = range(n) if np.allclose(dense, np.tril(dense)) else range(n - 1, -1, -1)
    levels = np.zeros(n, int)
    for i in order:
        depends_on = np.flatnonzero(dense[i] != 0)
        depends_on = depends_on[depends_on != i]
        levels[i] = 1 + levels[depends_on].max() if depends_on.size else 0
    return levels


@pytest.mark.parametrize("lower", [True, False])
def test_level_scheduled_solve_matches_scipy(lower):
    A = random_sparse_spd(60, 0.05, 3)
    T = scipy.sparse.csr_array(np.tril(A) if lower else np.triu(A))
    np.testing.assert_array_equal(level_schedule(T), longest_chain_levels(T))

    solver = SparseTriangular.from_scipy(T)
    assert solver.num_levels == level_schedule(T).max() + 1
    rhs = np.random.default_rng(0).standard_normal((5, 60))
    expected = scipy.linalg.solve_triangular(T.toarray(), rhs.T, lower=lower).T
    # Batched right-hand sides under vmap, and under jit with the solver as an argument.
    np.testing.assert_allclose(jax.vmap(solver)(jnp.asarray(rhs)), expected, rtol=1e-12)
    np.testing.assert_allclose(
        jax.jit(lambda s, r: s(r))(solver, jnp.asarray(rhs[0])), expected[0], rtol=1e-12
    )


def test_triangular_solver_errors():
    with pytest.raises(ValueError, match="zero diagonal"):
        SparseTriangular.from_scipy(scipy.sparse.csr_array(np.array([[1.0, 0.0], [1.0, 0.0]])))
    with pytest.raises(ValueError, match="triangular"):
        SparseTriangular.from_scipy(scipy.sparse.csr_array(np.array([[1.0, 2.0], [3.0, 1.0]])))
    with pytest.raises(ValueError, match="vector"):
        SparseTriangular.from_scipy(scipy.sparse.eye_array(3)).solve(jnp.ones((3, 1)))


def test_ic0_pcg_matches_scipy_with_the_same_factor():
    A = read_matrix_market("494_bus")
    n = A.shape[0]
    b = 20.0 * np.random.default_rng(0).standard_normal(n)
    lower = ic0_factor(A)
    upper = scipy.sparse.csr_array(lower.T)
    M = scipy.sparse.linalg.LinearOperator(
        (n, n),
        matvec=lambda r: scipy.sparse.linalg.spsolve_triangular(
            upper, scipy.sparse.linalg.spsolve_triangular(lower, r, lower=True), lower=False
        ),
    )
    count = 0

    def callback(_):
        nonlocal count
        count += 1

    x_scipy, info = scipy.sparse.linalg.cg(
        A, b, np.ones(n), rtol=0.0, atol=1e-7, M=M, callback=callback
    )
    result = cg(to_bcoo(A), b, np.ones(n), precond=ic0(A), tol=1e-7)

    assert info == 0 and int(result.status) == Status.CONVERGED
    assert abs(int(result.iterations) - count) <= max(1, 0.03 * count)
    np.testing.assert_allclose(result.x, x_scipy, rtol=1e-6, atol=1e-6)


def kershaw_chain(blocks: int = 50) -> np.ndarray:
    """Kershaw's matrix repeated along the diagonal, neighbouring blocks coupled by 0.1: an
    SPD matrix of 4 * blocks rows with large positive off-diagonal entries."""
    A = scipy.linalg.block_diag(*[KERSHAW] * blocks)
    rows = np.arange(4, 4 * blocks, 4)
    A[rows, rows - 1] = A[rows - 1, rows] = 0.1
    return A


@pytest.mark.parametrize("matrix", [KERSHAW, kershaw_chain()], ids=["kershaw", "chain"])
def test_ic0_finds_a_shift_by_itself_where_it_breaks_down(matrix):
    np.testing.assert_array_less(0, np.linalg.eigvalsh(matrix))
    with pytest.raises(PivotError):
        ic0(matrix)
    precond = ic0(matrix, shift="auto")
    assert 0 < precond.shift
    # The shift found is the one a factor with it needs: the next smaller one in the
    # sequence breaks down.
    ic0_factor(matrix, shift=precond.shift)
    previous = 0.0 if precond.shift == AUTO_SHIFT_START else precond.shift / 2
    with pytest.raises(PivotError):
        ic0_factor(matrix, shift=previous)
    b = np.ones(matrix.shape[0])
    result = cg(jnp.asarray(matrix), jnp.asarray(b), precond=precond, tol=1e-10)
    assert int(result.status) == Status.CONVERGED


def test_ic0_auto_keeps_no_shift_where_none_is_needed():
    matrix = np.array([[4.0, 1.0], [1.0, 3.0]])
    assert ic0(matrix, shift="auto").shift == 0.0
    with pytest.raises(ValueError, match="shift"):
        ic0(matrix, shift="automatic")


def test_ic0_of_a_complex_hermitian_matrix_is_its_cholesky_factor_on_a_full_pattern():
    rng = np.random.default_rng(5)
    m = rng.normal(size=(6, 6)) + 1j * rng.normal(size=(6, 6))
    A = m @ m.conj().T + 6 * np.eye(6)
    np.testing.assert_allclose(ic0_factor(A).toarray(), np.linalg.cholesky(A), atol=1e-12)
    b = rng.normal(size=6) + 1j * rng.normal(size=6)
    result = cg(jnp.asarray(A), jnp.asarray(b), precond=ic0(A), tol=1e-10)
    assert int(result.status) == Status.CONVERGED and int(result.iterations) <= 2
    np.testing.assert_allclose(result.x, np.linalg.solve(A, b), atol=1e-9)
