"""Preconditioners for :func:`optlab.linalg.cg`.

A preconditioner is any callable ``r -> z`` with ``z ~ M^{-1} r`` for a symmetric positive
definite ``M ~ A``, written with JAX operations; CG applies it once per iteration inside
its loop. The factories here do their setup (a diagonal, a Cholesky factor) once, eagerly,
outside any trace, and raise ``ValueError`` when ``A`` does not admit the preconditioner;
the returned function is pure and closes over the precomputed arrays only.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import jax.scipy.linalg
import numpy as np
import scipy.sparse
from jax.experimental import sparse

from optlab.linalg import operators

Preconditioner = Callable[[jax.Array], jax.Array]


def jacobi(A) -> Preconditioner:
    """Jacobi (diagonal) preconditioning: ``M = diag(A)``, ``z = r / diag(A)``.

    Saad, *Iterative Methods for Sparse Linear Systems*, 2nd ed., Section 10.2. Accepts a
    dense array, a BCOO or a scipy sparse matrix. Raises ``ValueError`` if a diagonal entry
    is zero or not finite (M would be singular).
    """
    diag = operators.diagonal(A)
    bad = np.flatnonzero(~np.isfinite(np.asarray(diag)) | (np.asarray(diag) == 0))
    if bad.size:
        raise ValueError(
            f"jacobi: diagonal entry {int(bad[0])} of A is {float(diag[bad[0]])!r}; "
            f"{bad.size} zero or non-finite diagonal entries in all"
        )
    inverse_diagonal = 1.0 / diag
    return lambda r: inverse_diagonal * r


def ideal(A) -> Preconditioner:
    """The "ideal" preconditioner ``M = A``: ``z = A^{-1} r`` through a Cholesky factor.

    The factor ``A = L L^T`` is computed once (``jax.scipy.linalg.cho_factor``) and each
    application is two triangular solves (``cho_solve``), so PCG converges in one
    iteration up to rounding. It is a reference point for studies, not a practical
    method: scipy sparse and BCOO inputs are densified, which is meant for the study's
    small matrices (n of a few thousand). Raises ``ValueError`` if A is not symmetric
    positive definite to working precision (the factor is not finite).
    """
    if scipy.sparse.issparse(A):
        dense = jnp.asarray(A.toarray())
    elif isinstance(A, sparse.BCOO):
        dense = A.todense()
    elif callable(A) and not hasattr(A, "shape"):
        raise TypeError("ideal() needs a matrix, not a matvec callable")
    else:
        dense = jnp.asarray(A)
    operators._check_square(dense.shape)
    factor, lower = jax.scipy.linalg.cho_factor(dense, lower=True)
    if not bool(jnp.all(jnp.isfinite(factor))):
        raise ValueError("ideal: A is not symmetric positive definite (Cholesky failed)")
    return lambda r: jax.scipy.linalg.cho_solve((factor, lower), r)
