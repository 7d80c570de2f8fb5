"""Compressed sparse rows (CSR): the layout for matrices without a few-diagonal pattern.

A finite-element or structural matrix numbered by its mesh has tens of entries per row
scattered over thousands of diagonals. BCOO's product is one gather and one scatter-add
per stored entry, which XLA runs several times slower than scipy's CSR loop on the CPU.
:class:`CSRMatrix` stores the rows in order (``indptr``, ``indices``, ``data``, scipy's
convention) and multiplies:

* on the CPU, with a native kernel (``csr_kernel.cc``, an XLA FFI handler): each row a
  short loop of multiply-adds, as scipy does. It is compiled on first use with the
  machine's C++ compiler (``$CXX``, else ``c++``) against jaxlib's FFI headers, and kept
  in ``$OPTLAB_CACHE`` (default ``$XDG_CACHE_HOME/optlab``, else ``~/.cache/optlab``) under
  a name that changes with the source, the jaxlib version and the compiler, so later
  processes load it. ``OPTLAB_NATIVE=0`` turns it off; :func:`native_status` says why
  it is not in use;
* elsewhere (GPU, TPU, no compiler, float16), with ``jax.ops.segment_sum`` over the sorted
  rows: the portable product, which gives the same result to rounding.

Both run under ``jit``, inside ``lax.while_loop`` (CG), and under ``vmap`` over
right-hand sides: the native kernel then takes the whole batch in one call, reading the
matrix once per slab of right-hand sides (8 in float64, a cache line). A batch of
matrices (``vmap`` over ``data``) takes the portable product. Values may be real or complex (float32, float64, complex64,
complex128 natively); ``jax.grad`` goes through the product (its transpose), ``jax.jvp``
does not.
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import hashlib
import importlib.metadata
import importlib.resources
import os
import pathlib
import platform
import shutil
import subprocess
import sys
import tempfile

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse

TARGET = "optlab_csr_matvec"
CG_STEP = "optlab_csr_cg_step"  # one CG iteration of a batch (optlab.linalg.cg)
_NATIVE_DTYPES = (np.float32, np.float64, np.complex64, np.complex128)


@dataclasses.dataclass(frozen=True)
class CSRMatrix:
    """A sparse matrix stored by rows, as a pytree (its shape static).

    Row ``i``'s entries are ``data[indptr[i]:indptr[i + 1]]`` in the columns
    ``indices[indptr[i]:indptr[i + 1]]``; ``rows`` is each entry's row, kept for the
    portable product. Build one with :meth:`from_scipy` (or
    :func:`optlab.linalg.sparse_matrix`).
    """

    indptr: jax.Array  # (n_rows + 1,) int32
    indices: jax.Array  # (nnz,) int32
    rows: jax.Array  # (nnz,) int32
    data: jax.Array  # (nnz,)
    shape: tuple[int, int]

    layout = "csr"

    @classmethod
    def from_scipy(cls, matrix) -> CSRMatrix:
        """The matrix in canonical CSR form: duplicates summed, columns sorted per row."""
        if not scipy.sparse.issparse(matrix):
            raise TypeError(f"expected a scipy.sparse matrix, got {type(matrix).__name__}")
        csr = scipy.sparse.csr_array(matrix, copy=True)
        csr.sum_duplicates()
        if csr.nnz >= 2**31:
            raise ValueError(f"CSRMatrix holds fewer than 2**31 entries, got {csr.nnz}")
        rows = np.repeat(np.arange(csr.shape[0], dtype=np.int32), np.diff(csr.indptr))
        return cls(jnp.asarray(csr.indptr, jnp.int32), jnp.asarray(csr.indices, jnp.int32),
                   jnp.asarray(rows), jnp.asarray(csr.data), tuple(csr.shape))

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def nse(self) -> int:
        """The stored entries, as BCOO calls them."""
        return int(self.data.shape[0])

    def to_scipy(self) -> scipy.sparse.csr_array:
        """The same matrix as scipy CSR (for host-side set-up such as IC(0))."""
        return scipy.sparse.csr_array(
            (np.asarray(self.data), np.asarray(self.indices), np.asarray(self.indptr)),
            shape=self.shape)

    def __matmul__(self, v: jax.Array) -> jax.Array:
        v = jnp.asarray(v)
        if v.shape != (self.shape[1],):
            raise ValueError(f"CSRMatrix of shape {self.shape} times a vector of shape {v.shape}")
        return matvec(self, v)

    def __repr__(self) -> str:
        kernel = "native CPU kernel" if native_status() is None else "portable product"
        return (f"CSRMatrix(shape={self.shape}, nnz={self.nse}, dtype={self.dtype}, "
                f"layout='csr', {kernel})")


jax.tree_util.register_dataclass(
    CSRMatrix, data_fields=["indptr", "indices", "rows", "data"], meta_fields=["shape"])


def matvec(A: CSRMatrix, v: jax.Array) -> jax.Array:
    """``A @ v``: the native kernel on the CPU when it is available, else the portable one.
    Differentiable in ``v`` and in ``A.data`` in reverse mode (``jax.grad``, through the
    transpose); forward mode (``jax.jvp``) is not supported."""
    dtype = jnp.result_type(A.data, v)
    return _product(A.indptr, A.indices, A.rows, A.data.astype(dtype), v.astype(dtype),
                    A.shape)


@functools.partial(jax.custom_vjp, nondiff_argnums=(5,))
def _product(indptr, indices, rows, data, v, shape):
    if native_status() is not None or not any(data.dtype == d for d in _NATIVE_DTYPES):
        return _portable(rows, indices, data, v, shape[0])
    return jax.lax.platform_dependent(
        indptr, indices, rows, data, v, cpu=functools.partial(_native, n_rows=shape[0]),
        default=functools.partial(_portable_from_csr, n_rows=shape[0]))


def _product_forward(indptr, indices, rows, data, v, shape):
    return _product(indptr, indices, rows, data, v, shape), (indices, rows, data, v)


def _product_backward(shape, residuals, cotangent):
    # y = A v is linear in v and in data: v's cotangent is A^T y_bar, data's y_bar[row] v[col].
    indices, rows, data, v = residuals
    v_bar = jax.ops.segment_sum(data * cotangent[rows], indices, shape[1])
    return None, None, None, cotangent[rows] * v[indices], v_bar


_product.defvjp(_product_forward, _product_backward)


def _portable(rows, indices, data, v, n_rows: int) -> jax.Array:
    return jax.ops.segment_sum(data * v[indices], rows, n_rows, indices_are_sorted=True)


def _native(indptr, indices, rows, data, v, *, n_rows: int) -> jax.Array:
    return _native_product(n_rows)(indptr, indices, rows, data, v)


@functools.cache
def _native_product(n_rows: int):
    """The kernel for ``n_rows`` rows, with its batching rule: a batch of right-hand sides
    is one call; a batch of matrices falls back to the portable product."""

    @jax.custom_batching.custom_vmap
    def product(indptr, indices, rows, data, v):
        if v.ndim == 1:
            return jax.ffi.ffi_call(TARGET, jax.ShapeDtypeStruct((n_rows,), v.dtype))(
                indptr, indices, data, v)
        # Right-hand sides (..., n): one call on all of them, as (batch, n).
        flat = v.reshape(-1, v.shape[-1])
        y = jax.ffi.ffi_call(TARGET, jax.ShapeDtypeStruct((flat.shape[0], n_rows), v.dtype))(
            indptr, indices, data, flat)
        return y.reshape(*v.shape[:-1], n_rows)

    @product.def_vmap
    def product_vmap(axis_size, in_batched, indptr, indices, rows, data, v):
        if any(in_batched[:4]):
            arrays = [x if batched else jnp.broadcast_to(x, (axis_size, *x.shape))
                      for x, batched in zip((indptr, indices, rows, data, v), in_batched)]
            return jax.vmap(functools.partial(_portable_from_csr, n_rows=n_rows))(*arrays), True
        return product(indptr, indices, rows, data, v), in_batched[4]

    return product


def _portable_from_csr(indptr, indices, rows, data, v, *, n_rows: int) -> jax.Array:
    del indptr
    return _portable(rows, indices, data, v, n_rows)


def native_status() -> str | None:
    """None when the native CPU kernel is compiled and registered, else the reason why
    the portable product is used (turned off, no compiler, a failed build)."""
    return _load_native()


@functools.cache
def _load_native() -> str | None:
    if os.environ.get("OPTLAB_NATIVE", "1") == "0":
        return "turned off by OPTLAB_NATIVE=0"
    try:
        library = ctypes.cdll.LoadLibrary(str(_build()))
        jax.ffi.register_ffi_target(TARGET, jax.ffi.pycapsule(library.OptlabCsrMatvec),
                                    platform="cpu")
        jax.ffi.register_ffi_target(CG_STEP, jax.ffi.pycapsule(library.OptlabCsrCgStep),
                                    platform="cpu")
    except subprocess.CalledProcessError as error:
        return (f"the native kernel did not compile: {error}\n"
                + error.stderr.decode(errors="replace")[-2000:])
    except (OSError, subprocess.SubprocessError, RuntimeError, AttributeError) as error:
        return f"the native kernel could not be built or loaded: {error}"
    return None


def _build() -> pathlib.Path:
    """The compiled kernel, built once per source, jaxlib version and compiler."""
    source = importlib.resources.files("optlab.linalg").joinpath("csr_kernel.cc").read_bytes()
    compiler = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
    if compiler is None:
        raise RuntimeError("no C++ compiler (set CXX)")
    flags = ["-O3", "-march=native", "-std=c++17", "-shared", "-fPIC"]
    key = hashlib.sha256(b"\0".join([
        source, importlib.metadata.version("jaxlib").encode(), compiler.encode(),
        " ".join(flags).encode(), sys.platform.encode(), platform.node().encode()])
    ).hexdigest()[:16]
    root = os.environ.get("OPTLAB_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "optlab")
    target = pathlib.Path(root) / "native" / f"csr_kernel-{key}.so"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        source_path = pathlib.Path(scratch) / "csr_kernel.cc"
        source_path.write_bytes(source)
        built = pathlib.Path(scratch) / target.name
        subprocess.run([compiler, *flags, f"-I{jax.ffi.include_dir()}", str(source_path),
                        "-o", str(built)], check=True, capture_output=True, timeout=300)
        os.replace(built, target)  # atomic: concurrent builders leave one whole file
    return target
