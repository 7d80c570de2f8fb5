"""UCI Wine Quality (red), shipped in ``optlab/datasets/wine`` (never downloaded).

Contract: :func:`load_wine_table` returns the file as stored, 1599 rows of the 11
physicochemical features and the quality score, with the column names.
:func:`load_wine` turns it into the binary task the studies use, as NumPy arrays:

* label ``y = 1`` when ``quality >= threshold`` (6 by default: 855 "good" wines, 744
  others), else ``0``; ``int32``.
* the split is stratified by that label and seeded: from each class, a random
  ``round(test_fraction * class size)`` rows (drawn with ``numpy.random.default_rng(seed)``)
  form the test set, so both sets keep the class balance of the whole file whatever the
  seed. Rows keep their file order within each set.
* the features are min-max scaled, ``(x - min) / (max - min)``, with ``min`` and ``max``
  taken over the **training rows only**, so nothing about the test set leaks into
  training. Training features lie in ``[0, 1]``; test features can fall slightly
  outside it. A feature constant on the training rows is mapped to ``x - min``.
  ``float32``.

:func:`load_wine_coursework` is the coursework's own preparation instead: every row
min-max scaled together before the split, and scikit-learn's ``train_test_split(
test_size=0.25, random_state=1)``, which is ``numpy.random.RandomState(1).permutation``:
its first 400 rows the test set, the other 1199 the training set, in that order.

The file is the original semicolon-separated UCI one (quoted header). Every problem with
it raises ``ValueError`` naming the file, the line and what is wrong; a missing file
raises ``FileNotFoundError``. Please cite Cortez et al., Decision Support Systems
47(4):547-553, 2009 (see ``PROVENANCE.md``).
"""

from __future__ import annotations

import csv
import importlib.resources
import os
import pathlib
from typing import NamedTuple

import numpy as np

FEATURE_NAMES = (
    "fixed acidity",
    "volatile acidity",
    "citric acid",
    "residual sugar",
    "chlorides",
    "free sulfur dioxide",
    "total sulfur dioxide",
    "density",
    "pH",
    "sulphates",
    "alcohol",
)
COLUMNS = (*FEATURE_NAMES, "quality")


class WineTable(NamedTuple):
    """The file as stored."""

    values: np.ndarray  # (rows, 12) float64, columns as in `columns`
    columns: tuple[str, ...]  # the 11 feature names, then "quality"


class WineSplit(NamedTuple):
    """The binary classification task, split and scaled (see the module docstring)."""

    x_train: np.ndarray  # (n_train, 11) float32 in [0, 1]
    y_train: np.ndarray  # (n_train,) int32, 1 where quality >= threshold
    x_test: np.ndarray  # (n_test, 11) float32, scaled with the training min and max
    y_test: np.ndarray  # (n_test,) int32
    feature_names: tuple[str, ...]  # the 11 column names of x


def load_wine_table(*, path: str | os.PathLike | None = None) -> WineTable:
    """Reads the semicolon-separated wine file: a header, then rows of 12 numbers.

    Args:
      path: a file in the UCI format (header exactly :data:`COLUMNS`); ``None`` reads
        the shipped ``winequality-red.csv``.

    Raises:
      FileNotFoundError: no file at ``path``.
      ValueError: naming the file and line: a header other than :data:`COLUMNS`, a row
        without 12 cells, a cell that is not a finite number, a quality that is not a
        whole number, or no data rows.
    """
    path = _shipped_dir() / "winequality-red.csv" if path is None else pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no wine file at {path}")
    with open(path, newline="", encoding="utf-8") as file:
        rows = csv.reader(file, delimiter=";")
        header = next(rows, None)
        if header is None or tuple(header) != COLUMNS:
            raise ValueError(f"{path}, line 1: expected the header {list(COLUMNS)}, got {header}")
        values = [_parse_row(row, path, rows.line_num) for row in rows]
    if not values:
        raise ValueError(f"{path}: no data rows after the header")
    return WineTable(values=np.array(values, dtype=np.float64), columns=COLUMNS)


