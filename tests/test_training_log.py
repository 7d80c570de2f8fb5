"""experiments.kit.training_log: JSON lines of per-run, per-epoch metrics."""

import json

import numpy as np
import pytest

from experiments.kit import training_log
from experiments.kit.rundir import RunDir


def test_metrics_jsonl_has_one_line_per_trained_epoch(tmp_path):
    history = {
        "train_loss": np.array([[1.0, 0.5, np.nan], [2.0, 1.5, 1.0]]),
        "val_loss": np.array([[1.1, 0.6, np.nan], [2.1, np.nan, 1.1]]),
    }
    run_dir = RunDir.create(tmp_path, "study")
    path = training_log.write_metrics(run_dir, {"adam": (history, [7, 8])})
    records = [json.loads(line) for line in path.read_text().splitlines()]

    assert [(r["run"], r["epoch"]) for r in records] == [(0, 0), (0, 1), (1, 0), (1, 1), (1, 2)]
    assert records[0] == {"variant": "adam", "run": 0, "seed": 7, "epoch": 0,
                          "train_loss": 1.0, "val_loss": 1.1}
    assert records[3]["val_loss"] is None  # a NaN that is not a whole missing epoch


def test_a_history_alone_numbers_its_runs_as_seeds(tmp_path):
    history = {"train_loss": np.array([[1.0], [2.0]])}
    path = training_log.write_metrics(RunDir.create(tmp_path, "study"), {"sgd": history})
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(r["run"], r["seed"]) for r in records] == [(0, 0), (1, 1)]


def test_seed_count_must_match_runs():
    with pytest.raises(ValueError, match="2 seeds for a history of 1 runs"):
        list(training_log.history_records("v", {"loss": np.zeros((1, 3))}, [0, 1]))


def test_wandb_is_optional(tmp_path):
    try:
        import wandb  # noqa: F401
    except ImportError:
        with pytest.raises(RuntimeError, match="pip install wandb"):
            training_log.log_to_wandb([], project="p", directory=tmp_path)
    else:
        pytest.skip("wandb is installed; the optional path is exercised by the studies")


def test_resume_lines_name_the_resumed_fits_only():
    assert training_log.resume_lines({}) == []
    assert training_log.resume_lines({"sgd": 0, "adam": 0}) == []
    blank, note = training_log.resume_lines({"sgd": 0, "adam": 20, "nesterov": 50})
    assert blank == ""
    assert note.startswith("Resumed from checkpoints: adam at epoch 20, nesterov at epoch 50.")
    assert "sgd" not in note
