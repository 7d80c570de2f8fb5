"""experiments/time_studies.sh: every study timed in its own process, within a budget."""

import os
import pathlib
import subprocess
import sys

import pytest

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "experiments" / "time_studies.sh"


def run_script(*args: str) -> subprocess.CompletedProcess:
    # python3 must be this interpreter (the test environment's), whatever PATH says.
    path = f"{pathlib.Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    env = dict(os.environ, PATH=path)
    return subprocess.run(
        ["bash", str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=300
    )


def rows(out: pathlib.Path) -> list[list[str]]:
    lines = (out / "times.tsv").read_text().splitlines()
    assert lines[0].split("\t") == ["study", "flags", "exit", "wall_s"]
    return [line.split("\t") for line in lines[1:]]


def test_times_each_study_and_goes_on_after_a_failure(tmp_path):
    completed = run_script(
        str(tmp_path), "120", "no_such_study", "quasi_newton --n=2 --seeds=2 --methods=bfgs"
    )
    assert completed.returncode == 0, completed.stderr
    (missing, study) = rows(tmp_path)
    assert missing[0] == "no_such_study" and missing[2] != "0"
    assert study[:3] == ["quasi_newton", "--n=2 --seeds=2 --methods=bfgs", "0"]
    assert float(study[3]) > 0
    assert list((tmp_path / "quasi_newton-2").glob("*/results.json"))
    assert "Results in" in (tmp_path / "quasi_newton-2.log").read_text()


def test_studies_past_the_budget_are_skipped(tmp_path):
    # 20 s of any budget are kept for the end: 25 s leave too little to start a study.
    completed = run_script(str(tmp_path), "25", "quasi_newton --n=2", "wine_mlp")
    assert completed.returncode == 0, completed.stderr
    assert [row[2:] for row in rows(tmp_path)] == [["skipped", "-"], ["skipped", "-"]]
    assert not list(tmp_path.glob("*.log"))


@pytest.mark.parametrize("args", [(), ("out",)])
def test_usage(args):
    completed = run_script(*args)
    assert completed.returncode == 2
    assert "usage" in completed.stderr
