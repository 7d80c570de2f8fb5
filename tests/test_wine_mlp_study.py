"""The wine MLP study on a tiny config: its results, the manual backward pass, its files."""

import dataclasses

import numpy as np
import pytest

from configs import wine_mlp as default_config
from experiments import wine_mlp as study
from optlab import datasets
from optlab.models import activations

SEEDS, EPOCHS = 2, 3


def tiny(recipe):
    return dataclasses.replace(default_config.get_config(recipe), seeds=SEEDS, epochs=EPOCHS,
                               power_epochs=EPOCHS, train_limit=320, test_limit=100)


CONFIG = tiny("keras")


@pytest.fixture(scope="module", params=default_config.RECIPES)
def recipe(request):
    config = tiny(request.param)
    return config, study.run_study(config, log=lambda line: None)


@pytest.fixture(scope="module")
def results(recipe):
    return recipe[1]


def test_default_config_is_the_coursework_recipe_and_keras_keeps_its_rates():
    config = default_config.get_config()
    assert config.recipe == "coursework" and config.learning_rates == (1e-3,)
    assert (config.epochs, config.power_epochs, config.power_learning_rate) == (150, 100, 5e-4)
    assert (config.batch_size, config.l2, config.seeds) == (32, 0.01, 5)
    assert config.hidden_sizes == (16, 12, 8)
    assert default_config.get_config("keras").learning_rates == (1e-3, 1e-2)


def test_one_row_per_variant_and_learning_rate(recipe):
    config, results = recipe
    rows = results["rows"]
    assert [(row["variant"], row["learning_rate"]) for row in rows] == [
        (variant, rate) for variant in study.VARIANTS for rate in config.learning_rates
    ]
    assert results["parameters"] == {"leaky_relu": 518, "power": 519}
    assert results["data"] == {
        "train_rows": 320,
        "test_rows": 100,
        "test_majority_accuracy": pytest.approx(results["data"]["test_majority_accuracy"]),
    }
    for row in rows:
        per_seed = np.asarray(row["test_accuracy_per_seed"])
        assert per_seed.shape == (SEEDS,)
        # Accuracies of 100 test rows are multiples of 1/100.
        np.testing.assert_allclose(per_seed * 100, np.round(per_seed * 100), atol=1e-4)
        assert row["test_accuracy"] == pytest.approx(per_seed.mean())
        assert row["test_accuracy_mean"] == pytest.approx(per_seed.mean())
        assert row["test_accuracy_min"] == pytest.approx(per_seed.min())
        assert row["test_accuracy_std"] == pytest.approx(per_seed.std(ddof=1))
        assert row["above_target"] == (row["test_accuracy"] > config.target_accuracy)
        assert 0 <= row["train_accuracy"] <= 1


def test_the_power_variant_reports_projected_exponents(results):
    for row in results["rows"]:
        if row["variant"] == "power":
            exponents = np.asarray(row["exponent_per_seed"])
            assert exponents.shape == (SEEDS,)
            assert np.all(exponents >= activations.MIN_EXPONENT)
            assert row["exponent"] == pytest.approx(exponents.mean())
        else:
            assert "exponent" not in row


def test_histories_have_seeds_by_epochs(recipe):
    config, results = recipe
    assert list(results["histories"]) == [
        f"{variant} lr={rate:g}" for variant in study.VARIANTS for rate in config.learning_rates]
    for history in results["histories"].values():
        assert history["train_loss"].shape == (SEEDS, EPOCHS)
        assert np.all(np.isfinite(history["train_loss"]))
        # The engine also records the test loss per epoch (its validation data).
        assert ("val_loss" in history) == (config.recipe == "keras")


def test_manual_backpropagation_trains_like_autodiff(recipe):
    config, results = recipe
    checked = list(study.VARIANTS) if config.recipe == "coursework" else []
    assert [entry["variant"] for entry in results["manual"]] == checked
    first_rate_rows = {row["variant"]: row for row in results["rows"]
                       if row["learning_rate"] == config.learning_rates[0]}
    for entry in results["manual"]:
        # float32: the two backward passes round differently, by far less than one step.
        assert entry["max_param_difference"] < 1e-5
        assert entry["max_loss_difference"] < 1e-5
        assert entry["manual_test_accuracy"] == entry["autodiff_test_accuracy"]
        # The autodiff accuracy, recomputed from the parameters with manual_mlp.forward,
        # is the recipe's own for seed 0.
        expected = first_rate_rows[entry["variant"]]["test_accuracy_per_seed"][0]
        assert entry["autodiff_test_accuracy"] == pytest.approx(expected, abs=1e-6)


def test_the_coursework_recipe_takes_the_coursework_split_and_weights():
    config = tiny("coursework")
    data = study.load_data(config)
    split = datasets.load_wine_coursework()
    np.testing.assert_array_equal(data.x_test, split.x_test[:100])
    np.testing.assert_array_equal(data.x_train, split.x_train[:320])


def test_reports_tables_figures_and_metrics(recipe):
    config, results = recipe
    written = study.write(config, results)
    manual = config.recipe == "coursework"
    assert set(written.figures) == {"loss_curves.png"} | ({"manual_vs_autodiff.png"} if manual
                                                          else set())
    assert set(written.tables) == {"results.csv"} | ({"manual.csv"} if manual else set())
    assert "histories" not in written.results
    assert set(written.metrics) == {
        f"{variant} lr={rate:g}" for variant in study.VARIANTS for rate in config.learning_rates
    }
    assert "learned exponent" in written.markdown
    assert ("Manual backpropagation" in written.markdown) == manual
    assert "lowest seed's test accuracy" in written.markdown


def test_a_batch_larger_than_the_training_rows_and_a_coursework_workdir_are_refused():
    with pytest.raises(ValueError, match="larger than the 1199 training rows"):
        study.STUDY.check(dataclasses.replace(default_config.get_config(), batch_size=5000))
    with pytest.raises(ValueError, match="--workdir goes with --recipe=keras"):
        study.STUDY.check(dataclasses.replace(default_config.get_config(), workdir="/tmp/w"))


def test_the_script_runs_and_keeps_its_output_clean(tmp_path, run_script):
    out = tmp_path / "out"
    done, errors = run_script(
        "experiments.wine_mlp", f"--out={out}", "--recipe=keras", f"--workdir={tmp_path / 'work'}",
        "--seeds=1",
        "--epochs=1", "--learning_rates=0.01", "--compilation_cache=",
    )
    assert done.returncode == 0 and not errors, done.stderr[-2000:]
    assert "Results in" in done.stdout and len(list(out.iterdir())) == 1
    # No traceback and no INFO records (JAX's missing TPU runtime, orbax's checkpoint
    # manager): absl shows WARNING and above unless --verbosity is given.
    assert "Traceback" not in done.stderr and "tpu" not in done.stderr.lower(), done.stderr
    assert not [line for line in done.stderr.splitlines() if line.startswith("I")], done.stderr
