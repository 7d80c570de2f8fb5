"""Numenta Anomaly Benchmark series, shipped in ``optlab/datasets/nab`` (never downloaded).

Contract, in the order a windowed anomaly study uses it (all NumPy, no jax):

* :func:`load_nab` reads a series, ``"art_daily_small_noise"`` (no anomaly: the training
  series), ``"art_daily_jumpsup"`` (one labelled anomaly) or any NAB-format CSV, as
  ``datetime64[s]`` time stamps and ``float64`` values. :func:`labelled_windows` gives
  NAB's labelled anomaly windows of a series; :func:`in_windows` marks the time stamps
  inside them.
* :class:`Standardizer` is fitted on the training series, ``z = (x - mean) / std``, and
  applied unchanged to the test series, so the test data never inform the scaling.
* :func:`sliding_windows` cuts a series of ``n`` points into its ``n - length + 1``
  overlapping windows (``length = 288``: one day of 5-minute steps).
* :func:`anomalous_points` maps a flag per window back to a flag per time step: a point
  is anomalous when **every** window that contains it is anomalous. Points within
  ``length - 1`` steps of either end lie in fewer windows than the others (the first and
  last in one only); the same rule applies to them, over the windows that do contain
  them. (The Keras example "Timeseries anomaly detection using an Autoencoder", which
  uses these two series, instead skips the first and last ``length - 1`` points and,
  through an off-by-one, omits the window that starts at the point.)

A malformed file raises ``ValueError`` naming the file, the line and what is wrong; a
missing file raises ``FileNotFoundError``. Data: MIT licence, Numenta (see
``PROVENANCE.md``).
"""

from __future__ import annotations

import csv
import dataclasses
import importlib.resources
import json
import os
import pathlib
from typing import NamedTuple

import numpy as np

SHIPPED_SERIES = ("art_daily_small_noise", "art_daily_jumpsup")
WINDOW_LENGTH = 288  # one day of 5-minute steps
_HEADER = ["timestamp", "value"]
_WINDOWS_FILE = "combined_windows_subset.json"


class NabSeries(NamedTuple):
    """One series, in time order."""

    timestamps: np.ndarray  # (n,) datetime64[s], strictly increasing
    values: np.ndarray  # (n,) float64


@dataclasses.dataclass(frozen=True)
class Standardizer:
    """``z = (x - mean) / std`` with the statistics of the series it was fitted on."""

    mean: float
    std: float

    @classmethod
    def fit(cls, values: np.ndarray, *, ddof: int = 1) -> Standardizer:
        """The mean and standard deviation of ``values``.

        ``ddof=1`` (the sample standard deviation) is pandas' default, and so that of
        the Keras example these series come from; ``ddof=0`` gives NumPy's.

        Raises:
          ValueError: ``values`` is empty, holds a non-finite value, or is constant
            (a zero standard deviation cannot scale).
        """
        values = np.asarray(values, dtype=np.float64)
        if values.size <= ddof or not np.all(np.isfinite(values)):
            raise ValueError(
                f"need more than {ddof} finite values to fit a Standardizer, got "
                f"{values.size} values with {np.count_nonzero(~np.isfinite(values))} non-finite"
            )
        std = float(values.std(ddof=ddof))
        if std == 0:
            raise ValueError("cannot standardize a constant series (standard deviation 0)")
        return cls(mean=float(values.mean()), std=std)

    def transform(self, values: np.ndarray) -> np.ndarray:
        """``(values - mean) / std``, in the floating dtype of ``values`` (float64 for ints)."""
        values = np.asarray(values)
        dtype = values.dtype if np.issubdtype(values.dtype, np.floating) else np.float64
        return ((values - self.mean) / self.std).astype(dtype)

    def inverse(self, standardized: np.ndarray) -> np.ndarray:
        """``standardized * std + mean``: the values in the original units."""
        standardized = np.asarray(standardized)
        return (standardized * self.std + self.mean).astype(standardized.dtype)


