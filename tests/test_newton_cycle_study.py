"""The Newton-cycle study: its verdicts, its files and its errors."""

import dataclasses

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


def test_the_summary_explains_the_cycle(results):
    written = study.write(CONFIG, results)
    assert "indefinite" in written.markdown
    assert written.tables["results.csv"][0]["status"] == "cycling"
