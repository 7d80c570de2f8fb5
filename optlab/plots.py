"""Matplotlib figures of study results, built without pyplot.

Contract: functions return `matplotlib.figure.Figure` objects made directly (no pyplot, no
global figure registry, no display or GUI backend needed) and never save them; saving is
`experiments/kit/rundir.py`'s job (`fig.savefig` renders through Agg). Curves are arrays of
shape (seeds, iterations), one per method, with NaN where a run has no value (it stopped
early, or diverged: ±inf is treated as NaN). A figure shows per method the median over
seeds as a line and a percentile band over seeds as a shaded region.

Landscapes of 2-D functions (`contour_figure`, `surface_figure`, `path_animation`) take
the function as a JAX-traceable map from a vector of length 2 to a scalar, a domain
`(x_min, x_max, y_min, y_max)` that fixes the axes, and paths: method name -> array of
shape (steps + 1, 2) of iterates. The axes stay on the domain, so a diverging path leaves
the picture instead of shrinking the landscape: a path is drawn until it crosses the
boundary of the domain (3-D axes do not clip), and non-finite points are not drawn.
"""

from typing import Any, Callable, Mapping, Sequence

import jax
import numpy as np
from matplotlib.animation import FuncAnimation
from matplotlib.axes import Axes
from matplotlib.colors import BoundaryNorm
from matplotlib.figure import Figure
from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

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
    x_step: float = 1.0,
    max_points: int = 250,
    legend_size: str | float = "medium",
) -> None:
    """Draws convergence curves into `ax`; `convergence_figure` documents the arguments
    (``legend_size``: the legend's font size, e.g. "x-small" for many curves).

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

    # Every stride-th record at most: more points do not show, and the percentiles over
    # seeds cost a Python loop per point.
    stride = -(-max(values.shape[1] for values in data.values()) // max_points)
    data = {name: values[:, ::stride] for name, values in data.items()}
    if log_y:
        # A diverging curve (1e30 and more) would flatten every other one: the axis stops
        # at 100 times the highest median start.
        start = max((float(np.median(v[np.isfinite(v[:, 0]), 0])) for v in data.values()
                     if np.isfinite(v[:, 0]).any()), default=np.inf)
        finite = np.concatenate([values[np.isfinite(values)] for values in data.values()])
        if finite.size and finite.max() > 100 * start:
            ax.set_ylim(0.5 * finite.min(), 100 * start)
    for name, values in data.items():
        iterations = np.arange(values.shape[1]) * stride * x_step
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
    ax.legend(fontsize=legend_size)


def convergence_figure(
    curves: Mapping[str, Any],
    *,
    xlabel: str = "iteration",
    ylabel: str,
    title: str | None = None,
    log_y: bool = True,
    band: tuple[float, float] | None = (25.0, 75.0),
    threshold: float | None = None,
    x_step: float = 1.0,
    max_points: int = 250,
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
      x_step: the x distance of two records (e.g. steps between recorded losses).
      max_points: at most this many points per curve (every k-th record). On a log axis
        a diverging curve is cut at 100 times the highest median start.

    Returns:
      A single-panel Figure with one line (and one band) per method, a legend and a grid.

    Raises:
      ValueError: no curves, a curve that is not 2-D, a band outside 0..100 or not increasing, or a
        non-positive threshold on a log scale.
    """
    fig, (ax,) = panel_figure(1, size_per_panel=(6.0, 4.0))
    draw_convergence(ax, curves, xlabel=xlabel, ylabel=ylabel, title=title, log_y=log_y,
                     band=band, threshold=threshold, x_step=x_step, max_points=max_points)
    return fig