def load_nab(name_or_path: str | os.PathLike) -> NabSeries:
    """Reads a NAB series: a ``timestamp,value`` header, then one row per time step.

    Args:
      name_or_path: one of :data:`SHIPPED_SERIES`, or the path of a CSV in NAB's format.
        The step between time stamps need not be constant.

    Raises:
      FileNotFoundError: neither a shipped name nor an existing file.
      ValueError: naming the file and line: a header other than ``timestamp,value``, a
        row without two cells, a time stamp NumPy cannot parse, a value that is not a
        finite number, time stamps that do not strictly increase, or no data rows.
    """
    path = _resolve(name_or_path)
    with open(path, newline="", encoding="utf-8") as file:
        rows = csv.reader(file)
        header = next(rows, None)
        if header != _HEADER:
            raise ValueError(f"{path}, line 1: expected the header {','.join(_HEADER)}, "
                             f"got {header}")
        stamps, values = [], []
        for row in rows:
            if len(row) != 2:
                raise ValueError(f"{path}, line {rows.line_num}: {len(row)} cells, expected 2")
            stamps.append(_parse_timestamp(row[0], path, rows.line_num))
            values.append(_parse_value(row[1], path, rows.line_num))
    if not values:
        raise ValueError(f"{path}: no data rows after the header")
    timestamps = np.array(stamps, dtype="datetime64[s]")
    backwards = np.flatnonzero(np.diff(timestamps) <= np.timedelta64(0, "s"))
    if backwards.size:
        row = int(backwards[0]) + 1
        raise ValueError(
            f"{path}, line {row + 2}: time stamp {timestamps[row]} does not come after "
            f"{timestamps[row - 1]}"
        )
    return NabSeries(timestamps=timestamps, values=np.array(values, dtype=np.float64))


def labelled_windows(
    name: str, *, path: str | os.PathLike | None = None
) -> list[tuple[np.datetime64, np.datetime64]]:
    """NAB's labelled anomaly windows of a series, ``(start, end)`` pairs, both inclusive.

    Args:
      name: the series, e.g. ``"art_daily_jumpsup"``; it is matched against the label
        file's keys without their folder (``"artificialWithAnomaly/art_daily_jumpsup.csv"``).
      path: a label file in the format of NAB's ``labels/combined_windows.json``; ``None``
        reads the shipped ``combined_windows_subset.json``, which holds the two
        :data:`SHIPPED_SERIES` (``"art_daily_small_noise"`` has no window).

    Raises:
      FileNotFoundError: no file at ``path``.
      ValueError: naming the file: ``name`` is not in it (or is twice), or the file is
        not JSON of that format (a window not a pair of time stamps with start <= end).
    """
    path = _shipped_dir() / _WINDOWS_FILE if path is None else pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no NAB label file at {path}")
    try:
        labels = json.loads(path.read_text(encoding="utf-8"))
        matches = [value for key, value in labels.items()
                   if key.rsplit("/", 1)[-1] == f"{name}.csv"]
    except (ValueError, AttributeError) as error:
        raise ValueError(f"{path}: not a NAB label file ({error})") from error
    if len(matches) != 1:
        raise ValueError(f"{path}: {len(matches)} entries for {name}.csv, expected one; "
                         f"keys are {sorted(labels)}")
    try:
        windows = [(np.datetime64(start, "s"), np.datetime64(end, "s"))
                   for start, end in matches[0]]
    except (ValueError, TypeError) as error:
        raise ValueError(f"{path}: malformed windows for {name} ({error})") from error
    for start, end in windows:
        if np.isnat(start) or np.isnat(end) or start > end:
            raise ValueError(f"{path}: malformed window ({start}, {end}) for {name}")
    return windows


def in_windows(timestamps: np.ndarray,
               windows: list[tuple[np.datetime64, np.datetime64]]) -> np.ndarray:
    """Boolean per time stamp: inside some window ``start <= t <= end``."""
    timestamps = np.asarray(timestamps)
    inside = np.zeros(timestamps.shape, dtype=bool)
    for start, end in windows:
        inside |= (timestamps >= start) & (timestamps <= end)
    return inside


