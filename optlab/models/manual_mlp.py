r"""The coursework's MLP with its backward pass written by hand: a teaching reference.

Contract: pure functions on plain arrays, no Flax. The parameters are a list with one
dict per dense layer, input side first::

    params[l] = {"kernel": W_l (fan_in, fan_out), "bias": b_l (fan_out,)}

and a hidden layer whose dict also holds ``"exponent"`` (a scalar ``n_l``) uses the power
activation :func:`~optlab.models.activations.power_activation`; the other hidden layers
use Leaky ReLU (slope 0.01); the last layer gives the logits. With ``x`` of shape
``(N, d)`` and integer labels ``y``,

    a_0 = x,   z_l = a_l W_l + b_l,   a_{l+1} = g_l(z_l),   logits = z_L,
    loss = -(1/N) sum_i log softmax(z_L)_{i, y_i}  +  l2 * sum_l sum(W_l ** 2),

the mean softmax cross-entropy plus an L2 penalty on **every kernel, the output layer's
included**, with factor ``l2`` as Keras's ``kernel_regularizer=l2(l2)`` on each Dense
layer adds ``l2 * sum(W ** 2)``; biases and exponents are not penalised.

:func:`gradients` differentiates ``loss`` layer by layer; it equals ``jax.grad(loss)`` to
rounding (tested to 1e-10 in float64). :func:`from_model` reads the same parameters from
an :class:`optlab.models.MLP` and :func:`to_model_state` writes them back
(``nnx.update(model, to_model_state(params))``), so the two implementations can start
from, and be compared at, the same weights.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from optlab.models.activations import (
    EXPONENT_INIT_RANGE,
    NEGATIVE_SLOPE,
    PowerActivation,
    leaky_relu,
    power_activation,
    project_exponents,
)
from optlab.models.mlp import MLP, kernel_initializer
from optlab.train import minibatch

Params = list[dict[str, jax.Array]]


def init(
    key: jax.Array,
    sizes: Sequence[int],
    *,
    power_layers: Sequence[int] = (),
    kernel_init: Any = "glorot",
    dtype: Any = jnp.float32,
) -> Params:
    """Parameters of an MLP with widths ``sizes`` (input first, classes last).

    Kernels from ``kernel_init`` (see :func:`optlab.models.kernel_initializer`), biases
    zeros; the hidden layers listed in ``power_layers`` (0-based: ``2`` is the third dense
    layer) get an exponent drawn from ``U(1.4, 2)``. This draws different numbers than
    :class:`optlab.models.MLP` for the same key; use :func:`from_model` for identical ones.

    Raises:
      ValueError: fewer than two sizes, a non-positive size, or a ``power_layers`` entry
        that is not a hidden layer.
    """
    sizes = tuple(int(size) for size in sizes)
    if len(sizes) < 2 or min(sizes) < 1:
        raise ValueError(f"sizes must be at least two positive widths, got {sizes}")
    hidden_count = len(sizes) - 2
    if any(not 0 <= layer < hidden_count for layer in power_layers):
        raise ValueError(f"power_layers must be in [0, {hidden_count}), got {power_layers}")
    initializer = kernel_initializer(kernel_init)
    layer_keys = jax.random.split(key, len(sizes) - 1)
    params = []
    for layer, (layer_key, fan_in, fan_out) in enumerate(zip(layer_keys, sizes[:-1], sizes[1:])):
        kernel_key, exponent_key = jax.random.split(layer_key)
        weights = {
            "kernel": initializer(kernel_key, (fan_in, fan_out), dtype),
            "bias": jnp.zeros((fan_out,), dtype),
        }
        if layer in power_layers:
            low, high = EXPONENT_INIT_RANGE
            weights["exponent"] = jax.random.uniform(exponent_key, (), dtype, low, high)
        params.append(weights)
    return params


def _check(params: Params, x: jax.Array, labels: jax.Array | None = None) -> None:
    """Raises ValueError for inputs that do not fit the parameters."""
    fan_in = params[0]["kernel"].shape[0]
    if jnp.ndim(x) != 2 or jnp.shape(x)[1] != fan_in:
        raise ValueError(f"x must have shape (N, {fan_in}), got {jnp.shape(x)}")
    if labels is not None and jnp.shape(labels) != jnp.shape(x)[:1]:
        raise ValueError(f"labels must have shape ({jnp.shape(x)[0]},), got {jnp.shape(labels)}")
    if "exponent" in params[-1]:
        raise ValueError("the output layer has no activation, so it cannot hold an exponent")


def _dense(layer: dict[str, jax.Array], inputs: jax.Array) -> jax.Array:
    """``z = a W + b``, the bias broadcast over the rows explicitly."""
    return inputs @ layer["kernel"] + layer["bias"][None, :]


def _activation(layer: dict[str, jax.Array], z: jax.Array) -> jax.Array:
    if "exponent" in layer:
        return power_activation(z, layer["exponent"])
    return leaky_relu(z)


def forward(params: Params, x: jax.Array) -> jax.Array:
    """The logits ``z_L`` of inputs ``x`` of shape ``(N, fan_in)``."""
    _check(params, x)
    activation = x
    for layer in params[:-1]:
        activation = _activation(layer, _dense(layer, activation))
    return _dense(params[-1], activation)


def loss(params: Params, x: jax.Array, labels: jax.Array, *, l2: float = 0.0) -> jax.Array:
    """Mean softmax cross-entropy of the integer ``labels`` plus ``l2 * sum_l sum(W_l**2)``."""
    _check(params, x, labels)
    log_probabilities = jax.nn.log_softmax(forward(params, x))
    picked = jnp.take_along_axis(log_probabilities, labels[:, None], axis=1)
    penalty = sum(jnp.sum(layer["kernel"] ** 2) for layer in params)
    return -jnp.mean(picked) + l2 * penalty


def gradients(params: Params, x: jax.Array, labels: jax.Array, *, l2: float = 0.0) -> Params:
    """The gradient of :func:`loss`, by hand, in the structure of ``params``.

    Write ``delta_l = d loss / d z_l`` (shape ``(N, fan_out)``). Backpropagation:

    1. Softmax and cross-entropy together: ``d(-log softmax(z)_y)/dz = softmax(z) -
       onehot(y)``; the mean over ``N`` rows divides by ``N``:
       ``delta_L = (softmax(z_L) - onehot(y)) / N``.
    2. Dense layer ``z_l = a_l W_l + b_l``: ``dW_l = a_l^T delta_l``,
       ``db_l = sum over rows of delta_l``, and the input gets ``delta_l W_l^T``.
       The penalty ``l2 sum(W_l ** 2)`` adds ``2 l2 W_l``.
    3. Activation ``a_l = g(z_{l-1})``, elementwise:
       ``delta_{l-1} = (delta_l W_l^T) * g'(z_{l-1})``, where for Leaky ReLU
       ``g' = 1`` if ``z > 0`` else ``0.01``, and for the power activation
       ``g' = n z^(n-1)`` if ``z > 0`` else ``0.01``.
    4. The exponent of a power layer enters every unit: ``dn = sum over all entries of
       (delta_l W_l^T) * dg/dn``, with ``dg/dn = z^n log z`` if ``z > 0`` else ``0``.
    """
    _check(params, x, labels)
    # Forward pass, keeping each layer's input a_l and pre-activation z_l.
    inputs, pre_activations = [], []
    activation = x
    for layer in params:
        inputs.append(activation)
        z = _dense(layer, activation)
        pre_activations.append(z)
        activation = _activation(layer, z)

    # Step 1: the loss's gradient at the logits.
    logits = pre_activations[-1]
    one_hot = jax.nn.one_hot(labels, logits.shape[1], dtype=logits.dtype)
    delta = (jax.nn.softmax(logits) - one_hot) / logits.shape[0]

    grads: Params = [{} for _ in params]
    for index in reversed(range(len(params))):
        layer = params[index]
        # Step 2: the dense layer's own weights.
        grads[index]["kernel"] = inputs[index].T @ delta + 2 * l2 * layer["kernel"]
        grads[index]["bias"] = jnp.sum(delta, axis=0)
        if index == 0:
            break
        # Steps 3 and 4: through the previous layer's activation.
        upstream = delta @ layer["kernel"].T  # d loss / d a_index
        previous, z = params[index - 1], pre_activations[index - 1]
        positive = z > 0
        # log and the power of the base 1 where z <= 0: those entries are discarded, and
        # a non-positive base would give NaN that the products would carry.
        base = jnp.where(positive, z, jnp.ones_like(z))
        if "exponent" in previous:
            exponent = previous["exponent"]
            slope = jnp.where(positive, exponent * base ** (exponent - 1), NEGATIVE_SLOPE)
            d_exponent = jnp.where(positive, base**exponent * jnp.log(base), 0)
            grads[index - 1]["exponent"] = jnp.sum(upstream * d_exponent)
        else:
            slope = jnp.where(positive, 1, NEGATIVE_SLOPE)
        delta = upstream * slope.astype(upstream.dtype)
    return grads


def fit(
    params: Params,
    optimizer: optax.GradientTransformation,
    shuffle_key: jax.Array,
    data: tuple[jax.Array, jax.Array],
    *,
    l2: float = 0.0,
    batch_size: int,
    epochs: int,
) -> tuple[Params, jax.Array]:
    """Trains ``params`` with :func:`gradients` and ``optimizer`` on the minibatches that
    :func:`optlab.train.fit` draws for a run whose shuffle key is ``shuffle_key``.

    Epoch ``e`` takes the rows ``random_permutation_at(fold_in(shuffle_key, e), n,
    positions)`` in ``n // batch_size`` batches, as the engine does, so that the two can be
    compared step by step. Returns the final parameters and per epoch the mean of the
    minibatches' data losses before each step (the engine's ``train_loss``); one compiled
    program.
    """
    x, labels = jnp.asarray(data[0]), jnp.asarray(data[1], jnp.int32)
    n = x.shape[0]
    steps = minibatch.batches_per_epoch(n, batch_size)
    positions = jnp.arange(steps * batch_size, dtype=jnp.int32).reshape(steps, batch_size)

    step = _step(optimizer, functools.partial(gradients, l2=l2))

    def epoch(carry, index):
        rows = minibatch.random_permutation_at(jax.random.fold_in(shuffle_key, index), n,
                                               positions)
        carry, losses = lax.scan(step, carry, minibatch.take_batches((x, labels), rows))
        return carry, jnp.mean(losses)

    @jax.jit
    def run(params):
        carry = (params, optimizer.init(params))
        (params, _), losses = lax.scan(epoch, carry, jnp.arange(epochs, dtype=jnp.int32))
        return params, losses

    return run(params)


def coursework_init(key: jax.Array, sizes: Sequence[int], *, power_layers: Sequence[int] = (),
                    dtype: Any = jnp.float32) -> Params:
    """The coursework's initialization: every kernel and bias from ``U(-0.5, 0.5)``, but the
    dense layer before a power activation from ``U(0, 1)`` (its inputs then start
    positive), and the exponent from ``U(1.4, 2)``."""
    params = init(key, sizes, power_layers=power_layers, dtype=dtype)
    keys = jax.random.split(jax.random.fold_in(key, 1), 2 * len(params))
    for layer, kernel_key, bias_key in zip(params, keys[::2], keys[1::2]):
        low, high = (0.0, 1.0) if "exponent" in layer else (-0.5, 0.5)
        layer["kernel"] = jax.random.uniform(kernel_key, layer["kernel"].shape, dtype, low, high)
        layer["bias"] = jax.random.uniform(bias_key, layer["bias"].shape, dtype, low, high)
    return params


def coursework_gradients(mean_gradients: Params, rows: int) -> Params:
    """The coursework's gradient from that of the mean loss over a batch of ``rows``: kernel,
    exponent and power-layer bias gradients summed over the rows (``rows`` times the mean),
    the other biases' averaged."""
    return [{name: grad if name == "bias" and "exponent" not in layer else rows * grad
             for name, grad in layer.items()} for layer in mean_gradients]