def panels_figure(
    panels: Mapping[str, Mapping[str, Any]],
    *,
    xlabel: str = "epoch",
    ylabel: str | Mapping[str, str],
    log_y: bool | Mapping[str, bool] = True,
    ncols: int | None = None,
    size_per_panel: tuple[float, float] = (5.0, 4.0),
    **options: Any,
) -> Figure:
    """Convergence or learning curves over seeds, one panel per title: ``panels`` maps a
    panel's title to its curves (name -> (seeds, steps)), drawn as `draw_convergence`
    draws them, with its keyword ``options`` (band, threshold, x_step, max_points,
    legend_size).
    ``ylabel`` and ``log_y`` are one value, or one per title."""
    fig, axes = panel_figure(len(panels), ncols=ncols, size_per_panel=size_per_panel)
    for ax, (title, curves) in zip(axes, panels.items()):
        draw_convergence(
            ax, curves, xlabel=xlabel, title=title,
            ylabel=ylabel if isinstance(ylabel, str) else ylabel[title],
            log_y=log_y if isinstance(log_y, bool) else log_y[title], **options)
    return fig


def learning_curves_figure(
    histories: Mapping[str, Mapping[str, Any]],
    measures: tuple[str, ...] = ("loss",),
    *,
    by: str = "variant",
    ncols: int = 2,
    size_per_panel: tuple[float, float] = (6.0, 4.0),
    **options: Any,
) -> Figure:
    """Learning curves over seeds from training histories, as `optlab.train.fit` records
    them: variant -> name (``train_loss``, ``val_accuracy``, ...) -> (seeds, epochs).

    ``by="variant"``: a panel per variant and measure, with its training and validation
    curves. ``by="measure"``: a panel per recorded name (training, then validation, of
    each measure), with a curve per variant. Names a history lacks are left out (a run
    without validation data has no ``val_`` curves). Losses get a log axis, the other
    measures a linear one; ``options`` go to `panels_figure` (``ylabel`` defaults to "").
    """
    if by not in ("variant", "measure"):
        raise ValueError(f"by must be 'variant' or 'measure', got {by!r}")
    splits = {"train": "train", "val": "validation"}
    if by == "variant":
        panels = {f"{variant}: {measure}": {label: history[f"{split}_{measure}"]
                                            for split, label in splits.items()
                                            if f"{split}_{measure}" in history}
                  for variant, history in histories.items() for measure in measures}
    else:
        panels = {f"{label} {measure}": {variant: history[f"{split}_{measure}"]
                                         for variant, history in histories.items()
                                         if f"{split}_{measure}" in history}
                  for measure in measures for split, label in splits.items()}
    panels = {title: curves for title, curves in panels.items() if curves}
    log_y = {title: title.endswith("loss") for title in panels}
    return panels_figure(panels, log_y=log_y, ncols=min(ncols, len(panels)),
                         size_per_panel=size_per_panel, **{"ylabel": ""} | options)


def histogram_figure(
    panels: Mapping[str, Mapping[str, Any]],
    thresholds: Mapping[str, float],
    *,
    xlabel: str,
    ylabel: str = "count",
    log_x: bool = False,
    bins: int = 50,
    size_per_panel: tuple[float, float] = (5.5, 4.0),
) -> Figure:
    """Histograms of scores (e.g. reconstruction errors), one panel per title: ``panels``
    maps a title to its named samples, drawn over the same bins (geometric with
    ``log_x``), and ``thresholds[title]`` as a dashed red line where given."""
    fig, axes = panel_figure(len(panels), size_per_panel=size_per_panel)
    for ax, (title, samples) in zip(axes, panels.items()):
        arrays = {name: np.asarray(values, np.float64).ravel() for name, values in samples.items()}
        pooled = np.concatenate(list(arrays.values()))
        low, high = pooled.min(), pooled.max()
        edges = np.geomspace(low, high, bins) if log_x else np.linspace(low, high, bins)
        for name, values in arrays.items():
            ax.hist(values, bins=edges, alpha=0.6 if len(arrays) > 1 else 1.0,
                    label=f"{name} ({values.size})")
        if title in thresholds:
            ax.axvline(thresholds[title], color="red", linestyle="--",
                       label=f"threshold {thresholds[title]:.4g}")
        ax.set_xscale("log" if log_x else "linear")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        # Not "best": its search over the bars may pass a second on a loaded machine,
        # and matplotlib then warns (an error under the tests' filterwarnings).
        ax.legend(loc="upper right")
    return fig