def sliding_windows(values: np.ndarray, length: int = WINDOW_LENGTH, *,
                    dtype: np.dtype | type | None = None) -> np.ndarray:
    """All windows of ``length`` consecutive values: row ``i`` is ``values[i:i + length]``.

    Args:
      values: a 1-D series of ``n`` values.
      length: the window length, ``1 <= length <= n``.
      dtype: the output dtype (e.g. ``np.float32`` for training); ``None`` keeps that of
        ``values``.

    Returns:
      A new C-contiguous array of shape ``(n - length + 1, length)`` (a copy, not a
      strided view, so writing to it cannot alias the series and devices get dense data).

    Raises:
      ValueError: ``values`` not 1-D, or ``length`` not in ``[1, n]``.
    """
    values = np.asarray(values)
    if values.ndim != 1:
        raise ValueError(f"values must be 1-D, got shape {values.shape}")
    if not 1 <= length <= values.shape[0]:
        raise ValueError(f"length must be between 1 and {values.shape[0]}, got {length}")
    view = np.lib.stride_tricks.sliding_window_view(values, length)
    return np.ascontiguousarray(view, dtype=values.dtype if dtype is None else dtype)


def anomalous_points(window_is_anomalous: np.ndarray, length: int) -> np.ndarray:
    """Maps window flags back to time steps: anomalous when every covering window is.

    With ``m`` windows of ``length`` steps (window ``i`` covers steps ``i .. i + length -
    1``), the series has ``n = m + length - 1`` steps and step ``t`` lies in windows
    ``max(0, t - length + 1) .. min(t, m - 1)``, at least one. Step ``t`` is flagged when
    all of those are; near the ends that is fewer than ``length`` windows (see the module
    docstring). Computed with a cumulative count of normal windows, ``O(n)``.

    Args:
      window_is_anomalous: ``(m,)`` booleans, one per window, ``m >= 1``.
      length: the window length, ``>= 1``.

    Returns:
      ``(m + length - 1,)`` booleans; index the series' time stamps with it.

    Raises:
      ValueError: flags not 1-D booleans, no windows, or ``length < 1``.
    """
    flags = np.asarray(window_is_anomalous)
    if flags.ndim != 1 or flags.dtype != np.bool_ or flags.size == 0:
        raise ValueError(
            f"window_is_anomalous must be a non-empty 1-D boolean array, got "
            f"{flags.dtype} of shape {flags.shape}"
        )
    if length < 1:
        raise ValueError(f"length must be at least 1, got {length}")
    num_windows = flags.shape[0]
    steps = np.arange(num_windows + length - 1)
    first = np.maximum(steps - length + 1, 0)
    last = np.minimum(steps, num_windows - 1)
    # normal_before[i] = number of normal windows among 0 .. i - 1.
    normal_before = np.concatenate([[0], np.cumsum(~flags)])
    return normal_before[last + 1] == normal_before[first]


def _parse_timestamp(text: str, path: pathlib.Path, line: int) -> np.datetime64:
    try:
        stamp = np.datetime64(text, "s")
    except ValueError as error:
        raise ValueError(f"{path}, line {line}: bad time stamp {text!r} ({error})") from error
    if np.isnat(stamp):  # NumPy reads "" and "NaT" as not-a-time
        raise ValueError(f"{path}, line {line}: missing time stamp {text!r}")
    return stamp


def _parse_value(text: str, path: pathlib.Path, line: int) -> float:
    try:
        value = float(text)
    except ValueError as error:
        raise ValueError(f"{path}, line {line}: value {text!r} is not a number") from error
    if not np.isfinite(value):
        raise ValueError(f"{path}, line {line}: value {text!r} is not finite")
    return value


def _resolve(name_or_path: str | os.PathLike) -> pathlib.Path:
    if isinstance(name_or_path, str) and name_or_path in SHIPPED_SERIES:
        return _shipped_dir() / f"{name_or_path}.csv"
    path = pathlib.Path(name_or_path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no NAB file at {path}; shipped series are {', '.join(SHIPPED_SERIES)}"
        )
    return path


def _shipped_dir() -> pathlib.Path:
    return pathlib.Path(str(importlib.resources.files("optlab.datasets") / "nab"))
