"""First-order update rules as optax gradient transformations.

Each rule is a short chain of building blocks: a transformation of the gradient (noise,
momentum, an adaptive scale) followed by ``optax.scale_by_learning_rate``, so a learning
rate may be a float or an optax schedule, and every rule works on any pytree, chains
with optax and accepts traced hyperparameters through ``optax.inject_hyperparams``.
``g`` is the gradient, ``w`` the parameters, ``a`` the learning rate, ``t = 1, 2, ...``
the step.

Where the small constant ``eps`` sits differs between sources: Kingma and Ba's Adam and
Keras's Adam, RMSprop and Adagrad divide by ``sqrt(v) + eps``; optax's ``scale_by_rss``
(Adagrad) and some textbooks use ``sqrt(v + eps)``. Here ``eps`` is outside the square root
by default; ``eps_in_sqrt=True`` moves it inside.

Hyperparameters given as Python numbers are checked (a negative learning rate, a decay
outside ``[0, 1)``); traced values (sweeps) and schedules are passed through.

Dtypes: real parameters (float32, float64, bfloat16; states keep their dtypes, so the
rules run inside ``lax.scan``) and complex ones, whose second moments are of ``|g|^2``
as in optax. Keep hyperparameters of bfloat16 parameters in float32
(``optax.inject_hyperparams(..., hyperparam_dtype=jnp.float32)``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

PyTree = Any


def _check_number(name: str, value, *, low: float, high: float | None = None, closed_high=False):
    """Raises ValueError for a concrete number outside ``[low, high)`` (or ``[low, high]``)."""
    if callable(value) or isinstance(value, jax.core.Tracer):
        return
    number = float(value)
    too_high = high is not None and (number > high if closed_high else number >= high)
    if not number >= low or too_high:
        bracket = "]" if closed_high else ")"
        interval = f"in [{low}, {high}{bracket}" if high is not None else f">= {low}"
        hint = ""
        dtype = getattr(value, "dtype", None)
        if dtype is not None and jnp.issubdtype(dtype, jnp.floating) and jnp.finfo(dtype).bits < 32:
            # optax.inject_hyperparams stores hyperparameters in the parameters' dtype.
            hint = (f"; the value may have been rounded to {jnp.dtype(dtype).name} (0.999 becomes "
                    "1.0 in bfloat16): keep the hyperparameters in float32 with "
                    "optax.inject_hyperparams(..., hyperparam_dtype=jnp.float32)")
        raise ValueError(f"{name} must be {interval}, got {value!r}{hint}")


def _check_learning_rate(learning_rate) -> None:
    _check_number("learning_rate", learning_rate, low=0.0)


def _check_decay(name: str, decay) -> None:
    _check_number(name, decay, low=0.0, high=1.0)


def _check_eps(eps) -> None:
    _check_number("eps", eps, low=0.0)


def sgd(learning_rate: optax.ScalarOrSchedule) -> optax.GradientTransformationExtraArgs:
    """Stochastic gradient descent: ``w <- w - a g``.

    >>> import jax.numpy as jnp, optax, optlab
    >>> opt = optlab.sgd(0.1)
    >>> updates, _ = opt.update(jnp.array([1.0, -2.0]), opt.init(jnp.zeros(2)))
    >>> updates
    Array([-0.1,  0.2], dtype=float32)
    """
    _check_learning_rate(learning_rate)
    # Extra keyword arguments (value=, grad=, ...) are accepted and ignored, as by optax.
    return optax.with_extra_args_support(optax.scale_by_learning_rate(learning_rate))


class AddGaussianNoiseState(NamedTuple):
    key: jax.Array  # PRNG key for the next draw


def add_gaussian_noise(sigma: float, seed: int | jax.Array) -> optax.GradientTransformation:
    """``g <- g + sigma * N(0, I)``, a fresh draw at every step from the key in the state.

    ``seed`` may be an int (also a traced one, to vmap over noise seeds) or a PRNG key,
    typed (``jax.random.key``) or raw (``jax.random.PRNGKey``).
    Unlike ``optax.add_noise`` the variance does not decay with the step.
    """
    _check_number("sigma", sigma, low=0.0)

    def init(params):
        del params
        return AddGaussianNoiseState(_as_key(seed))

    def update(updates, state, params=None):
        del params
        key, *leaf_keys = jax.random.split(state.key, len(jax.tree.leaves(updates)) + 1)
        leaves, treedef = jax.tree.flatten(updates)
        noisy = [
            g + sigma * jax.random.normal(k, jnp.shape(g), jnp.result_type(g))
            for g, k in zip(leaves, leaf_keys)
        ]
        return jax.tree.unflatten(treedef, noisy), AddGaussianNoiseState(key)

    return optax.GradientTransformation(init, update)


def _as_key(seed) -> jax.Array:
    """A typed or raw (uint32, shape (2,)) PRNG key as it is; an int seed made into a key."""
    if isinstance(seed, jax.Array):
        typed = jnp.issubdtype(seed.dtype, jax.dtypes.prng_key)
        raw = seed.dtype == jnp.uint32 and seed.shape == (2,)
        if typed or raw:
            return seed
    return jax.random.key(seed)


def noisy_sgd(
    learning_rate: optax.ScalarOrSchedule, sigma: float, seed: int | jax.Array = 0
) -> optax.GradientTransformation:
    """SGD on a gradient with Gaussian noise: ``w <- w - a (g + sigma z)``, ``z ~ N(0, I)``.

    The classic way to simulate stochastic gradients on deterministic 2-D test functions.
    The PRNG key is carried in the state, so a run is deterministic for a given seed.
    """
    _check_learning_rate(learning_rate)
    return optax.chain(add_gaussian_noise(sigma, seed), optax.scale_by_learning_rate(learning_rate))


def momentum(learning_rate: optax.ScalarOrSchedule, beta: float = 0.9) -> optax.GradientTransformation:
    """Momentum in exponential-moving-average form: ``v <- b v + (1 - b) g``, ``w <- w - a v``.

    With a constant rate this is :func:`heavy_ball` with ``gamma = b`` and rate ``a (1 - b)``.
    """
    _check_learning_rate(learning_rate)
    _check_decay("beta", beta)
    return optax.chain(
        optax.ema(decay=beta, debias=False), optax.scale_by_learning_rate(learning_rate)
    )


def heavy_ball(
    learning_rate: optax.ScalarOrSchedule, gamma: float = 0.9
) -> optax.GradientTransformation:
    """Polyak's heavy ball: ``v <- gamma v + a g``, ``w <- w - v``.

    The rate multiplies the gradient before it enters the velocity, so with a schedule
    each step's ``v`` keeps the rates it was built with (B. T. Polyak, USSR Comput. Math.
    Math. Phys. 4(5), 1964).
    """
    _check_learning_rate(learning_rate)
    _check_decay("gamma", gamma)
    return optax.chain(optax.scale_by_learning_rate(learning_rate), _trace(gamma))


def nesterov(
    learning_rate: optax.ScalarOrSchedule, gamma: float = 0.9
) -> optax.GradientTransformation:
    """Nesterov's accelerated gradient: ``v <- gamma v + a grad f(w - gamma v)``, ``w <- w - v``.

    Implemented in the reformulation of Sutskever et al. (ICML 2013) that needs the
    gradient at the current parameters only: the parameters kept are the look-ahead point
    ``u = w - gamma v``, for which the rule above reads

        v <- gamma v + a g(u),   u <- u - (gamma v + a g(u))   (with the new v).

    Substituting ``w = u + gamma v`` recovers the look-ahead form step by step, so both
    produce the same sequence of look-ahead points; the two differ only in which point is
    reported (here ``u``, at which the gradient is taken).
    """
    _check_learning_rate(learning_rate)
    _check_decay("gamma", gamma)
    return optax.chain(optax.scale_by_learning_rate(learning_rate), _trace(gamma, nesterov=True))


def _trace(gamma: float, nesterov: bool = False) -> optax.GradientTransformation:
    """``optax.trace`` whose velocity keeps the dtype it was created with: the rate, applied
    before it, may be float32 while the parameters are bfloat16, and a state that changed
    dtype between steps could not be carried through ``lax.scan``."""
    inner = optax.trace(decay=gamma, nesterov=nesterov)

    def update(updates, state, params=None):
        updates, new_state = inner.update(updates, state, params)
        return updates, jax.tree.map(lambda new, old: new.astype(old.dtype), new_state, state)

    return optax.GradientTransformation(inner.init, update)


def _abs_squared(g: jax.Array) -> jax.Array:
    """``|g|^2``: ``g * g`` for real ``g``, ``g * conj(g)`` (real part) for complex ``g``."""
    return jnp.real(g * jnp.conj(g)) if jnp.iscomplexobj(g) else g * g


def _divide(numerator, second_moment, eps, eps_in_sqrt: bool):
    if eps_in_sqrt:
        return numerator / jnp.sqrt(second_moment + eps)
    return numerator / (jnp.sqrt(second_moment) + eps)


class ScaleBySumOfSquaresState(NamedTuple):
    sum_of_squares: PyTree  # like params: G = sum over steps of g^2


def scale_by_sum_of_squares(
    eps: float = 1e-8, initial_accumulator: float = 0.0, eps_in_sqrt: bool = False
) -> optax.GradientTransformation:
    """Adagrad's scaling: ``G <- G + g^2``, ``g <- g / (sqrt(G) + eps)``."""
    _check_eps(eps)

    def init(params):
        return ScaleBySumOfSquaresState(
            jax.tree.map(lambda p: jnp.full_like(p, initial_accumulator), params)
        )

    def update(updates, state, params=None):
        del params
        total = jax.tree.map(lambda s, g: s + _abs_squared(g), state.sum_of_squares, updates)
        scaled = jax.tree.map(lambda g, s: _divide(g, s, eps, eps_in_sqrt), updates, total)
        return scaled, ScaleBySumOfSquaresState(total)

    return optax.GradientTransformation(init, update)


