"""The 2-D test functions against closed forms, their minimizers, and the landscape figures."""

import io
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from matplotlib.animation import FuncAnimation, PillowWriter
from matplotlib.contour import ContourSet
from matplotlib.figure import Figure
from mpl_toolkits.mplot3d.art3d import Poly3DCollection
from PIL import Image

from optlab import plots, problems

FUNCTIONS = problems.TEST_FUNCTIONS


def _easom_value_and_gradient(x, y):
    bump = np.exp(-((x - np.pi) ** 2 + (y - np.pi) ** 2))
    value = -np.cos(x) * np.cos(y) * bump
    return value, (
        np.sin(x) * np.cos(y) * bump + 2 * (x - np.pi) * np.cos(x) * np.cos(y) * bump,
        np.cos(x) * np.sin(y) * bump + 2 * (y - np.pi) * np.cos(x) * np.cos(y) * bump,
    )


# name -> (x, y) -> (value, (df/dx, df/dy)), written out by hand.
CLOSED_FORMS = {
    "bowl": lambda x, y: (x**2 + y**2, (2 * x, 2 * y)),
    "mult": lambda x, y: (
        np.sin(np.hypot(x, y)),
        (np.cos(np.hypot(x, y)) * x / np.hypot(x, y), np.cos(np.hypot(x, y)) * y / np.hypot(x, y)),
    ),
    "monkey_saddle": lambda x, y: (x**3 + 3 * x * y**2, (3 * x**2 + 3 * y**2, 6 * x * y)),
    "matyas": lambda x, y: (
        0.26 * (x**2 + y**2) - 0.48 * x * y,
        (0.52 * x - 0.48 * y, 0.52 * y - 0.48 * x),
    ),
    "easom": _easom_value_and_gradient,
    "rosenbrock": lambda x, y: (
        100 * (y - x**2) ** 2 + (1 - x) ** 2,
        (-400 * x * (y - x**2) - 2 * (1 - x), 200 * (y - x**2)),
    ),
}


def _batched(fn):
    """`fn` over the leading axes of its argument, compiled (eager vmap dispatches op by op)."""
    return jax.jit(jnp.vectorize(fn, signature="(2)->()"))


def _points_in(domain, count=25, seed=0):
    rng = np.random.default_rng(seed)
    return np.stack(
        [rng.uniform(domain[0], domain[1], count), rng.uniform(domain[2], domain[3], count)],
        axis=1,
    )


