"""optlab.search: Hyperband's schedule and promotions, grid search, scores kept per budget."""

import itertools

import numpy as np
import pytest

from optlab import search


def test_hyperband_schedule_is_table_1_of_li_et_al():
    assert search.hyperband_schedule(81, 3) == [
        [(81, 1), (27, 3), (9, 9), (3, 27), (1, 81)],
        [(34, 3), (11, 9), (3, 27), (1, 81)],
        [(15, 9), (5, 27), (1, 81)],
        [(8, 27), (2, 81)],
        [(5, 81)],
    ]
    # A pool of 36 with R = 100: brackets capped at the pool, budgets rounded.
    assert search.hyperband_schedule(100, 3, pool_size=36)[0] == [
        (36, 1), (12, 4), (4, 11), (1, 33), (1, 100)
    ]
    with pytest.raises(ValueError, match="eta >= 2"):
        search.hyperband_schedule(10, 1)


def test_hyperband_promotes_the_best_and_returns_the_best_trial():
    quality = np.array([0.1, 0.9, 0.5, 0.7, 0.3, 0.2, 0.8, 0.4, 0.6])
    calls = []

    def evaluate(indices, epochs):
        calls.append((sorted(indices), epochs))
        return quality[indices] * epochs / 9  # more epochs, better scores; same order

    result = search.hyperband(9, evaluate, max_epochs=9, eta=3, seed=0)
    assert result.best == 1 and result.best_score == pytest.approx(0.9)
    assert calls[0] == (list(range(9)), 1)
    assert calls[1] == ([1, 3, 6], 3)  # the top third of 9
    assert calls[2] == ([1], 9)
    pairs = [(index, epochs) for indices, epochs in calls for index in indices]
    assert len(pairs) == len(set(pairs))  # no configuration trained twice at one budget
    assert result.epochs_trained == sum(epochs for _, epochs in pairs)
    assert result.epochs_spent == sum(trial.epochs for trial in result.trials)
    assert result.epochs_spent > result.epochs_trained  # later brackets reuse scores


# A synthetic objective over a 5 x 5 x 4 grid: its optimum is (lr 1e-2, width 128, l2 0),
# and short budgets see it through a penalty that shrinks as 1 / epochs and a noise that
# shrinks as 1 / sqrt(epochs).
LEARNING_RATES = [1e-4, 1e-3, 1e-2, 1e-1, 1.0]
WIDTHS, L2 = [16, 32, 64, 128, 256], [0, 1e-4, 1e-3, 1e-2]
POOL = list(itertools.product(LEARNING_RATES, WIDTHS, L2))
BEST = POOL.index((1e-2, 128, 0))


def objective(indices, epochs):
    rng = np.random.default_rng(epochs)
    scores = []
    for index in indices:
        lr, width, l2 = POOL[index]
        quality = -((np.log10(lr) + 2) ** 2) - (np.log2(width) - 7) ** 2 - 1e3 * l2
        scores.append(quality - 1.0 / epochs + 0.05 * rng.normal() / np.sqrt(epochs))
    return scores


def test_grid_search_and_hyperband_find_the_best_configuration_of_a_synthetic_objective():
    grid = search.grid_search(len(POOL), objective, max_epochs=27)
    assert grid.best == BEST and grid.epochs_trained == 27 * len(POOL)
    band = search.hyperband(len(POOL), objective, max_epochs=27, eta=3, seed=0)
    assert band.best == BEST
    assert band.epochs_trained < grid.epochs_trained
    # Handed the grid's full-budget scores, Hyperband trains only the shorter budgets.
    known = {(trial.config, trial.epochs): trial.score for trial in grid.trials}
    reused = search.hyperband(len(POOL), objective, max_epochs=27, eta=3, seed=0, known=known)
    assert reused.best == BEST
    assert reused.epochs_trained == band.epochs_trained - 27 * len(
        {t.config for t in band.trials if t.epochs == 27})


def test_evaluate_must_return_one_score_per_configuration():
    with pytest.raises(ValueError, match="scores for 3 configurations"):
        search.grid_search(3, lambda indices, epochs: [0.0], max_epochs=1)