class ScaleByRMSState(NamedTuple):
    mean_square: PyTree  # like params: s, the moving average of g^2


def scale_by_rms(
    gamma: float = 0.9, eps: float = 1e-8, eps_in_sqrt: bool = False
) -> optax.GradientTransformation:
    """RMSprop's scaling: ``s <- gamma s + (1 - gamma) g^2``, ``g <- g / (sqrt(s) + eps)``."""
    _check_decay("gamma", gamma)
    _check_eps(eps)

    def init(params):
        return ScaleByRMSState(optax.tree.zeros_like(params))

    def update(updates, state, params=None):
        del params
        mean_square = jax.tree.map(
            lambda s, g: gamma * s + (1.0 - gamma) * _abs_squared(g), state.mean_square, updates
        )
        scaled = jax.tree.map(lambda g, s: _divide(g, s, eps, eps_in_sqrt), updates, mean_square)
        return scaled, ScaleByRMSState(mean_square)

    return optax.GradientTransformation(init, update)


class ScaleByAdamState(NamedTuple):
    count: jax.Array  # () int32, steps taken
    mu: PyTree  # like params: m, moving average of g
    nu: PyTree  # like params: v, moving average of g^2
    nu_max: PyTree | None  # AMSGrad: like params, max over steps of the corrected v; else None


