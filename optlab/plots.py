"""Matplotlib figures of study results, built without pyplot.

Contract: functions return `matplotlib.figure.Figure` objects made directly (no pyplot, no
global figure registry, no display or GUI backend needed) and never save them; saving is
`experiments/rundir.py`'s job (`fig.savefig` renders through Agg). Curves are arrays of
shape (seeds, iterations), one per method, with NaN where a run has no value (it stopped
early, or diverged: ±inf is treated as NaN). A figure shows per method the median over
seeds as a line and a percentile band over seeds as a shaded region.
"""

from typing import Any, Mapping

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

_BAND_ALPHA = 0.25


def panel_figure(
    n_panels: int,
    *,
    ncols: int | None = None,
    size_per_panel: tuple[float, float] = (5.0, 4.0),
) -> tuple[Figure, list[Axes]]:
    """Makes a Figure with `n_panels` axes on a grid, laid out tightly when drawn.

    Args:
      n_panels: number of axes, at least 1.
      ncols: columns of the grid; by default min(n_panels, 3).
      size_per_panel: (width, height) in inches of one panel.

    Returns:
      The figure and its axes in row-major order; grid cells beyond `n_panels` are removed.

    Raises:
      ValueError: if n_panels or ncols is less than 1.
    """
    if n_panels < 1:
        raise ValueError(f"n_panels must be at least 1, got {n_panels}")
    ncols = min(n_panels, 3) if ncols is None else ncols
    if ncols < 1:
        raise ValueError(f"ncols must be at least 1, got {ncols}")
    nrows = -(-n_panels // ncols)
    width, height = size_per_panel
    fig = Figure(figsize=(ncols * width, nrows * height), layout="tight")
    grid = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for unused in grid[n_panels:]:
        unused.remove()
    return fig, list(grid[:n_panels])


def draw_convergence(
    ax: Axes,
    curves: Mapping[str, Any],
    *,
    xlabel: str = "iteration",
    ylabel: str,
    title: str | None = None,
    log_y: bool = True,
    band: tuple[float, float] | None = (25.0, 75.0),
    threshold: float | None = None,
) -> None:
    """Draws convergence curves into `ax`; `convergence_figure` documents the arguments.

    Use it with `panel_figure` to put one problem size per panel.
    """
    if not curves:
        raise ValueError("curves must name at least one method")
    data = {name: _as_curve(name, values) for name, values in curves.items()}
    if band is not None and not 0.0 <= band[0] < band[1] <= 100.0:
        raise ValueError(f"band must satisfy 0 <= low < high <= 100, got {band}")
    if log_y and threshold is not None and threshold <= 0:
        raise ValueError(f"threshold must be positive on a log scale, got {threshold}")
    positive = [values[values > 0] for values in data.values()]
    smallest_positive = min((p.min() for p in positive if p.size), default=None)
    # Clip before taking percentiles so the median and band stay on the log scale; NaN
    # compares false and so stays NaN ("no value"). With no positive value at all a log
    # axis cannot be drawn, so the axis stays linear.
    log_y = log_y and smallest_positive is not None
    if log_y:
        data = {
            name: np.where(values <= 0, smallest_positive, values) for name, values in data.items()
        }
        ax.set_yscale("log")

    for name, values in data.items():
        iterations = np.arange(values.shape[1])
        (line,) = ax.plot(iterations, _nanpercentile(values, 50.0), label=name)
        if band is not None:
            ax.fill_between(
                iterations,
                _nanpercentile(values, band[0]),
                _nanpercentile(values, band[1]),
                color=line.get_color(),
                alpha=_BAND_ALPHA,
                linewidth=0,
            )
    if threshold is not None:
        ax.axhline(
            threshold,
            color="black",
            linestyle="--",
            linewidth=1,
            label=f"threshold = {threshold:g}",
        )
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title is not None:
        ax.set_title(title)
    ax.grid(True, which="major", alpha=0.4)
    ax.legend()


def convergence_figure(
    curves: Mapping[str, Any],
    *,
    xlabel: str = "iteration",
    ylabel: str,
    title: str | None = None,
    log_y: bool = True,
    band: tuple[float, float] | None = (25.0, 75.0),
    threshold: float | None = None,
) -> Figure:
    """Plots median-over-seeds convergence curves with a percentile band, one per method.

    Args:
      curves: method name -> array of shape (seeds, iterations) (NumPy or JAX). NaN and
        ±inf entries are ignored by the percentiles; an iteration where every seed is
        NaN leaves a gap.
      xlabel, ylabel, title: axis labels and optional title.
      log_y: logarithmic y axis. Non-positive values are clipped to the smallest positive
        value over all curves so the log scale never fails; with no positive value at all
        the axis stays linear.
      band: (low, high) percentiles of the shaded band, or None for no band.
      threshold: optional level (e.g. the stopping eps) drawn as a dashed horizontal line
        with its own legend entry.

    Returns:
      A single-panel Figure with one line (and one band) per method, a legend and a grid.

    Raises:
      ValueError: no curves, a curve that is not 2-D, a band outside 0..100 or not increasing, or a
        non-positive threshold on a log scale.
    """
    fig, (ax,) = panel_figure(1, size_per_panel=(6.0, 4.0))
    draw_convergence(
        ax,
        curves,
        xlabel=xlabel,
        ylabel=ylabel,
        title=title,
        log_y=log_y,
        band=band,
        threshold=threshold,
    )
    return fig


def _as_curve(name: str, values: Any) -> np.ndarray:
    """Returns `values` as a float64 (seeds, iterations) array with NaN for non-finite."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"curve {name!r} must have shape (seeds, iterations), got {array.shape}")
    return np.where(np.isfinite(array), array, np.nan)


def _nanpercentile(values: np.ndarray, q: float) -> np.ndarray:
    """Percentile over seeds per iteration, NaN where no seed has a value.

    Computed only on iterations that have a value, because `np.nanpercentile` warns on an
    all-NaN column, and a study whose runs all stopped early has many of those.
    """
    result = np.full(values.shape[1], np.nan)
    present = ~np.all(np.isnan(values), axis=0)
    if present.any():
        result[present] = np.nanpercentile(values[:, present], q, axis=0)
    return result