def test_every_function_has_a_closed_form_here():
    assert set(FUNCTIONS) == set(CLOSED_FORMS)
    assert all(function.name == name for name, function in FUNCTIONS.items())


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_value_and_gradient_equal_the_closed_forms(name):
    function = FUNCTIONS[name]
    points = _points_in(function.domain)
    value, gradient = CLOSED_FORMS[name](points[:, 0], points[:, 1])
    np.testing.assert_allclose(_batched(function.fn)(points), value, rtol=1e-12, atol=1e-14)
    gradients = jax.jit(jax.vmap(jax.grad(function.fn)))(points)
    np.testing.assert_allclose(gradients, np.stack(gradient, axis=1), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", sorted(n for n, f in FUNCTIONS.items() if f.minimizer is not None))
def test_minimizers_have_the_minimum_zero_gradient_and_zero_distance(name):
    function = FUNCTIONS[name]
    minimizers = np.atleast_2d(function.minimizer)
    gradients = jax.jit(jax.vmap(jax.grad(function.fn)))(minimizers)
    np.testing.assert_allclose(_batched(function.fn)(minimizers), function.minimum, atol=1e-12)
    np.testing.assert_allclose(gradients, 0.0, atol=1e-12)
    np.testing.assert_allclose(_batched(function.distance)(minimizers), 0.0, atol=1e-12)
    # Nothing nearby is lower, and the plots show the minimizers.
    nearby = minimizers[:, None, :] + np.random.default_rng(1).normal(scale=0.05, size=(1, 50, 2))
    assert float(jnp.min(_batched(function.fn)(nearby))) >= function.minimum
    assert np.all(plots._inside(minimizers, function.domain))


def test_easom_minimum_is_minus_one_at_pi_pi():
    assert float(problems.easom(jnp.array([math.pi, math.pi]))) == -1.0
    assert FUNCTIONS["easom"].minimum == -1.0


def test_mult_origin_is_a_local_minimum_with_a_finite_gradient():
    origin = jnp.zeros(2)
    assert float(problems.mult(origin)) == 0.0
    np.testing.assert_array_equal(jax.grad(problems.mult)(origin), [0.0, 0.0])
    nearby = np.random.default_rng(2).normal(scale=0.1, size=(50, 2))
    assert float(jnp.min(_batched(problems.mult)(nearby))) > 0.0


@pytest.mark.parametrize(
    "radius, distance",
    [
        (0.0, 1.5 * math.pi),  # the origin: the innermost circle is the nearest
        (1.5 * math.pi, 0.0),
        (1.5 * math.pi + 1.0, 1.0),
        (2.5 * math.pi, math.pi),  # halfway between two circles of minima
        (3.5 * math.pi + 0.5, 0.5),  # near the second circle
    ],
)
def test_mult_distance_is_to_the_nearest_circle_of_minima(radius, distance):
    angle = 0.7
    point = jnp.array([radius * math.cos(angle), radius * math.sin(angle)])
    assert float(FUNCTIONS["mult"].distance(point)) == pytest.approx(distance, abs=1e-12)
    if distance == 0.0:
        assert float(problems.mult(point)) == pytest.approx(-1.0)


def test_monkey_saddle_has_a_flat_critical_point_and_no_minimum():
    function = FUNCTIONS["monkey_saddle"]
    assert function.minimizer is None and function.minimum is None
    origin = jnp.zeros(2)
    np.testing.assert_array_equal(jax.jit(jax.grad(function.fn))(origin), [0.0, 0.0])
    np.testing.assert_array_equal(jax.jit(jax.hessian(function.fn))(origin), np.zeros((2, 2)))
    # Both signs arbitrarily close to the saddle, and unbounded below along -x.
    values = _batched(function.fn)(np.array([[1e-3, 0.0], [-1e-3, 0.0], [-1e3, 0.0]]))
    assert values[0] > 0 > values[1] and values[2] == -1e9
    assert float(function.distance(jnp.array([3.0, 4.0]))) == 5.0


def _paths():
    return {
        "settles": np.array([[4.0, 4.0], [2.0, 1.0], [0.5, 0.2], [0.1, 0.0]]),
        "diverges": np.array([[4.0, 4.0], [-12.0, -8.0], [36.0, 24.0], [np.inf, np.nan]]),
    }


def _render(fig):
    fig.savefig(io.BytesIO(), format="png", dpi=40)


def test_contour_figure_draws_contours_paths_markers_and_legend():
    bowl = FUNCTIONS["bowl"]
    fig = plots.contour_figure(bowl.fn, (-5, 5, -5, 5), _paths(), bowl.minimizer, title="bowl")
    assert isinstance(fig, Figure)
    ax = fig.axes[0]  # the second axes is the colour bar
    assert len(fig.axes) == 2
    assert any(isinstance(artist, ContourSet) for artist in ax.collections)
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert labels == ["minimizer", "settles", "diverges", "start"]
    # minimizer, start, and per path its line and its end marker
    assert len(ax.lines) == 6
    assert (ax.get_xlim(), ax.get_ylim(), ax.get_title()) == ((-5, 5), (-5, 5), "bowl")
    settles = ax.lines[1]
    np.testing.assert_array_equal(settles.get_xydata(), _paths()["settles"])
    # The diverging path is drawn up to where it leaves the domain, on the boundary.
    diverges = np.asarray(ax.lines[3].get_xydata())
    np.testing.assert_allclose(diverges[1], [-5.0, -2.75])
    assert np.all(np.isnan(diverges[2:]))
    _render(fig)


def test_contour_figure_draws_a_curve_of_minimizers_as_a_dashed_line():
    mult = FUNCTIONS["mult"]
    fig = plots.contour_figure(mult.fn, mult.domain, {"m": _paths()["settles"]}, mult.minimizer)
    curve = fig.axes[0].lines[0]
    assert curve.get_label() == "minimizers" and curve.get_linestyle() == "--"
    np.testing.assert_allclose(np.hypot(*curve.get_xydata().T), problems.MULT_MINIMUM_RADIUS)
    _render(fig)


def test_contour_figure_draws_a_panel_per_mapping_of_paths():
    bowl = FUNCTIONS["bowl"]
    panels = {"first": {"settles": _paths()["settles"]}, "second": _paths()}
    fig = plots.contour_figure(bowl.fn, (-5, 5, -5, 5), panels, bowl.minimizer)
    panel_axes = [ax for ax in fig.axes if ax.get_title()]  # the others are colour bars
    assert [ax.get_title() for ax in panel_axes] == ["first", "second"]
    assert [len(ax.get_legend().get_texts()) for ax in panel_axes] == [3, 4]
    _render(fig)


def test_surface_figure_has_a_surface_and_a_lifted_line_per_path():
    easom = FUNCTIONS["easom"]
    paths = {"a": np.array([[2.0, 2.0], [3.0, 3.0], [math.pi, math.pi]]), **_paths()}
    domain = (-0.5, 6.5, -0.5, 6.5)
    fig = plots.surface_figure(easom.fn, domain, paths, title="easom", resolution=20)
    (ax,) = fig.axes
    assert ax.name == "3d"
    assert sum(isinstance(artist, Poly3DCollection) for artist in ax.collections) == 1
    assert len(ax.lines) == 3
    heights = np.asarray(ax.lines[0].get_data_3d()[2])
    np.testing.assert_allclose(heights[-1], -1.0)
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert labels == ["a", "settles", "diverges"]
    _render(fig)


def test_path_animation_grows_the_paths_and_saves_as_a_gif(tmp_path):
    bowl = FUNCTIONS["bowl"]
    paths = {"long": np.linspace([4.0, 4.0], [0.0, 0.0], 30), "short": _paths()["settles"]}
    animation = plots.path_animation(bowl.fn, bowl.domain, paths, fps=5, max_frames=6)
    assert isinstance(animation, FuncAnimation)
    target = tmp_path / "paths.gif"
    animation.save(target, writer=PillowWriter(fps=5), dpi=30)
    with Image.open(target) as gif:
        assert gif.n_frames == 6
        frames = []
        for index in (0, gif.n_frames - 1):
            gif.seek(index)
            frames.append(np.asarray(gif.convert("RGB"), dtype=np.int16))
    assert np.abs(frames[0] - frames[1]).sum() > 0  # the paths grow


@pytest.mark.parametrize(
    "paths, message",
    [({}, "at least one"), ({"m": np.ones((3, 3))}, "shape"), ({"m": np.ones(4)}, "shape")],
)
def test_landscape_figures_reject_bad_paths(paths, message):
    bowl = FUNCTIONS["bowl"]
    for draw in (plots.contour_figure, plots.surface_figure):
        with pytest.raises(ValueError, match=message):
            draw(bowl.fn, bowl.domain, paths)


def test_path_animation_rejects_a_zero_frame_rate():
    bowl = FUNCTIONS["bowl"]
    with pytest.raises(ValueError, match="fps"):
        plots.path_animation(bowl.fn, bowl.domain, _paths(), fps=0)
