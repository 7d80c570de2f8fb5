"""The quasi-Newton study at a tiny size: its results, its files, and its errors."""

import dataclasses

import numpy as np
import pytest

from configs import quasi_newton as default_config
from experiments import quasi_newton as study

TINY = dataclasses.replace(
    default_config.get_config(), sizes=(3, 6), seeds=3, repeats=1, max_iters=200
)


@pytest.fixture(scope="module")
def results():
    return study.run_study(TINY, log=lambda line: None)


def test_every_method_and_reference_converges(results):
    for n in TINY.sizes:
        rows = {row["method"]: row for row in results["sizes"][n]["rows"]}
        assert set(rows) == set(TINY.methods) | {"scipy BFGS", "scipy L-BFGS-B"}
        for method in ("newton", "sr1", "sr1_exact", "bfgs", "lbfgs", "scipy BFGS"):
            assert rows[method]["converged"] == "3/3", (n, method)
        assert rows["newton"]["iterations"] == 1.0
        assert rows["sr1_exact"]["iterations"] == 1.0
        bfgs = rows["bfgs"]
        assert bfgs["iterations_ci_low"] <= bfgs["iterations"] <= bfgs["iterations_ci_high"]
        assert rows["bfgs"]["time_per_run_s"] > 0 and rows["bfgs"]["compile_s"] > 0
        curves = results["sizes"][n]["curves"]["bfgs"]
        assert curves.shape[0] == TINY.seeds and np.all(curves[:, -1] < TINY.eps)


def test_report_has_a_csv_row_per_size_and_method(results):
    written = study.write(TINY, results)
    rows = written.tables["results.csv"]
    assert len(rows) == len(TINY.sizes) * (len(TINY.methods) + 2)
    assert "n = 6" in written.markdown and "scipy BFGS" in written.markdown


def test_rosenbrock_study_reports_the_classic_start():
    config = dataclasses.replace(
        default_config.get_config("rosenbrock"), seeds=2, repeats=1, methods=("newton", "bfgs"),
        scipy=False,
    )
    results = study.run_study(config, log=lambda line: None)
    classic = {row["method"]: row for row in results["sizes"][2]["classic_start"]}
    assert classic["newton"] == {"method": "newton", "iterations": 4, "status": "converged"}
    assert classic["bfgs"]["status"] == "converged"