def coursework_optimizer(params: Params, *, learning_rate: float = 1e-3,
                         power_rate: float = 5e-4, l2: float = 0.01
                         ) -> optax.GradientTransformation:
    """The coursework's steps on :func:`coursework_gradients`: ``l2 * W`` added to every
    kernel's gradient, kernels, biases and exponents at ``learning_rate``, the kernel and
    bias of a layer before a power activation at ``power_rate``, exponents kept >= 1.01
    (:func:`optlab.models.project_exponents`, last)."""
    groups = {"kernel": optax.chain(optax.add_decayed_weights(l2), optax.sgd(learning_rate)),
              "bias": optax.sgd(learning_rate), "exponent": optax.sgd(learning_rate),
              "power kernel": optax.chain(optax.add_decayed_weights(l2), optax.sgd(power_rate)),
              "power bias": optax.sgd(power_rate)}
    labels = [{name: f"power {name}" if "exponent" in layer and name != "exponent" else name
               for name in layer} for layer in params]
    return optax.chain(optax.multi_transform(groups, labels), project_exponents())


def fit_in_order(
    params: Params,
    optimizer: optax.GradientTransformation,
    data: tuple[jax.Array, jax.Array],
    *,
    batch_size: int,
    epochs: int,
    gradient_fn: Callable[[Params, jax.Array, jax.Array], Params],
) -> tuple[Params, jax.Array]:
    """Trains on batches of ``batch_size`` rows in the data's order, the same every epoch,
    the last partial batch included (the coursework's loop); ``gradient_fn(params, x,
    labels)`` gives each step's gradient. Returns the final parameters and per epoch the
    mean of the batches' losses before each step; one compiled program, vmappable over
    ``params``."""
    x, labels = jnp.asarray(data[0]), jnp.asarray(data[1], jnp.int32)
    full = x.shape[0] // batch_size * batch_size
    batches = (x[:full].reshape(-1, batch_size, x.shape[1]), labels[:full].reshape(-1, batch_size))

    step = _step(optimizer, gradient_fn)

    def epoch(carry, _):
        carry, losses = lax.scan(step, carry, batches)
        if full < x.shape[0]:
            carry, last = step(carry, (x[full:], labels[full:]))
            losses = jnp.append(losses, last)
        return carry, jnp.mean(losses)

    (params, _), losses = lax.scan(epoch, (params, optimizer.init(params)), None, length=epochs)
    return params, losses


