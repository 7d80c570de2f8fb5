"""Named variants x seeds, trained as the runs of as few compiled programs as shapes allow.

A :class:`Variant` is one configuration of a study: a model factory, an optimizer, the
values of its injected hyperparameters, L1 / L2 strengths and a batch size.
:func:`run_grid` trains every variant over the same seeds. Variants that share their
model factory, their optimizer and their batch size (the same objects: build each once,
e.g. behind ``functools.cache``) are the runs of one :func:`~optlab.train.fit` call, one
compiled program; within it run ``k * S + s`` is seed ``s`` of the group's ``k``-th
variant, and seed ``s`` draws the same initial weights, minibatch order and dropout masks
for every variant. Their hyperparameters and penalties are per-run values (traced
through ``optax.inject_hyperparams``), so they may differ within a program.

Each variant gets a :class:`VariantResult`: its slice of its program's
:class:`~optlab.train.FitResult`, the seed axis first. Studies never slice runs by hand.

Example (two learning rates share one program, a wider model gets its own)::

    mlp = functools.partial(models.MLP, (11, 16, 2))
    sgd = optax.inject_hyperparams(optlab.sgd)(learning_rate=0.1)
    variants = [
        train.Variant("lr 0.1", mlp, sgd, {"learning_rate": 0.1}),
        train.Variant("lr 0.01", mlp, sgd, {"learning_rate": 0.01}),
        train.Variant("wide", functools.partial(models.MLP, (11, 64, 2)), sgd),
    ]
    results = train.run_grid(variants, seeds=range(5), task=train.classification(),
                             data=(x, y), max_epochs=20)
    results["lr 0.01"].history["train_loss"].shape  # (5, 20)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, NamedTuple, Sequence

import jax
import numpy as np
import optax
from flax import nnx

from optlab import stats
from optlab.train import engine
from optlab.train.losses import Task


class Variant(NamedTuple):
    """One named configuration of a grid."""

    name: str
    model: Callable[..., nnx.Module]  # model_fn(rngs=...), as init_runs takes it
    optimizer: optax.GradientTransformation
    hyperparams: Mapping[str, float] = {}  # values of the optimizer's injected hyperparameters
    l1: float = 0.0
    l2: float = 0.0
    batch_size: int = 32


class VariantResult(NamedTuple):
    """A variant's runs: its slice of the fit of the program it trained in."""

    variant: Variant
    seeds: tuple[int, ...]
    fit: engine.FitResult  # the whole program's fit: every variant of the group
    runs: slice  # this variant's runs in ``fit``, one per seed
    group: int  # the index of its program, in the order of first appearance

    @property
    def history(self) -> dict[str, np.ndarray]:
        """Name -> ``(seeds, max_epochs)``."""
        return {name: values[self.runs] for name, values in self.fit.history.items()}

    def take(self, per_run: Any) -> Any:
        """The rows of this variant from an array whose first axis is the program's runs
        (``fit.best_epoch``, ``train.predict(fit, x)``, ...)."""
        return per_run[self.runs]


def per_variant(
    results: Mapping[str, VariantResult], fn: Callable[[engine.FitResult], Any]
) -> dict[str, Any]:
    """``fn(fit)`` once per program (e.g. ``train.evaluate`` on a test set), its output's
    leaves (runs first) cut into each variant's runs."""
    outputs: dict[int, Any] = {}
    cut = {}
    for name, result in results.items():
        if id(result.fit) not in outputs:
            outputs[id(result.fit)] = fn(result.fit)
        cut[name] = jax.tree.map(result.take, outputs[id(result.fit)])
    return cut


def seed_rows(
    results: Mapping[str, VariantResult],
    measures: Mapping[str, Mapping[str, Any]],
    specs: Mapping[str, str] | str = ".4g",
) -> tuple[list[dict], list[dict]]:
    """The tables of a grid: a row per variant and a row per run.

    ``measures`` maps a variant's name to its per-seed values (name -> ``(seeds,)``). A
    variant's row holds its name, its seed count, its program's ``compile_seconds`` and
    ``run_seconds`` and per measure the mean, std and text of
    :func:`optlab.stats.mean_std_columns` (``specs``: format specs); a run's row holds the
    variant, the seed and each measure's value.
    """
    variant_rows, run_rows = [], []
    for name, result in results.items():
        values = {key: np.asarray(v) for key, v in measures[name].items()}
        variant_rows.append({"variant": name, "seeds": len(result.seeds),
                             "compile_seconds": result.fit.compile_seconds,
                             "run_seconds": result.fit.run_seconds}
                            | stats.mean_std_columns(values, specs))
        run_rows += [{"variant": name, "seed": seed} | {k: v[i].item() for k, v in values.items()}
                     for i, seed in enumerate(result.seeds)]
    return variant_rows, run_rows


