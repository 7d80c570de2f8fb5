"""The MNIST MLP study on a tiny configuration, Hyperband's schedule, files and flags."""

import dataclasses
import json
import os

import numpy as np
import pytest

from configs import mnist_mlp as default_config
from experiments import mnist_mlp as study

# 240 train / 60 validation / 200 test images, 2 seeds, 3 epochs, small hidden layers:
# every study, with as few distinct compiled programs as each allows (9 fits).
CONFIG = dataclasses.replace(
    default_config.get_config(),
    train_limit=300,
    test_limit=200,
    seeds=2,
    epochs=3,
    batch_size=48,
    learning_rate=3e-3,
    hidden=(32, 16),
    batch_sizes=(1, "N"),
    rhos=(0.01,),
    l2_strengths=(0.01,),
    search_first=(16,),
    search_second=(16,),
    search_l2=(1e-6, 1e-3),
    search_learning_rates=(1e-2, 1e-3),
    tuned=(16, 16, 1e-6, 1e-2),
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
            assert record["test_accuracy"].shape == (CONFIG.seeds,)
            assert record["confusion"].sum() == CONFIG.seeds * CONFIG.test_limit
            # Accuracy is the confusion matrix's diagonal share (summed over seeds).
            np.testing.assert_allclose(
                np.trace(record["confusion"]) / record["confusion"].sum(),
                record["test_accuracy"].mean(),
            )
            assert record["history"]["train_loss"].shape == (CONFIG.seeds, CONFIG.epochs)


def test_batch_size_counts_updates_and_full_batch_takes_one_per_epoch(results):
    by_size = records(results, "batch_size")
    rows = study.train_rows(CONFIG)
    assert rows == 240
    assert by_size["batch 1"]["updates"] == CONFIG.epochs * rows
    assert by_size["batch N"]["batch_size"] == rows
    assert by_size["batch N"]["updates"] == CONFIG.epochs
    # 720 updates beat 3 at this size: batch 1 is the only one that learns in 3 epochs.
    assert by_size["batch 1"]["test_accuracy"].mean() > by_size["batch N"]["test_accuracy"].mean()


def test_design_bad_initialization_is_stuck_near_chance(results):
    by_name = records(results, "design")
    bad = by_name["sgd, normal(10, 0.05) init"]
    assert bad["test_accuracy"].mean() < 0.25
    assert by_name["rmsprop rho=0.9"]["test_accuracy"].mean() > 0.5
    # The L2 variants trained in the same fit as their unpenalised baseline.
    assert by_name["rmsprop l2=0.01"]["fit_runs"] == 3 * CONFIG.seeds
    penalty = by_name["rmsprop l2=0.01"]["history"]["penalty"]
    assert np.all(penalty > 0) and np.all(by_name["rmsprop rho=0.9"]["history"]["penalty"] == 0)


def test_search_picks_the_best_of_the_grid_and_retrains_it(results):
    search = results["studies"]["search"]
    grid = search["grid_rows"]
    assert len(grid) == 4
    assert search["best"]["grid"] == max(grid, key=lambda row: row["objective"])["variant"]
    for row in grid:
        np.testing.assert_allclose(
            row["objective"], search["grid"][row["variant"]]["val_accuracy"].mean()
        )
    band = search["hyperband"]
    # R = 3, eta = 3: a bracket of 3 configurations at 1 epoch then 1 at 3, and one of 2 at 3.
    assert [(t.bracket, t.round, t.epochs) for t in band.trials] == [
        (1, 0, 1), (1, 0, 1), (1, 0, 1), (1, 1, 3), (0, 0, 3), (0, 0, 3)
    ]
    assert search["hyperband_epochs_trained"] == 3  # the 3-epoch trials are the grid's runs
    for trial in band.trials:
        if trial.epochs == CONFIG.epochs:
            assert trial.score == search["grid_rows"][trial.config]["objective"]
    assert search["best"]["hyperband"] == search["space"][band.best]
    retrained = search["records"]
    assert set(retrained) == set(search["best"].values())
    for record in retrained.values():
        assert record["trained_on"] == "train + validation"
        assert record["updates"] == CONFIG.epochs * (300 // CONFIG.batch_size)
        assert "val_loss" not in record["history"]


def test_hyperband_schedule_is_table_1_of_li_et_al():
    assert study.hyperband_schedule(81, 3) == [
        [(81, 1), (27, 3), (9, 9), (3, 27), (1, 81)],
        [(34, 3), (11, 9), (3, 27), (1, 81)],
        [(15, 9), (5, 27), (1, 81)],
        [(8, 27), (2, 81)],
        [(5, 81)],
    ]
    # The grid of 36 with R = 100: brackets capped at the pool, budgets rounded.
    assert study.hyperband_schedule(100, 3, pool_size=36)[0] == [
        (36, 1), (12, 4), (4, 11), (1, 33), (1, 100)
    ]
    with pytest.raises(ValueError, match="eta >= 2"):
        study.hyperband_schedule(10, 1)


def test_hyperband_promotes_the_best_and_returns_the_best_trial():
    quality = np.array([0.1, 0.9, 0.5, 0.7, 0.3, 0.2, 0.8, 0.4, 0.6])
    calls = []

    def evaluate(indices, epochs):
        calls.append((sorted(indices), epochs))
        return quality[indices] * epochs / 9  # more epochs, better scores; same order

    result = study.hyperband(9, evaluate, max_epochs=9, eta=3, seed=0)
    assert result.best == 1 and result.best_score == pytest.approx(0.9)
    first_bracket = calls[:3]
    assert first_bracket[0] == (list(range(9)), 1)
    assert first_bracket[1] == ([1, 3, 6], 3)  # the top third of 9
    assert first_bracket[2] == ([1], 9)
    assert result.epochs_spent == sum(len(ids) * epochs for ids, epochs in calls)


def test_writes_json_tables_metrics_and_figures(results, tmp_path):
    run_dir = study.write_outputs(CONFIG, results, tmp_path)
    names = sorted(p.name for p in run_dir.path.iterdir())
    figures = [f"{s}_{kind}.png" for s in default_config.STUDIES
               for kind in ("confusion", "learning_curves", "weights")]
    assert names == sorted(["metrics.jsonl", "results.csv", "results.json", "table.md", *figures])
    saved = json.loads((run_dir.path / "results.json").read_text())
    assert saved["studies"]["search"]["best"] == results["studies"]["search"]["best"]
    table = (run_dir.path / "table.md").read_text()
    assert "coursework time (Keras, 1 run)" in table and "± " in table
    machine = saved["machine"]
    assert machine["cpu_count"] == os.cpu_count() and machine["load_15min"] >= 0
    assert f"(15 min) on {os.cpu_count()} CPUs." in table
    lines = (run_dir.path / "metrics.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    assert first["variant"] == "batch_size/batch 1" and first["epoch"] == 0
    assert len(lines) > 2 * CONFIG.seeds * CONFIG.epochs


def test_load_sentence_reports_the_load_or_says_it_is_unknown():
    machine = {"cpu_count": 2, "load_1min": 4.25, "load_5min": 3.0, "load_15min": 2.5}
    assert study.load_sentence(machine) == (
        "Load average when the study ended: 4.2 (1 min), 2.5 (15 min) on 2 CPUs."
    )
    assert study.load_sentence(None) == "The machine's load was not recorded."
    assert study.load_sentence(machine | {"load_15min": float("nan")}) == (
        "The machine's load was not recorded."
    )


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"seeds": 0}, "--seeds must be at least 1"),
        ({"batch_sizes": (5000,)}, r"--batch_sizes takes sizes in \[1, 4800\]"),
        ({"eta": 1}, "--eta must be at least 2"),
        ({"search_learning_rates": ()}, "search_learning_rates must name at least one value"),
        ({"search_first": (0, 64)}, "hidden sizes must be positive"),
        ({"dropout_rate": 1.0}, r"dropout_rate must be in \[0, 1\)"),
        ({"runs_per_vmap": 0}, "--runs_per_vmap must be at least 1"),
    ],
)
def test_validate_names_the_bad_setting(changes, message):
    with pytest.raises(ValueError, match=message):
        study.validate(dataclasses.replace(default_config.get_config(), **changes))


def test_batch_sizes_flag_reads_integers_and_n():
    assert study._parse_batch_sizes(["1", " n", "256"]) == (1, "N", 256)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--study=speed"], "--study takes any of"),
        (["--batch_sizes=1,x"], "--batch_sizes takes positive integers or N"),
        (["--objective=loss"], "--objective must be one of"),
    ],
)
def test_bad_flags_exit_with_one_readable_line(args, message, tmp_path, run_script):
    done, errors = run_script("experiments.mnist_mlp", f"--out={tmp_path}", *args)
    assert done.returncode != 0
    assert len(errors) == 1 and message in errors[0], done.stderr[-2000:]
    assert "Traceback" not in done.stderr
