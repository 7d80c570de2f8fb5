"""The quasi-Newton study at a tiny size: its results, its files, and its errors."""

import dataclasses
import json

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
        assert rows["newton"]["iterations_mean"] == 1.0
        assert rows["sr1_exact"]["iterations_mean"] == 1.0
        assert rows["bfgs"]["ci95_low"] <= rows["bfgs"]["iterations_mean"] <= rows["bfgs"]["ci95_high"]
        assert rows["bfgs"]["time_per_run_s"] > 0 and rows["bfgs"]["compile_s"] > 0
        curves = results["sizes"][n]["curves"]["bfgs"]
        assert curves.shape[0] == TINY.seeds and np.all(curves[:, -1] < TINY.eps)


def test_writes_json_table_csv_and_figure(results, tmp_path):
    run_dir = study.write_outputs(TINY, results, tmp_path)
    names = sorted(p.name for p in run_dir.path.iterdir())
    assert names == ["convergence.png", "results.csv", "results.json", "table.md"]
    saved = json.loads((run_dir.path / "results.json").read_text())
    assert saved["config"]["seeds"] == 3
    table = (run_dir.path / "table.md").read_text()
    assert "n = 6" in table and "scipy BFGS" in table
    csv_lines = (run_dir.path / "results.csv").read_text().splitlines()
    assert len(csv_lines) == 1 + len(TINY.sizes) * (len(TINY.methods) + 2)


def test_rosenbrock_study_reports_the_classic_start():
    config = dataclasses.replace(
        default_config.get_config("rosenbrock"), seeds=2, repeats=1, methods=("newton", "bfgs"),
        scipy=False,
    )
    results = study.run_study(config, log=lambda line: None)
    classic = {row["method"]: row for row in results["sizes"][2]["classic_start"]}
    assert classic["newton"] == {"method": "newton", "iterations": 4, "status": "converged"}
    assert classic["bfgs"]["status"] == "converged"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--n=0"], "--n must be at least 1"),
        (["--n=two"], "--n takes integers"),
        (["--seeds=-1"], "--seeds must be a positive number"),
        (["--methods=bfgs,newtonn"], "unknown method newtonn"),
        (["--eps=0"], "--eps must be positive"),
        (["--seeds=abc"], "flag --seeds=abc"),
        (["--no_such_flag=1"], "no_such_flag"),
    ],
)
def test_bad_flags_exit_with_one_readable_line(args, message, tmp_path, run_script):
    done, errors = run_script("experiments.quasi_newton", f"--out={tmp_path}", *args)
    assert done.returncode != 0
    assert len(errors) == 1 and message in errors[0], done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert not any(tmp_path.iterdir())
