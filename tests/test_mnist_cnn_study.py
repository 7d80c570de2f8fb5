"""The MNIST CNN dropout study on a tiny configuration: models, results, files and errors."""

import dataclasses
import math

import jax
import numpy as np
import pytest
from flax import nnx

from configs import mnist_cnn as default_config
from experiments import mnist_cnn as study
from optlab import models

# 240 / 60 / 100 images, a small CNN, 2 seeds, 3 epochs of 4 steps.
CONFIG = dataclasses.replace(
    default_config.get_config(), train_limit=300, test_limit=100, conv_features=(8, 4),
    dense_features=(16,), batch_size=60, epochs=3, seeds=2, eval_batch_size=100,
)


@pytest.fixture(scope="module")
def results():
    return study.run_study(CONFIG, log=lambda line: None)


def test_default_model_has_the_coursework_parameter_count():
    config = default_config.get_config()
    for placement in config.placements:
        model = nnx.eval_shape(lambda: study.model_fn(placement, config)(rngs=nnx.Rngs(0)))
        assert models.count_params(model) == 628_810, placement


def test_placements_put_dropout_where_they_say_on_the_same_initial_weights():
    small = dataclasses.replace(CONFIG, conv_features=(4,), dense_features=(8,), dropout_rate=0.5)
    built = {
        placement: study.model_fn(placement, small)(rngs=nnx.Rngs(params=3, dropout=4))
        for placement in ("none", "input", "hidden")
    }
    for model in built.values():  # the dropout layers draw from the dropout stream only
        jax.tree.map(
            np.testing.assert_array_equal,
            nnx.state(built["none"], nnx.Param),
            nnx.state(model, nnx.Param),
        )
    rates = {
        placement: [node.rate for _, node in nnx.iter_graph(model) if isinstance(node, nnx.Dropout)]
        for placement, model in built.items()
    }
    assert rates == {"none": [], "input": [0.5], "hidden": [0.5, 0.5]}
    assert built["input"].input_dropout is not None


def test_every_variant_has_a_row_per_seed(results):
    assert [row["variant"] for row in results["variants"]] == ["none", "input", "hidden"]
    assert [(row["variant"], row["seed"]) for row in results["runs"]] == [
        (v, s) for v in ("none", "input", "hidden") for s in (0, 1)
    ]
    for history in results["histories"].values():
        assert history["val_accuracy"].shape == (2, CONFIG.epochs)
        assert np.isfinite(history["train_loss"]).all()


def test_gaps_and_means_are_consistent(results):
    for run in results["runs"]:
        assert run["accuracy_gap"] == pytest.approx(run["train_accuracy"] - run["val_accuracy"])
        assert run["loss_gap"] == pytest.approx(run["val_loss"] - run["train_loss"])
        for key in ("train_accuracy", "val_accuracy", "test_accuracy"):
            assert 0 <= run[key] <= 1
        assert 1 <= run["best_val_epoch"] <= CONFIG.epochs
    for row in results["variants"]:
        runs = [r for r in results["runs"] if r["variant"] == row["variant"]]
        assert row["test_accuracy"] == pytest.approx(np.mean([r["test_accuracy"] for r in runs]))
        assert row["test_accuracy_std"] == pytest.approx(
            np.std([r["test_accuracy"] for r in runs], ddof=1)
        )


def test_training_lowers_the_loss(results):
    losses = results["histories"]["none"]["train_loss"]
    assert (losses[:, -1] < losses[:, 0]).all()


def test_reports_every_table_and_the_metrics(results):
    written = study.write(CONFIG, results)
    assert set(written.tables) == {"results.csv", "runs.csv"}
    assert len(written.tables["runs.csv"]) == 6
    assert list(written.metrics) == ["dropout none", "dropout input", "dropout hidden"]
    assert "acc gap (train - val)" in written.markdown and "±" in written.markdown


def test_a_rerun_with_the_workdir_restores_and_says_so(results, tmp_path):
    assert results["resumed"] == {"none": 0, "input": 0, "hidden": 0}
    assert "Resumed" not in study.summary(CONFIG, results)
    config = dataclasses.replace(CONFIG, placements=("none",), seeds=1, workdir=str(tmp_path))
    first = study.run_study(config, log=lambda line: None)
    again = study.run_study(config, log=lambda line: None)
    assert again["resumed"] == {"none": CONFIG.epochs}
    assert again["runs"] == first["runs"]
    table = study.summary(config, again)
    assert f"Resumed from checkpoints: none at epoch {CONFIG.epochs}." in table
    row = again["variants"][0]
    assert math.isnan(row["compile_seconds"]) and math.isnan(row["run_seconds"])  # not timed
    table_row = next(line for line in table.splitlines() if line.startswith("| none"))
    assert table_row.replace(" ", "").endswith("|—|—|")
