"""optlab.train.engine: vmapped runs equal single runs and a Flax-idiom reference loop;
hyperparameters, schedules, early stopping, checkpoint resume, sharding."""

import functools
import math
import os
import socket
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from sklearn import metrics as sk

from optlab import train
from optlab.train import minibatch

N_TRAIN, N_VAL, FEATURES, CLASSES, BATCH = 96, 40, 5, 3, 16


class TinyNet(nnx.Module):
    def __init__(self, *, rngs: nnx.Rngs):
        self.hidden = nnx.Linear(FEATURES, 8, param_dtype=jnp.float32, rngs=rngs)
        self.dropout = nnx.Dropout(0.25, rngs=rngs)
        self.out = nnx.Linear(8, CLASSES, param_dtype=jnp.float32, rngs=rngs)

    def __call__(self, x):
        return self.out(self.dropout(jax.nn.relu(self.hidden(x))))


def _data(seed: int, rows: int):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, FEATURES)).astype(np.float32)
    y = (np.digitize(x[:, 0] + 0.5 * x[:, 1], [-0.5, 0.5])).astype(np.int32)
    return x, y


TRAIN, VAL = _data(0, N_TRAIN), _data(1, N_VAL)
TASK = train.classification()


def _adam(learning_rate=1e-2):
    return optax.inject_hyperparams(optax.adam)(learning_rate=learning_rate)


def _fit(runs, **options):
    settings = dict(batch_size=BATCH, max_epochs=3, validation=VAL) | options
    return train.fit(runs, TASK, TRAIN, **settings)


def _run(result, run):
    return jax.tree.map(lambda leaf: np.asarray(leaf[run]), result.params)


def _assert_trees_close(actual, expected, atol=1e-6, rtol=0.0):
    def close(a, e):
        np.testing.assert_allclose(a, e, rtol=rtol, atol=atol)

    jax.tree.map(close, actual, expected)


BATCHED = dict(max_epochs=4, patience=2)


def _batched_runs():
    """Three seeds, three learning rates and L1/L2 penalties in one program."""
    return train.init_runs(
        TinyNet, _adam(), [0, 1, 2],
        hyperparams={"learning_rate": [1e-2, 3e-2, 5e-3]}, l1=[0.0, 1e-3, 0.0], l2=1e-3,
    )


@pytest.fixture(scope="module")
def batched_runs():
    return _batched_runs()  # fit copies the state: the runs can be trained again


@pytest.fixture(scope="module")
def batched(batched_runs):
    return _fit(batched_runs, **BATCHED)


def _reference(seed, optimizer, epochs, *, l1=0.0, l2=0.0):
    """The Flax-example idiom: a Python loop over nnx.jit steps with nnx.Optimizer, on the
    minibatches the engine documents (rows of fold_in(shuffle_key, epoch)'s permutation)."""
    key = jax.random.key(seed)
    rngs = nnx.Rngs(params=jax.random.fold_in(key, 0), dropout=jax.random.fold_in(key, 1))
    model = TinyNet(rngs=rngs)
    shuffle_key = jax.random.fold_in(key, 2)
    opt = nnx.Optimizer(model, optimizer, wrt=nnx.Param)

    def loss_fn(model, x, y):
        data_loss = optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()
        kernels = [model.hidden.kernel[...], model.out.kernel[...]]
        penalty = sum(l1 * jnp.abs(k).sum() + l2 * jnp.square(k).sum() for k in kernels)
        return data_loss + penalty, data_loss

    @nnx.jit
    def step(model, opt, x, y):
        (_, data_loss), grads = nnx.value_and_grad(loss_fn, has_aux=True)(model, x, y)
        opt.update(model, grads)
        return data_loss

    @nnx.jit
    def val_loss(model, x, y):
        return optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()

    steps = N_TRAIN // BATCH
    positions = jnp.arange(steps * BATCH).reshape(steps, BATCH)
    train_losses, val_losses = [], []
    for epoch in range(epochs):
        epoch_key = jax.random.fold_in(shuffle_key, epoch)
        rows = minibatch.random_permutation_at(epoch_key, N_TRAIN, positions)
        model.train()
        losses = [step(model, opt, TRAIN[0][r], TRAIN[1][r]) for r in np.asarray(rows)]
        train_losses.append(np.mean(losses))
        model.eval()
        val_losses.append(val_loss(model, *VAL))
    params = jax.tree.map(np.asarray, nnx.state(model, nnx.Param))
    return params, np.array(train_losses), np.array(val_losses)


