"""Tests of optlab.plots: figure contents, log-scale robustness, rendering without pyplot."""

import io

import jax.numpy as jnp
import numpy as np
import pytest
from matplotlib.figure import Figure

from optlab import plots, profiles
from optlab.plots import convergence_figure, draw_convergence, panel_figure


def _render(fig):
    """Draws the figure through Agg, which is what saving a PNG does."""
    fig.savefig(io.BytesIO(), format="png", dpi=40)


def _curves():
    rng = np.random.default_rng(0)
    decay = np.exp(-0.3 * np.arange(30))
    return {
        "gd": decay * rng.uniform(0.5, 2.0, size=(8, 1)),
        "bfgs": jnp.asarray(decay**2 * rng.uniform(0.5, 2.0, size=(8, 1))),
    }


def test_convergence_figure_has_line_and_band_per_method_and_threshold():
    fig = convergence_figure(_curves(), ylabel="f(x) - f*", title="quadratic", threshold=1e-6)
    assert isinstance(fig, Figure)
    (ax,) = fig.axes
    assert len(ax.lines) == 3  # two medians and the threshold
    assert len(ax.collections) == 2  # two percentile bands
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert labels == ["gd", "bfgs", "threshold = 1e-06"]
    assert ax.get_yscale() == "log"
    assert ax.get_xlabel() == "iteration"
    assert (ax.get_ylabel(), ax.get_title()) == ("f(x) - f*", "quadratic")
    assert ax.lines[2].get_linestyle() == "--"
    _render(fig)


def test_median_line_is_the_median_over_seeds():
    values = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, np.nan]])
    fig = convergence_figure({"m": values}, ylabel="y", log_y=False, band=None)
    (ax,) = fig.axes
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [2.0, 15.0])
    assert len(ax.collections) == 0


def test_long_curves_are_thinned_and_placed_by_x_step():
    values = np.tile(np.exp(-0.01 * np.arange(1000)), (3, 1))
    fig = convergence_figure({"m": values}, ylabel="y", x_step=5, max_points=100)
    (ax,) = fig.axes
    np.testing.assert_array_equal(ax.lines[0].get_xdata(), 5 * np.arange(0, 1000, 10))
    np.testing.assert_allclose(ax.lines[0].get_ydata(), values[0, ::10])


def test_a_diverging_curve_does_not_flatten_the_others():
    converging = np.tile(np.geomspace(1.0, 1e-3, 20), (3, 1))
    diverging = np.tile(np.geomspace(1.0, 1e30, 20), (3, 1))
    fig = convergence_figure({"ok": converging, "blows up": diverging}, ylabel="y")
    (ax,) = fig.axes
    assert ax.get_ylim()[1] == pytest.approx(100.0)
    _render(fig)


def test_nan_zeros_and_negative_values_draw_on_log_scale():
    values = np.abs(np.random.default_rng(1).normal(size=(5, 20))) + 0.1
    values[:, 15:] = np.nan  # every run stopped early: all-NaN iterations
    values[0, 3] = 0.0
    values[1, 4] = -1.0
    values[2, 5] = np.inf
    fig = convergence_figure({"m": values, "zeros": np.zeros((3, 20))}, ylabel="y")
    (ax,) = fig.axes
    assert ax.get_yscale() == "log"
    smallest = values[values > 0].min()
    for line in ax.lines:
        y = np.asarray(line.get_ydata())
        assert np.all(np.isnan(y) | (y >= smallest))
    assert np.all(np.isnan(ax.lines[0].get_ydata()[15:]))
    _render(fig)


@pytest.mark.parametrize("fill", [0.0, np.nan])
def test_log_scale_without_positive_values_falls_back_to_linear(fill):
    fig = convergence_figure({"m": np.full((3, 4), fill)}, ylabel="y")
    assert fig.axes[0].get_yscale() == "linear"
    _render(fig)


def test_panel_figure_grid_and_drawing_into_panels():
    fig, axes = panel_figure(5, ncols=2, size_per_panel=(3.0, 2.0))
    assert len(axes) == 5 and fig.axes == axes
    assert tuple(fig.get_size_inches()) == (6.0, 6.0)
    for size, ax in enumerate(axes):
        draw_convergence(ax, _curves(), ylabel="y", title=f"n = {size}")
    assert all(len(ax.lines) == 2 and ax.get_legend() is not None for ax in axes)
    _render(fig)


def test_panel_figure_defaults_to_at_most_three_columns():
    assert tuple(panel_figure(2)[0].get_size_inches()) == (10.0, 4.0)
    assert tuple(panel_figure(4)[0].get_size_inches()) == (15.0, 8.0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(curves={}), "at least one"),
        (dict(curves={"m": np.ones(5)}), "shape"),
        (dict(band=(75.0, 25.0)), "band"),
        (dict(band=(0.0, 101.0)), "band"),
        (dict(threshold=0.0), "threshold"),
    ],
)
def test_convergence_figure_invalid_arguments_raise(kwargs, message):
    kwargs = {"curves": _curves(), "ylabel": "y", **kwargs}
    with pytest.raises(ValueError, match=message):
        convergence_figure(**kwargs)


@pytest.mark.parametrize("kwargs", [dict(n_panels=0), dict(n_panels=2, ncols=0)])
def test_panel_figure_invalid_arguments_raise(kwargs):
    with pytest.raises(ValueError):
        panel_figure(**kwargs)