def _step(optimizer: optax.GradientTransformation, gradient_fn: Callable) -> Callable:
    """One optimizer step on a batch, for ``lax.scan``: carries (params, optimizer state),
    outputs the batch's loss before the step."""

    def step(carry, batch):
        params, opt_state = carry
        updates, opt_state = optimizer.update(gradient_fn(params, *batch), opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss(params, *batch)

    return step


def accuracy(params: Params, x: jax.Array, labels: jax.Array) -> float | np.ndarray:
    """The share of rows whose largest logit is their label; one share per run when every
    leaf of ``params`` has a leading run axis (as :func:`fit_in_order` under ``jax.vmap``
    returns them)."""
    if params[0]["kernel"].ndim == 3:
        return np.asarray(_run_accuracies(params, x, labels))
    return float(jnp.mean(jnp.argmax(jax.jit(forward)(params, x), axis=1) == labels))


@jax.jit
def _run_accuracies(params: Params, x: jax.Array, labels: jax.Array) -> jax.Array:
    logits = jax.vmap(forward, (0, None))(params, x)
    return jnp.mean(jnp.argmax(logits, axis=-1) == labels[None], axis=-1)


def from_model(model: MLP) -> Params:
    """The parameters of ``model`` (an :class:`optlab.models.MLP` with Leaky ReLU or power
    hidden activations and no dropout), as arrays in the layout above.

    Raises:
      TypeError: ``model`` is not an MLP.
      ValueError: it has dropout or another activation, so this module cannot mirror it.
    """
    if not isinstance(model, MLP):
        raise TypeError(f"from_model needs an optlab.models.MLP, got {type(model).__name__}")
    if model.input_dropout is not None or any(d is not None for d in model.dropouts):
        raise ValueError("the manual MLP has no dropout; build the MLP with dropout=0")
    params = [{"kernel": dense.kernel[...], "bias": dense.bias[...]} for dense in model.dense]
    for layer, activation in zip(params, model.activations):
        if isinstance(activation, PowerActivation):
            layer["exponent"] = activation.exponent[...]
        elif activation is not leaky_relu:
            raise ValueError(
                f"the manual MLP has Leaky ReLU and power activations only, got {activation!r}"
            )
    return params


def to_model_state(params: Params) -> dict:
    """``params`` in the layout of an :class:`optlab.models.MLP`'s state, for
    ``nnx.update(model, to_model_state(params))`` on a model that :func:`from_model`
    accepts."""
    state: dict = {"dense": {}, "activations": {}}
    for index, layer in enumerate(params):
        state["dense"][index] = {"kernel": layer["kernel"], "bias": layer["bias"]}
        if "exponent" in layer:
            state["activations"][index] = {"exponent": layer["exponent"]}
    return state
