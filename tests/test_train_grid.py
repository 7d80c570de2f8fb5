"""optlab.train.grid: variants grouped into programs, each run equal to its variant alone."""

import functools

import numpy as np
import optax
import pytest

import optlab
from optlab import models, stats, train

FEATURES, CLASSES = 4, 2


def _data(seed, rows):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, FEATURES)).astype(np.float32)
    return x, (x[:, 0] + x[:, 1] > 0).astype(np.int32)


TRAIN, VAL = _data(0, 64), _data(1, 32)
NARROW = functools.partial(models.MLP, (FEATURES, 8, CLASSES))
WIDE = functools.partial(models.MLP, (FEATURES, 16, CLASSES))
SGD = optax.inject_hyperparams(optlab.sgd)(learning_rate=0.1)
VARIANTS = [
    train.Variant("lr 0.1", NARROW, SGD, {"learning_rate": 0.1}, batch_size=16),
    train.Variant("wide", WIDE, SGD, {"learning_rate": 0.1}, batch_size=16),
    train.Variant("lr 0.03 + l2", NARROW, SGD, {"learning_rate": 0.03}, l2=1e-2, batch_size=16),
    train.Variant("batch 32", NARROW, SGD, {"learning_rate": 0.1}, batch_size=32),
]


def test_variants_that_share_model_optimizer_and_batch_size_train_together():
    names = [[variant.name for variant in group] for group in train.grid.groups(VARIANTS)]
    assert names == [["lr 0.1", "lr 0.03 + l2"], ["wide"], ["batch 32"]]


@pytest.fixture(scope="module")
def grid():
    lines = []
    results = train.run_grid(VARIANTS, [3, 4], train.classification(), TRAIN, max_epochs=3,
                             validation=VAL, log=lines.append)
    return results, lines


def test_every_variant_equals_its_runs_trained_alone(grid):
    results, lines = grid
    assert list(results) == [variant.name for variant in VARIANTS]
    assert sum("in one program" in line for line in lines) == 3
    for variant in VARIANTS:
        result = results[variant.name]
        assert result.seeds == (3, 4) and result.history["val_loss"].shape == (2, 3)
        alone = train.fit(
            train.init_runs(variant.model, variant.optimizer, seeds=[3, 4],
                            hyperparams=dict(variant.hyperparams), l2=variant.l2),
            train.classification(), TRAIN, batch_size=variant.batch_size, max_epochs=3,
            validation=VAL)
        for name, values in alone.history.items():
            np.testing.assert_allclose(result.history[name], values, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(result.take(result.fit.epochs_trained),
                                      alone.epochs_trained)
    assert results["lr 0.1"].fit is results["lr 0.03 + l2"].fit
    assert results["lr 0.1"].group == 0 and results["batch 32"].group == 2


def test_seed_rows_summarise_each_variant_and_list_each_run(grid):
    results, _ = grid
    measures = {name: {"loss": r.history["val_loss"][:, -1]} for name, r in results.items()}
    variants, runs = train.grid.seed_rows(results, measures, ".3f")
    assert [row["variant"] for row in variants] == list(results)
    for row in variants:
        losses = measures[row["variant"]]["loss"]
        assert row["seeds"] == 2 and row["loss"] == pytest.approx(np.mean(losses))
        assert row["loss_std"] == pytest.approx(np.std(losses, ddof=1))
        interval = stats.summarize(losses)
        assert (row["loss_ci_low"], row["loss_ci_high"]) == (interval.ci_low, interval.ci_high)
        assert row["loss_count"] == 2
        assert row["loss_text"] == f"{np.mean(losses):.3f} ± {np.std(losses, ddof=1):.3f}"
        assert row["run_seconds"] == results[row["variant"]].fit.run_seconds
    assert [(row["variant"], row["seed"]) for row in runs[:2]] == [("lr 0.1", 3), ("lr 0.1", 4)]
    assert runs[1]["loss"] == pytest.approx(measures["lr 0.1"]["loss"][1])


def test_programs_list_each_fit_once_with_its_variants_runs_and_times(grid):
    results, _ = grid
    rows = train.grid.programs(results.values())
    assert [row["variants"] for row in rows] == [["lr 0.1", "lr 0.03 + l2"], ["wide"], ["batch 32"]]
    assert [row["runs"] for row in rows] == [4, 2, 2]
    assert rows[1]["run_seconds"] == results["wide"].fit.run_seconds
    assert all(row["first_epoch"] == 0 for row in rows)


def test_a_grid_checkpoints_each_program_apart_and_resumes(tmp_path):
    variants = VARIANTS[:2]
    first = train.run_grid(variants, [0], train.classification(), TRAIN, max_epochs=2,
                           checkpoint_dir=str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0-lr_0.1", "1-wide"]
    again = train.run_grid(variants, [0], train.classification(), TRAIN, max_epochs=2,
                           checkpoint_dir=str(tmp_path))
    for name in ("lr 0.1", "wide"):
        assert again[name].fit.first_epoch == 2
        np.testing.assert_array_equal(again[name].history["train_loss"],
                                      first[name].history["train_loss"])


@pytest.mark.parametrize("variants, seeds, message", [
    ([VARIANTS[0], VARIANTS[0]], [0], "distinct names"),
    ([], [0], "distinct names"),
    (VARIANTS[:1], [], "at least one seed"),
    ([VARIANTS[0], VARIANTS[2]._replace(hyperparams={})], [0], "same hyperparameters"),
])
def test_bad_grids_are_refused(variants, seeds, message):
    with pytest.raises(ValueError, match=message):
        train.run_grid(variants, seeds, train.classification(), TRAIN, max_epochs=1)
