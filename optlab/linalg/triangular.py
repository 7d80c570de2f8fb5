"""Sparse triangular solves in JAX by level scheduling.

A sparse triangular system ``T y = r`` is solved one *level* at a time: level 0 holds
the rows with no off-diagonal entries, level ``l`` the rows whose off-diagonal entries
all lie in columns of lower levels. The rows of a level are independent, so each level
is one vectorized gather-multiply-sum, and the whole solve is a ``lax.fori_loop`` over
the levels (Anderson & Saad, "Solving sparse triangular linear systems on parallel
computers", 1989; Saad, *Iterative Methods for Sparse Linear Systems*, 2nd ed.,
Section 11.6.2). Its cost is ``O(levels)`` small steps rather than ``O(n)``: 21 levels
for the IC(0) factor of 1138_bus, ``2N - 1`` for the ``N x N`` Poisson grid.

:func:`level_schedule` finds the levels on the host (Kahn's topological sort, one
vectorized step per level). :class:`SparseTriangular` stores the system padded to
rectangular per-level blocks, is a pytree (so it can be an argument of ``jax.jit``
rather than a constant folded into the program), and solves with ``T(r)`` or
``T.solve(r)``; ``jax.vmap`` batches it over right-hand sides.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse
from jax import lax


def level_schedule(T) -> np.ndarray:
    """The level of every row of a sparse triangular matrix, as an ``(n,)`` int array.

    Row ``i`` depends on row ``j`` when ``T[i, j] != 0`` for ``j != i`` (stored entries
    count, even explicit zeros). The level of a row is the length of the longest chain of
    dependencies below it: 0 for rows without off-diagonal entries. Works for lower and
    upper triangular ``T`` alike. Raises ``ValueError`` if ``T`` has entries on both
    sides of the diagonal.
    """
    coo = scipy.sparse.coo_array(T)
    n = coo.shape[0]
    off_diagonal = coo.row != coo.col
    rows, cols = coo.row[off_diagonal], coo.col[off_diagonal]
    if np.any(rows > cols) and np.any(rows < cols):
        raise ValueError("level_schedule needs a triangular matrix (entries on both sides)")
    # dependents[j] lists the rows that wait for row j.
    dependents = scipy.sparse.csr_array(
        (np.ones(rows.size, np.int8), (cols, rows)), shape=(n, n)
    )
    waiting_on = np.bincount(rows, minlength=n)
    levels = np.full(n, -1, np.int64)
    ready = np.flatnonzero(waiting_on == 0)
    level = 0
    while ready.size:
        levels[ready] = level
        released = dependents[ready].indices
        unique, counts = np.unique(released, return_counts=True)
        waiting_on[unique] -= counts
        ready = unique[waiting_on[unique] == 0]
        level += 1
    return levels


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class SparseTriangular:
    """A sparse triangular matrix stored for level-scheduled solves.

    Built by :meth:`from_scipy`. Level ``l`` is padded to ``width`` rows of ``depth``
    off-diagonal entries; padding rows point at a scratch slot ``n`` and have zero
    inverse diagonal, padding entries have value zero, so padding never changes the
    solution.
    """

    rows: jax.Array  # (levels, width) int32 row indices; n for padding
    inverse_diagonal: jax.Array  # (levels, width) 1 / T[i, i]; 0 for padding
    columns: jax.Array  # (levels, width, depth) int32 off-diagonal columns; n for padding
    values: jax.Array  # (levels, width, depth) off-diagonal values; 0 for padding

    @classmethod
    def from_scipy(cls, T, dtype=None) -> "SparseTriangular":
        """Packs a scipy sparse triangular matrix with a non-zero diagonal.

        Raises ``ValueError`` if ``T`` is not square, not triangular, or has a zero or
        missing diagonal entry (the system would be singular).
        """
        T = scipy.sparse.csr_array(T)
        n = T.shape[0]
        if T.ndim != 2 or T.shape[1] != n:
            raise ValueError(f"expected a square matrix, got shape {T.shape}")
        T.sum_duplicates()
        diagonal = T.diagonal()
        bad = np.flatnonzero(diagonal == 0)
        if bad.size:
            raise ValueError(f"triangular matrix has a zero diagonal entry at row {bad[0]}")
        levels = level_schedule(T)

        coo = T.tocoo()
        off_diagonal = coo.row != coo.col
        entry_rows, entry_cols = coo.row[off_diagonal], coo.col[off_diagonal]
        entry_values = coo.data[off_diagonal]
        # Sort rows by level; a row's slot is its place within its level.
        order = np.argsort(levels, kind="stable")
        level_sizes = np.bincount(levels)
        level_starts = np.concatenate([[0], np.cumsum(level_sizes)[:-1]])
        slot = np.empty(n, np.int64)
        slot[order] = np.arange(n) - level_starts[levels[order]]
        # An entry's place within its row: entries are sorted by row, so count from its
        # row's first entry.
        row_counts = np.bincount(entry_rows, minlength=n)
        row_starts = np.concatenate([[0], np.cumsum(row_counts)[:-1]])
        position = np.arange(entry_rows.size) - row_starts[entry_rows]

        shape = (level_sizes.size, max(int(level_sizes.max()), 1))
        depth = max(int(row_counts.max(initial=0)), 1)
        rows = np.full(shape, n, np.int32)
        inverse_diagonal = np.zeros(shape, diagonal.dtype)
        rows[levels, slot] = np.arange(n)
        inverse_diagonal[levels, slot] = 1.0 / diagonal
        columns = np.full(shape + (depth,), n, np.int32)
        values = np.zeros(shape + (depth,), entry_values.dtype)
        where = (levels[entry_rows], slot[entry_rows], position)
        columns[where] = entry_cols
        values[where] = entry_values
        as_jax = lambda a: jnp.asarray(a, dtype) if dtype is not None else jnp.asarray(a)  # noqa: E731
        return cls(
            rows=jnp.asarray(rows),
            inverse_diagonal=as_jax(inverse_diagonal),
            columns=jnp.asarray(columns),
            values=as_jax(values),
        )

    @property
    def num_levels(self) -> int:
        return self.rows.shape[0]

    def solve(self, r: jax.Array) -> jax.Array:
        """``T^{-1} r`` for a vector ``r`` of shape ``(n,)``, one level per loop step."""
        if r.ndim != 1:
            raise ValueError(f"r must be a vector, got shape {r.shape} (vmap over vectors)")
        # Slot n is scratch: padding rows write 0 there and padding entries read it.
        extended = jnp.append(r, jnp.zeros((), r.dtype))

        def solve_level(level, y):
            rows = self.rows[level]
            known = jnp.sum(self.values[level] * y[self.columns[level]], axis=-1)
            return y.at[rows].set((extended[rows] - known) * self.inverse_diagonal[level])

        y = lax.fori_loop(0, self.num_levels, solve_level, jnp.zeros_like(extended))
        return y[:-1]

    __call__ = solve
