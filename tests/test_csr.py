"""optlab.linalg.CSRMatrix and the layout choice: every layout equals the dense product."""

import dataclasses
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse
import scipy.sparse.linalg

from optlab import linalg
from optlab.linalg import csr, native, operators
from optlab.status import Status


def _awkward(n: int = 40, seed: int = 0, dtype=np.float64) -> scipy.sparse.csr_array:
    """A random pattern with empty rows (3, 7), a dense row (5) and a dense column."""
    rng = np.random.default_rng(seed)
    dense = np.where(rng.random((n, n)) < 0.1, rng.standard_normal((n, n)), 0.0)
    dense[5] = rng.standard_normal(n)
    dense[:, 11] = rng.standard_normal(n)
    dense[[3, 7]] = 0.0
    if np.issubdtype(dtype, np.complexfloating):
        dense = dense + 1j * np.where(dense != 0, rng.standard_normal((n, n)), 0.0)
    return scipy.sparse.csr_array(dense.astype(dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64, np.complex128])
@pytest.mark.parametrize("layout", ["csr", "bcoo", "diagonal", "auto"])
def test_every_layout_equals_the_dense_product(layout, dtype):
    matrix = _awkward(dtype=dtype)
    v = np.random.default_rng(1).standard_normal(40).astype(dtype)
    A = linalg.sparse_matrix(matrix, layout)
    expected = matrix.toarray().astype(np.complex128) @ v.astype(np.complex128)
    tolerance = 1e-5 if np.finfo(dtype).bits <= 32 else 1e-12
    np.testing.assert_allclose(np.asarray(jax.jit(lambda A, v: A @ v)(A, v)), expected,
                               rtol=tolerance, atol=tolerance)


def test_the_native_and_the_portable_products_agree():
    matrix = linalg.stencil3d(5, permute=3)
    A = csr.CSRMatrix.from_scipy(matrix)
    v = jnp.asarray(np.random.default_rng(2).standard_normal(matrix.shape[0]))
    portable = csr._portable(A.rows, A.indices, A.data, *csr._renumbering_of(A), v,
                             A.shape[0])
    np.testing.assert_allclose(A @ v, portable, rtol=1e-13)
    np.testing.assert_allclose(A @ v, matrix @ np.asarray(v), rtol=1e-13)


def test_a_vmapped_batch_of_right_hand_sides_and_of_matrices():
    matrix = _awkward()
    A = linalg.sparse_matrix(matrix, "csr")
    V = np.random.default_rng(3).standard_normal((6, 40))
    np.testing.assert_allclose(jax.jit(jax.vmap(lambda v: A @ v))(V), V @ matrix.toarray().T,
                               rtol=1e-12)
    # Nested: seeds x right-hand sides, as a study vmaps them.
    nested = jax.vmap(jax.vmap(lambda v: A @ v))(V.reshape(2, 3, 40))
    np.testing.assert_allclose(nested.reshape(6, 40), V @ matrix.toarray().T, rtol=1e-12)
    # A batch of matrices with one pattern: each member its own product.
    scales = np.array([1.0, -2.0, 0.5])
    data = A.data[None] * scales[:, None]
    products = jax.vmap(lambda d, v: dataclasses.replace(A, data=d) @ v)(data, V[:3])
    expected = np.stack([s * matrix.toarray() @ v for s, v in zip(scales, V[:3])])
    np.testing.assert_allclose(products, expected, rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64, np.complex128])
@pytest.mark.parametrize("batch", [2, 3, 8, 13, 20, 37])
def test_every_batch_width_equals_the_dense_products(batch, dtype):
    # The native kernel cuts a batch into slabs of 16, 8, 4, 2 and 1 right-hand sides
    # (by dtype); the large matrix takes the multi-threaded path.
    for matrix in (_awkward(dtype=dtype),
                   linalg.stencil3d(12, permute=4).astype(dtype)):
        A = linalg.sparse_matrix(matrix, "csr")
        rng = np.random.default_rng(batch)
        V = rng.standard_normal((batch, matrix.shape[1])).astype(dtype)
        expected = V.astype(np.complex128) @ matrix.toarray().T.astype(np.complex128)
        tolerance = 1e-4 if np.finfo(dtype).bits <= 32 else 1e-12
        np.testing.assert_allclose(jax.jit(jax.vmap(lambda v: A @ v))(V), expected,
                                   rtol=tolerance, atol=tolerance * np.abs(expected).max())


