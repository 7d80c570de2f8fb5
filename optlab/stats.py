"""Host-side statistics of per-seed results.

Contract: `summarize` takes a 1-D array of per-seed numbers (NumPy or JAX, already on the
host or not) and returns a `Summary` of plain floats. Non-finite entries (NaN, ±inf) stand
for runs that did not reach their target: they are left out of every statistic and
counted in `Summary.total - Summary.count`, so a table can say "7 of 8 converged" next to
the mean of those seven. Nothing here is traced by JAX; call it after the compiled study.
"""

from typing import Any, Mapping, NamedTuple

import numpy as np
import scipy.stats

_METHODS = ("t", "bootstrap")
_BOOTSTRAP_BLOCK_ELEMENTS = 4_000_000  # 32 MB of float64 per block of resamples


class Summary(NamedTuple):
    """Statistics of the finite samples of one 1-D array of per-seed results."""

    count: int  # number of finite samples used in the statistics
    total: int  # number of samples given, finite or not
    mean: float
    std: float  # sample standard deviation (ddof=1); 0.0 when count == 1
    min: float
    max: float
    median: float
    ci_low: float  # lower end of the confidence interval of the mean
    ci_high: float  # upper end of the confidence interval of the mean
    confidence: float  # e.g. 0.95
    method: str  # "t" or "bootstrap"

    def as_dict(self) -> dict[str, Any]:
        """Returns the fields as plain Python ints, floats and strings (JSON-ready).

        NaN stays a float NaN here; `optlab.report.to_jsonable` turns it into None.
        """
        fields: dict[str, Any] = {
            name: float(value) for name, value in self._asdict().items() if name != "method"
        }
        fields.update(count=int(self.count), total=int(self.total), method=str(self.method))
        return fields


def summarize(
    samples: Any,
    *,
    confidence: float = 0.95,
    method: str = "t",
    n_boot: int = 10_000,
    seed: int = 0,
) -> Summary:
    """Summarizes per-seed results: mean, spread and a confidence interval of the mean.

    Args:
      samples: 1-D array-like (NumPy or JAX array, list) of per-seed values. NaN and ±inf
        are excluded and counted as failures (`total - count`).
      confidence: level of the interval, strictly between 0 and 1.
      method: "t" for the Student-t interval mean ± t_{(1+c)/2, n-1} · s / √n, or
        "bootstrap" for the percentile bootstrap of the mean (`n_boot` resamples drawn
        from `numpy.random.default_rng(seed)`, so the result is reproducible).
      n_boot: number of bootstrap resamples (bootstrap only).
      seed: seed of the bootstrap's NumPy Generator (bootstrap only).

    Returns:
      A `Summary`. When every finite sample has the same value (including count == 1) the
      interval is [value, value]. When count == 0 every statistic is NaN.

    Raises:
      ValueError: samples not 1-D, confidence outside (0, 1), unknown method, or
        n_boot < 1 with the bootstrap.

    Example:
      >>> summarize([3, 4, 5, float("nan")]).count
      3
    """
    values = np.asarray(samples, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"samples must be 1-D, got shape {values.shape}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    if method == "bootstrap" and n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")

    finite = values[np.isfinite(values)]
    count, total = int(finite.size), int(values.size)
    if count == 0:
        nan = float("nan")
        return Summary(count, total, nan, nan, nan, nan, nan, nan, nan, confidence, method)

    mean = float(np.mean(finite))
    std = float(np.std(finite, ddof=1)) if count > 1 else 0.0
    low, high = float(np.min(finite)), float(np.max(finite))
    # Identical samples have no spread: the t formula gives 0/0 scaled by t and the
    # bootstrap is degenerate, but the honest interval is the single value.
    if low == high:
        ci_low, ci_high = low, high
    elif method == "t":
        half_width = scipy.stats.t.ppf(0.5 + confidence / 2, df=count - 1) * std / np.sqrt(count)
        ci_low, ci_high = mean - half_width, mean + half_width
    else:
        ci_low, ci_high = _bootstrap_mean_interval(finite, confidence, n_boot, seed)
    return Summary(
        count=count,
        total=total,
        mean=mean,
        std=std,
        min=low,
        max=high,
        median=float(np.median(finite)),
        ci_low=float(ci_low),
        ci_high=float(ci_high),
        confidence=float(confidence),
        method=method,
    )


