"""The MNIST MLP study on a tiny configuration, Hyperband's schedule, files and flags."""

import dataclasses

import numpy as np
import pytest

from configs import mnist_mlp as default_config
from experiments import mnist_mlp as study
from optlab import datasets

# 240 train / 60 validation / 200 test images, 2 seeds, 3 epochs, small hidden layers:
# every study, with as few distinct compiled programs as each allows (9 fits).
CONFIG = dataclasses.replace(
    default_config.get_config(), train_limit=300, test_limit=200, seeds=2, epochs=3, batch_size=48,
    learning_rate=3e-3, hidden=(32, 16), batch_sizes=(1, "N"), rhos=(0.01,), l2_strengths=(0.01,),
    search_first=(16,), search_second=(16,), search_l2=(1e-6, 1e-3),
    search_learning_rates=(1e-2, 1e-3), tuned=(16, 16, 1e-6, 1e-2),
)


@pytest.fixture(scope="module")
def results():
    return study.run_study(CONFIG, log=lambda line: None)


def records(results, name):
    return results["studies"][name]["records"]


def test_every_study_reports_every_variant_over_the_seeds(results):
    assert list(results["studies"]) == list(default_config.STUDIES)
    expected = {
        "batch_size": ["batch 1", "batch N"],
        "design": [variant.name for variant in study.design_variants(CONFIG)],
        "tuned": ["tuned 16-16 l2=1e-06 lr=0.01"],
    }
    for name, variants in expected.items():
        assert list(records(results, name)) == variants
    for result in results["studies"].values():
        for record in result["records"].values():
            assert record["per_seed"]["test_accuracy"].shape == (CONFIG.seeds,)
            assert record["confusion"].sum() == CONFIG.seeds * CONFIG.test_limit
            # Accuracy is the confusion matrix's diagonal share (summed over seeds).
            np.testing.assert_allclose(
                np.trace(record["confusion"]) / record["confusion"].sum(),
                record["test_accuracy"] / 100,
            )
            assert record["history"]["train_loss"].shape == (CONFIG.seeds, CONFIG.epochs)


def test_batch_size_counts_updates_and_full_batch_takes_one_per_epoch(results):
    by_size = records(results, "batch_size")
    rows, _ = datasets.mnist_split_sizes(CONFIG.train_limit, CONFIG.validation_fraction)
    assert rows == 240
    assert by_size["batch 1"]["updates"] == CONFIG.epochs * rows
    assert by_size["batch N"]["batch_size"] == rows
    assert by_size["batch N"]["updates"] == CONFIG.epochs
    # 720 updates beat 3 at this size: batch 1 is the only one that learns in 3 epochs.
    assert by_size["batch 1"]["test_accuracy"] > by_size["batch N"]["test_accuracy"]


def test_design_bad_initialization_is_stuck_near_chance(results):
    by_name = records(results, "design")
    bad = by_name["sgd, normal(10, 0.05) init"]
    assert bad["test_accuracy"] < 25  # percent
    assert by_name["rmsprop rho=0.9"]["test_accuracy"] > 50
    # The L2 variants trained in the same fit as their unpenalised baseline.
    assert by_name["rmsprop l2=0.01"]["fit_runs"] == 3 * CONFIG.seeds
    penalty = by_name["rmsprop l2=0.01"]["history"]["penalty"]
    assert np.all(penalty > 0) and np.all(by_name["rmsprop rho=0.9"]["history"]["penalty"] == 0)


def test_search_picks_the_best_of_the_grid_and_retrains_it(results):
    search = results["studies"]["search"]
    grid, band = search["searches"]["grid"], search["searches"]["hyperband"]
    assert len(grid.trials) == 4
    assert search["best"]["grid"] == search["space"][max(grid.trials, key=lambda t: t.score).config]
    for trial in grid.trials:
        np.testing.assert_allclose(
            trial.score,
            search["grid"][search["space"][trial.config]]["per_seed"]["val_accuracy"].mean(),
        )
    # R = 3, eta = 3: a bracket of 3 configurations at 1 epoch then 1 at 3, and one of 2 at 3.
    assert [(t.bracket, t.round, t.epochs) for t in band.trials] == [
        (1, 0, 1), (1, 0, 1), (1, 0, 1), (1, 1, 3), (0, 0, 3), (0, 0, 3)
    ]
    assert band.epochs_trained == 3  # the 3-epoch trials are the grid's runs
    for trial in band.trials:
        if trial.epochs == CONFIG.epochs:
            assert trial.score == grid.trials[trial.config].score
    assert search["best"]["hyperband"] == search["space"][band.best]
    retrained = search["records"]
    assert set(retrained) == set(search["best"].values())
    for record in retrained.values():
        assert record["updates"] == CONFIG.epochs * (300 // CONFIG.batch_size)
        assert "val_loss" not in record["history"]


def test_reports_tables_metrics_and_figures(results):
    written = study.write(CONFIG, results)
    assert set(written.figures) == {f"{s}_{kind}.png" for s in default_config.STUDIES
                                    for kind in ("confusion", "learning_curves", "weights")}
    assert written.results["search"]["best"] == results["studies"]["search"]["best"]
    assert "Top of the grid" in written.markdown and "± " in written.markdown
    assert next(iter(written.metrics)) == "batch_size/batch 1"
    rows = written.tables["results.csv"]
    assert [row["study"] for row in rows].count("design") == len(study.design_variants(CONFIG))
    weights = written.figures["design_weights.png"]
    assert [ax.get_title() for ax in weights.axes] == [
        "layer 1 784x32", "layer 2 32x16", "layer 3 16x10"]


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"batch_sizes": (5000,)}, r"take sizes in \[1, 4800\]"),
        ({"eta": 1}, "--eta must be at least 2"),
        ({"search_first": (0, 64)}, "--search_first must each be at least 1"),
        ({"dropout_rate": 1.0}, r"--dropout_rate must lie in \[0, 1\)"),
        ({"studies": ("speed",)}, "--study takes one or more of batch_size"),
    ],
)
def test_validate_names_the_bad_setting(changes, message):
    with pytest.raises(ValueError, match=message):
        study.STUDY.check(dataclasses.replace(default_config.get_config(), **changes))


def test_batch_sizes_flag_reads_integers_and_n():
    assert default_config.parse_batch_sizes(("1", " n", "256")) == (1, "N", 256)
    with pytest.raises(ValueError, match="positive integers or N"):
        default_config.parse_batch_sizes(("1", "x"))