def scale_by_adam(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    *,
    eps_in_sqrt: bool = False,
    amsgrad: bool = False,
) -> optax.GradientTransformation:
    """Adam's scaling with bias correction; with ``amsgrad=True``, the running maximum of ``v``.

    ``m <- b1 m + (1 - b1) g``, ``v <- b2 v + (1 - b2) g^2``,
    ``m^ = m / (1 - b1^t)``, ``v^ = v / (1 - b2^t)``, ``g <- m^ / (sqrt(v^) + eps)``.
    AMSGrad replaces ``v^`` by ``max(v^_1, ..., v^_t)`` (as optax does, on the corrected ``v``).
    """
    _check_decay("b1", b1)
    _check_decay("b2", b2)
    _check_eps(eps)

    def init(params):
        zeros = optax.tree.zeros_like(params)
        # Plain Adam keeps no maximum: two moment trees, as optax.adam.
        return ScaleByAdamState(jnp.zeros((), jnp.int32), zeros, zeros,
                                zeros if amsgrad else None)

    def update(updates, state, params=None):
        del params
        count = state.count + 1
        mu = jax.tree.map(lambda m, g: b1 * m + (1.0 - b1) * g, state.mu, updates)
        nu = jax.tree.map(lambda v, g: b2 * v + (1.0 - b2) * _abs_squared(g), state.nu, updates)
        mu_hat = jax.tree.map(lambda m: m / (1.0 - b1**count).astype(m.dtype), mu)
        nu_hat = jax.tree.map(lambda v: v / (1.0 - b2**count).astype(v.dtype), nu)
        nu_max = state.nu_max
        if amsgrad:
            nu_max = jax.tree.map(jnp.maximum, state.nu_max, nu_hat)
            nu_hat = nu_max
        scaled = jax.tree.map(lambda m, v: _divide(m, v, eps, eps_in_sqrt), mu_hat, nu_hat)
        return scaled, ScaleByAdamState(count, mu, nu, nu_max)

    return optax.GradientTransformation(init, update)


