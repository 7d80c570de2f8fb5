"""Linear algebra for optlab: conjugate gradients, preconditioners, operators, .mtx I/O.

:func:`cg` solves ``A x = b`` for SPD ``A`` given as a dense array, a BCOO matrix, a
:class:`DiagonalMatrix` (fast for stencils), a :class:`CSRMatrix` (the other patterns; a
native kernel on the CPU), :func:`sparse_matrix` choosing between them, or a matvec
callable, inside one ``lax.while_loop`` (jit- and vmap-safe, failures reported as
:class:`optlab.Status` codes). Preconditioners are callables ``r -> M^{-1} r`` built once
by :func:`jacobi`, :func:`ic0` (zero-fill incomplete Cholesky, applied by level-scheduled
sparse triangular solves) or :func:`ideal`. :func:`read_matrix_market` loads symmetric test
matrices, including the shipped SuiteSparse ones.
"""

from optlab.linalg.cg import CGResult, cg
from optlab.linalg.csr import CSRMatrix
from optlab.linalg.native import native_status
from optlab.linalg.matrix_market import read_matrix_market, shipped_matrices
from optlab.linalg.operators import (
    DiagonalMatrix,
    as_matvec,
    diagonal,
    eigenvalue_bounds,
    poisson2d,
    poisson2d_eigenvalue_bounds,
    random_spd,
    sparse_matrix,
    stencil3d,
    to_bcoo,
)
from optlab.linalg.incomplete_cholesky import PivotError, ic0_factor
from optlab.linalg.preconditioners import (
    CholeskySolve,
    IncompleteCholesky,
    Jacobi,
    ic0,
    ideal,
    jacobi,
)
from optlab.linalg.triangular import SparseTriangular, level_schedule

__all__ = [
    "CGResult",
    "CSRMatrix",
    "CholeskySolve",
    "DiagonalMatrix",
    "IncompleteCholesky",
    "Jacobi",
    "PivotError",
    "SparseTriangular",
    "as_matvec",
    "cg",
    "diagonal",
    "eigenvalue_bounds",
    "ic0",
    "ic0_factor",
    "ideal",
    "jacobi",
    "level_schedule",
    "native_status",
    "poisson2d",
    "poisson2d_eigenvalue_bounds",
    "random_spd",
    "read_matrix_market",
    "shipped_matrices",
    "sparse_matrix",
    "stencil3d",
    "to_bcoo",
]
