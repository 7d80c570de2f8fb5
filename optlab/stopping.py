"""Stopping rules for :func:`optlab.minimize`.

A rule is called as ``rule(params, value, grad)`` and returns a boolean scalar: true
when the run may stop as converged. Rules are plain Python objects closed over by the
traced loop, so their thresholds and targets may be traced values (a per-seed ``x_star``
under ``jax.vmap``, a swept ``eps``). Rules combine with ``|``: ``a | b`` stops as soon
as either holds.

Norms are Euclidean over the whole pytree, the rule of the classic exercises
(``||x_k - x*|| < eps``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree

from optlab.bounded import flat_bounds

PyTree = Any


class StopRule:
    """Base class: subclasses implement ``__call__(params, value, grad) -> bool array``."""

    def __call__(self, params: PyTree, value: jax.Array, grad: PyTree) -> jax.Array:
        raise NotImplementedError

    def __or__(self, other: StopRule) -> StopRule:
        if not isinstance(other, StopRule):
            return NotImplemented
        return AnyOf((*_members(self), *_members(other)))

    @property
    def target(self) -> PyTree | None:
        """The known minimizer this rule measures distances to, if any."""
        return None


def _members(rule: StopRule) -> tuple[StopRule, ...]:
    return rule.rules if isinstance(rule, AnyOf) else (rule,)


def _check_positive(name: str, threshold) -> None:
    # Only concrete numbers can be checked; traced thresholds (sweeps) pass through.
    if isinstance(threshold, (int, float)) and not threshold > 0:
        raise ValueError(f"{name} must be positive, got {threshold!r}")


@dataclasses.dataclass(frozen=True)
class DistanceTo(StopRule):
    """Stop when ``||params - x_star||_2 < eps``."""

    x_star: PyTree
    eps: Any

    def __post_init__(self):
        _check_positive("eps", self.eps)

    def distance(self, params: PyTree) -> jax.Array:
        """Euclidean distance from ``params`` to ``x_star``; raises on a structure mismatch."""
        params_structure = jax.tree.structure(params)
        target_structure = jax.tree.structure(self.x_star)
        if params_structure != target_structure:
            raise ValueError(
                f"distance_to: x_star has structure {target_structure}, "
                f"params have {params_structure}"
            )
        for p, t in zip(jax.tree.leaves(params), jax.tree.leaves(self.x_star)):
            if jnp.shape(p) != jnp.shape(t):
                raise ValueError(
                    f"distance_to: x_star has a leaf of shape {jnp.shape(t)} where params "
                    f"have shape {jnp.shape(p)}"
                )
        return optax.tree.norm(jax.tree.map(jnp.subtract, params, self.x_star))

    def __call__(self, params, value, grad):
        del value, grad
        return self.distance(params) < self.eps

    @property
    def target(self):
        return self.x_star


@dataclasses.dataclass(frozen=True)
class GradNorm(StopRule):
    """Stop when ``||grad||_2 < tol``."""

    tol: Any

    def __post_init__(self):
        _check_positive("tol", self.tol)

    def __call__(self, params, value, grad):
        del params, value
        return optax.tree.norm(grad) < self.tol


@dataclasses.dataclass(frozen=True)
class ProjectedGradNorm(StopRule):
    """Stop when ``||P(x - grad) - x||_2 < tol``, ``P`` the projection onto the box
    ``lower <= x <= upper``: the first-order optimality measure of a bound-constrained
    problem (zero exactly at its KKT points), :func:`optlab.lbfgsb`'s rule."""

    lower: Any
    upper: Any
    tol: Any

    def __post_init__(self):
        _check_positive("tol", self.tol)

    def __call__(self, params, value, grad):
        del value
        x, g = ravel_pytree(params)[0], ravel_pytree(grad)[0]
        lower, upper = flat_bounds(self.lower, self.upper, params)
        return jnp.linalg.norm(jnp.clip(x - g, lower, upper) - x) < self.tol


@dataclasses.dataclass(frozen=True)
class AnyOf(StopRule):
    """Stop when any member rule holds (built by ``rule_a | rule_b``)."""

    rules: tuple[StopRule, ...]

    def __call__(self, params, value, grad):
        return jnp.any(jnp.stack([rule(params, value, grad) for rule in self.rules]))

    @property
    def target(self):
        return next((r.target for r in self.rules if r.target is not None), None)


@dataclasses.dataclass(frozen=True)
class Never(StopRule):
    """Never stop: a run takes exactly ``max_iters`` steps, as the classic first-order
    exercises do. It still ends early when it turns non-finite (or cycles); a zero
    gradient is no reason to stop, since a method with momentum moves on."""

    def __call__(self, params, value, grad):
        del params, value, grad
        return jnp.asarray(False)


def never() -> Never:
    """A rule that never holds: run ``max_iters`` steps."""
    return Never()


def distance_to(x_star: PyTree, eps: float) -> DistanceTo:
    """``||x_k - x*||_2 < eps``: the stopping rule of the classic quasi-Newton exercises.

    >>> import jax.numpy as jnp
    >>> rule = distance_to(jnp.ones(2), 0.01)
    >>> bool(rule(jnp.array([1.0, 1.005]), None, None))
    True
    """
    return DistanceTo(x_star, eps)


def projected_grad_norm(lower, upper, tol: float) -> ProjectedGradNorm:
    """``||P(x_k - grad f(x_k)) - x_k||_2 < tol`` with ``P`` the projection onto the box
    ``lower <= x <= upper`` (bounds as :func:`optlab.lbfgsb` takes them: pytrees like the
    parameters, scalars, or ``None`` for no bound). Inside the box it is the gradient's
    norm; at a bound only the part pointing into the box counts.

    >>> import jax.numpy as jnp
    >>> rule = projected_grad_norm(0.0, 1.0, 1e-6)  # at x = 1, a gradient pushing outward
    >>> bool(rule(jnp.array([1.0, 0.5]), None, jnp.array([-3.0, 0.0])))
    True
    """
    return ProjectedGradNorm(lower, upper, tol)


def grad_norm(tol: float) -> GradNorm:
    """``||grad f(x_k)||_2 < tol``."""
    return GradNorm(tol)