def test_batched_runs_equal_the_flax_idiom_reference(batched):
    for run, (lr, l1) in enumerate([(1e-2, 0.0), (3e-2, 1e-3)]):
        params, train_losses, val_losses = _reference(run, optax.adam(lr), 4, l1=l1, l2=1e-3)
        np.testing.assert_allclose(batched.history["train_loss"][run], train_losses, rtol=1e-5)
        np.testing.assert_allclose(batched.history["val_loss"][run], val_losses, rtol=1e-5)
        # restore_best returns the best epoch's parameters; here the loss fell every epoch.
        assert batched.best_epoch[run] == 3
        _assert_trees_close(_run(batched, run), params, atol=1e-5)


def test_a_run_of_a_batch_equals_the_same_run_alone(batched, capsys):
    # Run 2 differs from its neighbours in seed, learning rate and L1 strength.
    alone = _fit(train.init_runs(TinyNet, _adam(5e-3), [2], l2=1e-3), **BATCHED)
    assert capsys.readouterr().out == ""  # quiet without on_epoch
    for name, values in batched.history.items():
        np.testing.assert_allclose(values[2], alone.history[name][0], rtol=1e-6, err_msg=name)
    _assert_trees_close(_run(batched, 2), _run(alone, 0))


def test_train_step_is_a_pure_function_of_the_run_state(batched_runs):
    step = jax.jit(
        jax.vmap(functools.partial(train.train_step, batched_runs, TASK), in_axes=(0, None))
    )
    batch = (jnp.asarray(TRAIN[0][:BATCH]), jnp.asarray(TRAIN[1][:BATCH]))
    after, (losses, metrics) = step(batched_runs.state, batch)
    _, (losses_again, _) = step(batched_runs.state, batch)
    np.testing.assert_array_equal(losses, losses_again)  # the input state is not consumed
    assert losses.shape == (3,) and metrics["accuracy"].shape == (3,)
    # One dropout mask per step: each run's dropout stream advanced by one.
    assert after.rest["dropout"]["rngs"]["count"][...].tolist() == [1, 1, 1]
    moved = jax.tree.map(lambda a, b: bool(np.any(a != b)), after.params, batched_runs.state.params)
    assert all(jax.tree.leaves(moved))


def test_history_names_and_penalty(batched):
    assert set(batched.history) == {
        "train_loss", "train_accuracy", "penalty", "val_loss", "val_accuracy"
    }
    assert all(values.shape == (3, 4) for values in batched.history.values())
    params = _run(batched, 1)
    kernels = [params["hidden"]["kernel"][...], params["out"]["kernel"][...]]
    expected = sum(1e-3 * np.abs(k).sum() + 1e-3 * np.square(k).sum() for k in kernels)
    np.testing.assert_allclose(batched.history["penalty"][1, -1], expected, rtol=1e-5)
    assert batched.compile_seconds > 0 and batched.run_seconds > 0


def test_evaluate_and_predict_match_the_history_at_the_best_epoch(batched):
    scores = train.evaluate(batched, TASK, VAL, batch_size=7)  # 40 rows: a padded last batch
    best = batched.best_epoch
    np.testing.assert_allclose(
        scores["loss"], batched.history["val_loss"][np.arange(3), best], rtol=1e-5
    )
    np.testing.assert_allclose(
        scores["accuracy"], batched.history["val_accuracy"][np.arange(3), best], rtol=1e-6
    )
    logits = batched.model(0)(jnp.asarray(VAL[0]))
    np.testing.assert_allclose(
        scores["accuracy"][0], np.mean(np.argmax(logits, axis=1) == VAL[1]), rtol=1e-6
    )
    predictions = train.predict(batched, VAL[0], batch_size=7)
    assert predictions.shape == (3, N_VAL, CLASSES)
    np.testing.assert_allclose(predictions[0], logits, rtol=1e-6, atol=1e-6)
    accuracies = [train.accuracy(jnp.asarray(VAL[1]), np.argmax(p, axis=1)) for p in predictions]
    np.testing.assert_allclose(accuracies, scores["accuracy"], rtol=1e-6)


