"""Hyperparameter search over a finite pool of configurations: grid search and Hyperband.

Both take the pool by size and an ``evaluate(indices, epochs)`` that trains those
configurations from scratch for ``epochs`` and returns one score each, higher better (for
a network study: a grid of :func:`optlab.train.run_grid` variants, scored by a recorded
metric such as the mean over seeds of the last validation accuracy). A configuration
trained at a budget is never trained at that budget again: scores are kept by
``(configuration, epochs)``, and ``known`` hands in scores computed elsewhere (Hyperband
after a grid at the full budget needs no new full-budget run). Both return a
:class:`SearchResult`; nothing here touches JAX.
"""

from __future__ import annotations

import math
from typing import Callable, Mapping, NamedTuple, Sequence

import numpy as np

Evaluate = Callable[[list[int], int], Sequence[float]]


class Trial(NamedTuple):
    bracket: int  # Hyperband's s, from s_max down to 0 (0 for a grid)
    round: int  # i, 0 .. s
    config: int  # index into the pool of configurations
    epochs: int  # budget of this trial (trained from scratch)
    score: float  # higher is better


class SearchResult(NamedTuple):
    best: int  # index of the configuration with the best score of any trial
    best_score: float
    trials: list[Trial]
    epochs_spent: int  # sum of the trials' budgets
    epochs_trained: int  # budgets of the trials that evaluate trained (not known before)


def hyperband_schedule(
    max_epochs: int, eta: int, pool_size: int | None = None
) -> list[list[tuple[int, int]]]:
    """Hyperband's brackets as lists of rounds ``(configurations, epochs)``.

    Li et al. (JMLR 2018, Algorithm 1) with the resource R = ``max_epochs``: for ``s =
    s_max, ..., 0`` (``s_max = floor(log_eta R)``), bracket ``s`` starts ``n = ceil((s_max
    + 1) / (s + 1) * eta^s)`` configurations, and round ``i = 0 .. s`` trains ``n_i =
    floor(n / eta^i)`` of them for ``r_i = R eta^(i - s)`` epochs, rounded to an integer
    (at least 1). With a finite pool, ``n`` is at most ``pool_size`` and ``n_i`` at least
    1. For R = 81, eta = 3 this is the paper's Table 1.

    Raises:
      ValueError: ``max_epochs < 1``, ``eta < 2`` or ``pool_size < 1``.
    """
    if max_epochs < 1 or eta < 2:
        raise ValueError(f"need max_epochs >= 1 and eta >= 2, got {max_epochs} and {eta}")
    if pool_size is not None and pool_size < 1:
        raise ValueError(f"pool_size must be at least 1, got {pool_size}")
    s_max = 0  # integer log: floating log(81) / log(3) may fall just below 4
    while eta ** (s_max + 1) <= max_epochs:
        s_max += 1
    brackets = []
    for s in range(s_max, -1, -1):
        n = math.ceil((s_max + 1) * eta**s / (s + 1))
        if pool_size is not None:
            n = min(n, pool_size)
        brackets.append(
            [(max(1, n // eta**i), max(1, round(max_epochs / eta ** (s - i))))
             for i in range(s + 1)]
        )
    return brackets


class _Scores:
    """``evaluate`` with its scores kept by (configuration, epochs)."""

    def __init__(self, evaluate: Evaluate, known: Mapping[tuple[int, int], float] | None):
        self.evaluate, self.scores, self.epochs_trained = evaluate, dict(known or {}), 0

    def __call__(self, indices: list[int], epochs: int) -> np.ndarray:
        new = [index for index in indices if (index, epochs) not in self.scores]
        if new:
            scores = np.asarray(self.evaluate(new, epochs), np.float64)
            if scores.shape != (len(new),):
                raise ValueError(
                    f"evaluate returned {scores.shape} scores for {len(new)} configurations")
            self.scores.update(zip(((index, epochs) for index in new), scores.tolist()))
            self.epochs_trained += len(new) * epochs
        return np.array([self.scores[index, epochs] for index in indices])


def _result(trials: list[Trial], scores: _Scores) -> SearchResult:
    # The best score of any trial; among equals the earlier trial, as the paper does.
    best = max(range(len(trials)), key=lambda t: (trials[t].score, -t))
    return SearchResult(trials[best].config, trials[best].score, trials,
                        sum(t.epochs for t in trials), scores.epochs_trained)


def grid_search(
    pool_size: int, evaluate: Evaluate, *, max_epochs: int,
    known: Mapping[tuple[int, int], float] | None = None,
) -> SearchResult:
    """Every configuration at the full budget, in one call of ``evaluate``."""
    if pool_size < 1 or max_epochs < 1:
        raise ValueError(f"need pool_size and max_epochs >= 1, got {pool_size} and {max_epochs}")
    scores = _Scores(evaluate, known)
    values = scores(list(range(pool_size)), max_epochs)
    trials = [Trial(0, 0, index, max_epochs, float(v)) for index, v in enumerate(values)]
    return _result(trials, scores)


def hyperband(
    pool_size: int, evaluate: Evaluate, *, max_epochs: int, eta: int = 3, seed: int = 0,
    known: Mapping[tuple[int, int], float] | None = None,
) -> SearchResult:
    """Hyperband over a finite pool of configurations, by index.

    Each bracket of :func:`hyperband_schedule` draws its configurations from the pool
    without replacement (``numpy.random.default_rng(seed)``, one generator for all
    brackets) and runs successive halving: the configurations of a round are scored at
    its budget, and the best ``n_(i+1)`` go on to the next round.
    """
    rng = np.random.default_rng(seed)
    scores = _Scores(evaluate, known)
    trials: list[Trial] = []
    for bracket in hyperband_schedule(max_epochs, eta, pool_size):
        s = len(bracket) - 1
        alive = [int(index) for index in rng.choice(pool_size, bracket[0][0], replace=False)]
        for i, (_, epochs) in enumerate(bracket):
            values = scores(alive, epochs)
            trials += [Trial(s, i, c, epochs, float(v)) for c, v in zip(alive, values)]
            if i + 1 < len(bracket):
                # A stable sort on -score keeps the earlier configuration among equals.
                order = np.argsort(-values, kind="stable")
                alive = [alive[j] for j in order[: bracket[i + 1][0]]]
    return _result(trials, scores)
