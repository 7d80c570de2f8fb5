"""Every study of the registry runs at a tiny size through the kit and writes its run
directory (apart from tests/test_studies.py, so that pytest-xdist can spread the two)."""

import dataclasses
import importlib
import json

import pytest

from experiments import STUDIES


def study_of(name: str):
    return importlib.import_module(f"experiments.{name}").STUDY


@pytest.mark.parametrize("name", STUDIES)
def test_a_tiny_run_writes_its_run_directory(name, call_study, tmp_path):
    study = study_of(name)
    status, errors = call_study(study, f"--out={tmp_path}", *study.smoke_flags)
    assert status == 0 and not errors, errors
    (run_dir,) = tmp_path.iterdir()
    names = {path.name for path in run_dir.iterdir()}
    assert {"config.json", "results.json", "table.md", "run.json"} <= names
    run = json.loads((run_dir / "run.json").read_text())
    assert run["study"] == name and run["seconds"] > 0 and run["machine"]["cpu_count"] >= 1
    config = json.loads((run_dir / "config.json").read_text())
    assert set(config) == {field.name for field in dataclasses.fields(study.get_config())}
    json.loads((run_dir / "results.json").read_text())
    table = (run_dir / "table.md").read_text()
    assert table.strip().endswith("CPUs.") and "Load average when the study ended" in table
    assert any(name.endswith(".csv") for name in names)
    assert any(name.endswith(".png") for name in names)
    assert not [name for name in names if name.startswith(".")]  # no temporary left