def test_auto_picks_diagonals_for_a_stencil_and_rows_for_its_permutation():
    stencil = linalg.sparse_matrix(linalg.stencil3d(20))  # small grids hold more padding
    permuted = linalg.sparse_matrix(linalg.stencil3d(6, permute=0))
    assert stencil.layout == "diagonal" and "layout='diagonal'" in repr(stencil)
    assert isinstance(permuted, linalg.CSRMatrix) and permuted.layout == "csr"
    kernel = "native CPU kernel" if linalg.native_status() is None else "portable product"
    assert kernel in repr(permuted)
    with pytest.raises(ValueError, match="layout must be one of auto, csr, diagonal, bcoo"):
        linalg.sparse_matrix(linalg.stencil3d(2), "ell")


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64, np.complex128])
def test_a_renumbered_matrix_keeps_the_callers_numbering(dtype):
    matrix = _awkward(dtype=dtype)
    A = csr.CSRMatrix.from_scipy(matrix, reorder=True)
    order = np.asarray(A.order)
    assert sorted(order) == list(range(40)) and not np.array_equal(order, np.arange(40))
    assert "renumbered (reverse Cuthill-McKee)" in repr(A)
    np.testing.assert_array_equal(A.to_scipy().toarray(), matrix.toarray())
    np.testing.assert_array_equal(linalg.diagonal(A), matrix.diagonal())
    rng = np.random.default_rng(8)
    tolerance = 1e-4 if np.finfo(dtype).bits <= 32 else 1e-12
    dense = matrix.toarray().astype(np.complex128)
    v = rng.standard_normal(40).astype(dtype)
    for product in (jax.jit(lambda A, v: A @ v)(A, v),
                    csr._portable(A.rows, A.indices, A.data, A.order, A.position, v, 40)):
        np.testing.assert_allclose(product, dense @ v, rtol=tolerance, atol=tolerance)
    for batch in (1, 5, 13):  # slabs of every width, and a batch of one
        V = rng.standard_normal((batch, 40)).astype(dtype)
        np.testing.assert_allclose(jax.jit(jax.vmap(lambda v: A @ v))(V), V @ dense.T,
                                   rtol=tolerance, atol=tolerance * 10)


def test_a_renumbered_product_is_differentiable_and_batches_over_matrices():
    matrix = linalg.stencil3d(6, permute=2)
    A = csr.CSRMatrix.from_scipy(matrix, reorder=True)
    dense = matrix.toarray()
    rng = np.random.default_rng(9)
    v, weights = rng.standard_normal(216), rng.standard_normal(216)
    np.testing.assert_allclose(jax.grad(lambda v: jnp.dot(weights, A @ v))(v),
                               dense.T @ weights, rtol=1e-12)
    grad_data = jax.grad(lambda d: jnp.dot(weights, dataclasses.replace(A, data=d) @ v))(A.data)
    rows, cols = np.asarray(A.order)[np.asarray(A.rows)], np.asarray(A.order)[np.asarray(A.indices)]
    np.testing.assert_allclose(grad_data, weights[rows] * v[cols], rtol=1e-12)
    scales = np.array([1.0, -3.0])
    products = jax.vmap(lambda d, v: dataclasses.replace(A, data=d) @ v)(
        A.data[None] * scales[:, None], np.stack([v, weights]))
    np.testing.assert_allclose(products, [dense @ v, -3.0 * dense @ weights], rtol=1e-12)


def test_renumbering_is_chosen_for_a_scattered_mesh_numbering_only():
    scattered = csr.CSRMatrix.from_scipy(linalg.stencil3d(20, permute=0))
    assert scattered.order is not None
    assert linalg.sparse_matrix(linalg.stencil3d(20, permute=0)).order is not None
    # In grid order, at random, or small enough for a cache: stored as given.
    for matrix in (linalg.stencil3d(20), linalg.random_spd(10_000, 20),
                   linalg.stencil3d(6, permute=0)):
        A = csr.CSRMatrix.from_scipy(matrix)
        assert A.order is None and "renumbered" not in repr(A)
    with pytest.raises(ValueError, match="only a square matrix can be renumbered"):
        csr.CSRMatrix.from_scipy(scipy.sparse.random_array((5, 7), density=0.5), reorder=True)
    with pytest.raises(ValueError, match="reorder must be None, True or False"):
        csr.CSRMatrix.from_scipy(linalg.stencil3d(3), reorder="rcm")


