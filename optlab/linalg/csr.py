"""Compressed sparse rows (CSR): the layout for matrices without a few-diagonal pattern.

A finite-element or structural matrix numbered by its mesh has tens of entries per row
scattered over thousands of diagonals. BCOO's product is one gather and one scatter-add
per stored entry, which XLA runs several times slower than scipy's CSR loop on the CPU.
:class:`CSRMatrix` stores the rows in order (``indptr``, ``indices``, ``data``, scipy's
convention) and multiplies:

* on the CPU, with a native kernel (``sparse_kernels.cc``, an XLA FFI handler built on
  first use: :mod:`optlab.linalg.native`): each row a short loop of multiply-adds, as
  scipy does;
* elsewhere (GPU, TPU, no compiler, float16), with ``jax.ops.segment_sum`` over the sorted
  rows: the portable product, which gives the same result to rounding.

A mesh's numbering (a finite-element matrix's, say) can scatter a row's entries over the
whole vector, so that each of them reads another cache line of it. :meth:`CSRMatrix.from_scipy`
then stores the matrix renumbered by reverse Cuthill-McKee, which brings a row's columns
near the row, and keeps the renumbering (``order`` and its inverse ``position``): the product
reads ``v`` and writes its result in the caller's numbering, so nothing outside sees it.

Both run under ``jit``, inside ``lax.while_loop`` (CG), and under ``vmap`` over
right-hand sides: the native kernel then takes the whole batch in one call, reading the
matrix once per slab of right-hand sides (8 in float64, a cache line). A batch of
matrices (``vmap`` over ``data``) takes the portable product. Values may be real or complex (float32, float64, complex64,
complex128 natively); ``jax.grad`` goes through the product (its transpose), ``jax.jvp``
does not.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse
import scipy.sparse.csgraph

from optlab.linalg.native import CSR_MATVEC, native_status

NATIVE_DTYPES = (np.float32, np.float64, np.complex64, np.complex128)
# Renumber only where the vector outgrows a typical L1 data cache: below that every read
# of it hits, and renumbering would add two passes over it for nothing.
_REORDER_MIN_BYTES = 32 * 1024
_REORDER_MIN_GAIN = 2.0  # how many times nearer their rows the entries must come


@dataclasses.dataclass(frozen=True)
class CSRMatrix:
    """A sparse matrix stored by rows, as a pytree (its shape static).

    Row ``i``'s entries are ``data[indptr[i]:indptr[i + 1]]`` in the columns
    ``indices[indptr[i]:indptr[i + 1]]``; ``rows`` is each entry's row, kept for the
    portable product. When ``order`` is not None the stored matrix is the caller's
    renumbered, ``stored[i, j] = A[order[i], order[j]]`` (``position`` is its inverse: the
    caller's unknown ``i`` is stored as ``position[i]``), and the product takes and returns
    vectors in the caller's numbering. Build one with :meth:`from_scipy` (or
    :func:`optlab.linalg.sparse_matrix`).
    """

    indptr: jax.Array  # (n_rows + 1,) int32
    indices: jax.Array  # (nnz,) int32
    rows: jax.Array  # (nnz,) int32
    data: jax.Array  # (nnz,)
    shape: tuple[int, int]
    order: jax.Array | None = None  # (n,) int32: the caller's index of stored unknown i
    position: jax.Array | None = None  # (n,) int32: where the caller's unknown i is stored

    layout = "csr"

    @classmethod
    def from_scipy(cls, matrix, reorder: bool | None = None) -> CSRMatrix:
        """The matrix in canonical CSR form: duplicates summed, columns sorted per row.

        ``reorder=True`` stores a square matrix renumbered by reverse Cuthill-McKee
        (``scipy.sparse.csgraph.reverse_cuthill_mckee`` on the pattern of ``A + A^T``);
        ``None`` (the default) does so when it pays: when the vector takes more than
        32 KiB and the renumbering brings the entries at least twice as near the diagonal
        (their mean ``|i - j|``), as it does for a mesh numbered at random. A stencil in
        grid order, or a random pattern, is kept as it is.
        """
        if not scipy.sparse.issparse(matrix):
            raise TypeError(f"expected a scipy.sparse matrix, got {type(matrix).__name__}")
        if reorder not in (None, True, False):
            raise ValueError(f"reorder must be None, True or False, got {reorder!r}")
        csr = scipy.sparse.csr_array(matrix, copy=True)
        csr.sum_duplicates()
        if csr.nnz >= 2**31:
            raise ValueError(f"CSRMatrix holds fewer than 2**31 entries, got {csr.nnz}")
        square = csr.shape[0] == csr.shape[1]
        if reorder and not square:
            raise ValueError(f"only a square matrix can be renumbered, got shape {csr.shape}")
        renumbering = None
        if reorder or (reorder is None and square
                       and csr.shape[0] * csr.dtype.itemsize > _REORDER_MIN_BYTES):
            renumbering = _renumbering(csr, always=bool(reorder))
        order = position = None
        if renumbering is not None:
            order, position = renumbering
            csr = csr[order][:, order]
            csr.sort_indices()
            order, position = jnp.asarray(order, jnp.int32), jnp.asarray(position, jnp.int32)
        rows = np.repeat(np.arange(csr.shape[0], dtype=np.int32), np.diff(csr.indptr))
        return cls(jnp.asarray(csr.indptr, jnp.int32), jnp.asarray(csr.indices, jnp.int32),
                   jnp.asarray(rows), jnp.asarray(csr.data), tuple(csr.shape), order, position)

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def nse(self) -> int:
        """The stored entries, as BCOO calls them."""
        return int(self.data.shape[0])

    def to_scipy(self) -> scipy.sparse.csr_array:
        """The same matrix as scipy CSR, in the caller's numbering (for host-side set-up
        such as IC(0))."""
        stored = scipy.sparse.csr_array(
            (np.asarray(self.data), np.asarray(self.indices), np.asarray(self.indptr)),
            shape=self.shape)
        if self.order is None:
            return stored
        position = np.asarray(self.position)
        matrix = stored[position][:, position]
        matrix.sort_indices()
        return matrix

    def __matmul__(self, v: jax.Array) -> jax.Array:
        v = jnp.asarray(v)
        if v.shape != (self.shape[1],):
            raise ValueError(f"CSRMatrix of shape {self.shape} times a vector of shape {v.shape}")
        return matvec(self, v)

    def __repr__(self) -> str:
        kernel = "native CPU kernel" if native_status() is None else "portable product"
        renumbered = "" if self.order is None else ", renumbered (reverse Cuthill-McKee)"
        return (f"CSRMatrix(shape={self.shape}, nnz={self.nse}, dtype={self.dtype}, "
                f"layout='csr'{renumbered}, {kernel})")


jax.tree_util.register_dataclass(
    CSRMatrix, data_fields=["indptr", "indices", "rows", "data", "order", "position"],
    meta_fields=["shape"])


def _renumbering(csr: scipy.sparse.csr_array, *,
                 always: bool) -> tuple[np.ndarray, np.ndarray] | None:
    """``(order, position)``: reverse Cuthill-McKee's order of a square matrix's unknowns
    (on the pattern of ``A + A^T``) and its inverse; None unless ``always`` or it brings
    the entries at least ``_REORDER_MIN_GAIN`` times nearer the diagonal."""
    pattern = scipy.sparse.csr_matrix(
        (np.ones(csr.nnz, np.int8), csr.indices, csr.indptr), shape=csr.shape)
    order = scipy.sparse.csgraph.reverse_cuthill_mckee(pattern, symmetric_mode=False)
    position = np.empty_like(order)
    position[order] = np.arange(order.size)  # the stored index of each unknown
    if always:
        return order, position
    rows = np.repeat(np.arange(csr.shape[0]), np.diff(csr.indptr))
    before = np.abs(rows - csr.indices).mean()
    after = np.abs(position[rows] - position[csr.indices]).mean()
    return (order, position) if after * _REORDER_MIN_GAIN <= before else None


def matvec(A: CSRMatrix, v: jax.Array) -> jax.Array:
    """``A @ v``: the native kernel on the CPU when it is available, else the portable one.
    Differentiable in ``v`` and in ``A.data`` in reverse mode (``jax.grad``, through the
    transpose); forward mode (``jax.jvp``) is not supported."""
    dtype = jnp.result_type(A.data, v)
    return _product(A.indptr, A.indices, A.rows, A.data.astype(dtype), *_renumbering_of(A),
                    v.astype(dtype), A.shape)


def _renumbering_of(A: CSRMatrix) -> tuple[jax.Array, jax.Array]:
    """``(order, position)``, empty arrays for a matrix stored as numbered: the kernels'
    arguments."""
    if A.order is None:
        return jnp.zeros((0,), jnp.int32), jnp.zeros((0,), jnp.int32)
    return A.order, A.position


@functools.partial(jax.custom_vjp, nondiff_argnums=(7,))
def _product(indptr, indices, rows, data, order, position, v, shape):
    if native_status() is not None or not any(data.dtype == d for d in NATIVE_DTYPES):
        return _portable(rows, indices, data, order, position, v, shape[0])
    return jax.lax.platform_dependent(
        indptr, indices, rows, data, order, position, v,
        cpu=functools.partial(_native, n_rows=shape[0]),
        default=functools.partial(_portable_from_csr, n_rows=shape[0]))


def _product_forward(indptr, indices, rows, data, order, position, v, shape):
    return (_product(indptr, indices, rows, data, order, position, v, shape),
            (indices, rows, data, order, v))


def _product_backward(shape, residuals, cotangent):
    # y = A v is linear in v and in data: v's cotangent is A^T y_bar, data's y_bar[row] v[col]
    # (row and column in the caller's numbering).
    indices, rows, data, order, v = residuals
    if order.shape[0]:
        rows, indices = order[rows], order[indices]
    v_bar = jax.ops.segment_sum(data * cotangent[rows], indices, shape[1])
    return None, None, None, cotangent[rows] * v[indices], None, None, v_bar


_product.defvjp(_product_forward, _product_backward)


def _portable(rows, indices, data, order, position, v, n_rows: int) -> jax.Array:
    renumbered = order.shape[0] > 0
    stored = jax.ops.segment_sum(data * (v[order] if renumbered else v)[indices], rows,
                                 n_rows, indices_are_sorted=True)
    return stored[position] if renumbered else stored


def _native(indptr, indices, rows, data, order, position, v, *, n_rows: int) -> jax.Array:
    return _native_product(n_rows)(indptr, indices, rows, data, order, position, v)


@functools.cache
def _native_product(n_rows: int):
    """The kernel for ``n_rows`` rows, with its batching rule: a batch of right-hand sides
    is one call; a batch of matrices falls back to the portable product."""

    @jax.custom_batching.custom_vmap
    def product(indptr, indices, rows, data, order, position, v):
        if v.ndim == 1:
            return jax.ffi.ffi_call(CSR_MATVEC, jax.ShapeDtypeStruct((n_rows,), v.dtype))(
                indptr, indices, data, position, v)
        # Right-hand sides (..., n): one call on all of them, as (batch, n).
        flat = v.reshape(-1, v.shape[-1])
        y = jax.ffi.ffi_call(CSR_MATVEC, jax.ShapeDtypeStruct((flat.shape[0], n_rows), v.dtype))(
            indptr, indices, data, position, flat)
        return y.reshape(*v.shape[:-1], n_rows)

    @product.def_vmap
    def product_vmap(axis_size, in_batched, *args):
        if any(in_batched[:-1]):
            arrays = [x if batched else jnp.broadcast_to(x, (axis_size, *x.shape))
                      for x, batched in zip(args, in_batched)]
            return jax.vmap(functools.partial(_portable_from_csr, n_rows=n_rows))(*arrays), True
        return product(*args), in_batched[-1]

    return product


def _portable_from_csr(indptr, indices, rows, data, order, position, v, *,
                       n_rows: int) -> jax.Array:
    del indptr
    return _portable(rows, indices, data, order, position, v, n_rows)
