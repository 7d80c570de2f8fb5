"""optlab's native CPU kernels: sparse products and a CG step, as XLA FFI handlers.

``sparse_kernels.cc`` holds them: the CSR product (:class:`optlab.linalg.CSRMatrix`), the
product by diagonals (:class:`optlab.linalg.DiagonalMatrix`) and one iteration of CG for a
batch of right-hand sides of a CSR matrix (:func:`optlab.linalg.cg`). The file is compiled
on first use with the machine's C++ compiler (``$CXX``, else ``c++``) against jaxlib's FFI
headers, and kept in ``$OPTLAB_CACHE`` (default ``$XDG_CACHE_HOME/optlab``, else
``~/.cache/optlab``) under a name that changes with the source, the jaxlib version, the
compiler and the host, so later processes load it. ``OPTLAB_NATIVE=0`` turns the kernels
off; :func:`native_status` says why they are not in use. Where they are not (no compiler,
a GPU or TPU, a dtype they do not take), each layout runs its portable JAX product, which
gives the same result to rounding.
"""

from __future__ import annotations

import ctypes
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

CSR_MATVEC = "optlab_csr_matvec"
CSR_CG_STEP = "optlab_csr_cg_step"  # one CG iteration of a batch (optlab.linalg.cg)
DIAGONAL_MATVEC = "optlab_diagonal_matvec"
_HANDLERS = {CSR_MATVEC: "OptlabCsrMatvec", CSR_CG_STEP: "OptlabCsrCgStep",
             DIAGONAL_MATVEC: "OptlabDiagonalMatvec"}
_SOURCE = "sparse_kernels.cc"


def native_status() -> str | None:
    """None when the native CPU kernels are compiled and registered, else the reason why
    the portable products are used (turned off, no compiler, a failed build)."""
    return _load_native()


@functools.cache
def _load_native() -> str | None:
    if os.environ.get("OPTLAB_NATIVE", "1") == "0":
        return "turned off by OPTLAB_NATIVE=0"
    try:
        library = ctypes.cdll.LoadLibrary(str(_build()))
        for target, symbol in _HANDLERS.items():
            jax.ffi.register_ffi_target(target, jax.ffi.pycapsule(getattr(library, symbol)),
                                        platform="cpu")
    except subprocess.CalledProcessError as error:
        return (f"the native kernels did not compile: {error}\n"
                + error.stderr.decode(errors="replace")[-2000:])
    except (OSError, subprocess.SubprocessError, RuntimeError, AttributeError) as error:
        return f"the native kernels could not be built or loaded: {error}"
    return None


def _build() -> pathlib.Path:
    """The compiled kernels, built once per source, jaxlib version, compiler and host."""
    source = importlib.resources.files("optlab.linalg").joinpath(_SOURCE).read_bytes()
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
    target = pathlib.Path(root) / "native" / f"sparse_kernels-{key}.so"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        source_path = pathlib.Path(scratch) / _SOURCE
        source_path.write_bytes(source)
        built = pathlib.Path(scratch) / target.name
        subprocess.run([compiler, *flags, f"-I{jax.ffi.include_dir()}", str(source_path),
                        "-o", str(built)], check=True, capture_output=True, timeout=300)
        os.replace(built, target)  # atomic: concurrent builders leave one whole file
    return target
