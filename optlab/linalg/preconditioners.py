"""Preconditioners for :func:`optlab.linalg.cg`.

A preconditioner is any callable ``r -> z`` with ``z ~ M^{-1} r`` for a symmetric positive
definite ``M ~ A``, written with JAX operations; CG applies it once per iteration inside
its loop. The factories here do their setup (a diagonal, a Cholesky factor, an incomplete
Cholesky factor) once, eagerly, outside any trace, and raise ``ValueError`` when ``A``
does not admit the preconditioner. What they return is a frozen dataclass registered as a
pytree, callable as ``M(r)``: it can be passed *into* ``jax.jit`` as an argument, so its
arrays are inputs of the compiled program rather than constants folded into it (which
would make compilation slow for large matrices and recompile for every new matrix).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import jax.scipy.linalg
import numpy as np
import scipy.linalg
import scipy.sparse
from jax.experimental import sparse

from optlab.linalg import operators
from optlab.linalg.incomplete_cholesky import PivotError, ic0_factor
from optlab.linalg.triangular import SparseTriangular

Preconditioner = Callable[[jax.Array], jax.Array]


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Jacobi:
    """``z = r / diag(A)``; built by :func:`jacobi`."""

    inverse_diagonal: jax.Array  # (n,)

    def __call__(self, r: jax.Array) -> jax.Array:
        return self.inverse_diagonal * r


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class CholeskySolve:
    """``z = A^{-1} r`` from a dense Cholesky factor; built by :func:`ideal`."""

    factor: jax.Array  # (n, n) lower triangular L with A = L L^T

    def __call__(self, r: jax.Array) -> jax.Array:
        return jax.scipy.linalg.cho_solve((self.factor, True), r)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class IncompleteCholesky:
    """``z = L^{-T} L^{-1} r`` for the IC(0) factor ``L``; built by :func:`ic0`."""

    lower: SparseTriangular  # L, level-scheduled for forward substitution
    upper: SparseTriangular  # L^T, level-scheduled for back substitution
    # L factors A + shift * diag(A); with ic0(A, shift="auto"), the shift it found.
    shift: float = dataclasses.field(default=0.0, metadata=dict(static=True))

    def __call__(self, r: jax.Array) -> jax.Array:
        return self.upper.solve(self.lower.solve(r))


def jacobi(A) -> Jacobi:
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
    return Jacobi(inverse_diagonal=1.0 / diag)


AUTO_SHIFT_START = 1e-3  # ic0(shift="auto"): the first shift tried after 0, then doubled


def ic0(A, shift: float | str = 0.0) -> IncompleteCholesky:
    """Zero-fill incomplete Cholesky preconditioning: ``M = L L^T``, ``L`` from IC(0)
    (``L L^H`` for a complex Hermitian ``A``).

    ``L`` has the sparsity of ``tril(A)`` and ``L L^T`` equals ``A`` on that pattern
    (:func:`optlab.linalg.incomplete_cholesky.ic0_factor`, computed once on the host with
    sparse NumPy/scipy operations). Each application is two exact sparse triangular
    solves, ``L y = r`` then ``L^T z = y``, scheduled by levels
    (:class:`optlab.linalg.triangular.SparseTriangular`), inside CG's loop.

    Args:
      A: symmetric matrix: scipy sparse, BCOO, DiagonalMatrix, CSRMatrix or dense. Not a matvec
        callable.
      shift: factor ``A + shift * diag(A)`` (see ``ic0_factor``); use it when IC(0)
        meets a non-positive pivot. ``"auto"`` finds one: 0 first, then
        :data:`AUTO_SHIFT_START` doubled after every breakdown until the factorization
        succeeds (Manteuffel's shift, tried as Lin and Moré's ICFS tries it), so that any
        SPD matrix gets a factor; the result's ``shift`` says which one it used.

    Raises:
      ValueError: ``A`` is not square and symmetric, or lacks a positive diagonal.
      PivotError: (a ``ValueError``) a non-positive pivot; the message suggests ``shift``.
    """
    if isinstance(A, sparse.BCOO):
        A = _bcoo_to_scipy(A)
    elif isinstance(A, operators.HOST_LAYOUTS):
        A = A.to_scipy()
    elif callable(A) and not hasattr(A, "shape"):
        raise TypeError("ic0() needs a matrix, not a matvec callable")
    elif not scipy.sparse.issparse(A):
        A = np.asarray(A)
    if isinstance(shift, str) and shift == "auto":
        factor, shift = _shifted_ic0(A)
    else:
        factor = ic0_factor(A, shift=shift)
    return IncompleteCholesky(
        lower=SparseTriangular.from_scipy(factor),
        upper=SparseTriangular.from_scipy(factor.conj().T),
        shift=float(shift),
    )


def _shifted_ic0(A) -> tuple[scipy.sparse.csr_array, float]:
    """The IC(0) factor of ``A + shift * diag(A)`` for the first shift of 0, 1e-3, 2e-3,
    4e-3, ... that has positive pivots. A large enough shift makes ``A`` diagonally
    dominant, where IC(0) always succeeds; past 1e6 the matrix is not worth a factor."""
    shift = 0.0
    while True:
        try:
            return ic0_factor(A, shift=shift), shift
        except PivotError:
            if shift > 1e6:
                raise
            shift = max(2.0 * shift, AUTO_SHIFT_START)


def ideal(A) -> CholeskySolve:
    """The "ideal" preconditioner ``M = A``: ``z = A^{-1} r`` through a Cholesky factor.

    The factor ``A = L L^T`` is computed once on the host (``scipy.linalg.cholesky``) and
    each application is two dense triangular solves (``jax.scipy.linalg.cho_solve``), so
    PCG converges in one iteration up to rounding. It is a reference point for studies,
    not a practical method: sparse inputs are densified, which is meant for the study's
    small matrices (n of a few thousand). Raises ``ValueError`` if A is not symmetric
    positive definite to working precision.
    """
    if isinstance(A, sparse.BCOO):
        A = _bcoo_to_scipy(A)
    elif isinstance(A, operators.HOST_LAYOUTS):
        A = A.to_scipy()
    elif callable(A) and not hasattr(A, "shape"):
        raise TypeError("ideal() needs a matrix, not a matvec callable")
    dense = A.toarray() if scipy.sparse.issparse(A) else np.asarray(A)
    operators._check_square(dense.shape)
    try:
        factor = scipy.linalg.cholesky(dense, lower=True)
    except np.linalg.LinAlgError as error:
        raise ValueError(f"ideal: A is not symmetric positive definite ({error})") from None
    return CholeskySolve(factor=jnp.asarray(factor, dtype=dense.dtype))


def _bcoo_to_scipy(A: sparse.BCOO) -> scipy.sparse.coo_array:
    """A plain 2-D BCOO as a scipy COO array (duplicates are summed later)."""
    if A.n_batch or A.n_dense:
        raise ValueError("expected a plain 2-D BCOO (n_batch = n_dense = 0)")
    rows, cols = np.asarray(A.indices).T
    keep = (rows < A.shape[0]) & (cols < A.shape[1])  # drop padding entries
    return scipy.sparse.coo_array(
        (np.asarray(A.data)[keep], (rows[keep], cols[keep])), shape=A.shape
    )
