"""Linear operators for :mod:`optlab.linalg`: one way to apply a matrix, whatever it is.

The solvers take ``A`` as a dense ``(n, n)`` array, a ``jax.experimental.sparse.BCOO``
matrix, a :class:`DiagonalMatrix`, a :class:`~optlab.linalg.CSRMatrix`, a ``scipy.sparse``
matrix (converted once, outside any trace, by :func:`sparse_matrix`) or a callable
``v -> A v``. :func:`as_matvec` turns each into a pure function of a JAX vector, so the
solver's loop never branches on the kind of matrix. :func:`diagonal` and the test matrices (:func:`poisson2d`, :func:`stencil3d`,
:func:`random_spd`) serve the preconditioners, the studies and the benchmark.

Which sparse layout is fast depends on the matrix. BCOO's product is a gather and a
scatter-add per stored entry, which XLA runs slowly on the CPU. A matrix whose entries
lie on a few diagonals (a stencil) is better stored by diagonals: its product is a
handful of shifted element-wise products with no indexing at all, which XLA fuses into
one pass. Any other pattern is better stored by rows (CSR), whose product on the CPU is
a native kernel. :func:`sparse_matrix` picks the diagonal layout when it wastes little
storage and CSR otherwise; BENCHMARKS.md has the measurements.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse
import scipy.sparse.linalg
from jax.experimental import sparse

from optlab.linalg.csr import NATIVE_DTYPES, CSRMatrix
from optlab.linalg.native import DIAGONAL_MATVEC, native_status

Matvec = Callable[[jax.Array], jax.Array]
LAYOUTS = ("auto", "csr", "diagonal", "bcoo")


def to_bcoo(matrix: scipy.sparse.spmatrix | scipy.sparse.sparray) -> sparse.BCOO:
    """A ``scipy.sparse`` matrix as BCOO (``BCOO.from_scipy_sparse``, via COO form)."""
    if not scipy.sparse.issparse(matrix):
        raise TypeError(f"expected a scipy.sparse matrix, got {type(matrix).__name__}")
    return sparse.BCOO.from_scipy_sparse(matrix)


@dataclasses.dataclass(frozen=True)
class DiagonalMatrix:
    """A square matrix stored by diagonals (scipy's DIA convention), as a pytree.

    ``A[i, i + offsets[d]] = data[d, i + offsets[d]]``: row ``d`` of ``data`` holds the
    diagonal at offset ``offsets[d]`` indexed by column, entries outside the matrix
    ignored. ``A @ v`` adds up each diagonal times ``v``, shifted by its offset: on the CPU
    in a native kernel (:mod:`optlab.linalg.native`; a vmapped batch of right-hand sides
    in one call), elsewhere in JAX. The offsets are static (part of the tree structure),
    so a jitted solver compiles once per sparsity structure.
    """

    data: jax.Array  # (diagonals, n)
    offsets: tuple[int, ...]

    layout = "diagonal"

    @classmethod
    def from_scipy(cls, matrix) -> "DiagonalMatrix":
        """The diagonals of a square scipy sparse matrix (``scipy.sparse.dia_array``)."""
        if not scipy.sparse.issparse(matrix):
            raise TypeError(f"expected a scipy.sparse matrix, got {type(matrix).__name__}")
        _check_square(matrix.shape)
        dia = scipy.sparse.dia_array(matrix)
        n = matrix.shape[0]
        data = np.zeros((len(dia.offsets), n), dia.dtype)
        width = min(dia.data.shape[1], n)  # scipy may store fewer (or more) columns than n
        data[:, :width] = dia.data[:, :width]
        return cls(jnp.asarray(data), tuple(int(offset) for offset in dia.offsets))

    @property
    def shape(self) -> tuple[int, int]:
        n = self.data.shape[-1]
        return (n, n)

    def to_scipy(self) -> scipy.sparse.csr_array:
        """The same matrix as scipy CSR (for host-side set-up such as IC(0))."""
        dia = scipy.sparse.dia_array((np.asarray(self.data), self.offsets), shape=self.shape)
        return scipy.sparse.csr_array(dia)

    def __matmul__(self, v: jax.Array) -> jax.Array:
        v = jnp.asarray(v)
        n = self.data.shape[-1]
        if v.shape != (n,):
            raise ValueError(
                f"DiagonalMatrix of shape {self.shape} times a vector of shape {v.shape}")
        dtype = jnp.result_type(self.data, v)
        return _diagonal_product(self.offsets, self.data.astype(dtype), v.astype(dtype))

    def __repr__(self) -> str:
        return (f"DiagonalMatrix(shape={self.shape}, diagonals={len(self.offsets)}, "
                f"dtype={self.data.dtype}, layout='diagonal')")


jax.tree_util.register_dataclass(DiagonalMatrix, data_fields=["data"], meta_fields=["offsets"])


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def _diagonal_product(offsets: tuple[int, ...], data: jax.Array, v: jax.Array) -> jax.Array:
    """``A @ v`` by diagonals: on the CPU the native kernel (every diagonal a contiguous
    multiply-add over blocks of rows that stay in cache; a vmapped batch of right-hand
    sides in one call), elsewhere :func:`_portable_diagonal`. Its derivatives are the
    portable product's, so ``jax.jvp`` and ``jax.grad`` both go through."""
    if (native_status() is not None or not offsets
            or not any(data.dtype == d for d in NATIVE_DTYPES)):
        return _portable_diagonal(offsets, data, v)
    return jax.lax.platform_dependent(
        data, v, cpu=_native_diagonal(offsets),
        default=functools.partial(_portable_diagonal, offsets))


@_diagonal_product.defjvp
def _diagonal_product_jvp(offsets, primals, tangents):
    (data, v), (data_dot, v_dot) = primals, tangents
    # Bilinear in (data, v); the tangent in portable JAX operations, which transpose.
    return (_diagonal_product(offsets, data, v),
            _portable_diagonal(offsets, data_dot, v) + _portable_diagonal(offsets, data, v_dot))


def _portable_diagonal(offsets: tuple[int, ...], data: jax.Array, v: jax.Array) -> jax.Array:
    """``A @ v`` by diagonals in JAX: each diagonal times ``v``, shifted by its offset."""
    n = v.shape[-1]
    out = None
    for row, offset in zip(data, offsets):
        product = row * v  # product[j] = A[j - offset, j] v[j]
        if offset >= 0:
            shifted = jnp.pad(product[offset:], (0, offset))
        else:
            shifted = jnp.pad(product[: n + offset], (-offset, 0))
        out = shifted if out is None else out + shifted
    return jnp.zeros_like(v) if out is None else out


@functools.cache
def _native_diagonal(offsets: tuple[int, ...]):
    """The native product for these offsets, with its batching rule: a batch of
    right-hand sides is one call; a batch of matrices takes the portable product."""

    @jax.custom_batching.custom_vmap
    def product(data, v):
        flat = v.reshape(-1, v.shape[-1]) if v.ndim > 1 else v
        y = jax.ffi.ffi_call(DIAGONAL_MATVEC, jax.ShapeDtypeStruct(flat.shape, v.dtype))(
            data, np.asarray(offsets, np.int32), flat)
        return y.reshape(v.shape)

    @product.def_vmap
    def product_vmap(axis_size, in_batched, data, v):
        data_batched, v_batched = in_batched
        if data_batched:
            v = v if v_batched else jnp.broadcast_to(v, (axis_size, *v.shape))
            return jax.vmap(functools.partial(_portable_diagonal, offsets))(data, v), True
        return product(data, v), v_batched

    return product
HOST_LAYOUTS = (DiagonalMatrix, CSRMatrix)  # the layouts that convert back with to_scipy()


def sparse_matrix(matrix, layout: str = "auto", max_padding: float = 2.0):
    """A scipy sparse matrix in a JAX layout for the solvers: :class:`DiagonalMatrix`,
    :class:`~optlab.linalg.CSRMatrix` or BCOO; the result's ``layout`` (BCOO: its type)
    says which.

    ``layout="auto"`` stores by diagonals when that takes at most ``max_padding`` times
    the stored entries (a stencil such as :func:`poisson2d`: 5 diagonals, no
    padding to speak of: contiguous multiply-adds, no indexing), and by rows otherwise
    (the power-network matrices, a finite-element mesh's numbering: entries over hundreds
    of diagonals; :class:`~optlab.linalg.CSRMatrix` renumbers the latter when that brings
    a row's columns near it). ``"csr"``, ``"diagonal"`` and ``"bcoo"`` force a layout.
    """
    if not scipy.sparse.issparse(matrix):
        raise TypeError(f"expected a scipy.sparse matrix, got {type(matrix).__name__}")
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    if layout == "auto":
        coo = scipy.sparse.coo_array(matrix)
        diagonals = np.unique(coo.col.astype(np.int64) - coo.row).size
        fits = diagonals * matrix.shape[0] <= max_padding * max(coo.nnz, 1)
        layout = "diagonal" if fits else "csr"
    if layout == "diagonal":
        return DiagonalMatrix.from_scipy(matrix)
    return CSRMatrix.from_scipy(matrix) if layout == "csr" else to_bcoo(matrix)


def as_matvec(A) -> Matvec:
    """The function ``v -> A v`` for a dense array, BCOO, :class:`DiagonalMatrix`, scipy
    sparse matrix (laid out by :func:`sparse_matrix`) or callable.

    A callable is returned unchanged: it must map an ``(n,)`` array to an ``(n,)`` array
    with JAX operations. Matrices must be square.
    """
    if isinstance(A, (sparse.BCOO, *HOST_LAYOUTS)):
        _check_square(A.shape)
        return lambda v: A @ v
    if scipy.sparse.issparse(A):
        return as_matvec(sparse_matrix(A))
    if callable(A) and not hasattr(A, "shape"):
        return A
    matrix = jnp.asarray(A)
    _check_square(matrix.shape)
    return lambda v: matrix @ v


def diagonal(A) -> jax.Array:
    """The main diagonal of a dense, BCOO, diagonal-layout or scipy sparse square matrix.

    For BCOO the stored entries on the diagonal are summed, so duplicate entries count
    as the matrix they represent does; padding indices (out of range) are dropped.
    """
    if isinstance(A, HOST_LAYOUTS):
        A = A.to_scipy()
    if scipy.sparse.issparse(A):
        _check_square(A.shape)
        return jnp.asarray(A.diagonal())
    if isinstance(A, sparse.BCOO):
        _check_square(A.shape)
        if A.n_batch or A.n_dense:
            raise ValueError("diagonal() needs a plain 2-D BCOO (n_batch = n_dense = 0)")
        rows, cols = A.indices[:, 0], A.indices[:, 1]
        on_diagonal = jnp.where(rows == cols, A.data, jnp.zeros_like(A.data))
        return jnp.zeros(A.shape[0], A.dtype).at[rows].add(on_diagonal, mode="drop")
    if callable(A) and not hasattr(A, "shape"):
        raise TypeError("diagonal() needs a matrix, not a matvec callable")
    matrix = jnp.asarray(A)
    _check_square(matrix.shape)
    return jnp.diagonal(matrix)


def poisson2d(N: int, *, as_scipy: bool = False) -> sparse.BCOO | scipy.sparse.csr_array:
    """The 5-point finite-difference Laplacian on an ``N x N`` interior grid, as BCOO.

    With ``as_scipy=True`` the same matrix as a ``scipy.sparse.csr_array`` (for host-side
    set-up such as :func:`optlab.linalg.ic0`, or for scipy references).

    With ``T = tridiag(-1, 2, -1)`` of order ``N`` the matrix is
    ``A = I (x) T + T (x) I`` (n = N^2): 4 on the diagonal and -1 between grid neighbours,
    rows ordered row-major over the grid. It is built with ``scipy.sparse.kron`` and then
    converted by :func:`to_bcoo` (Saad, *Iterative Methods for Sparse Linear Systems*,
    2nd ed., Section 2.2). Its eigenvalues are ``4 - 2cos(i pi/(N+1)) - 2cos(j pi/(N+1))``.
    """
    if not isinstance(N, (int, np.integer)) or N < 1:
        raise ValueError(f"N must be a positive int, got {N!r}")
    tridiagonal = scipy.sparse.diags([-1.0, 2.0, -1.0], [-1, 0, 1], shape=(N, N))
    identity = scipy.sparse.identity(N)
    laplacian = scipy.sparse.kron(identity, tridiagonal) + scipy.sparse.kron(tridiagonal, identity)
    laplacian = scipy.sparse.csr_array(laplacian)
    return laplacian if as_scipy else to_bcoo(laplacian)


def stencil3d(side: int, *, points: int = 27, block: int = 1,
              permute: int | None = None) -> scipy.sparse.csr_array:
    """A symmetric positive definite test matrix on a ``side^3`` grid, as scipy CSR.

    The 7-point (faces) or 27-point (faces, edges and corners) stencil: -1 between grid
    neighbours and, on the diagonal, the number of neighbours plus 2 (28 for 27 points),
    so the matrix is strictly diagonally dominant. ``block=3`` replaces every entry by
    that entry times a dense SPD 3 x 3 block (``[[4, 1, 1], [1, 4, 1], [1, 1, 4]]``), as an
    elasticity matrix has them; other blocks are ``b x b`` with 4 on the diagonal and 1
    elsewhere. ``permute=seed`` numbers the unknowns by a random permutation (rows and
    columns alike), as a mesh's own numbering would: the same matrix with no few-diagonal
    pattern left.
    """
    if points not in (7, 27):
        raise ValueError(f"points must be 7 or 27, got {points}")
    if side < 1 or block < 1:
        raise ValueError(f"side and block must be at least 1, got {side} and {block}")
    grid = np.arange(side**3).reshape(side, side, side)
    rows, cols = [], []
    for shift in np.ndindex(3, 3, 3):
        offset = np.asarray(shift) - 1
        if not offset.any() or (points == 7 and np.abs(offset).sum() != 1):
            continue
        inside = tuple(slice(max(0, -o), side - max(0, o)) for o in offset)
        moved = tuple(slice(max(0, o), side - max(0, -o)) for o in offset)
        rows.append(grid[inside].ravel())
        cols.append(grid[moved].ravel())
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    n = side**3
    pattern = scipy.sparse.coo_array((-np.ones(rows.size), (rows, cols)), shape=(n, n))
    matrix = scipy.sparse.csr_array(pattern + (points + 1) * scipy.sparse.identity(n))
    if block > 1:
        matrix = scipy.sparse.csr_array(scipy.sparse.kron(
            matrix, np.ones((block, block)) + 3 * np.eye(block)))
    if permute is not None:
        order = np.random.default_rng(permute).permutation(matrix.shape[0])
        matrix = scipy.sparse.csr_array(matrix[order][:, order])
    matrix.sort_indices()
    return matrix


def random_spd(n: int, per_row: int, *, seed: int = 0) -> scipy.sparse.csr_array:
    """A random symmetric, strictly diagonally dominant (so SPD) test matrix, as scipy CSR:
    about ``per_row`` entries per row in uniformly random columns (a symmetric pattern,
    values in [-1, 0)), and on the diagonal one more than the row's absolute sum."""
    if n < 1 or per_row < 1:
        raise ValueError(f"n and per_row must be at least 1, got {n} and {per_row}")
    rng = np.random.default_rng(seed)
    half = max(per_row - 1, 0) * n // 2
    rows, cols = rng.integers(0, n, half), rng.integers(0, n, half)
    off = rows != cols
    values = -rng.uniform(1e-3, 1.0, int(off.sum()))
    upper = scipy.sparse.coo_array((values, (rows[off], cols[off])), shape=(n, n))
    offdiagonal = scipy.sparse.csr_array(upper + upper.T)
    dominance = np.abs(offdiagonal).sum(axis=1) + 1.0
    matrix = scipy.sparse.csr_array(offdiagonal + scipy.sparse.diags_array(dominance))
    matrix.sort_indices()
    return matrix


def poisson2d_eigenvalue_bounds(N: int) -> tuple[float, float]:
    """``(lambda_min, lambda_max)`` of :func:`poisson2d` ``(N)`` in closed form:
    ``4 - 4 cos(pi / (N + 1))`` and ``4 + 4 cos(pi / (N + 1))``."""
    c = np.cos(np.pi / (N + 1))
    return float(4.0 - 4.0 * c), float(4.0 + 4.0 * c)


def eigenvalue_bounds(A, *, dense_max_n: int = 5000) -> tuple[float, float, str]:
    """``(lambda_min, lambda_max, how)`` of a symmetric positive definite scipy or NumPy
    matrix: every eigenvalue of the dense matrix up to ``dense_max_n`` rows
    (``numpy.linalg.eigvalsh``), else the two extremes by ``scipy.sparse.linalg.eigsh``,
    the smallest by shift-invert about 0; ``how`` names the method."""
    _check_square(A.shape)
    if A.shape[0] <= dense_max_n:
        eigenvalues = np.linalg.eigvalsh(A.toarray() if scipy.sparse.issparse(A) else A)
        return float(eigenvalues[0]), float(eigenvalues[-1]), "numpy.linalg.eigvalsh"
    largest = scipy.sparse.linalg.eigsh(A, k=1, which="LA", return_eigenvectors=False)[0]
    smallest = scipy.sparse.linalg.eigsh(A, k=1, sigma=0.0, which="LM",
                                         return_eigenvectors=False)[0]
    return float(smallest), float(largest), "scipy.sparse.linalg.eigsh (shift-invert)"


def _check_square(shape) -> None:
    if len(shape) != 2 or shape[0] != shape[1]:
        raise ValueError(f"expected a square matrix, got shape {tuple(shape)}")
