"""Tests of experiments.kit.rundir: unique run directories and atomic writes."""

import datetime
import json
import re

import jax.numpy as jnp
import numpy as np
import pytest
from matplotlib.figure import Figure

from experiments.kit.rundir import RunDir


def _figure():
    fig = Figure(figsize=(2, 2))
    fig.add_subplot().plot([1, 2, 3])
    return fig


def _all_files(root):
    return sorted(path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file())


def test_create_makes_timestamped_unique_directories(tmp_path):
    runs = [RunDir.create(tmp_path / "runs", "quasi_newton") for _ in range(3)]
    paths = [run.path for run in runs]
    assert len(set(paths)) == 3 and all(path.is_dir() for path in paths)
    assert all(path.parent == tmp_path / "runs" for path in paths)
    assert re.fullmatch(r"quasi_newton-\d{8}-\d{6}", paths[0].name)
    # Created within the same second, the later ones carry -2, -3 (or a newer timestamp).
    assert all(re.fullmatch(r"quasi_newton-\d{8}-\d{6}(-\d+)?", path.name) for path in paths)


def test_create_appends_suffix_when_name_is_taken(tmp_path, monkeypatch):
    class FrozenDatetime:
        @staticmethod
        def now():
            return datetime.datetime(2024, 5, 6, 7, 8, 9)

    monkeypatch.setattr("experiments.kit.rundir.datetime", FrozenDatetime)
    names = [RunDir.create(tmp_path, "cg").path.name for _ in range(3)]
    assert names == ["cg-20240506-070809", "cg-20240506-070809-2", "cg-20240506-070809-3"]


def test_write_text_and_json_are_atomic_and_reload_equal(tmp_path):
    run = RunDir.create(tmp_path, "study")
    results = {
        "iterations": np.array([3, 4, 5]),
        "values": jnp.asarray([1.0, jnp.nan]),
        "eps": 1e-6,
        "name": "µ-test",
    }
    json_path = run.write_json("results.json", results)
    text_path = run.write_text("tables/table.md", "| a |\n")
    assert json_path == run.path / "results.json"
    assert json.loads(json_path.read_text(encoding="utf-8")) == {
        "iterations": [3, 4, 5],
        "values": [1.0, None],
        "eps": 1e-6,
        "name": "µ-test",
    }
    assert text_path.read_text(encoding="utf-8") == "| a |\n"
    assert _all_files(run.path) == ["results.json", "tables/table.md"]


def test_overwrite_replaces_content(tmp_path):
    run = RunDir.create(tmp_path, "study")
    run.write_text("log.txt", "first")
    path = run.write_text("log.txt", "second")
    assert path.read_text() == "second"
    assert _all_files(run.path) == ["log.txt"]


def test_save_figure_writes_png(tmp_path):
    run = RunDir.create(tmp_path, "study")
    path = run.save_figure("figures/convergence.png", _figure(), dpi=30)
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert _all_files(run.path) == ["figures/convergence.png"]


def test_failed_writes_leave_no_files(tmp_path):
    run = RunDir.create(tmp_path, "study")
    with pytest.raises(TypeError, match="set"):
        run.write_json("results.json", {"bad": {1, 2}})
    with pytest.raises(ValueError):
        run.save_figure("figure.unknown_format", _figure())
    assert _all_files(run.path) == []


@pytest.mark.parametrize("relpath", ["../escape.txt", "a/../../escape.txt", ".", "/tmp/x.txt"])
def test_paths_outside_the_run_directory_are_refused(tmp_path, relpath):
    run = RunDir.create(tmp_path / "runs", "study")
    with pytest.raises(ValueError, match="inside the run directory"):
        run.write_text(relpath, "x")
    assert _all_files(tmp_path) == []


def test_save_animation_writes_a_gif_atomically(tmp_path):
    from matplotlib.animation import FuncAnimation
    from matplotlib.figure import Figure

    fig = Figure()
    ax = fig.add_subplot()
    (line,) = ax.plot([], [])
    animation = FuncAnimation(fig, lambda i: line.set_data(range(i + 1), range(i + 1)), frames=3)
    run_dir = RunDir.create(tmp_path, "anim")
    path = run_dir.save_animation("path.gif", animation, fps=5)
    assert path.read_bytes()[:6] in (b"GIF87a", b"GIF89a")
    assert [p.name for p in run_dir.path.iterdir()] == ["path.gif"]
