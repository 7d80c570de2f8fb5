"""Tests of optlab.models: parameter counts of the Keras models, shapes, dtypes, dropout,
initializers, the power activation and its projection, and a few training steps each."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from optlab import models

WINE = (11, 16, 12, 8, 2)
WINE_POWER = ("leaky_relu", "leaky_relu", "power")

@pytest.fixture(autouse=True)
def _cheap_random_compiles():
    """Draws random numbers with the non-partitionable threefry in these tests. With the
    default (partitionable) one, XLA on the CPU takes seconds to compile a draw of a
    rank-4 shape such as a 3x3 conv kernel (measured: 4 s for (3, 3, 16, 9) against
    0.25 s), which would make this file several times slower. Only the values drawn
    change, and no test here depends on them."""
    with jax.threefry_partitionable(False):
        yield


# (name, constructor, shape of one example, of its output, parameters of the Keras model)
MODELS = [
    (
        "mlp_mnist",
        lambda rngs: models.MLP((784, 128, 256, 10), rngs=rngs),
        (784,),
        (10,),
        784 * 128 + 128 + 128 * 256 + 256 + 256 * 10 + 10,  # 136,074
    ),
    (
        "mlp_wine",
        lambda rngs: models.MLP(WINE, activation="leaky_relu", rngs=rngs),
        (11,),
        (2,),
        11 * 16 + 16 + 16 * 12 + 12 + 12 * 8 + 8 + 8 * 2 + 2,  # 518
    ),
    (
        "mlp_wine_power",
        lambda rngs: models.MLP(WINE, activation=WINE_POWER, rngs=rngs),
        (11,),
        (2,),
        518 + 1,
    ),
    ("cnn", lambda rngs: models.CNN(rngs=rngs), (28, 28, 1), (10,), 628_810),
    ("dense_ae", lambda rngs: models.DenseAutoencoder(rngs=rngs), (784,), (784,), 829_284),
    (
        "conv_ae_2d",
        lambda rngs: models.ConvAutoencoder2D(rngs=rngs),
        (28, 28, 1),
        (28, 28, 1),
        3_217,
    ),
    ("conv_ae_1d", lambda rngs: models.ConvAutoencoder1D(rngs=rngs), (288, 1), (288, 1), 9_505),
    (
        "spectrogram_ae",
        lambda rngs: models.SpectrogramAutoencoder(rngs=rngs),
        (64, 312, 1),
        (64, 312, 1),
        11_193,
    ),
]
MODEL_IDS = [name for name, *_ in MODELS]
CODE_SHAPES = {
    "dense_ae": (100,),
    "conv_ae_2d": (7, 7, 8),
    "conv_ae_1d": (72, 16),
    "spectrogram_ae": (8, 39, 4),
}


@functools.cache
def _abstract_model(name: str):
    """Model ``name`` with shapes and dtypes but no values (``nnx.eval_shape``): enough for
    counts, shapes and input checks, and free of the seconds that compiling every
    initializer and layer takes on a small machine."""
    constructor = {n: rest[0] for n, *rest in MODELS}[name]
    return nnx.eval_shape(lambda: constructor(nnx.Rngs(params=0, dropout=1)))


def _output_struct(function, *args):
    """Shape and dtype of ``function(*args)`` for abstract models and inputs."""
    return nnx.eval_shape(function, *args)


@pytest.mark.parametrize(
    "name, constructor, example_shape, output_shape, expected", MODELS, ids=MODEL_IDS
)
def test_parameter_count_shapes_and_float32(
    name, constructor, example_shape, output_shape, expected
):
    model = _abstract_model(name)
    assert models.count_params(model) == expected
    dtypes = {leaf.dtype for leaf in jax.tree.leaves(nnx.state(model, nnx.Param))}
    assert dtypes == {jnp.dtype(jnp.float32)}  # although conftest turns x64 on
    x = jax.ShapeDtypeStruct((3, *example_shape), jnp.float32)
    output = _output_struct(lambda m, x: m(x), model, x)
    assert output.shape == (3, *output_shape) and output.dtype == jnp.float32


@pytest.mark.parametrize("name", sorted(CODE_SHAPES))
def test_autoencoder_halves_can_be_used_apart(name):
    model = _abstract_model(name)
    example_shape = {n: rest[1] for n, *rest in MODELS}[name]
    x = jax.ShapeDtypeStruct((2, *example_shape), jnp.float32)
    code = _output_struct(lambda m, x: m.encode(x), model, x)
    assert code.shape == (2, *CODE_SHAPES[name])
    reconstruction = _output_struct(lambda m, z: m.decode(z), model, code)
    assert reconstruction.shape == (2, *example_shape)


def test_autoencoder_output_is_a_sigmoid_and_classifier_output_raw_logits():
    x = jax.random.normal(jax.random.key(0), (2, 6), jnp.float32) * 10
    reconstruction = models.DenseAutoencoder((6, 3), rngs=nnx.Rngs(0))(x)
    assert jnp.all((reconstruction >= 0) & (reconstruction <= 1))
    logits = models.MLP((6, 3), kernel_init=("normal", 1.0, 0.0), rngs=nnx.Rngs(0))(x)
    np.testing.assert_allclose(logits, np.tile(np.sum(x, axis=1, keepdims=True), (1, 3)), rtol=1e-6)


@pytest.mark.parametrize(
    "make, output_layer",
    [
        (lambda bias: models.DenseAutoencoder((6, 4, 3), output_bias=bias, rngs=nnx.Rngs(0)),
         lambda m: m.decoder[-1]),
        (lambda bias: models.ConvAutoencoder2D(output_bias=bias, rngs=nnx.Rngs(0)),
         lambda m: m.output_conv),
    ],
)
def test_output_bias_starts_only_the_output_layer_and_shifts_every_pre_activation(
    make, output_layer
):
    bias = -1.875  # exact in float32
    zero, shifted = make(0.0), make(bias)
    np.testing.assert_array_equal(output_layer(shifted).bias[...], bias)
    # Every other parameter equals the zero start's (the same draws), so the output's
    # pre-activation moves by exactly the bias.
    differing = [
        path
        for (path, a), (_, b) in zip(
            nnx.to_flat_state(nnx.state(zero, nnx.Param)),
            nnx.to_flat_state(nnx.state(shifted, nnx.Param)),
        )
        if not np.array_equal(a[...], b[...])
    ]
    assert len(differing) == 1 and differing[0][-1] == "bias"
    x = jax.random.uniform(jax.random.key(1), (2, *_input_shape(zero)), jnp.float32)
    logit = lambda p: jnp.log(p / (1 - p))
    np.testing.assert_allclose(logit(shifted(x)), logit(zero(x)) + bias, atol=1e-4)
    with pytest.raises(ValueError, match="output_bias must be finite"):
        make(float("nan"))


def _input_shape(model):
    return (model.sizes[0],) if isinstance(model, models.DenseAutoencoder) else model.input_shape


@pytest.mark.parametrize(
    "name, bad_shape",
    [
        ("mlp_wine", (2, 12)),
        ("mlp_wine", (11,)),
        ("cnn", (2, 28, 28)),
        ("cnn", (2, 1, 28, 28)),
        ("dense_ae", (2, 783)),
        ("conv_ae_2d", (2, 28, 28)),
        ("conv_ae_1d", (2, 144, 1)),
        ("spectrogram_ae", (2, 312, 64, 1)),
    ],
)
def test_wrong_input_shapes_raise(name, bad_shape):
    x = jax.ShapeDtypeStruct(bad_shape, jnp.float32)
    with pytest.raises(ValueError, match="expects inputs|expects images"):
        _output_struct(lambda m, x: m(x), _abstract_model(name), x)


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda r: models.MLP((5,), rngs=r), "at least two"),
        (lambda r: models.MLP((5, 0, 2), rngs=r), "at least two positive"),
        (lambda r: models.MLP((5, 4, 2), dropout=1.0, rngs=r), r"dropout must be in \[0, 1\)"),
        (lambda r: models.MLP((5, 4, 2), input_dropout=-0.1, rngs=r), "input_dropout"),
        (lambda r: models.MLP((5, 4, 3, 2), activation=("relu",), rngs=r), "1 entries for 2"),
        (lambda r: models.MLP((5, 4, 2), activation="swish!", rngs=r), "unknown activation"),
        (lambda r: models.MLP((5, 4, 2), kernel_init="lecun", rngs=r), "unknown kernel_init"),
        (lambda r: models.MLP((5, 4, 2), kernel_init=("normal", 0.0), rngs=r), "'normal'"),
        (lambda r: models.MLP((5, 4, 2), kernel_init=("normal", 0, -1), rngs=r), "std"),
        (lambda r: models.CNN(input_shape=(8, 8, 1), rngs=r), "too small"),
        (lambda r: models.CNN(input_dropout=1.0, rngs=r), "input_dropout"),
        (lambda r: models.ConvAutoencoder1D(length=30, rngs=r), "multiple of 4"),
        (lambda r: models.SpectrogramAutoencoder(input_shape=(60, 312, 1), rngs=r), "of 8"),
    ],
)
def test_bad_arguments_raise_value_error(build, message):
    with pytest.raises(ValueError, match=message):
        build(nnx.Rngs(0))


def test_models_without_dropout_need_no_dropout_stream():
    nnx.eval_shape(lambda: models.MLP(WINE, rngs=nnx.Rngs(params=0)))
    nnx.eval_shape(lambda: models.ConvAutoencoder1D(dropout=0.0, rngs=nnx.Rngs(params=0)))
    with pytest.raises(KeyError, match="dropout"):
        nnx.eval_shape(lambda: models.MLP(WINE, dropout=0.5, rngs=nnx.Rngs(params=0)))


def test_dropout_is_active_in_train_mode_only_and_its_key_is_model_state():
    model = models.MLP((20, 50, 50, 3), dropout=0.5, input_dropout=0.2, rngs=nnx.Rngs(0, dropout=1))
    rng_leaves = jax.tree.leaves(nnx.state(model, nnx.RngState))
    assert rng_leaves, "the dropout keys must live in the model state"
    x = jax.random.normal(jax.random.key(0), (4, 20), jnp.float32)
    model.eval()
    np.testing.assert_array_equal(model(x), model(x))
    evaluated = model(x)
    model.train()
    first, second = model(x), model(x)
    assert not np.allclose(first, evaluated)
    assert not np.allclose(first, second)  # the key advances between calls

    # The key travels with nnx.split: a pure function of the state draws the same mask
    # from the same state, and the key advances in the state it returns.
    graph, state = nnx.split(model)

    @jax.jit
    def apply(state):
        model = nnx.merge(graph, state)
        return model(x), nnx.state(model)

    once, advanced = apply(state)
    np.testing.assert_array_equal(apply(state)[0], once)
    assert not np.allclose(apply(advanced)[0], once)


@pytest.mark.parametrize(
    "constructor, places",
    [
        (lambda r: models.CNN(conv_dropout=0.3, rngs=r), 2),
        (lambda r: models.CNN(dense_dropout=0.3, rngs=r), 2),
        (lambda r: models.CNN(input_dropout=0.3, rngs=r), 1),
        (lambda r: models.CNN(conv_dropout=0.3, dense_dropout=0.3, rngs=r), 4),
        (lambda r: models.MLP(WINE, dropout=(0.0, 0.5, 0.0), rngs=r), 1),
        (lambda r: models.MLP(WINE, input_dropout=0.5, rngs=r), 1),
        (lambda r: models.ConvAutoencoder1D(rngs=r), 2),
    ],
)
def test_dropout_layers_sit_where_asked(constructor, places):
    model = nnx.eval_shape(lambda: constructor(nnx.Rngs(0)))
    dropouts = [node for _, node in nnx.iter_graph(model) if isinstance(node, nnx.Dropout)]
    assert len(dropouts) == places


def test_construction_vmaps_over_keys():
    @nnx.vmap(in_axes=0, out_axes=0)
    def build(key):
        return models.MLP((3, 4, 2), activation="power", dropout=0.1, rngs=nnx.Rngs(key))

    ensemble = build(jax.random.split(jax.random.key(0), 3))
    exponents = ensemble.activations[0].exponent[...]
    assert exponents.shape == (3,) and len(set(np.asarray(exponents).tolist())) == 3
    dropout_keys = jax.random.key_data(ensemble.dropouts[0].rngs.key[...])
    assert len({tuple(row) for row in np.asarray(dropout_keys).tolist()}) == 3
    assert models.count_params(ensemble) == 3 * (3 * 4 + 4 + 1 + 4 * 2 + 2)


def test_same_seed_same_model_and_rngs_seed_or_streams_both_work():
    a = nnx.state(models.MLP(WINE, activation=WINE_POWER, rngs=nnx.Rngs(7)), nnx.Param)
    b = nnx.state(
        models.MLP(WINE, activation=WINE_POWER, rngs=nnx.Rngs(params=7, dropout=0)), nnx.Param
    )
    jax.tree.map(np.testing.assert_array_equal, a, b)


# --- initializers -------------------------------------------------------------------


def _first_kernel(kernel_init) -> np.ndarray:
    initializer = models.kernel_initializer(kernel_init)
    return np.asarray(initializer(jax.random.key(0), (784, 512), jnp.float32), np.float64)


def test_mlp_uses_the_kernel_initializer_and_zero_biases():
    model = models.MLP((3, 4, 2), kernel_init=("normal", 5.0, 0.0), rngs=nnx.Rngs(0))
    for dense in model.dense:
        np.testing.assert_array_equal(dense.kernel[...], np.full(dense.kernel.shape, 5.0))
        np.testing.assert_array_equal(dense.bias[...], np.zeros(dense.bias.shape))


def test_glorot_is_uniform_within_the_glorot_limit():
    kernel = _first_kernel("glorot")
    limit = np.sqrt(6 / (784 + 512))
    assert np.abs(kernel).max() <= limit
    assert np.abs(kernel).max() > 0.99 * limit
    np.testing.assert_allclose(kernel.std(), limit / np.sqrt(3), rtol=0.01)


def test_he_has_variance_two_over_fan_in():
    np.testing.assert_allclose(_first_kernel("he").std(), np.sqrt(2 / 784), rtol=0.01)


def test_normal_initializer_has_the_given_mean_and_std():
    kernel = _first_kernel(("normal", 0.5, 2.0))
    np.testing.assert_allclose(kernel.mean(), 0.5, atol=0.02)
    np.testing.assert_allclose(kernel.std(), 2.0, rtol=0.01)


# --- the power activation -----------------------------------------------------------


def _power_reference(x: np.ndarray, n: float) -> np.ndarray:
    return np.where(x > 0, np.abs(x) ** n, 0.01 * x)


def test_activation_values():
    x = np.array([-2.0, -0.5, 0.0, 0.25, 1.0, 3.0])
    np.testing.assert_allclose(
        models.power_activation(jnp.asarray(x), 1.7), _power_reference(x, 1.7)
    )
    np.testing.assert_allclose(models.leaky_relu(jnp.asarray(x)), np.where(x > 0, x, 0.01 * x))


def test_power_activation_gradients_match_finite_differences():
    x = jnp.array([-2.0, -0.3, 0.0, 1e-3, 0.2, 0.9, 1.0, 2.5], jnp.float64)
    n = jnp.float64(1.6)
    grad_x = jax.vmap(jax.grad(models.power_activation, argnums=0), in_axes=(0, None))(x, n)
    grad_n = jax.vmap(jax.grad(models.power_activation, argnums=1), in_axes=(0, None))(x, n)
    assert np.all(np.isfinite(grad_x)) and np.all(np.isfinite(grad_n))

    step = 1e-6
    xs, n0 = np.asarray(x), float(n)
    fd_n = (_power_reference(xs, n0 + step) - _power_reference(xs, n0 - step)) / (2 * step)
    np.testing.assert_allclose(grad_n, fd_n, rtol=1e-7, atol=1e-9)
    away_from_kink = xs != 0  # g is not differentiable at 0
    fd_x = (_power_reference(xs + step, n0) - _power_reference(xs - step, n0)) / (2 * step)
    np.testing.assert_allclose(grad_x[away_from_kink], fd_x[away_from_kink], rtol=1e-7, atol=1e-9)
    assert grad_x[2] == pytest.approx(0.01)  # the x <= 0 branch at the kink
    assert grad_n[2] == 0.0


def test_power_module_exponent_is_a_float32_param_drawn_from_the_range():
    exponents = [
        models.PowerActivation(rngs=nnx.Rngs(seed)).exponent[...] for seed in range(20)
    ]
    assert all(e.dtype == jnp.float32 and e.shape == () for e in exponents)
    values = np.asarray(exponents)
    assert values.min() >= 1.4 and values.max() < 2.0 and values.std() > 0.05
    state = nnx.state(models.PowerActivation(rngs=nnx.Rngs(0)), nnx.Param)
    assert set(state.keys()) == {"exponent"}


def _sgd_then_project(learning_rate=1.0):
    return optax.chain(optax.sgd(learning_rate), models.project_exponents(1.01))


@pytest.mark.parametrize("start", [1.2, 1.4, 1.99, 1.01])
def test_projection_lands_exactly_on_the_bound(start):
    params = {"exponent": jnp.float32(start), "kernel": jnp.ones(3, jnp.float32)}
    grads = {"exponent": jnp.float32(5.0), "kernel": jnp.full(3, 5.0, jnp.float32)}
    opt = _sgd_then_project()
    updates, _ = opt.update(grads, opt.init(params), params)
    new = optax.apply_updates(params, updates)
    assert new["exponent"] == np.float32(1.01)
    np.testing.assert_array_equal(new["kernel"], np.full(3, -4.0, np.float32))  # untouched


def test_projection_leaves_steps_within_the_bound_bit_for_bit():
    params = {"layer": {"exponent": jnp.float32(1.7)}}
    grads = {"layer": {"exponent": jnp.float32(0.123456)}}
    opt = _sgd_then_project(0.1)
    updates, _ = opt.update(grads, opt.init(params), params)
    plain, _ = optax.sgd(0.1).update(grads, optax.sgd(0.1).init(params))
    assert updates["layer"]["exponent"] == plain["layer"]["exponent"]


def test_projection_finds_exponents_in_nnx_states_with_and_without_variables():
    model = models.MLP(WINE, activation=WINE_POWER, rngs=nnx.Rngs(0))
    _, params = nnx.split(model, nnx.Param)
    grads = jax.tree.map(lambda p: jnp.full_like(p, 10.0), params)
    opt = _sgd_then_project()
    for tree, gradient in [(params, grads), (nnx.as_pure(params), nnx.as_pure(grads))]:
        updates, _ = opt.update(gradient, opt.init(tree), tree)
        new = optax.apply_updates(tree, updates)
        leaves = dict(jax.tree_util.tree_flatten_with_path(new)[0])
        exponents = [v for path, v in leaves.items() if "exponent" in jax.tree_util.keystr(path)]
        others = [v for path, v in leaves.items() if "exponent" not in jax.tree_util.keystr(path)]
        assert len(exponents) == 1 and exponents[0] == np.float32(1.01)
        # A bias starts at 0 and moves by the full step.
        assert any(np.all(np.asarray(v) == -10.0) for v in others)


def test_projection_needs_params():
    opt = models.project_exponents()
    with pytest.raises(ValueError, match="needs params"):
        opt.update({"exponent": jnp.float32(0.0)}, opt.init({}))


def test_exponent_stays_above_bound_in_nnx_optimizer_training():
    model = models.MLP((4, 6, 2), activation="power", rngs=nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, _sgd_then_project(50.0), wrt=nnx.Param)
    x = jax.random.normal(jax.random.key(1), (16, 4), jnp.float32)
    labels = jnp.arange(16) % 2

    def loss_fn(model):
        # Pushes the exponent down hard, whatever the data.
        logits = model(x)
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
        return ce + 100.0 * model.activations[0].exponent[...]

    @nnx.jit
    def step(model, optimizer):
        optimizer.update(model, nnx.grad(loss_fn)(model))

    for _ in range(3):
        step(model, optimizer)
        assert model.activations[0].exponent[...] >= np.float32(1.01)
    assert model.activations[0].exponent[...] == np.float32(1.01)


# --- a few training steps each ------------------------------------------------------

# (name, constructor, shape of one example, number of classes or None for autoencoders).
# The classifiers with dropout, and a smaller spectrogram (the full one costs seconds to
# compile here; its shapes are checked above).
TRAINED = [
    ("mlp_mnist", lambda r: models.MLP((784, 128, 256, 10), dropout=0.2, rngs=r), (784,), 10),
    ("mlp_wine", lambda r: models.MLP(WINE, activation="leaky_relu", rngs=r), (11,), 2),
    (
        "mlp_wine_power",
        lambda r: models.MLP(WINE, activation=WINE_POWER, input_dropout=0.1, rngs=r),
        (11,),
        2,
    ),
    ("cnn", lambda r: models.CNN(conv_dropout=0.1, dense_dropout=0.1, rngs=r), (28, 28, 1), 10),
    ("dense_ae", lambda r: models.DenseAutoencoder(rngs=r), (784,), None),
    ("conv_ae_2d", lambda r: models.ConvAutoencoder2D(rngs=r), (28, 28, 1), None),
    ("conv_ae_1d", lambda r: models.ConvAutoencoder1D(rngs=r), (288, 1), None),
    (
        "spectrogram_ae",
        lambda r: models.SpectrogramAutoencoder(input_shape=(16, 24, 1), rngs=r),
        (16, 24, 1),
        None,
    ),
]


@pytest.mark.parametrize(
    "name, constructor, example_shape, classes", TRAINED, ids=[t[0] for t in TRAINED]
)
def test_each_model_trains_a_few_steps(name, constructor, example_shape, classes):
    # Built in one compiled program: eagerly, every initializer compiles apart.
    model = nnx.jit(lambda: constructor(nnx.Rngs(params=0, dropout=1)))()
    x = jax.random.uniform(jax.random.key(2), (4, *example_shape), jnp.float32)
    if classes:
        labels = jnp.arange(4) % classes

        def loss_fn(model):
            return optax.softmax_cross_entropy_with_integer_labels(model(x), labels).mean()
    else:

        def loss_fn(model):
            return jnp.mean((model(x) - x) ** 2)

    opt = optax.chain(optax.adam(1e-3), models.project_exponents())
    optimizer = nnx.Optimizer(model, opt, wrt=nnx.Param)

    @nnx.jit
    def step(model, optimizer):
        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss

    # Compared in eval mode, where dropout does not make the loss noisy.
    evaluate = nnx.jit(loss_fn)
    model.eval()
    before = float(evaluate(model))
    model.train()
    for _ in range(5):
        step(model, optimizer)
    model.eval()
    after = float(evaluate(model))
    assert np.isfinite(after) and after < before


def test_cnn_input_dropout_masks_the_image_in_train_mode_and_keeps_the_weights():
    small = dict(input_shape=(12, 12, 1), conv_features=(3,), dense_features=(4,))
    plain = models.CNN(**small, rngs=nnx.Rngs(params=3, dropout=5))
    dropped = models.CNN(**small, input_dropout=0.5, rngs=nnx.Rngs(params=3, dropout=5))
    jax.tree.map(
        np.testing.assert_array_equal, nnx.state(plain, nnx.Param), nnx.state(dropped, nnx.Param)
    )
    x = jax.random.uniform(jax.random.key(0), (6, 12, 12, 1)) + 0.5
    dropped.eval()
    np.testing.assert_allclose(dropped(x), plain(x), rtol=1e-6)
    dropped.train()
    masked = nnx.clone(dropped).input_dropout(x)  # the key that dropped(x) will use
    kept = np.asarray(masked) != 0
    assert 0.2 < kept.mean() < 0.8
    np.testing.assert_allclose(np.asarray(masked)[kept], 2 * np.asarray(x)[kept], rtol=1e-6)
    np.testing.assert_allclose(dropped(x), plain(masked), rtol=1e-6)