def test_a_runs_model_holds_its_own_weights_before_and_after_training():
    runs = train.init_runs(TinyNet, _adam(), [3, 4])
    trained = _fit(runs, max_epochs=1)
    for run in (0, 1):
        for model, params in ((runs.model(run), runs.state.params), (trained.model(run),
                                                                     trained.params)):
            np.testing.assert_array_equal(model.hidden.kernel[...],
                                          np.asarray(params["hidden"]["kernel"])[run])
    assert not np.allclose(runs.model(0).hidden.kernel[...], runs.model(1).hidden.kernel[...])


def test_class_scores_match_scikit_learn_on_every_run(batched):
    scores = train.class_scores(batched, VAL, CLASSES, batch_size=7)
    predictions = np.argmax(train.predict(batched, VAL[0]), axis=-1)
    for run, predicted in enumerate(predictions):
        np.testing.assert_array_equal(
            scores["confusion"][run], sk.confusion_matrix(VAL[1], predicted, labels=range(CLASSES)))
        assert scores["accuracy"][run] == pytest.approx(sk.accuracy_score(VAL[1], predicted))
        assert scores["f1"][run] == pytest.approx(sk.f1_score(
            VAL[1], predicted, labels=range(CLASSES), average="macro", zero_division=0), abs=1e-6)


