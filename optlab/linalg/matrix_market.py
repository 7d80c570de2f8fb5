"""Reading symmetric matrices in Matrix Market format, including the shipped ones.

``read_matrix_market(path_or_name)`` returns a ``scipy.sparse.csr_matrix`` (convert with
:func:`optlab.linalg.to_bcoo` for the solvers) and guarantees it is square and symmetric:
CG needs both, and a clear error at load time beats a ``BREAKDOWN`` thousands of
iterations later. Every problem with the input raises ``ValueError`` naming the file.
A bare name such as ``"1138_bus"`` loads the copy shipped in
``optlab/datasets/matrices`` (see ``optlab/datasets/PROVENANCE.md``); nothing is
downloaded.
"""

from __future__ import annotations

import importlib.resources
import os
import pathlib

import numpy as np
import scipy.io
import scipy.sparse

# max|A - A^T| / max|A| above this is "not symmetric". It allows for rounding in files
# written with a few significant digits per entry, far below any real asymmetry.
SYMMETRY_RTOL = 1e-10


def shipped_matrices() -> list[str]:
    """Names (without ``.mtx``) of the matrices shipped with optlab, sorted."""
    return sorted(path.name[: -len(".mtx")] for path in _shipped_dir().iterdir()
                  if path.name.endswith(".mtx"))


def read_matrix_market(path_or_name: str | os.PathLike) -> scipy.sparse.csr_matrix:
    """Loads a square symmetric matrix from a ``.mtx`` file or by shipped name.

    Args:
      path_or_name: a path to a Matrix Market file, or the name of a shipped matrix
        (one of :func:`shipped_matrices`, e.g. ``"1138_bus"``).

    Returns:
      The matrix as ``scipy.sparse.csr_matrix`` (symmetric storage expanded to both
      triangles by ``scipy.io.mmread``).

    Raises:
      ValueError: the file does not exist, is not a Matrix Market matrix, or holds a
        matrix that is not square or not symmetric (max|A - A^T| > ``SYMMETRY_RTOL``
        max|A|).
    """
    path = _resolve(path_or_name)
    try:
        matrix = scipy.io.mmread(path)
    except Exception as error:  # scipy raises ValueError, OSError or others on bad input
        raise ValueError(f"{path}: not a Matrix Market matrix ({error})") from error
    if not (scipy.sparse.issparse(matrix) or isinstance(matrix, np.ndarray)) or matrix.ndim != 2:
        raise ValueError(f"{path}: not a Matrix Market matrix")
    matrix = scipy.sparse.csr_matrix(matrix)
    if matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"{path}: matrix is not square, shape {matrix.shape}")
    scale = abs(matrix).max() if matrix.nnz else 0.0
    asymmetry = abs(matrix - matrix.T).max() if matrix.nnz else 0.0
    if asymmetry > SYMMETRY_RTOL * scale:
        raise ValueError(
            f"{path}: matrix is not symmetric (max|A - A^T| = {asymmetry:.3g}, "
            f"max|A| = {scale:.3g})"
        )
    return matrix


def _shipped_dir():
    return importlib.resources.files("optlab.datasets") / "matrices"


def _resolve(path_or_name) -> pathlib.Path:
    path = pathlib.Path(path_or_name)
    if path.is_file():
        return path
    if isinstance(path_or_name, str) and path_or_name in shipped_matrices():
        return pathlib.Path(str(_shipped_dir() / f"{path_or_name}.mtx"))
    raise ValueError(
        f"no Matrix Market file {str(path_or_name)!r}; shipped matrices are "
        f"{', '.join(shipped_matrices())}"
    )
