"""Zero-fill incomplete Cholesky factorization, IC(0), on the host.

:func:`ic0_factor` returns the lower triangular ``L`` with the sparsity pattern of
``tril(A)`` such that ``(L L^T)[i, j] = A[i, j]`` at every ``(i, j)`` of that pattern
(Saad, *Iterative Methods for Sparse Linear Systems*, 2nd ed., Section 10.3.2;
Golub & Van Loan, *Matrix Computations*, 4th ed., Section 11.5.8). Fill-in outside the
pattern is dropped. scipy has no incomplete Cholesky, hence this module.

Row ``i`` of ``L`` is a small triangular solve against the rows ``k < i`` of its pattern:
for its off-diagonal columns ``k_0 < k_1 < ...``,

    L[i, k_p] = (A[i, k_p] - sum_{q < p} L[i, k_q] L[k_p, k_q]) / L[k_p, k_p]
    L[i, i]   = sqrt(A[i, i] - sum_p L[i, k_p]^2)

where a product counts only when ``(k_p, k_q)`` is in the pattern. Row ``i`` needs the
finished rows ``k_p``, so rows of the same level of ``L``'s dependency graph (see
:func:`optlab.linalg.triangular.level_schedule`) are computed together, one NumPy step
per level and position ``p``: the work is ``O(nnz + pairs)`` and the Python overhead is
``O(levels x max row length)``, so 10^6 unknowns take seconds, not minutes.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse

from optlab.linalg.triangular import level_schedule


class PivotError(ValueError):
    """IC(0) met a non-positive pivot: ``A[i, i] - sum_p L[i, k_p]^2 <= 0``."""


def ic0_factor(A, shift: float = 0.0) -> scipy.sparse.csr_array:
    """The IC(0) factor ``L`` (CSR, lower triangular, pattern of ``tril(A)``).

    Args:
      A: symmetric matrix, scipy sparse or dense (NumPy/JAX); only ``tril(A)`` is read,
        after checking that ``A`` is symmetric. A complex ``A`` must be Hermitian; its
        factor (complex) gives ``L L^H`` on the pattern.
      shift: factor ``A + shift * diag(A)`` instead of ``A`` (Manteuffel's shifted
        IC, MATLAB ``ichol``'s ``diagcomp``). IC(0) can break down on SPD matrices
        that are not M-matrices; a small shift (1e-3 to 1e-1) makes the pivots
        positive at the price of a weaker preconditioner.

    Raises:
      ValueError: ``A`` is not square or not symmetric, has a non-positive or missing
        diagonal entry, or has non-finite entries.
      PivotError: a pivot is not positive (the message names the row and suggests
        ``shift``).
    """
    lower = _lower_triangle(A)
    n = lower.shape[0]
    if not (isinstance(shift, (int, float)) and np.isfinite(shift) and shift >= 0):
        raise ValueError(f"shift must be a finite float >= 0, got {shift!r}")

    indptr, columns = lower.indptr, lower.indices
    row_lengths = np.diff(indptr)
    diagonal_entry = indptr[1:] - 1  # sorted rows end with their diagonal entry
    if np.any(row_lengths == 0) or np.any(columns[diagonal_entry] != np.arange(n)):
        missing = np.flatnonzero((row_lengths == 0) | (columns[diagonal_entry] != np.arange(n)))
        raise ValueError(f"IC(0) needs a positive diagonal; A[{missing[0]}, {missing[0]}] = 0")
    if np.any(~(lower.data[diagonal_entry].real > 0)):
        row = int(np.flatnonzero(~(lower.data[diagonal_entry].real > 0))[0])
        raise ValueError(
            f"IC(0) needs a positive diagonal; A[{row}, {row}] = {lower.data[diagonal_entry[row]]}"
        )

    factor = lower.data.copy()  # float64, or complex128 for a Hermitian A: L L^H = A
    factor[diagonal_entry] *= 1.0 + shift
    entry_rows = np.repeat(np.arange(n), row_lengths)
    off_diagonal = np.flatnonzero(columns != entry_rows)
    position = off_diagonal - indptr[entry_rows[off_diagonal]]
    levels = level_schedule(lower)

    pair_target, pair_left, pair_right = _pattern_pairs(lower, entry_rows, off_diagonal, position)

    # Group off-diagonal entries by (level of their row, position in the row), the order
    # in which they are computed; pairs go with the entry they update.
    entry_group = levels[entry_rows[off_diagonal]] * (position.max(initial=0) + 1) + position
    group_order = np.argsort(entry_group, kind="stable")
    sorted_entries = off_diagonal[group_order]
    sorted_groups = entry_group[group_order]
    group_of_entry = np.empty(factor.size, np.int64)
    group_of_entry[off_diagonal] = entry_group
    pair_order = np.argsort(group_of_entry[pair_target], kind="stable")
    pair_target, pair_left, pair_right = (
        pair_target[pair_order], pair_left[pair_order], pair_right[pair_order]
    )
    pair_groups = group_of_entry[pair_target]

    row_order = np.argsort(levels, kind="stable")
    level_bounds = np.searchsorted(levels[row_order], np.arange(levels.max(initial=-1) + 2))
    groups = np.unique(sorted_groups)
    group_bounds = np.searchsorted(sorted_groups, np.append(groups, np.iinfo(np.int64).max))
    pair_bounds = np.searchsorted(pair_groups, np.append(groups, np.iinfo(np.int64).max))
    groups_per_level = position.max(initial=0) + 1
    group_index = 0
    for level in range(levels.max(initial=-1) + 1):
        while group_index < groups.size and groups[group_index] // groups_per_level == level:
            pairs = slice(pair_bounds[group_index], pair_bounds[group_index + 1])
            np.subtract.at(factor, pair_target[pairs],
                           factor[pair_left[pairs]] * np.conj(factor[pair_right[pairs]]))
            entries = sorted_entries[group_bounds[group_index] : group_bounds[group_index + 1]]
            factor[entries] /= factor[diagonal_entry[columns[entries]]]
            group_index += 1
        rows = row_order[level_bounds[level] : level_bounds[level + 1]]
        _finish_diagonal(factor, rows, indptr, diagonal_entry)
    return scipy.sparse.csr_array((factor, columns.copy(), indptr.copy()), shape=(n, n))


def _lower_triangle(A) -> scipy.sparse.csr_array:
    """``tril(A)`` as canonical CSR (sorted, no duplicates) after checking ``A``: float64,
    or complex128 for a complex (Hermitian) ``A``."""
    dtype = np.complex128 if np.iscomplexobj(A.data if scipy.sparse.issparse(A) else A) \
        else np.float64
    if scipy.sparse.issparse(A):
        matrix = scipy.sparse.csr_array(A, dtype=dtype)
    else:
        dense = np.asarray(A, dtype=dtype)
        if dense.ndim != 2:
            raise ValueError(f"expected a square matrix, got shape {dense.shape}")
        matrix = scipy.sparse.csr_array(dense)
    if matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"expected a square matrix, got shape {matrix.shape}")
    matrix.sum_duplicates()
    if not np.all(np.isfinite(matrix.data)):
        raise ValueError("A has non-finite entries")
    asymmetry = abs(matrix - matrix.conj().T).max() if matrix.nnz else 0.0
    scale = abs(matrix).max() if matrix.nnz else 0.0
    if asymmetry > 1e-12 * scale:
        raise ValueError(f"IC(0) needs a symmetric (Hermitian) matrix; max |A - A^H| = "
                         f"{asymmetry:.3g}")
    lower = scipy.sparse.tril(matrix, format="csr")
    lower.sum_duplicates()
    lower.sort_indices()
    return scipy.sparse.csr_array(lower)


def _pattern_pairs(lower, entry_rows, off_diagonal, position):
    """For each entry ``(i, k_p)`` and each ``q < p`` with ``(k_p, k_q)`` in the pattern:
    the entry to update and the two factors ``L[i, k_q]``, ``L[k_p, k_q]`` (flat indices).
    """
    n = lower.shape[0]
    columns = lower.indices
    # Entries are sorted by (row, column), so row * n + column is sorted: a pattern lookup
    # is a binary search.
    keys = entry_rows.astype(np.int64) * n + columns
    targets, lefts, rights = [], [], []
    for p in range(1, position.max(initial=0) + 1):
        at_p = off_diagonal[position == p]
        k_p = columns[at_p]
        for q in range(p):
            at_q = at_p - (p - q)  # (i, k_q): same row, q-th off-diagonal entry
            wanted = k_p.astype(np.int64) * n + columns[at_q]
            found = np.searchsorted(keys, wanted)
            found = np.minimum(found, keys.size - 1)
            hit = keys[found] == wanted
            targets.append(at_p[hit])
            lefts.append(at_q[hit])
            rights.append(found[hit])
    empty = [np.zeros(0, np.int64)]
    return tuple(np.concatenate(parts + empty).astype(np.int64) for parts in (targets, lefts, rights))


def _finish_diagonal(factor, rows, indptr, diagonal_entry) -> None:
    """``L[i, i] = sqrt(A[i, i] - sum_p L[i, k_p]^2)`` for the given rows, in place."""
    starts, ends = indptr[rows], diagonal_entry[rows]
    lengths = ends - starts
    entries = np.repeat(ends - np.cumsum(lengths), lengths) + np.arange(lengths.sum())
    squares = np.bincount(
        np.repeat(np.arange(rows.size), lengths), np.abs(factor[entries]) ** 2,
        minlength=rows.size,
    )
    pivots = factor[ends].real - squares
    bad = np.flatnonzero(~(pivots > 0))
    if bad.size:
        row = int(rows[bad[0]])
        raise PivotError(
            f"IC(0) broke down: pivot {pivots[bad[0]]:.3g} <= 0 at row {row}. Either A is "
            "not positive definite, or IC(0) is unstable for it: try a diagonal shift, e.g. "
            "ic0(A, shift=1e-2), which factors A + shift * diag(A)."
        )
    factor[ends] = np.sqrt(pivots)
