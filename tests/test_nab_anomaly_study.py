"""The NAB anomaly study on a tiny configuration: its optimizers, results, files and errors."""

import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest

from configs import nab_anomaly as default_config
from experiments import nab_anomaly as study

# Short windows of the first 400 training points, 2 seeds, 2 epochs, two programs.
CONFIG = dataclasses.replace(
    default_config.get_config(), train_points=400, window_length=32, seeds=2, epochs=2,
    batch_size=64, momentum_sweep=(0.0, 0.9), families=("sgd", "adam"),
)


@pytest.fixture(scope="module")
def results():
    return study.run_study(CONFIG, log=lambda line: None)


def keras_sgd_reference(gradients, learning_rate, momentum, decay):
    """Keras 2's SGD, step by step: the parameter changes for a sequence of gradients."""
    velocity, changes = 0.0, []
    for step, gradient in enumerate(gradients):
        rate = learning_rate / (1 + decay * step)
        velocity = momentum * velocity - rate * gradient
        changes.append(velocity)
    return np.array(changes)


@pytest.mark.parametrize("momentum, decay", [(0.0, 0.0), (0.0, 0.1), (0.8, 0.0), (0.9, 0.05)])
def test_keras_sgd_matches_keras_update_rule(momentum, decay):
    gradients = [1.0, -2.0, 0.5, 3.0]
    opt = study.keras_sgd(0.01, momentum, decay)
    params = jnp.zeros((), jnp.float32)
    state = opt.init(params)
    changes = []
    for gradient in gradients:
        updates, state = opt.update(jnp.float32(gradient), state, params)
        changes.append(float(updates))
    np.testing.assert_allclose(
        changes, keras_sgd_reference(gradients, 0.01, momentum, decay), rtol=1e-6
    )


def test_families_group_the_issue_variants_into_four_programs():
    families = study.families(default_config.get_config())
    variants = {family.name: list(family.variants) for family in families}
    assert variants == {
        "sgd": ["sgd", "sgd + decay", "momentum 0.3", "momentum 0.5", "momentum 0.79",
                "momentum 0.8", "momentum 0.81", "momentum 0.9"],
        "nesterov": ["nesterov"],
        "adam": ["adam b1=0.8", "adam"],
        "amsgrad": ["amsgrad"],
    }
    sgd = families[0].variants
    assert sgd["sgd"] == {"momentum": 0.0, "decay": 0.0}
    assert sgd["sgd + decay"]["decay"] == 1e-3


def test_every_variant_has_a_row_per_seed_and_one_program_per_family(results):
    names = ["sgd", "sgd + decay", "momentum 0", "momentum 0.9", "adam b1=0.8", "adam"]
    assert [row["variant"] for row in results["variants"]] == names
    assert [p["family"] for p in results["programs"]] == ["sgd", "adam"]
    assert [p["runs"] for p in results["programs"]] == [8, 4]
    for name in names:
        runs = [row for row in results["runs"] if row["variant"] == name]
        assert [row["seed"] for row in runs] == [0, 1]
        assert results["histories"][name]["val_loss"].shape == (2, CONFIG.epochs)


def test_variants_share_initialization_shuffles_and_dropout_of_a_seed(results):
    # "momentum 0" has the hyperparameters of "sgd": with the same seed it must be the
    # same run, while the two seeds of a variant differ.
    sgd, twin = results["histories"]["sgd"], results["histories"]["momentum 0"]
    np.testing.assert_allclose(twin["train_loss"], sgd["train_loss"], rtol=1e-5)
    np.testing.assert_allclose(twin["val_loss"], sgd["val_loss"], rtol=1e-5)
    assert not np.allclose(sgd["train_loss"][0], sgd["train_loss"][1], rtol=1e-3)


def test_per_run_numbers_are_consistent(results):
    for row in results["runs"]:
        assert 0 <= row["best_epoch"] < row["epochs"] <= CONFIG.epochs
        assert row["inside"] + row["outside"] == row["anomalous_points"]
        assert np.isfinite(row["train_loss"]) and np.isfinite(row["val_loss"])
        assert row["threshold"] > 0
    showcase = results["showcase"]
    adam_seed0 = next(r for r in results["runs"] if r["variant"] == "adam" and r["seed"] == 0)
    # The threshold is the largest training MAE, and a flagged point lies only in windows
    # whose MAE exceeds it.
    assert showcase["threshold"] == pytest.approx(showcase["train_mae"].max())
    assert adam_seed0["threshold"] == pytest.approx(showcase["threshold"])
    assert int(showcase["flagged"].sum()) == adam_seed0["anomalous_points"]
    above = showcase["test_mae"] > showcase["threshold"]
    for point in np.flatnonzero(showcase["flagged"]):
        first = max(0, point - CONFIG.window_length + 1)
        assert above[first:point + 1].all()


def test_variant_means_are_means_over_seeds(results):
    for row in results["variants"]:
        runs = [r for r in results["runs"] if r["variant"] == row["variant"]]
        assert row["val_loss"] == pytest.approx(np.mean([r["val_loss"] for r in runs]))
        assert row["val_loss_std"] == pytest.approx(np.std([r["val_loss"] for r in runs], ddof=1))


def test_adam_learns_faster_than_plain_sgd(results):
    # Two epochs are enough for Adam (lr 1e-3) to beat SGD (lr 0.01) on every seed.
    adam = results["histories"]["adam"]["val_loss"][:, -1]
    sgd = results["histories"]["sgd"]["val_loss"][:, -1]
    assert (adam < sgd).all()


def test_reports_every_file_and_the_adam_check(results):
    written = study.write(CONFIG, results)
    assert set(written.figures) == {"anomalies.png", "loss_curves.png", "mae_histogram.png",
                                    "reconstruction.png"}
    assert set(written.tables) == {"results.csv", "runs.csv"}
    assert len(written.results["runs"]) == 12
    assert len(written.metrics) == 6 and "Adam check" in written.markdown