def test_nanpercentile_matches_numpy_with_nans_and_empty_columns():
    import warnings

    from optlab.plots import _nanpercentile

    rng = np.random.default_rng(1)
    values = rng.standard_normal((7, 300))
    values[rng.random(values.shape) < 0.4] = np.nan
    values[:, 3] = np.nan
    for q in (0.0, 25.0, 50.0, 75.0, 100.0):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # numpy warns on the empty column
            expected = np.nanpercentile(values, q, axis=0)
        np.testing.assert_allclose(_nanpercentile(values, q), expected, equal_nan=True)


def test_confusion_figure_normalises_each_true_class():
    fig = plots.confusion_figure(np.array([[8, 2], [0, 5]]), title="test")
    (ax, _colorbar) = fig.axes
    np.testing.assert_allclose(ax.images[0].get_array(), [[0.8, 0.2], [0.0, 1.0]])
    assert sorted(text.get_text() for text in ax.texts) == ["0.20", "0.80", "1.00"]
    with pytest.raises(ValueError, match="square"):
        plots.confusion_figure(np.zeros((2, 3)))


def test_violin_figure_has_a_panel_per_group_and_skips_non_finite_values():
    groups = {"layer 1": {"initial": np.arange(10.0), "trained": [1.0, np.nan, 3.0]},
              "layer 2": {"initial": [np.nan], "trained": [0.5, 0.7]}}
    fig = plots.violin_figure(groups, ylabel="weight", title="seed 0")
    assert [ax.get_title() for ax in fig.axes] == ["layer 1", "layer 2"]
    assert [tick.get_text() for tick in fig.axes[0].get_xticklabels()] == ["initial", "trained"]


def test_panels_figure_draws_a_panel_per_title_with_its_own_scale():
    rng = np.random.default_rng(0)
    panels = {"loss": {"train": rng.random((3, 5)) + 0.1, "validation": rng.random((3, 5)) + 0.1},
              "accuracy": {"train": rng.random((3, 5))}}
    fig = plots.panels_figure(panels, ylabel={"loss": "MSE", "accuracy": "accuracy"},
                              log_y={"loss": True, "accuracy": False})
    assert [ax.get_title() for ax in fig.axes] == ["loss", "accuracy"]
    assert [ax.get_yscale() for ax in fig.axes] == ["log", "linear"]
    assert len(fig.axes[0].get_lines()) == 2 and fig.axes[1].get_ylabel() == "accuracy"


def test_learning_curves_figure_lays_out_panels_by_variant_or_by_measure():
    rng = np.random.default_rng(1)
    histories = {"adam": {"train_loss": rng.random((2, 4)) + 0.1, "val_loss": rng.random((2, 4)),
                          "train_accuracy": rng.random((2, 4))},
                 "sgd": {"train_loss": rng.random((2, 4)) + 0.1}}
    by_variant = plots.learning_curves_figure(histories, ("accuracy", "loss"))
    assert [ax.get_title() for ax in by_variant.axes] == [
        "adam: accuracy", "adam: loss", "sgd: loss"]
    assert [len(ax.get_lines()) for ax in by_variant.axes] == [1, 2, 1]
    assert [ax.get_yscale() for ax in by_variant.axes] == ["linear", "log", "log"]
    by_measure = plots.learning_curves_figure(histories, by="measure", ylabel="cross-entropy")
    assert [ax.get_title() for ax in by_measure.axes] == ["train loss", "validation loss"]
    assert [len(ax.get_lines()) for ax in by_measure.axes] == [2, 1]
    assert by_measure.axes[0].get_ylabel() == "cross-entropy"
    with pytest.raises(ValueError, match="by must be"):
        plots.learning_curves_figure(histories, by="seed")


def test_histogram_figure_shares_bins_and_draws_the_threshold():
    panels = {"seed 0": {"normal": [1.0, 2.0, 3.0], "anomalous": [10.0, 20.0]}}
    fig = plots.histogram_figure(panels, {"seed 0": 5.0}, xlabel="MSE", log_x=True, bins=6)
    (ax,) = fig.axes
    assert ax.get_xscale() == "log" and ax.get_title() == "seed 0"
    labels = ax.get_legend_handles_labels()[1]
    assert sorted(labels) == ["anomalous (2)", "normal (3)", "threshold 5"]
    assert len(ax.patches) == 2 * 5  # 6 edges: 5 bars per sample


def test_profiles_figure_draws_a_step_line_per_solver_and_one_legend_outside():
    performance = profiles.performance_profile(np.array([[1.0, 2.0], [3.0, np.inf]]))
    data = profiles.data_profile(np.array([[2.0, 8.0], [8.0, np.inf]]), sizes=[1, 3])
    fig = plots.profiles_figure({"evaluations": performance, "tolerance 1e-3": data},
                                ["ours", "theirs"], xlabel={"evaluations": "tau",
                                                            "tolerance 1e-3": "alpha"})
    left, right = fig.axes
    assert [line.get_label() for line in left.get_lines()] == ["ours", "theirs"]
    assert left.get_xscale() == "log" and left.get_xlabel() == "tau"
    assert right.get_xlabel() == "alpha" and left.get_xlim()[0] == 1.0
    # Each line starts at 0, steps up at its points and is carried to the axis' end.
    x, y = left.get_lines()[1].get_data()
    np.testing.assert_allclose(y, [0.0, 0.0, 0.5, 0.5])
    assert x[-1] == left.get_xlim()[1] > 2.0
    assert len(fig.legends) == 1 and not left.get_legend()
    _render(fig)  # the constrained layout places the legend beside the panels
    assert fig.legends[0].get_window_extent().x0 >= right.get_window_extent().x1
    with pytest.raises(ValueError, match="a profile of 2 solvers at 2 points, for 3 names"):
        plots.profiles_figure({"p": performance}, ["a", "b", "c"], xlabel="tau")