def load_wine(
    *,
    threshold: int = 6,
    test_fraction: float = 0.25,
    seed: int = 0,
    path: str | os.PathLike | None = None,
) -> WineSplit:
    """The red-wine binary task: a seeded stratified split and train-fitted min-max scaling.

    Args:
      threshold: a wine is labelled 1 when its quality is at least this.
      test_fraction: the share of each class put in the test set.
      seed: seeds ``numpy.random.default_rng`` for the split.
      path: as in :func:`load_wine_table`.

    Returns:
      A :class:`WineSplit`; see the module docstring for the exact rules.

    Raises:
      ValueError: ``test_fraction`` not in ``(0, 1)``; a threshold that leaves a single
        class; a split that leaves the training or test set without one of the classes;
        and as :func:`load_wine_table`.
    """
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    table = load_wine_table(path=path)
    features, quality = table.values[:, :-1], table.values[:, -1]
    labels = (quality >= threshold).astype(np.int32)
    rng = np.random.default_rng(seed)
    is_test = np.zeros(labels.shape, dtype=bool)
    for label in (0, 1):
        rows = np.flatnonzero(labels == label)
        n_test = round(test_fraction * rows.size)
        if not 0 < n_test < rows.size:
            raise ValueError(
                f"threshold={threshold}, test_fraction={test_fraction}: class {label} has "
                f"{rows.size} rows, so the training or test set would have none of them"
            )
        is_test[rng.choice(rows, size=n_test, replace=False)] = True
    train_features = features[~is_test]
    low = train_features.min(axis=0)
    spread = train_features.max(axis=0) - low
    spread = np.where(spread > 0, spread, 1.0)

    def scale(x: np.ndarray) -> np.ndarray:
        return ((x - low) / spread).astype(np.float32)

    return WineSplit(
        x_train=scale(train_features),
        y_train=labels[~is_test],
        x_test=scale(features[is_test]),
        y_test=labels[is_test],
        feature_names=FEATURE_NAMES,
    )


def _parse_row(row: list[str], path: pathlib.Path, line: int) -> list[float]:
    if len(row) != len(COLUMNS):
        raise ValueError(f"{path}, line {line}: {len(row)} cells, expected {len(COLUMNS)}")
    try:
        values = [float(cell) for cell in row]
    except ValueError as error:
        raise ValueError(f"{path}, line {line}: not a number ({error})") from error
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{path}, line {line}: non-finite value in {row}")
    if not values[-1].is_integer():
        raise ValueError(f"{path}, line {line}: quality {row[-1]!r} is not a whole number")
    return values


def _shipped_dir() -> pathlib.Path:
    return pathlib.Path(str(importlib.resources.files("optlab.datasets") / "wine"))


def load_wine_coursework(*, threshold: int = 6, path: str | os.PathLike | None = None
                         ) -> WineSplit:
    """The coursework's split: all rows min-max scaled, then ``RandomState(1)``'s
    permutation cut into 400 test rows and 1199 training rows (scikit-learn's
    ``train_test_split(test_size=0.25, random_state=1)`` without scikit-learn).

    Rows are in the permutation's order, which is the order of the coursework's batches.
    Raises as :func:`load_wine_table`.
    """
    table = load_wine_table(path=path)
    features, quality = table.values[:, :-1], table.values[:, -1]
    low, spread = features.min(axis=0), np.ptp(features, axis=0)
    scaled = ((features - low) / np.where(spread > 0, spread, 1.0)).astype(np.float32)
    labels = (quality >= threshold).astype(np.int32)
    order = np.random.RandomState(1).permutation(len(labels))
    test, train = order[: -(-len(labels) // 4)], order[-(-len(labels) // 4):]
    return WineSplit(x_train=scaled[train], y_train=labels[train], x_test=scaled[test],
                     y_test=labels[test], feature_names=FEATURE_NAMES)