def _bootstrap_mean_interval(
    values: np.ndarray, confidence: float, n_boot: int, seed: int
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of `values` (1-D, finite)."""
    rng = np.random.default_rng(seed)
    # Resample in blocks so memory stays bounded for many seeds times many resamples.
    rows_per_block = max(1, _BOOTSTRAP_BLOCK_ELEMENTS // values.size)
    means = np.concatenate([
        rng.choice(values, size=(min(rows_per_block, n_boot - start), values.size)).mean(axis=1)
        for start in range(0, n_boot, rows_per_block)
    ])
    tail = (1.0 - confidence) / 2
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return float(low), float(high)


def format_mean_std(
    samples: Any,
    spec: str = ".3g",
    *,
    scale: float = 1.0,
    spread: str = "std",
) -> str:
    """The one text of per-seed results: ``"mean ± std"``, e.g. ``"94.02 ± 0.23"``.

    Args:
      samples: 1-D per-seed values, or the `Summary` of them.
      spec: format spec of the numbers (``".2f"``, ``".3g"``, ...).
      scale: multiplies every number first (100 shows fractions as percentages).
      spread: what follows the mean: "std" (``"m ± s"``), "range" (``"m ± s (min–max)"``)
        or "interval" (``"m ± s [ci_low, ci_high]"``).

    Returns:
      The text of the finite samples (tables count the others in a column of their own),
      or "—" when none is finite.
    """
    if spread not in ("std", "range", "interval"):
        raise ValueError(f"spread must be 'std', 'range' or 'interval', got {spread!r}")
    summary = samples if isinstance(samples, Summary) else summarize(samples)
    if summary.count == 0:
        return "—"

    def number(value: float) -> str:
        return format(value * scale, spec)

    text = f"{number(summary.mean)} ± {number(summary.std)}"
    if spread == "range":
        text += f" ({number(summary.min)}–{number(summary.max)})"
    elif spread == "interval":
        text += f" [{number(summary.ci_low)}, {number(summary.ci_high)}]"
    return text


def mean_std_columns(per_seed: Mapping[str, Any], specs: Mapping[str, str] | str) -> dict[str, Any]:
    """The columns of one table row from per-seed values, e.g. for a CSV of numbers and a
    Markdown of texts. For each ``key`` of ``per_seed``, over its finite values (see
    :func:`summarize`): ``key`` (the mean), ``key_std``, ``key_ci_low`` and ``key_ci_high``
    (the 95% t-interval of the mean), ``key_count`` (how many values are finite) and
    ``key_text`` (:func:`format_mean_std` with the format spec ``specs[key]``, or ``specs``
    itself when it is one spec for all)."""
    columns: dict[str, Any] = {}
    for key, values in per_seed.items():
        summary = summarize(np.asarray(values, dtype=np.float64))
        columns |= {key: summary.mean, f"{key}_std": summary.std,
                    f"{key}_ci_low": summary.ci_low, f"{key}_ci_high": summary.ci_high,
                    f"{key}_count": summary.count, f"{key}_text": format_mean_std(
                        summary, specs if isinstance(specs, str) else specs[key])}
    return columns


def first_below(curves: Any, level: float, *, inclusive: bool = False) -> np.ndarray:
    """Per run of ``curves`` (runs, steps), the first step whose value is below ``level``
    (or equal to it, with ``inclusive``), as a float; NaN where no step is: the "steps to
    a target" of a table, ready for :func:`summarize`, which leaves the NaNs out."""
    curves = np.asarray(curves)
    below = curves <= level if inclusive else curves < level
    return np.where(below.any(axis=-1), np.argmax(below, axis=-1), np.nan)


def median_index(values: Any) -> int:
    """The index of the (lower) median of per-run values, a non-finite value ranking above
    every finite one (a diverged run is the worst): the run a figure shows as typical."""
    values = np.asarray(values, dtype=np.float64)
    order = np.argsort(np.where(np.isfinite(values), values, np.inf), kind="stable")
    return int(order[(len(order) - 1) // 2])