def test_cg_on_a_renumbered_matrix_runs_native_steps_and_every_preconditioner():
    matrix = linalg.stencil3d(6, block=3, permute=1)
    A = csr.CSRMatrix.from_scipy(matrix, reorder=True)
    B = np.random.default_rng(10).standard_normal((3, matrix.shape[0]))
    for precond in (None, linalg.jacobi(A), linalg.ic0(A)):
        def solve(b, M=precond):
            return linalg.cg(A, b, precond=M, tol=1e-10, max_iters=500)

        batched = jax.jit(jax.vmap(solve))(B)
        np.testing.assert_allclose(np.asarray(batched.x) @ matrix, B, atol=1e-8)
        alone = jax.jit(solve)(B[0])
        assert int(alone.iterations) == int(batched.iterations[0])
        np.testing.assert_allclose(alone.x, batched.x[0], rtol=1e-9, atol=1e-12)
    assert _runs_native_step(jax.vmap(lambda b: linalg.cg(A, b)), B) == (
        native.native_status() is None)


def _banded(n: int = 700, dtype=np.float64) -> scipy.sparse.csr_array:
    """Diagonals at offsets -300 (longer than a block of the kernel's rows), -1, 0, 2, 650."""
    rng = np.random.default_rng(11)
    offsets = (-300, -1, 0, 2, 650)
    diagonals = [rng.standard_normal(n - abs(k)) for k in offsets]
    if np.issubdtype(dtype, np.complexfloating):
        diagonals = [d + 1j * rng.standard_normal(d.size) for d in diagonals]
    return scipy.sparse.csr_array(scipy.sparse.diags_array(diagonals, offsets=offsets,
                                                           shape=(n, n)).astype(dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64, np.complex128])
def test_the_diagonal_product_native_and_portable_single_and_batched(dtype):
    matrix = _banded(dtype=dtype)
    A = linalg.sparse_matrix(matrix, "diagonal")
    rng = np.random.default_rng(12)
    dense = matrix.toarray().astype(np.complex128)
    tolerance = 1e-4 if np.finfo(dtype).bits <= 32 else 1e-12
    v = rng.standard_normal(700).astype(dtype)
    portable = operators._portable_diagonal(A.offsets, A.data, jnp.asarray(v))
    for product in (jax.jit(lambda A, v: A @ v)(A, v), portable):
        np.testing.assert_allclose(product, dense @ v, rtol=tolerance, atol=tolerance * 10)
    V = rng.standard_normal((2, 3, 700)).astype(dtype)  # nested vmaps: one call
    batched = jax.jit(jax.vmap(jax.vmap(lambda v: A @ v)))(V)
    np.testing.assert_allclose(batched, V @ dense.T, rtol=tolerance, atol=tolerance * 10)
    scales = np.array([1.0, -2.0], dtype)  # a batch of matrices: each its own product
    products = jax.vmap(lambda d, v: dataclasses.replace(A, data=d) @ v)(
        A.data[None] * scales[:, None, None], V[0, :2])
    np.testing.assert_allclose(products, [s * dense @ u for s, u in zip(scales, V[0, :2])],
                               rtol=tolerance, atol=tolerance * 10)
    if native.native_status() is None:
        assert native.DIAGONAL_MATVEC in str(jax.make_jaxpr(lambda v: A @ v)(v))


def test_the_diagonal_product_has_forward_and_reverse_derivatives():
    matrix = _banded(60 * 12)
    A = linalg.sparse_matrix(matrix, "diagonal")
    dense = matrix.toarray()
    rng = np.random.default_rng(13)
    v, weights, direction = (rng.standard_normal(720) for _ in range(3))
    np.testing.assert_allclose(jax.grad(lambda v: jnp.dot(weights, A @ v))(v), dense.T @ weights,
                               rtol=1e-12)
    _, tangent = jax.jvp(lambda v: A @ v, (v,), (direction,))
    np.testing.assert_allclose(tangent, dense @ direction, rtol=1e-12)
    # In the values: A's data scaled by s has d(A v)/ds = A v.
    _, tangent = jax.jvp(lambda s: dataclasses.replace(A, data=s * A.data) @ v,
                         (1.0,), (1.0,))
    np.testing.assert_allclose(tangent, dense @ v, rtol=1e-12)
    grad = jax.grad(lambda s: jnp.dot(weights, dataclasses.replace(A, data=s * A.data) @ v))(1.0)
    np.testing.assert_allclose(grad, weights @ dense @ v, rtol=1e-12)


