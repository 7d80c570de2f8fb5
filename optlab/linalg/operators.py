"""Linear operators for :mod:`optlab.linalg`: one way to apply a matrix, whatever it is.

The solvers take ``A`` as a dense ``(n, n)`` array, a ``jax.experimental.sparse.BCOO``
matrix, a ``scipy.sparse`` matrix (converted to BCOO once, outside any trace) or a
callable ``v -> A v``. :func:`as_matvec` turns each into a pure function of a JAX vector,
so the solver's loop never branches on the kind of matrix. :func:`diagonal` and the
test matrix :func:`poisson2d` serve the preconditioners and the studies.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse
from jax.experimental import sparse

Matvec = Callable[[jax.Array], jax.Array]


def to_bcoo(matrix: scipy.sparse.spmatrix | scipy.sparse.sparray) -> sparse.BCOO:
    """A ``scipy.sparse`` matrix as BCOO (``BCOO.from_scipy_sparse``, via COO form)."""
    if not scipy.sparse.issparse(matrix):
        raise TypeError(f"expected a scipy.sparse matrix, got {type(matrix).__name__}")
    return sparse.BCOO.from_scipy_sparse(matrix)


def as_matvec(A) -> Matvec:
    """The function ``v -> A v`` for a dense array, BCOO, scipy sparse matrix or callable.

    A callable is returned unchanged: it must map an ``(n,)`` array to an ``(n,)`` array
    with JAX operations. Matrices must be square.
    """
    if isinstance(A, sparse.BCOO):
        _check_square(A.shape)
        return lambda v: A @ v
    if scipy.sparse.issparse(A):
        return as_matvec(to_bcoo(A))
    if callable(A) and not hasattr(A, "shape"):
        return A
    matrix = jnp.asarray(A)
    _check_square(matrix.shape)
    return lambda v: matrix @ v


def diagonal(A) -> jax.Array:
    """The main diagonal of a dense, BCOO or scipy sparse square matrix, as a JAX vector.

    For BCOO the stored entries on the diagonal are summed, so duplicate entries count
    as the matrix they represent does; padding indices (out of range) are dropped.
    """
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


def poisson2d_eigenvalue_bounds(N: int) -> tuple[float, float]:
    """``(lambda_min, lambda_max)`` of :func:`poisson2d` ``(N)`` in closed form:
    ``4 - 4 cos(pi / (N + 1))`` and ``4 + 4 cos(pi / (N + 1))``."""
    c = np.cos(np.pi / (N + 1))
    return float(4.0 - 4.0 * c), float(4.0 + 4.0 * c)


def _check_square(shape) -> None:
    if len(shape) != 2 or shape[0] != shape[1]:
        raise ValueError(f"expected a square matrix, got shape {tuple(shape)}")
