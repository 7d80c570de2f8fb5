"""Outcome codes shared by the driver and the update rules.

Failures are values, not exceptions: under ``jax.vmap`` one member of a batch may
converge while another meets a singular Hessian, so every solver reports an
integer :class:`Status` per run instead of raising. Update rules that can fail
(line searches, Newton's linear solve) keep a ``status`` field in their state;
:func:`optlab.minimize` reads it after every step.
"""

from __future__ import annotations

import enum


class Status(enum.IntEnum):
    """Why a run stopped. ``Result.status`` holds one of these as an int32 array."""

    RUNNING = -1
    CONVERGED = 0
    MAX_ITERS = 1
    NONFINITE = 2
    LINE_SEARCH_FAILED = 3
    SINGULAR = 4
    CYCLING = 5
    BREAKDOWN = 6
    SADDLE = 7

    @property
    def message(self) -> str:
        return _MESSAGES[self]

    @classmethod
    def describe(cls, code) -> str:
        """``"name: message"`` for an integer code (Python int or a scalar array)."""
        status = cls(int(code))
        return f"{status.name.lower()}: {status.message}"


_MESSAGES = {
    Status.RUNNING: "no failure so far (an update rule's state while it can go on)",
    Status.CONVERGED: "the stopping rule holds",
    Status.MAX_ITERS: "the iteration budget ran out before the stopping rule held",
    Status.NONFINITE: "the iterate, the objective or its gradient is NaN or infinite",
    Status.LINE_SEARCH_FAILED: (
        "no acceptable step along the search direction (not a descent direction, "
        "or the step bracket collapsed), or a trust radius shrank below rounding"
    ),
    Status.SINGULAR: "the (approximate) Hessian is singular to working precision",
    Status.CYCLING: "the iterates repeat with period two without converging",
    Status.BREAKDOWN: "p.Ap <= 0 in conjugate gradients: the matrix is not positive definite",
    Status.SADDLE: (
        "converged to a stationary point that is not a minimum (the last Hessian formed "
        "has a clearly negative eigenvalue)"
    ),
}