def test_cg_and_its_preconditioners_take_a_csr_matrix():
    matrix = linalg.stencil3d(6, block=3, permute=1)
    A = linalg.sparse_matrix(matrix)
    assert A.layout == "csr"
    b = np.random.default_rng(4).standard_normal(matrix.shape[0])
    for precond in (None, linalg.jacobi(A), linalg.ic0(A)):
        result = jax.jit(lambda A, b, M: linalg.cg(A, b, precond=M, tol=1e-10,
                                                   max_iters=500))(A, b, precond)
        assert result.status == 0
        np.testing.assert_allclose(matrix @ np.asarray(result.x), b, atol=1e-8)
    scipy_x, info = scipy.sparse.linalg.cg(matrix, b, rtol=0, atol=1e-10, maxiter=500)
    assert info == 0
    plain = linalg.cg(A, b, tol=1e-10, max_iters=500)
    np.testing.assert_allclose(plain.x, scipy_x, atol=1e-8)


def _runs_native_step(fn, *args) -> bool:
    return native.CSR_CG_STEP in str(jax.make_jaxpr(fn)(*args))


@pytest.mark.parametrize("history", [0, 30])
@pytest.mark.parametrize("preconditioned", [False, True])
def test_a_vmapped_cg_on_a_csr_matrix_runs_native_steps_and_equals_single_runs(
        preconditioned, history):
    """Members that converge, start at a zero residual, start non-finite, run out of budget
    or meet negative curvature keep the iterations, status, iterate and history that each
    has alone (which the plain JAX loop computes)."""
    matrix = linalg.random_spd(80, 6, seed=3)
    indefinite = scipy.sparse.csr_array(matrix - 2.5 * scipy.sparse.eye_array(80))
    B = np.random.default_rng(6).standard_normal((5, 80))
    B[1] = 0.0  # converged at x0 = 0
    B[2, 7] = np.nan
    for dense, max_iters in ((matrix, 40), (matrix, 5), (indefinite, 40)):
        A = csr.CSRMatrix.from_scipy(dense)
        precond = linalg.jacobi(dense) if preconditioned else None

        def solve(b):
            return linalg.cg(A, b, precond=precond, tol=1e-10, max_iters=max_iters,
                             history=history)

        assert _runs_native_step(jax.vmap(solve), B) == (native.native_status() is None)
        assert not _runs_native_step(solve, B[0])
        batched = jax.jit(jax.vmap(solve))(B)
        for k, b in enumerate(B):
            alone = jax.jit(solve)(b)
            assert int(batched.iterations[k]) == int(alone.iterations), (max_iters, k)
            assert int(batched.status[k]) == int(alone.status), (max_iters, k)
            np.testing.assert_allclose(batched.x[k], alone.x, rtol=1e-9, atol=1e-12)
            if history:
                np.testing.assert_allclose(batched.residual_norms[k], alone.residual_norms,
                                           rtol=1e-7, atol=1e-14)
    assert set(np.asarray(batched.status)) >= {Status.BREAKDOWN, Status.NONFINITE}


def test_the_native_batch_takes_starts_relative_tolerances_float32_and_nested_vmaps():
    matrix = linalg.random_spd(50, 5, seed=4)
    A = csr.CSRMatrix.from_scipy(matrix)
    rng = np.random.default_rng(7)
    B, X0 = rng.standard_normal((4, 50)), rng.standard_normal((4, 50))
    solve = lambda b, x0: linalg.cg(A, b, x0, tol=0.0, rtol=1e-9)  # noqa: E731
    batched = jax.vmap(solve)(B, X0)
    assert [int(k) for k in batched.iterations] == [int(solve(b, x0).iterations)
                                                   for b, x0 in zip(B, X0)]
    np.testing.assert_allclose(matrix @ np.asarray(batched.x).T, B.T, atol=1e-8)
    nested = jax.vmap(jax.vmap(lambda b: linalg.cg(A, b, tol=1e-10)))(B.reshape(2, 2, 50))
    np.testing.assert_allclose(np.asarray(nested.x).reshape(4, 50) @ matrix, B, atol=1e-8)
    single = csr.CSRMatrix.from_scipy(matrix.astype(np.float32))
    low = jax.vmap(lambda b: linalg.cg(single, b, tol=1e-4))(B.astype(np.float32))
    assert low.x.dtype == np.float32 and np.all(np.asarray(low.status) == Status.CONVERGED)
    # A batch of matrices (and right-hand sides) is the plain loop, vmapped.
    stacked = jax.tree.map(lambda leaf: jnp.stack([leaf, leaf]), A)
    pair = jax.vmap(lambda A, b: linalg.cg(A, b, tol=1e-10))(stacked, B[:2])
    np.testing.assert_allclose(np.asarray(pair.x) @ matrix, B[:2], atol=1e-8)