def test_sgd_with_a_decay_schedule():
    decay = optax.exponential_decay(0.5, N_TRAIN // BATCH, decay_rate=0.3, staircase=True)
    runs = train.init_runs(TinyNet, optax.inject_hyperparams(optax.sgd)(learning_rate=decay), [3])
    result = _fit(runs, restore_best=False)
    params, train_losses, val_losses = _reference(3, optax.sgd(decay), 3)
    np.testing.assert_allclose(result.history["train_loss"][0], train_losses, rtol=1e-5)
    np.testing.assert_allclose(result.history["val_loss"][0], val_losses, rtol=1e-5)
    _assert_trees_close(_run(result, 0), params, atol=1e-5)


def test_early_stopping_freezes_each_run_and_restores_its_best_epoch():
    # Run 0 (a huge rate) stops soon; run 1 (a small one) improves every epoch.
    rates = [0.5, 3e-3]
    runs = train.init_runs(TinyNet, _adam(), [5, 6], hyperparams={"learning_rate": rates})
    result = _fit(runs, max_epochs=8, patience=1)
    assert result.stopped_early.tolist() == [True, False]
    stop = result.epochs_trained[0] - 1
    assert 0 < result.best_epoch[0] < stop < 7, (result.best_epoch, result.epochs_trained)
    assert np.isnan(result.history["val_loss"][0, stop + 1:]).all()
    assert np.isfinite(result.history["val_loss"][0, : stop + 1]).all()
    assert result.epochs_trained[1] == 8

    # The stopped run's parameters are those it had after its best epoch ...
    best_params, _, best_val_losses = _reference(5, optax.adam(rates[0]), result.best_epoch[0] + 1)
    # (A rate of 0.5 amplifies rounding differences between the two programs.)
    _assert_trees_close(_run(result, 0), best_params, atol=1e-5, rtol=1e-4)
    np.testing.assert_allclose(
        result.history["val_loss"][0, : result.best_epoch[0] + 1], best_val_losses, rtol=1e-5
    )
    # ... and the run that went on is unaffected by its stopped neighbour.
    _, _, val_losses = _reference(6, optax.adam(rates[1]), 8)
    np.testing.assert_allclose(result.history["val_loss"][1], val_losses, rtol=1e-5)


def test_restore_best_can_maximise_a_metric(batched_runs):
    result = _fit(batched_runs, max_epochs=5, monitor="val_accuracy")
    history = result.history["val_accuracy"]
    # The first epoch of the highest validation accuracy, and its evaluation.
    np.testing.assert_array_equal(result.best_epoch, np.argmax(history, axis=1))
    scores = train.evaluate(result, TASK, VAL)
    np.testing.assert_allclose(scores["accuracy"], history.max(axis=1), rtol=1e-6)
    with pytest.raises(ValueError, match="monitor must be one of"):
        _fit(batched_runs, monitor="penalty")


def test_loop_ends_when_every_run_has_stopped(batched_runs):
    seen, lines = [], []
    printer = train.progress_printer(20, every_seconds=0.0, print_fn=lines.append)

    def on_epoch(epoch, metrics):
        seen.append(epoch)
        printer(epoch, metrics)

    # With a huge min_delta no epoch after the first counts as an improvement.
    result = _fit(
        batched_runs, max_epochs=20, patience=2, min_delta=1e9, epochs_per_call=2,
        on_epoch=on_epoch,
    )
    assert result.stopped_early.all() and (result.epochs_trained == 3).all()
    assert (result.best_epoch == 0).all()
    assert seen == [0, 1, 2]  # the fourth epoch of the second call trained no run
    assert [line.split("  ")[0] for line in lines] == ["epoch 1/20", "epoch 2/20", "epoch 3/20"]
    assert lines[-1].endswith("(3/3 runs stopped)")


def test_resume_after_an_interruption_equals_an_uninterrupted_run(tmp_path, batched_runs, batched):
    def interrupt_at_epoch_2(epoch, metrics):
        if epoch == 2:
            raise KeyboardInterrupt

    options = BATCHED | dict(checkpoint_dir=str(tmp_path))
    with pytest.raises(KeyboardInterrupt):
        _fit(batched_runs, on_epoch=interrupt_at_epoch_2, **options)
    resumed_epochs = []
    resumed = _fit(batched_runs, on_epoch=lambda epoch, m: resumed_epochs.append(epoch), **options)
    # Epoch 2 was computed but its report failed: it is computed and reported again.
    assert resumed_epochs == [2, 3]
    assert resumed.first_epoch == 2 and batched.first_epoch == 0
    assert resumed.compile_seconds > 0 and resumed.run_seconds > 0
    for name, values in batched.history.items():
        np.testing.assert_array_equal(resumed.history[name], values, err_msg=name)
    _assert_trees_close(resumed.params, batched.params, atol=0)
    np.testing.assert_array_equal(resumed.best_epoch, batched.best_epoch)

    # A finished study is not computed again, and a different one is refused.
    again = _fit(batched_runs, on_epoch=lambda epoch, m: pytest.fail("recomputed"), **options)
    assert again.first_epoch == 4
    assert math.isnan(again.compile_seconds) and math.isnan(again.run_seconds)  # not timed
    np.testing.assert_array_equal(again.history["val_loss"], batched.history["val_loss"])
    refusal = r"different configuration \(entries that differ: batch_size\)"
    with pytest.raises(ValueError, match=refusal):
        _fit(batched_runs, **(options | dict(batch_size=8)))


def test_reconstruction_task_loss_goes_down():
    class TinyAutoencoder(nnx.Module):
        def __init__(self, *, rngs):
            self.encode = nnx.Linear(FEATURES, 2, param_dtype=jnp.float32, rngs=rngs)
            self.decode = nnx.Linear(2, FEATURES, param_dtype=jnp.float32, rngs=rngs)

        def __call__(self, x):
            return self.decode(jnp.tanh(self.encode(x)))

    runs = train.init_runs(TinyAutoencoder, _adam(3e-2), [0, 1])
    result = train.fit(runs, train.reconstruction("mae"), (TRAIN[0],), validation=(VAL[0],),
                       batch_size=BATCH, max_epochs=5)
    assert set(result.history) == {"train_loss", "train_mse", "train_mae", "penalty",
                                   "val_loss", "val_mse", "val_mae"}
    np.testing.assert_array_equal(result.history["val_loss"], result.history["val_mae"])
    assert (result.history["val_loss"][:, -1] < 0.9 * result.history["val_loss"][:, 0]).all()


def _models_under_test():
    models = pytest.importorskip("optlab.models")
    return [
        ("mlp", functools.partial(models.MLP, [FEATURES, 16, CLASSES], dropout=0.1), TASK, TRAIN),
        (
            "dense-autoencoder",
            functools.partial(models.DenseAutoencoder, (FEATURES, 4, 2)),
            train.reconstruction("mse"),
            (TRAIN[0],),
        ),
    ]


def test_models_of_optlab_models_train_and_their_loss_goes_down():
    for name, model_fn, task, data in _models_under_test():
        runs = train.init_runs(model_fn, _adam(3e-2), [0])
        result = train.fit(runs, task, data, batch_size=BATCH, max_epochs=4)
        losses = result.history["train_loss"][0]
        assert losses[-1] < losses[0], (name, losses)


def test_bad_input_is_rejected():
    runs = train.init_runs(TinyNet, _adam(), [0])
    with pytest.raises(ValueError, match="batch_size"):
        train.fit(runs, TASK, TRAIN, batch_size=N_TRAIN + 1, max_epochs=1)
    with pytest.raises(ValueError, match=r"\(x, y\)"):
        train.fit(runs, TASK, (TRAIN[0],), batch_size=BATCH, max_epochs=1)
    with pytest.raises(ValueError, match="patience"):
        train.fit(runs, TASK, TRAIN, batch_size=BATCH, max_epochs=1, patience=0)
    with pytest.raises(ValueError, match="inject_hyperparams"):
        train.init_runs(TinyNet, optax.adam(1e-3), [0], hyperparams={"learning_rate": 0.1})
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        train.init_runs(TinyNet, _adam(), [0, 1], hyperparams={"learning_rate": [0.1, 0.2, 0.3]})
    with pytest.raises(ValueError, match="one seed per run"):
        train.init_runs(TinyNet, _adam(), [0, 1], shuffle_seeds=[0])
    with pytest.raises(ValueError, match="kernel"):
        train.init_runs(lambda rngs: nnx.BatchNorm(3, rngs=rngs), _adam(), [0], l2=1e-3)


def test_validation_split_partitions_the_rows():
    x = np.arange(20.0).reshape(10, 2)
    y = np.arange(10)
    (x_train, y_train), (x_val, y_val) = train.validation_split((x, y), 0.3, seed=0)
    assert len(y_val) == 3 and len(y_train) == 7
    assert sorted(np.concatenate([y_train, y_val]).tolist()) == list(range(10))
    np.testing.assert_array_equal(x_val[:, 0], 2 * y_val)
    (_, again), _ = train.validation_split((x, y), 0.3, seed=0)
    np.testing.assert_array_equal(again, y_train)
    with pytest.raises(ValueError, match="fraction"):
        train.validation_split((x, y), 1.0, seed=0)


def test_progress_printer_line_and_throttling():
    lines = []
    printer = train.progress_printer(4, every_seconds=3600.0, print_fn=lines.append)
    for epoch in range(4):
        stopped = np.array([epoch >= 1, False, False])
        train_loss = np.array([np.nan if epoch >= 2 else 1.0, 0.5, 0.3])
        printer(epoch, {"train_loss": train_loss, "val_loss": train_loss + 1, "stopped": stopped})
    assert lines == [
        "epoch 1/4  train 0.6  val 1.6  (0/3 runs stopped)",
        "epoch 4/4  train 0.4  val 1.4  (1/3 runs stopped)",
    ]
    eta_lines = []
    printer = train.progress_printer(10, every_seconds=0.0, print_fn=eta_lines.append)
    for epoch in range(2):
        printer(epoch, {"train_loss": np.ones(1), "stopped": np.zeros(1, bool)})
    assert eta_lines[0] == "epoch 1/10  train 1  (0/1 runs stopped)"
    assert eta_lines[1].startswith("epoch 2/10  train 1  (0/1 runs stopped)  ETA 0:00:")


SHARDED = textwrap.dedent(
    """
    import sys
    import jax, numpy as np
    sys.path.insert(0, {tests!r})
    jax.config.update("jax_enable_x64", True)
    import test_train_engine as t
    assert len(jax.devices()) == 4, jax.devices()
    # 3 runs on 4 devices (one padding run), looped over on each device, not vmapped.
    result = t._fit(t._batched_runs(), runs_per_vmap=1, **t.BATCHED)
    np.savez({output!r}, *jax.tree.leaves((result.history, result.params)))
    """
)


def test_results_do_not_depend_on_the_number_of_devices(tmp_path, batched):
    output = str(tmp_path / "sharded.npz")
    script = SHARDED.format(tests=os.path.dirname(__file__), output=output)
    environment = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4")
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=environment, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    with np.load(output) as sharded:
        expected = jax.tree.leaves((batched.history, batched.params))
        assert len(sharded.files) == len(expected)
        for index, leaf in enumerate(expected):
            np.testing.assert_allclose(sharded[f"arr_{index}"], leaf, rtol=1e-6, atol=1e-7)


# The same fit as one of two processes (jax.distributed, gloo), two CPU devices each: the
# three runs (and a padding run) spread over the four devices of both processes,
# interrupted at epoch 2 and resumed from the checkpoint both processes name.
DISTRIBUTED = textwrap.dedent(
    """
    import sys
    import jax, numpy as np
    sys.path.insert(0, {tests!r})
    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    process = int(sys.argv[1])
    jax.distributed.initialize(coordinator_address="127.0.0.1:{port}", num_processes=2,
                               process_id=process, initialization_timeout=60)
    import test_train_engine as t
    assert jax.process_count() == 2 and len(jax.devices()) == 4, jax.devices()
    runs, epochs = t._batched_runs(), []
    options = t.BATCHED | dict(runs_per_vmap=1, checkpoint_dir={checkpoints!r})

    def interrupt_at_epoch_2(epoch, metrics):
        if epoch == 2:
            raise KeyboardInterrupt

    try:
        t._fit(runs, on_epoch=interrupt_at_epoch_2, **options)
        raise SystemExit("not interrupted")
    except KeyboardInterrupt:
        pass
    result = t._fit(runs, on_epoch=lambda epoch, metrics: epochs.append(epoch), **options)
    assert epochs == [2, 3] and result.first_epoch == 2, (epochs, result.first_epoch)
    if process == 0:
        np.savez({output!r}, *jax.tree.leaves((result.history, result.params)))
    """
)


def test_results_do_not_depend_on_the_number_of_processes_and_resume_there(tmp_path, batched):
    output = str(tmp_path / "spread.npz")
    with socket.socket() as probe:  # a free port for the coordinator
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    script = DISTRIBUTED.format(tests=os.path.dirname(__file__), output=output, port=port,
                                checkpoints=str(tmp_path / "checkpoints"))
    environment = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2",
                       JAX_PLATFORMS="cpu")
    workers = [subprocess.Popen([sys.executable, "-c", script, str(process)],
                                env=environment, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for process in (0, 1)]
    try:
        outputs = [worker.communicate(timeout=300) for worker in workers]
    finally:
        for worker in workers:
            worker.kill()
    for worker, (_, err) in zip(workers, outputs):
        assert worker.returncode == 0, err[-3000:]
    with np.load(output) as spread:
        expected = jax.tree.leaves((batched.history, batched.params))
        assert len(spread.files) == len(expected)
        for index, leaf in enumerate(expected):
            np.testing.assert_allclose(spread[f"arr_{index}"], leaf, rtol=1e-6, atol=1e-7)


def test_runs_of_one_model_and_optimizer_share_their_compiled_programs():
    from optlab.train import engine

    optimizer = _adam()
    first = train.init_runs(TinyNet, optimizer, [1, 2])
    hits = engine._run_builder.cache_info().hits
    second = train.init_runs(TinyNet, optimizer, [3, 4])
    assert engine._run_builder.cache_info().hits == hits + 1
    predictions = engine._predict._cache_size()
    for runs in (first, second):
        train.predict(_fit(runs, max_epochs=1), VAL[0])
    assert engine._predict._cache_size() == predictions + 1