def adagrad(
    learning_rate: optax.ScalarOrSchedule,
    eps: float = 1e-8,
    *,
    initial_accumulator: float = 0.0,
    eps_in_sqrt: bool = False,
) -> optax.GradientTransformation:
    """Adagrad: ``G <- G + g^2``, ``w <- w - a g / (sqrt(G) + eps)`` (Duchi et al., JMLR 2011).

    Keras and optax start ``G`` at 0.1; Duchi et al. and this default start it at 0.
    """
    _check_learning_rate(learning_rate)
    return optax.chain(
        scale_by_sum_of_squares(eps, initial_accumulator, eps_in_sqrt),
        optax.scale_by_learning_rate(learning_rate),
    )


def rmsprop(
    learning_rate: optax.ScalarOrSchedule,
    gamma: float = 0.9,
    eps: float = 1e-8,
    *,
    eps_in_sqrt: bool = False,
) -> optax.GradientTransformation:
    """RMSprop: ``s <- gamma s + (1 - gamma) g^2``, ``w <- w - a g / (sqrt(s) + eps)``.

    (Tieleman and Hinton, COURSERA Neural Networks lecture 6.5, 2012.) Keras calls
    ``gamma`` ``rho``; optax calls it ``decay`` and puts ``eps`` inside the square root.
    """
    _check_learning_rate(learning_rate)
    return optax.chain(
        scale_by_rms(gamma, eps, eps_in_sqrt), optax.scale_by_learning_rate(learning_rate)
    )


def adam(
    learning_rate: optax.ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    *,
    eps_in_sqrt: bool = False,
) -> optax.GradientTransformation:
    """Adam: ``w <- w - a m^ / (sqrt(v^) + eps)`` with bias-corrected moments (see :func:`scale_by_adam`).

    (D. P. Kingma and J. Ba, ICLR 2015, Algorithm 1.) Same as ``optax.adam(a, b1, b2, eps)``.
    """
    _check_learning_rate(learning_rate)
    return optax.chain(
        scale_by_adam(b1, b2, eps, eps_in_sqrt=eps_in_sqrt),
        optax.scale_by_learning_rate(learning_rate),
    )


def amsgrad(
    learning_rate: optax.ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    *,
    eps_in_sqrt: bool = False,
) -> optax.GradientTransformation:
    """AMSGrad: Adam with ``v^`` replaced by its running maximum (Reddi et al., ICLR 2018).

    Same as ``optax.amsgrad(a, b1, b2, eps)``, which takes the maximum of the bias-corrected
    ``v``.
    """
    _check_learning_rate(learning_rate)
    return optax.chain(
        scale_by_adam(b1, b2, eps, eps_in_sqrt=eps_in_sqrt, amsgrad=True),
        optax.scale_by_learning_rate(learning_rate),
    )
