"""The 2-D test-function study: reproducible runs, one vmapped program, files and errors."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

import optlab
from configs import test_functions as default_config
from experiments import test_functions as study
from experiments.kit import cli
from experiments.kit.rundir import RunDir

SCENARIOS = {scenario.name: scenario for scenario in default_config.SCENARIOS}
# Every scenario with one of its methods, so that each update rule runs once: each
# method is a compiled program, and compiling dominates the time of these tests.
ONE_METHOD = {"bowl": 2, "matyas": 1, "monkey_saddle": 2, "mult": 0, "easom": 1}
TINY = dataclasses.replace(
    default_config.get_config(),
    seeds=2,
    repeats=1,
    fps=4,
    scenarios=tuple(
        dataclasses.replace(s, steps=3, methods=(s.methods[ONE_METHOD[s.name]],))
        for s in default_config.SCENARIOS
    ),
)


@pytest.fixture(scope="module")
def results():
    lines = []
    output = study.run_study(TINY, log=lines.append)
    assert len(lines) == sum(len(scenario.methods) for scenario in TINY.scenarios)
    return output


def test_runs_are_deterministic_and_the_vmapped_sweep_equals_unbatched_runs():
    scenario = dataclasses.replace(SCENARIOS["mult"], steps=6)
    method = scenario.methods[0]  # Adam: the most state
    batched, timing = study.run_method(dataclasses.replace(TINY, seeds=3), scenario, method)
    assert timing.compile_seconds > 0 and timing.run_seconds > 0
    assert batched.paths.shape == (3, 7, 2)
    one = jax.jit(study.seed_run(scenario, method))
    for seed in range(3):
        single = one(jnp.asarray(seed))
        for leaf, batch in zip(single, batched):
            np.testing.assert_allclose(leaf, batch[seed], rtol=1e-12, atol=1e-14)
    for leaf, again in zip(one(jnp.asarray(0)), one(jnp.asarray(0))):
        np.testing.assert_array_equal(leaf, again)
    np.testing.assert_array_equal(batched.paths[:, 0], np.tile([0.8, 0.8], (3, 1)))
    assert not np.allclose(batched.paths[0], batched.paths[1])  # the seeds' noise differs


def test_bowl_tells_the_classic_learning_rate_story():
    config = dataclasses.replace(TINY, seeds=4)
    scenario = SCENARIOS["bowl"]
    entry = study.run_scenario(config, scenario, log=lambda line: None)
    too_high, too_low, right = entry["rows"]
    assert too_high["final_distance"] > 1e6 and too_high["iterations_count"] == 0
    assert too_low["iterations_count"] == 0 and too_low["final_distance"] > 4
    assert right["iterations_count"] == 4 and right["iterations"] < 15
    assert right["final_distance"] < 1
    assert "sgd α=0.1 gets below 1 fastest" in entry["takeaway"]
    assert "sgd α=2 diverges" in entry["takeaway"]
    # The plotted path is the median seed's run, and SGD with added noise is noisy_sgd.
    seed = entry["median_seed"]["sgd α=0.1"]
    final_distances = entry["per_seed"]["sgd α=0.1"]["final_distance"]
    assert np.sum(final_distances < final_distances[seed]) == (config.seeds - 1) // 2
    reference = optlab.minimize(
        optlab.problems.bowl,
        jnp.asarray(scenario.start),
        optlab.noisy_sgd(0.1, scenario.sigma, seed),
        stop=optlab.stopping.never(),
        max_iters=scenario.steps,
        history=scenario.steps + 1,
        record_params=True,
    )
    np.testing.assert_allclose(entry["paths"]["sgd α=0.1"], reference.history.params, rtol=1e-13)


def test_study_reports_every_scenario_and_method(results):
    assert list(results["scenarios"]) == [scenario.name for scenario in TINY.scenarios]
    for scenario in TINY.scenarios:
        entry = results["scenarios"][scenario.name]
        labels = [study.describe(method) for method in scenario.methods]
        assert [row["method"] for row in entry["rows"]] == labels
        assert set(entry["paths"]) == set(labels)
        for label in labels:
            assert entry["paths"][label].shape == (scenario.steps + 1, 2)
            assert 0 <= entry["median_seed"][label] < TINY.seeds
        assert entry["takeaway"].endswith(".")
    saddle = results["scenarios"]["monkey_saddle"]
    assert "leaving the saddle is the goal" in saddle["takeaway"]


def test_reports_tables_figures_and_an_animation(results, tmp_path):
    config = dataclasses.replace(TINY, animate=True)
    written = study.write(config, results)
    names = set(written.figures) | set(written.animations)
    assert names == {f"{kind}-{scenario.name}.{suffix}" for scenario in TINY.scenarios
                     for kind, suffix in (("contour", "png"), ("surface", "png"), ("path", "gif"))}
    assert results["scenarios"]["bowl"]["rows"][0]["method"] == "sgd α=0.1"
    table = written.markdown
    assert table.count("Takeaway:") == len(TINY.scenarios) and "heavy ball α=0.01 γ=0.99" in table
    rows = written.tables["results.csv"]
    assert len(rows) == sum(len(scenario.methods) for scenario in TINY.scenarios)
    run_dir = RunDir.create(tmp_path, "animation")
    cli.write_report(run_dir, written._replace(figures={}, tables={}))
    with Image.open(run_dir.path / "path-bowl.gif") as gif:
        assert gif.n_frames == TINY.scenarios[0].steps + 1


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(scenario=("bowl", "saddle")), "unknown scenario saddle; choose from bowl"),
        (dict(method=default_config.Method("adam", 0.1, beta2=1.5)), "b2 must be in [0.0, 1.0)"),
        (dict(method=default_config.Method("lbfgs", 0.1)), "unknown rule 'lbfgs'"),
    ],
)
def test_validate_rejects_bad_configurations(change, message):
    scenario = SCENARIOS["bowl"]
    if "method" in change:
        scenario = dataclasses.replace(scenario, methods=(change.pop("method"),))
    config = dataclasses.replace(TINY, scenarios=(scenario,), **change)
    with pytest.raises(ValueError) as error:
        study.STUDY.check(config)
    assert message in str(error.value)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--lr=-0.1"], "bowl, sgd α=-0.1: learning_rate must be"),
        (["--scenario=matyas", "--beta=1"], "gamma must be in [0.0, 1.0), got 1.0"),
    ],
)
def test_hyperparameters_from_flags_are_checked_by_the_rules(args, message, tmp_path, call_study):
    status, errors = call_study(study.STUDY, f"--out={tmp_path}", *args)
    assert status == 2
    assert len(errors) == 1 and message in errors[0], errors
    assert not any(tmp_path.iterdir())
