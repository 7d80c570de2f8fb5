"""Linear algebra for optlab: conjugate gradients, preconditioners, operators, .mtx I/O.

:func:`cg` solves ``A x = b`` for SPD ``A`` given as a dense array, a BCOO matrix or a
matvec callable, inside one ``lax.while_loop`` (jit- and vmap-safe, failures reported as
:class:`optlab.Status` codes). Preconditioners are callables ``r -> M^{-1} r`` built once
by :func:`jacobi` or :func:`ideal`. :func:`read_matrix_market` loads symmetric test
matrices, including the shipped SuiteSparse ones.
"""

from optlab.linalg.cg import CGResult, cg
from optlab.linalg.matrix_market import read_matrix_market, shipped_matrices
from optlab.linalg.operators import as_matvec, diagonal, poisson2d, to_bcoo
from optlab.linalg.preconditioners import ideal, jacobi

__all__ = [
    "CGResult",
    "as_matvec",
    "cg",
    "diagonal",
    "ideal",
    "jacobi",
    "poisson2d",
    "read_matrix_market",
    "shipped_matrices",
    "to_bcoo",
]