def test_cg_solves_a_complex_hermitian_csr_system():
    rng = np.random.default_rng(5)
    real = linalg.random_spd(60, 6, seed=1)
    upper = scipy.sparse.triu(real, k=1)
    imaginary = scipy.sparse.csr_array(upper.multiply(rng.standard_normal(upper.shape)) * 0.1)
    hermitian = scipy.sparse.csr_array(real + 1j * (imaginary - imaginary.T))
    b = rng.standard_normal(60) + 1j * rng.standard_normal(60)
    result = linalg.cg(linalg.sparse_matrix(hermitian, "csr"), b, tol=1e-10, max_iters=300)
    np.testing.assert_allclose(hermitian @ np.asarray(result.x), b, atol=1e-8)


def test_native_status_says_when_the_kernel_is_off(monkeypatch):
    monkeypatch.setenv("OPTLAB_NATIVE", "0")
    native._load_native.cache_clear()
    try:
        assert native.native_status() == "turned off by OPTLAB_NATIVE=0"
        A = csr.CSRMatrix.from_scipy(_awkward())
        v = np.ones(40)
        np.testing.assert_allclose(A @ v, _awkward() @ v, rtol=1e-12)
        banded = linalg.sparse_matrix(_banded(), "diagonal")
        assert native.DIAGONAL_MATVEC not in str(jax.make_jaxpr(lambda v: banded @ v)(np.ones(700)))
        np.testing.assert_allclose(banded @ np.ones(700), _banded() @ np.ones(700), rtol=1e-12)
    finally:
        monkeypatch.delenv("OPTLAB_NATIVE")
        native._load_native.cache_clear()


@pytest.mark.parametrize("points, block, per_row", [(7, 1, 7), (27, 1, 27), (27, 3, 81)])
def test_stencils_are_spd_with_their_interior_rows_full(points, block, per_row):
    matrix = linalg.stencil3d(4, points=points, block=block)
    dense = matrix.toarray()
    np.testing.assert_array_equal(dense, dense.T)
    assert np.linalg.eigvalsh(dense)[0] > 0
    assert np.diff(matrix.indptr).max() == per_row  # an interior point has every neighbour
    permuted = linalg.stencil3d(4, points=points, block=block, permute=7)
    np.testing.assert_allclose(np.linalg.eigvalsh(permuted.toarray()), np.linalg.eigvalsh(dense))


def test_random_spd_is_symmetric_dominant_with_about_its_entries_per_row():
    matrix = linalg.random_spd(500, 10, seed=2)
    dense = matrix.toarray()
    np.testing.assert_array_equal(dense, dense.T)
    off = np.abs(dense - np.diag(np.diag(dense))).sum(axis=1)
    assert np.all(np.diag(dense) > off)
    assert 8 <= matrix.nnz / 500 <= 11


def test_the_product_is_differentiable_in_the_vector_and_the_values():
    matrix = _awkward()
    A = linalg.sparse_matrix(matrix, "csr")
    dense = matrix.toarray()
    v = np.random.default_rng(6).standard_normal(40)
    weights = np.random.default_rng(7).standard_normal(40)
    grad_v = jax.grad(lambda v: jnp.dot(weights, A @ v))(v)
    np.testing.assert_allclose(grad_v, dense.T @ weights, rtol=1e-12)
    grad_data = jax.grad(lambda d: jnp.dot(weights, dataclasses.replace(A, data=d) @ v))(A.data)
    rows = np.repeat(np.arange(40), np.diff(matrix.indptr))
    np.testing.assert_allclose(grad_data, weights[rows] * v[matrix.indices], rtol=1e-12)


def test_the_native_kernel_builds_wherever_there_is_a_compiler():
    if os.environ.get("OPTLAB_NATIVE") == "0" or not (
            os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")):
        pytest.skip("no C++ compiler here, or the native kernel is turned off")
    assert linalg.native_status() is None  # else its message holds the compiler's errors
