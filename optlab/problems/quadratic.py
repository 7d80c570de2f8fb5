"""Random strictly convex quadratics ``f(x) = 1/2 x^T A x + b^T x`` with known minimizer.

Two recipes:

* :func:`seed_quadratic` -- the seed study's recipe, scikit-learn's ``make_spd_matrix``
  reproduced in NumPy with the same random stream (``np.random.RandomState(seed)``), so
  that seed ``s`` gives the very matrix ``make_spd_matrix(n, random_state=s)`` gives.
  That function computes ``U (1 + diag(u)) V^T`` from the SVD of ``M^T M``: the ``1 +``
  adds one to *every* entry of the diagonal middle factor, making it ``11^T + diag(u)``.
  Its eigenvalues are one of order ``n`` and the rest interlaced with ``u ~ U(0, 1)``, so
  the condition number is about ``n / min(u)``: 10^4 to 10^6 at ``n = 228``.
* :func:`conditioned_quadratic` -- a controlled spectrum, eigenvalues log-spaced in
  ``[1, kappa]`` with random eigenvectors, in JAX (vmappable over keys).

The minimizer is drawn first and ``b = -A x*``, so ``x*`` is known exactly.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_derivatives import SymbolicZero


@jax.custom_jvp
def quadratic_value(matrix: jax.Array, linear: jax.Array, x: jax.Array) -> jax.Array:
    """``1/2 x^T A x + b^T x`` for a *symmetric* ``A``, with one product ``A x`` per gradient.

    Reverse mode through ``x @ (A @ x)`` computes both ``A x`` and ``A^T x``, reading ``A``
    twice; for a symmetric ``A`` the gradient is ``A x + b``, from the product the value
    needs anyway. Higher derivatives (``jax.hessian``) follow from this rule.
    """
    return 0.5 * x @ (matrix @ x) + linear @ x


@functools.partial(quadratic_value.defjvp, symbolic_zeros=True)
def _quadratic_value_jvp(primals, tangents):
    matrix, linear, x = primals
    d_matrix, d_linear, d_x = tangents
    ax = matrix @ x
    value = 0.5 * x @ ax + linear @ x
    tangent = jnp.zeros_like(value)
    if not isinstance(d_x, SymbolicZero):
        tangent = tangent + (ax + linear) @ d_x
    if not isinstance(d_matrix, SymbolicZero):
        tangent = tangent + 0.5 * x @ (d_matrix @ x)
    if not isinstance(d_linear, SymbolicZero):
        tangent = tangent + x @ d_linear
    return value, tangent


class Quadratic(NamedTuple):
    """A quadratic problem; a pytree, so a batch of problems stacks along axis 0."""

    matrix: jax.Array  # (n, n) symmetric positive definite A
    linear: jax.Array  # (n,) b
    minimizer: jax.Array  # (n,) x* = -A^{-1} b

    def value(self, x: jax.Array) -> jax.Array:
        return quadratic_value(self.matrix, self.linear, x)

    def condition_number(self) -> jax.Array:
        eigenvalues = jnp.linalg.eigvalsh(self.matrix)
        return eigenvalues[..., -1] / eigenvalues[..., 0]


def make_spd_matrix(n: int, seed: int) -> np.ndarray:
    """scikit-learn's ``make_spd_matrix(n, random_state=seed)``, symmetrized.

    The SVD's ``U`` and ``V`` of the symmetric ``M^T M`` agree only to rounding, so the
    product is symmetric only to about 1e-13; we return ``(X + X^T) / 2``.
    """
    _check_size(n)
    rng = np.random.RandomState(seed)
    m = rng.uniform(size=(n, n))
    u, _, vt = np.linalg.svd(m.T @ m)
    x = u @ (1.0 + np.diag(rng.uniform(size=n))) @ vt
    return 0.5 * (x + x.T)


def seed_quadratic(n: int, seed: int) -> Quadratic:
    """The seed study's problem ``seed``: ``A = make_spd_matrix(n, seed)``, ``x* ~ N(0, I)``.

    ``x*`` is drawn from ``np.random.RandomState(seed)`` after the matrix, as float64.
    """
    a = make_spd_matrix(n, seed)
    rng = np.random.RandomState(seed)
    rng.uniform(size=(n, n))
    rng.uniform(size=n)  # skip the draws the matrix used
    x_star = rng.standard_normal(n)
    return Quadratic(jnp.asarray(a), jnp.asarray(-a @ x_star), jnp.asarray(x_star))


def seed_quadratics(n: int, seeds: int) -> Quadratic:
    """Problems ``0 .. seeds - 1`` of :func:`seed_quadratic`, stacked along axis 0."""
    if not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"seeds must be a positive int, got {seeds!r}")
    problems = [seed_quadratic(n, s) for s in range(seeds)]
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *problems)


def conditioned_quadratic(key: jax.Array, n: int, kappa: float) -> Quadratic:
    """``A = Q diag(lambda) Q^T`` with ``lambda`` log-spaced in ``[1, kappa]``, ``Q`` random orthogonal."""
    _check_size(n)
    if isinstance(kappa, (int, float)) and kappa < 1:
        raise ValueError(f"kappa must be at least 1, got {kappa!r}")
    basis_key, minimizer_key = jax.random.split(key)
    dtype = jnp.result_type(float)
    q, r = jnp.linalg.qr(jax.random.normal(basis_key, (n, n), dtype))
    q = q * jnp.sign(jnp.diagonal(r))[None, :]  # Haar-distributed: fix the QR sign ambiguity
    eigenvalues = jnp.logspace(0.0, jnp.log10(kappa), n, dtype=dtype)
    a = (q * eigenvalues[None, :]) @ q.T
    a = 0.5 * (a + a.T)
    x_star = jax.random.normal(minimizer_key, (n,), dtype)
    return Quadratic(a, -a @ x_star, x_star)


def _check_size(n) -> None:
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"the dimension n must be a positive int, got {n!r}")
