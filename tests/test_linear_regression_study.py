"""The linear-regression study at a tiny size: its sweeps, results, files and errors."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import optlab
from configs import linear_regression as default_config
from experiments import linear_regression as study
from optlab.problems import regression
from optlab.train import minibatch

TINY = dataclasses.replace(
    default_config.get_config(), sizes=((40, 2), (70, 3)), seeds=3, steps=24, batch_size=8,
    repeats=1,
)
SETTINGS_PER_SIZE = 3 + 3 + 3 + 3 + 9 + 3  # momentum, RMSprop: beta and lr; Adam: grid and lr


@pytest.fixture(scope="module")
def logged():
    lines = []
    results = study.run_study(TINY, log=lines.append)
    return results, lines


def test_every_setting_has_a_row_with_finite_statistics(logged):
    results, _ = logged
    assert list(results["sizes"]) == ["40x2", "70x3"]
    for size, entry in results["sizes"].items():
        rows = entry["rows"]
        assert len(rows) == SETTINGS_PER_SIZE
        assert {(r["method"], r["sweep"]) for r in rows} == {
            ("momentum", "beta"), ("momentum", "learning_rate"), ("rmsprop", "beta"),
            ("rmsprop", "learning_rate"), ("adam", "b1 x b2"), ("adam", "learning_rate"),
        }
        best = entry["context"]["least_squares_loss"]
        for row in rows:
            assert 0 <= row["reached"] <= TINY.seeds and row["reached_of"].endswith("/3")
            if row["diverged"] < TINY.seeds:
                assert row["final_loss_mean"] >= best * (1 - 1e-5)
            assert row["program_s"] > 0 and row["compile_s"] > 0
        assert [p["method"] for p in entry["programs"]] == ["momentum", "rmsprop", "adam"]
        assert sum(p["runs"] for p in entry["programs"]) == SETTINGS_PER_SIZE * TINY.seeds
        for sweep_result in entry["sweeps"]:
            settings = len(sweep_result["labels"])
            assert sweep_result["losses"].shape == (settings, TINY.seeds, TINY.steps + 1)
    totals = results["totals"]
    assert totals["sweeps"] == 12 and totals["programs"] == 6
    assert totals["runs"] == 2 * SETTINGS_PER_SIZE * TINY.seeds


def test_progress_is_logged_per_size_method_and_sweep(logged):
    _, lines = logged
    assert sum(line.startswith("40x2: data, least squares") for line in lines) == 1
    assert sum(line.startswith("70x3 adam:") for line in lines) == 1
    assert sum("sweep: reached the target" in line for line in lines) == 12


def test_settings_shared_by_two_sweeps_give_identical_runs(logged):
    # Momentum's beta sweep at beta = 0.9 and its learning-rate sweep at lr = 1e-3 are the
    # same setting; with shared seeds (initial weights and shuffles) the runs are equal.
    results, _ = logged
    beta_sweep, lr_sweep = results["sizes"]["70x3"]["sweeps"][:2]
    same = beta_sweep["losses"][beta_sweep["labels"].index("beta=0.9")]
    np.testing.assert_array_equal(same, lr_sweep["losses"][lr_sweep["labels"].index("lr=0.001")])


def test_only_d_equal_2_keeps_median_paths(logged):
    results, _ = logged
    paths = results["sizes"]["40x2"]["sweeps"][0]["paths"]
    assert len(paths) == 3 and all(p.shape == (TINY.steps + 1, 2) for p in paths)
    assert results["sizes"]["70x3"]["sweeps"][0]["paths"] is None


def test_reports_json_table_csv_and_figures(logged):
    results, _ = logged
    written = study.write(TINY, results)
    assert set(written.figures) == {"contour_40x2.png", "convergence_40x2.png",
                                    "convergence_70x3.png"}
    assert set(written.results["sizes"]["40x2"]) == {"context", "rows", "programs"}
    assert "n = 70, d = 3" in written.markdown and "b1=0.9, b2=0.9" in written.markdown
    assert len(written.tables["results.csv"]) == 2 * SETTINGS_PER_SIZE


def test_vmapped_sweep_equals_the_unbatched_runs():
    """One program over (beta, seed) gives, member by member, the runs made one at a time."""
    config = dataclasses.replace(TINY, steps=12)
    data = regression.make_regression(5, 40, 2, dtype=jnp.float64)
    keys = jax.random.split(jax.random.key(9), 2)
    initial = jax.random.normal(keys[0], (2, 2), jnp.float64)
    orders = jax.vmap(lambda k: minibatch.shuffled_batches(k, 40, 8, 12))(keys)
    batches = minibatch.take_batches((data.features, data.targets), orders)
    problem = study.Problem(data, regression.least_squares(data.features, data.targets),
                            initial, batches)
    settings = {"learning_rate": jnp.array([1e-2, 1e-3, 1e-3]), "beta": jnp.array([0.9, 0.7, 0.8])}
    sw = study.Sweep("momentum", "mixed", tuple(
        {"learning_rate": float(lr), "beta": float(b)}
        for lr, b in zip(settings["learning_rate"], settings["beta"])), ("a", "b", "c"))
    [(losses, paths)], _ = study.run_method(config, problem, [sw])
    assert losses.shape == (3, 2, 13) and paths.shape == (3, 2, 13, 2)

    @jax.jit
    def alone(learning_rate, beta, initial_weights, seed_batches):
        # The rule itself, not its inject_hyperparams form, one run at a time.
        return minibatch.run_minibatch(
            regression.mse_loss,
            optlab.momentum(learning_rate, beta),
            initial_weights,
            seed_batches,
            evaluate=problem.solution.mse,
            keep_trajectory=True,
        )

    for i in range(3):
        for seed in range(2):
            run = alone(
                settings["learning_rate"][i],
                settings["beta"][i],
                initial[seed],
                tuple(b[seed] for b in batches),
            )
            np.testing.assert_allclose(losses[i, seed], run.losses, rtol=1e-12)
            np.testing.assert_allclose(paths[i, seed], run.trajectory, rtol=1e-12)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"sizes": ()}, "--sizes needs one size at least"),
        ({"sizes": ((0, 2),)}, "n >= 1 and d >= 1"),
        ({"sizes": ((20, 2),), "batch_size": 32}, "--batch_size=32 is larger than n = 20"),
        ({"steps": 0}, "--steps must be at least 1"),
        ({"learning_rates": (0.1, -0.01)}, "--learning_rates must each be positive"),
        ({"momentum_learning_rate": 0.0}, "momentum_learning_rate"),
        ({"betas": (0.5, 1.0)}, "--betas must each lie in [0, 1)"),
        ({"lr_sweep_adam_betas": (0.9, -0.1)}, "lr_sweep_adam_betas"),
        ({"methods": ("adam", "sgdd")}, "--methods takes one or more of momentum"),
        ({"target_factor": 0.9}, "--target_factor must be greater than 1"),
        ({"record_every": 7}, "record_every must divide --steps=24"),
    ],
)
def test_bad_configurations_are_refused_with_a_readable_message(change, message):
    with pytest.raises(ValueError) as error:
        study.STUDY.check(dataclasses.replace(TINY, **change))
    assert message in str(error.value)


@pytest.mark.parametrize("texts", [["500"], ["500x"], ["-5x2"], ["500x2", "2x2x2"]])
def test_malformed_sizes_are_refused(texts):
    with pytest.raises(ValueError, match="--sizes takes NxD pairs"):
        default_config.parse_sizes(texts)