def programs(results: Iterable[VariantResult]) -> list[dict]:
    """One row per compiled program that trained ``results`` (e.g. a grid's values, or the
    results of several grids), in order of first appearance: its ``variants`` (names),
    ``runs``, ``compile_seconds``, ``run_seconds`` and ``first_epoch`` (above 0 when the
    fit resumed from a checkpoint, so that its times cover only the epochs after it)."""
    rows: dict[int, dict] = {}
    for result in results:
        fit = result.fit
        row = rows.setdefault(id(fit), {"variants": [], "runs": 0, "first_epoch": fit.first_epoch,
                                        "compile_seconds": fit.compile_seconds,
                                        "run_seconds": fit.run_seconds})
        row["variants"].append(result.variant.name)
        row["runs"] += len(result.seeds)
    return list(rows.values())


def groups(variants: Sequence[Variant]) -> list[list[Variant]]:
    """The variants that train together, in order of first appearance."""
    found: list[list[Variant]] = []
    for variant in variants:
        for group in found:
            first = group[0]
            if (first.model, first.optimizer, first.batch_size) == (
                variant.model, variant.optimizer, variant.batch_size
            ):
                group.append(variant)
                break
        else:
            found.append([variant])
    return found


def run_grid(
    variants: Sequence[Variant],
    seeds: Sequence[int],
    task: Task,
    data: tuple,
    *,
    max_epochs: int,
    checkpoint_dir: str | None = None,
    log: Callable[[str], None] | None = None,
    **fit_options: Any,
) -> dict[str, VariantResult]:
    """Trains every variant over ``seeds``; one :func:`~optlab.train.fit` per group.

    Args:
      variants: distinct names; see the module docstring for how they are grouped.
      seeds: one run per seed and variant.
      task, data, max_epochs: as :func:`~optlab.train.fit` takes them.
      checkpoint_dir: each program checkpoints in its own subdirectory
        ``GROUP-FIRST_VARIANT`` there, so an interrupted grid resumes.
      log: takes a line per program, and :func:`~optlab.train.progress_printer`'s lines.
      **fit_options: the other options of :func:`~optlab.train.fit` (``validation``,
        ``patience``, ``runs_per_vmap``, ...), the same for every program.

    Returns:
      Variant name -> :class:`VariantResult`, in the order of ``variants``.

    Raises:
      ValueError: no variants or seeds, a name given twice, or variants of one program
        that set different hyperparameters.
    """
    names = [variant.name for variant in variants]
    if not names or len(set(names)) != len(names):
        raise ValueError(f"variants need distinct names, got {names}")
    seeds = tuple(int(seed) for seed in seeds)
    if not seeds:
        raise ValueError("give at least one seed")
    results = {}
    for index, group in enumerate(groups(variants)):
        keys = {frozenset(variant.hyperparams) for variant in group}
        if len(keys) > 1:
            raise ValueError(
                f"variants {[v.name for v in group]} train in one program and must set the "
                f"same hyperparameters, got {[sorted(k) for k in keys]}")

        def per_run(values):
            return np.repeat(np.asarray(values), len(seeds))

        first = group[0]
        runs = engine.init_runs(
            first.model, first.optimizer, seeds=seeds * len(group),
            hyperparams={name: per_run([v.hyperparams[name] for v in group])
                         for name in first.hyperparams},
            l1=per_run([v.l1 for v in group]), l2=per_run([v.l2 for v in group]),
        )
        if log is not None:
            log(f"{', '.join(v.name for v in group)}: {len(group)} variant(s) x {len(seeds)} "
                f"seeds in one program, batch {first.batch_size}, {max_epochs} epochs")
        fitted = engine.fit(
            runs, task, data, batch_size=first.batch_size, max_epochs=max_epochs,
            checkpoint_dir=_subdirectory(checkpoint_dir, index, first.name),
            on_epoch=None if log is None else engine.progress_printer(max_epochs, print_fn=log),
            **fit_options,
        )
        for k, variant in enumerate(group):
            runs_of_variant = slice(k * len(seeds), (k + 1) * len(seeds))
            results[variant.name] = VariantResult(variant, seeds, fitted, runs_of_variant, index)
    return {name: results[name] for name in names}


def _subdirectory(root: str | None, index: int, name: str) -> str | None:
    if root is None:
        return None
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    return str(Path(root).resolve() / f"{index}-{safe}")
