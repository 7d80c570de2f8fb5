"""The Newton-cycle study: its verdicts, its files and its errors."""

import dataclasses
import json

import numpy as np
import pytest

from configs import newton_cycle as default_config
from experiments import newton_cycle as study

CONFIG = dataclasses.replace(default_config.get_config(), max_iters=1000)


@pytest.fixture(scope="module")
def results():
    return study.run_study(CONFIG, log=lambda line: None)


def test_newton_cycles_and_the_others_converge(results):
    rows = {row["method"]: row for row in results["rows"]}
    assert rows["newton"]["status"] == "cycling"
    for method in ("gradient descent", "steepest descent", "regularized newton"):
        assert rows[method]["status"] == "converged", method
        assert rows[method]["distance"] < CONFIG.eps
    x_star = results["minimizer"][0]
    assert abs(x_star**3 - 2 * x_star + 2) < 1e-12


def test_newton_iterates_fix_y_then_alternate_x(results):
    iterates = results["newton_iterates"]
    np.testing.assert_array_equal(iterates[:4], [[0, 2], [1, 1], [0, 1], [1, 1]])


def test_hessian_story_has_the_signs_that_explain_the_cycle(results):
    at = {row["x"]: row for row in results["hessian"]}
    assert at[0.0]["f_xx"] == -2.0 and at[0.0]["hessian"] == "indefinite"
    assert at[0.0]["newton_step_x"] == 1.0
    assert at[1.0]["f_xx"] == 1.0 and at[1.0]["newton_step_x"] == -1.0


def test_writes_json_table_csv_and_contour(results, tmp_path):
    run_dir = study.write_outputs(CONFIG, results, tmp_path)
    names = sorted(p.name for p in run_dir.path.iterdir())
    assert names == ["contour.png", "results.csv", "results.json", "table.md"]
    saved = json.loads((run_dir.path / "results.json").read_text())
    assert saved["rows"][0]["status"] == "cycling"
    assert "indefinite" in (run_dir.path / "table.md").read_text()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--learning_rate=-0.1"], "--learning_rate must be positive"),
        (["--min_curvature=0"], "--min_curvature must be positive"),
        (["--max_iters=0"], "--max_iters must be at least 1"),
    ],
)
def test_bad_flags_exit_with_one_readable_line(args, message, tmp_path, run_script):
    done, errors = run_script("experiments.newton_cycle", f"--out={tmp_path}", *args)
    assert done.returncode != 0
    assert len(errors) == 1 and message in errors[0], done.stderr[-2000:]
    assert "Traceback" not in done.stderr
