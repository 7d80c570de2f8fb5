"""Per-run training metrics of the neural-network studies: JSON lines and Weights & Biases.

A study trains with :func:`optlab.train.fit` and keeps the :class:`~optlab.train.FitResult`
histories in its results. When it writes its run directory it calls :func:`write_metrics`,
which writes ``metrics.jsonl``: one JSON object per (variant, run, epoch) that trained,
``{"variant": ..., "run": i, "seed": s, "epoch": e, "train_loss": ..., ...}``, ready for
``pandas.read_json(path, lines=True)``. With ``--wandb`` the same records go to Weights &
Biases, one W&B run per (variant, run), in offline mode unless ``WANDB_MODE`` says
otherwise; the package is optional and only imported then.

Studies pass ``--workdir`` to :func:`optlab.train.run_grid` as its checkpoint directory,
so that an interrupted study, started again with the same ``--workdir``, resumes each
program where it stopped; their tables add :func:`resume_lines`, since a resumed fit's
times cover only the epochs trained after the resume.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from experiments.kit.rundir import RunDir

METRICS_FILE = "metrics.jsonl"


def history_records(
    variant: str, history: Mapping[str, np.ndarray], seeds: Sequence[int]
) -> Iterator[dict[str, Any]]:
    """One record per (run, epoch) that trained: epochs where every metric is NaN are skipped.

    ``history`` maps a metric name to an array ``(runs, epochs)`` (``FitResult.history``);
    ``seeds[i]`` is run ``i``'s seed.
    """
    names = sorted(history)
    arrays = {name: np.asarray(history[name], dtype=float) for name in names}
    runs, epochs = arrays[names[0]].shape
    if len(seeds) != runs:
        raise ValueError(f"{len(seeds)} seeds for a history of {runs} runs")
    for run in range(runs):
        for epoch in range(epochs):
            values = {name: float(arrays[name][run, epoch]) for name in names}
            if all(math.isnan(value) for value in values.values()):
                continue
            record = {"variant": variant, "run": run, "seed": int(seeds[run]), "epoch": epoch}
            record.update({k: (None if math.isnan(v) else v) for k, v in values.items()})
            yield record


def write_metrics(
    run_dir: RunDir,
    histories: Mapping[str, Mapping[str, np.ndarray] | tuple[Mapping, Sequence[int]]],
    *,
    wandb_project: str | None = None,
) -> Path:
    """Writes ``metrics.jsonl`` for every variant; logs to W&B when a project is named.

    ``histories`` maps a variant name to ``(history, seeds)``, or to the history alone
    when its runs are the seeds 0, 1, ...
    """
    records = []
    for variant, entry in histories.items():
        history, seeds = entry if isinstance(entry, tuple) else (entry, None)
        if seeds is None:
            seeds = range(len(next(iter(history.values()))))
        records += history_records(variant, history, seeds)
    text = "".join(json.dumps(record) + "\n" for record in records)
    path = run_dir.write_text(METRICS_FILE, text)
    if wandb_project is not None:
        log_to_wandb(records, project=wandb_project, directory=run_dir.path)
    return path


def log_to_wandb(records: Sequence[dict[str, Any]], *, project: str, directory: Path) -> None:
    """One W&B run per (variant, run), offline unless ``WANDB_MODE`` is set.

    Raises ``RuntimeError`` when the optional ``wandb`` package is not installed.
    """
    try:
        import wandb
    except ImportError:
        raise RuntimeError("--wandb needs the optional package wandb: pip install wandb") from None
    os.environ.setdefault("WANDB_MODE", "offline")
    by_run: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for record in records:
        by_run.setdefault((record["variant"], record["run"]), []).append(record)
    for (variant, run), rows in by_run.items():
        session = wandb.init(
            project=project,
            name=f"{variant}-run{run}",
            config={"variant": variant, "run": run, "seed": rows[0]["seed"]},
            dir=str(directory),
            reinit=True,
        )
        for row in rows:
            metrics = {k: v for k, v in row.items() if k not in ("variant", "run", "seed")}
            session.log(metrics, step=row["epoch"])
        session.finish()


def resume_lines(first_epochs: Mapping[str, int]) -> list[str]:
    """Lines for a study's Markdown summary when some fits resumed from ``--workdir``.

    ``first_epochs`` maps a fit's name to its ``FitResult.first_epoch``. Fits that started
    from scratch (0) are left out; with none resumed there are no lines, else a blank line
    and a sentence naming where each resumed fit started: their timings cover only the
    epochs trained after the resume ("—" when nothing was left to train).
    """
    resumed = {name: int(epoch) for name, epoch in first_epochs.items() if epoch > 0}
    if not resumed:
        return []
    where = ", ".join(f"{name} at epoch {epoch}" for name, epoch in resumed.items())
    return ["", f"Resumed from checkpoints: {where}. Their times cover only the epochs "
                'trained after the resume ("—" when none were left).']