def confusion_figure(confusion: Any, *, title: str = "") -> Figure:
    """A confusion matrix (rows: true class, columns: predicted) with each row divided by
    its count, the shares written in the cells from 0.005 up."""
    confusion = np.asarray(confusion, dtype=np.float64)
    if confusion.ndim != 2 or confusion.shape[0] != confusion.shape[1]:
        raise ValueError(f"a confusion matrix must be square, got shape {confusion.shape}")
    classes = confusion.shape[0]
    normalised = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    fig, (ax,) = panel_figure(1, size_per_panel=(6.0, 5.0))
    image = ax.imshow(normalised, vmin=0.0, vmax=1.0, cmap="Blues")
    for (true, predicted), value in np.ndenumerate(normalised):
        if value >= 0.005:
            ax.text(predicted, true, f"{value:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if value > 0.5 else "black")
    ax.set_xticks(range(classes))
    ax.set_yticks(range(classes))
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(f"{title}\nnormalised per true class".strip(), fontsize="medium")
    fig.colorbar(image, ax=ax)
    return fig


def violin_figure(
    groups: Mapping[str, Mapping[str, Any]], *, ylabel: str, title: str = ""
) -> Figure:
    """One panel per group (e.g. a layer), one violin per named array in it (e.g. its
    weights before and after training); non-finite values are left out."""
    fig, axes = panel_figure(len(groups), ncols=len(groups), size_per_panel=(3.5, 4.0))
    for ax, (name, arrays) in zip(axes, groups.items()):
        finite = [np.ravel(np.asarray(a, np.float64)) for a in arrays.values()]
        finite = [values[np.isfinite(values)] for values in finite]
        positions = [p for p, values in enumerate(finite, start=1) if values.size]
        if positions:
            ax.violinplot([v for v in finite if v.size], positions=positions, showmedians=True)
        ax.set_xticks(range(1, len(arrays) + 1), list(arrays))
        ax.set_title(name)
        ax.set_ylabel(ylabel)
    if title:
        fig.suptitle(title)
    return fig


def _as_curve(name: str, values: Any) -> np.ndarray:
    """Returns `values` as a float64 (seeds, iterations) array with NaN for non-finite."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"curve {name!r} must have shape (seeds, iterations), got {array.shape}")
    return np.where(np.isfinite(array), array, np.nan)


def _nanpercentile(values: np.ndarray, q: float) -> np.ndarray:
    """Percentile over seeds per iteration, ignoring NaN; NaN where no seed has a value.

    ``np.nanpercentile`` along an axis runs a Python-level loop per column (seconds for
    curves of a thousand iterations) and warns on all-NaN columns. Here NaNs sort last,
    so each column's percentile is a vectorized linear interpolation between its order
    statistics, numpy's default ("linear") method.
    """
    ordered = np.sort(values, axis=0)
    count = np.sum(~np.isnan(values), axis=0)
    position = np.maximum(count - 1, 0) * (q / 100.0)
    below = np.floor(position).astype(int)
    above = np.minimum(below + 1, np.maximum(count - 1, 0))
    low = np.take_along_axis(ordered, below[None], axis=0)[0]
    high = np.take_along_axis(ordered, above[None], axis=0)[0]
    result = low + (high - low) * (position - below)
    return np.where(count > 0, result, np.nan)


Domain = tuple[float, float, float, float]  # (x_min, x_max, y_min, y_max)
_CONTOUR_LEVELS = 30


def contour_figure(
    fn: Callable,
    domain: Domain,
    paths: Mapping[str, Any],
    minimizer: Any = None,
    *,
    title: str | None = None,
    ncols: int = 2,
) -> Figure:
    """Filled contours of a 2-D function with one path per method.

    Args:
      fn: JAX-traceable function of a vector of length 2, returning a scalar.
      domain: (x_min, x_max, y_min, y_max), the extent of the plot.
      paths: method name -> iterates of shape (steps + 1, 2); each is drawn as a line
        from its start (a black circle) to its end (a cross in the line's colour). Or
        panel title -> such a mapping: one panel each, `ncols` to a row, on the same
        landscape.
      minimizer: None, a point of shape (2,) drawn as a star, or points of shape (k, 2)
        on a curve of minimizers drawn as a dashed line.
      title: optional axes title (of a single panel).

    The contour levels are quantiles of the function over the domain, so flat regions
    and steep walls both show structure.

    Returns:
      A Figure with one axes per panel (contours, one line per path, start, end and
      minimizer markers, a legend) and a colour bar each.
    """
    nested = paths and all(isinstance(p, Mapping) for p in paths.values())
    panels = paths if nested else {title: paths}
    fig, axes = panel_figure(len(panels), ncols=min(ncols, len(panels)),
                             size_per_panel=(6.5, 5.5))
    for ax, (panel_title, panel_paths) in zip(axes, panels.items()):
        filled = _draw_landscape(ax, fn, domain, minimizer)
        fig.colorbar(filled, ax=ax, label="f(x, y)", format="%.3g")
        drawn = _as_paths(panel_paths, domain)
        for (name, path), width in zip(drawn.items(), _line_widths(len(drawn))):
            (line,) = ax.plot(path[:, 0], path[:, 1], marker=".", markersize=3,
                              linewidth=width, label=name)
            ax.plot(path[-1:, 0], path[-1:, 1], marker="X", markersize=9,
                    color=line.get_color(), markeredgecolor="white", linestyle="none")
        _mark_starts(ax, panel_paths, domain)
        if panel_title is not None:
            ax.set_title(panel_title)
        ax.legend(loc="best", fontsize="small")
    return fig


def surface_figure(
    fn: Callable,
    domain: Domain,
    paths: Mapping[str, Any],
    *,
    title: str | None = None,
    resolution: int = 80,
) -> Figure:
    """A 3-D surface of a 2-D function with each path lifted onto it.

    Arguments as in `contour_figure`; `resolution` is the number of grid points per axis.

    Returns:
      A Figure with one 3-D axes: the surface and one line per path (at the function's
      values along the path), with a legend.
    """
    fig = Figure(figsize=(7.0, 5.5), layout="tight")
    ax = fig.add_subplot(projection="3d")
    # Depth sorting would hide the paths behind the surface they lie on; draw them on top.
    ax.computed_zorder = False
    x, y, z = _grid(fn, domain, resolution)
    ax.plot_surface(x, y, z, cmap="viridis", alpha=0.6, linewidth=0, antialiased=True, zorder=1)
    for name, path in _as_paths(paths, domain).items():
        height = np.where(np.isnan(path[:, 0]), np.nan, _evaluate(fn, np.nan_to_num(path)))
        ax.plot(
            path[:, 0],
            path[:, 1],
            height,
            marker=".",
            markersize=3,
            linewidth=1.5,
            label=name,
            zorder=3,
        )
    ax.set_xlim(domain[0], domain[1])
    ax.set_ylim(domain[2], domain[3])
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_zlabel("f(x, y)")
    if title is not None:
        ax.set_title(title)
    ax.legend(loc="upper left", fontsize="small")
    return fig


def path_animation(
    fn: Callable,
    domain: Domain,
    paths: Mapping[str, Any],
    fps: int = 10,
    *,
    minimizer: Any = None,
    title: str | None = None,
    max_frames: int = 100,
) -> FuncAnimation:
    """An animation of the paths growing step by step over the contours of `fn`.

    Arguments as in `contour_figure`. Long runs are shown at `max_frames` evenly spaced
    steps (the last frame is always the last step). The animation lives on its own
    Figure (no pyplot); save it with `animation.save(path, writer=PillowWriter(fps))`.

    Returns:
      A `FuncAnimation` whose figure holds one line and one head marker per path.
    """
    if fps < 1 or max_frames < 1:
        raise ValueError(f"fps and max_frames must be at least 1, got {fps} and {max_frames}")
    fig, (ax,) = panel_figure(1, size_per_panel=(6.0, 5.5))
    _draw_landscape(ax, fn, domain, minimizer)
    drawn = _as_paths(paths, domain)
    _mark_starts(ax, paths, domain)
    steps = max(path.shape[0] for path in drawn.values())
    shown = np.unique(np.linspace(0, steps - 1, min(steps, max_frames)).round().astype(int))
    artists = []
    for name, width in zip(drawn, _line_widths(len(drawn))):
        (line,) = ax.plot([], [], linewidth=width, label=name)
        (head,) = ax.plot([], [], marker="o", color=line.get_color(), linestyle="none")
        artists.append((line, head))
    ax.legend(loc="best", fontsize="small")
    caption = ax.set_title(title or "")

    def draw(frame: int):
        step = shown[frame]
        for (line, head), path in zip(artists, drawn.values()):
            line.set_data(path[: step + 1, 0], path[: step + 1, 1])
            head.set_data(path[step : step + 1, 0], path[step : step + 1, 1])
        caption.set_text(f"{title + ', ' if title else ''}step {step}")
        return [artist for pair in artists for artist in pair] + [caption]

    return FuncAnimation(fig, draw, frames=len(shown), interval=1000 / fps, blit=False)


def _draw_landscape(ax: Axes, fn: Callable, domain: Domain, minimizer: Any):
    """Filled contours of `fn` at quantile levels, and the minimizer; returns the contour set."""
    x, y, z = _grid(fn, domain, 200)
    finite = z[np.isfinite(z)]
    levels = np.unique(np.quantile(finite, np.linspace(0.0, 1.0, _CONTOUR_LEVELS)))
    if levels.size > 1:
        # One colour per band, however unevenly the quantiles are spaced in value.
        norm = BoundaryNorm(levels, ncolors=256)
        filled = ax.contourf(x, y, z, levels=levels, cmap="viridis", norm=norm)
    else:  # a constant function has a single level, which contourf cannot fill
        filled = ax.contourf(x, y, z, cmap="viridis")
    if minimizer is not None:
        points = np.asarray(minimizer, dtype=np.float64)
        if points.ndim == 1:
            ax.plot(
                points[0],
                points[1],
                marker="*",
                markersize=16,
                color="gold",
                markeredgecolor="black",
                linestyle="none",
                label="minimizer",
            )
        else:
            ax.plot(
                points[:, 0],
                points[:, 1],
                color="gold",
                linestyle="--",
                linewidth=1.5,
                label="minimizers",
            )
    ax.set_xlim(domain[0], domain[1])
    ax.set_ylim(domain[2], domain[3])
    ax.set_aspect("equal")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    return filled


def _line_widths(count: int) -> np.ndarray:
    """Widths from wide (first path) to thin (last), so paths that coincide stay visible."""
    return 1.0 + 0.8 * np.arange(count)[::-1]


def _mark_starts(ax: Axes, paths: Mapping[str, Any], domain: Domain) -> None:
    """One black circle per distinct start inside the domain, labelled once."""
    starts = np.unique([np.asarray(path, np.float64)[0] for path in paths.values()], axis=0)
    inside = _inside(starts, domain)
    ax.plot(
        starts[inside, 0],
        starts[inside, 1],
        marker="o",
        markersize=8,
        color="black",
        linestyle="none",
        label="start",
    )


def _grid(fn: Callable, domain: Domain, resolution: int):
    x, y = np.meshgrid(
        np.linspace(domain[0], domain[1], resolution), np.linspace(domain[2], domain[3], resolution)
    )
    z = _evaluate(fn, np.stack([x.ravel(), y.ravel()], axis=1)).reshape(x.shape)
    return x, y, z


def _evaluate(fn: Callable, points: np.ndarray) -> np.ndarray:
    """`fn` at each row of `points` (n, 2), in one compiled call, as float64 NumPy."""
    return np.asarray(jax.jit(jax.vmap(fn))(points), dtype=np.float64)


def _inside(points: np.ndarray, domain: Domain) -> np.ndarray:
    """True for the rows of `points` (n, 2) inside `domain`; False for NaN rows."""
    return (
        (points[:, 0] >= domain[0])
        & (points[:, 0] <= domain[1])
        & (points[:, 1] >= domain[2])
        & (points[:, 1] <= domain[3])
    )


def _as_paths(paths: Mapping[str, Any], domain: Domain) -> dict[str, np.ndarray]:
    """Paths as float64 (steps + 1, 2) arrays that stay inside `domain`.

    A path that leaves the domain ends where it crosses the boundary (the rest is NaN),
    so 2-D and 3-D axes draw it alike; non-finite points are NaN.
    """
    if not paths:
        raise ValueError("paths must name at least one method")
    arrays = {}
    for name, path in paths.items():
        points = np.asarray(path, dtype=np.float64)
        if points.ndim != 2 or points.shape[1] != 2:
            raise ValueError(f"path {name!r} must have shape (steps + 1, 2), got {points.shape}")
        inside = _inside(points, domain)
        drawn = np.where(inside[:, None], points, np.nan)
        exits = np.flatnonzero(~inside)
        if exits.size:
            first = exits[0]
            drawn[first + 1 :] = np.nan
            if first > 0 and np.isfinite(points[first]).all():
                drawn[first] = _boundary_crossing(points[first - 1], points[first], domain)
        arrays[name] = drawn
    return arrays


def _boundary_crossing(inside: np.ndarray, outside: np.ndarray, domain: Domain) -> np.ndarray:
    """The point where the segment from `inside` to `outside` leaves the domain box."""
    low, high = np.array(domain[0::2]), np.array(domain[1::2])
    step = outside - inside
    with np.errstate(divide="ignore", invalid="ignore"):
        to_high, to_low = (high - inside) / step, (low - inside) / step
    fractions = np.where(outside > high, to_high, np.where(outside < low, to_low, 1.0))
    return inside + np.min(fractions) * step


def profiles_figure(
    panels: Mapping[str, Any],
    names: Sequence[str],
    *,
    xlabel: str | Mapping[str, str],
    ylabel: str = "fraction of problems",
    ncols: int | None = None,
    size_per_panel: tuple[float, float] = (4.5, 3.6),
) -> Figure:
    """Performance or data profiles (:class:`optlab.profiles.Profile`), one panel per
    title, one step line per solver (``names``, in the order of a profile's rows), on a
    logarithmic x axis, with one legend for every panel outside the curves, to the right.

    A line starts where its x axis starts (at 0 below its first step) and is carried to
    the end of the axis at its last level, so that a solver that solves more problems
    late still shows it."""
    if not panels:
        raise ValueError("panels must hold at least one profile")
    names = list(names)
    fig, axes = panel_figure(len(panels), ncols=ncols, size_per_panel=size_per_panel)
    fig.set_layout_engine("constrained")
    styles = ["-", "--", "-.", ":"]
    for ax, (title, profile) in zip(axes, panels.items()):
        x = np.asarray(profile.x, np.float64)
        fractions = np.asarray(profile.fractions, np.float64)
        if fractions.shape != (len(names), x.size):
            raise ValueError(f"{title}: a profile of {fractions.shape[0]} solvers at "
                             f"{x.size} points, for {len(names)} names")
        low = x[0] if x.size else 1.0
        high = max(x[-1] * 2 if x.size else 2.0, low * 2)
        for row, (name, fraction) in enumerate(zip(names, fractions)):
            ax.step(np.concatenate([[low], x, [high]]),
                    np.concatenate([[0.0], fraction, fraction[-1:] if x.size else [0.0]]),
                    where="post", label=name, linestyle=styles[row // 10 % len(styles)],
                    linewidth=1.5)
        ax.set_xscale("log")
        crowded = np.log10(high / low) > 2.5  # ticks at 1, 2, 5 per decade, or at 1 only
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0,) if crowded
                                              else (1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlim(low, high)
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(title)
        ax.set_xlabel(xlabel if isinstance(xlabel, str) else xlabel[title])
        ax.set_ylabel(ylabel)
        ax.grid(True, which="major", alpha=0.4)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right upper")
    return fig
