r"""Why Newton's method cycles on ``f(x, y) = x^4/4 - x^2 + 2x + (y - 1)^2`` from (0, 2).

    python -m experiments.newton_cycle

Pure Newton sets ``y = 1`` in its first step, while ``x`` jumps 0 -> 1 -> 0 -> ... for
ever: ``f_xx = 3x^2 - 2`` is -2 at ``x = 0`` and 1 at ``x = 1``, and ``f_x`` is 2 and 1
there, so the two Newton steps ``-f_x / f_xx`` are +1 and -1. At ``x = 0`` the Hessian is
indefinite: Newton's step goes to the stationary point of the local quadratic model,
here its maximum in ``x``, and there is no descent to stop it. The study runs
pure Newton (status ``cycling``), gradient descent with a fixed step 0.01, steepest
descent with a line search, and a regularized Newton method (eigenvalues of the Hessian
floored at their absolute value, with backtracking: every step descends), and
reports, for each, the status, iterations, final point and distance to the minimizer
``(x*, 1)`` with ``x*`` the real root of ``x^3 - 2x + 2 = 0``. It writes results.json,
table.md, results.csv and contour.png (the paths on the contour plot) into a new run
directory under --out.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

import optlab
from configs import newton_cycle as default_config
from experiments.kit import cli
from experiments.kit.rundir import RunDir
from optlab import plots, problems, report

NAME = "newton_cycle"
FLAGS = flags.FLAGS

DOMAIN = (-2.5, 2.0, -1.0, 3.0)  # x_min, x_max, y_min, y_max of the contour plot


def methods(config) -> dict[str, optlab.GradientTransformationExtraArgs]:
    return {
        "newton": optlab.newton(),
        "gradient descent": optlab.gradient_descent(config.learning_rate),
        "steepest descent": optlab.steepest_descent(),
        "regularized newton": optlab.newton("backtracking", min_curvature=config.min_curvature),
    }


def validate(config: default_config.Config) -> None:
    if not config.learning_rate > 0:
        raise ValueError(f"--learning_rate must be positive, got {config.learning_rate}")
    if not config.min_curvature > 0:
        raise ValueError(f"--min_curvature must be positive, got {config.min_curvature}")
    if config.max_iters < 1:
        raise ValueError(f"--max_iters must be at least 1, got {config.max_iters}")


def hessian_story(x_star: np.ndarray) -> list[dict]:
    """Gradient, Hessian eigenvalues and Newton step at x = 0, x = 1 (y = 1) and at x*."""
    rows = []
    for x in (0.0, 1.0, float(x_star[0])):
        point = jnp.array([x, 1.0])
        gradient = jax.grad(problems.newton_cycle)(point)
        hessian = jax.hessian(problems.newton_cycle)(point)
        step = -jnp.linalg.solve(hessian, gradient)
        rows.append(
            {
                "x": x,
                "f_x": float(gradient[0]),
                "f_xx": float(hessian[0, 0]),
                "hessian": "positive definite" if jnp.all(jnp.linalg.eigvalsh(hessian) > 0)
                else "indefinite",
                "newton_step_x": float(step[0]),
            }
        )
    return rows


def run_study(config: default_config.Config, log: Callable[[str], None] = print) -> dict:
    """Runs every method from the start (no file output) and returns the results."""
    validate(config)
    x_star = problems.newton_cycle_minimizer()
    stop = optlab.stopping.distance_to(x_star, config.eps)
    x0 = jnp.asarray(config.start)
    rows, paths = [], {}
    for name, opt in methods(config).items():
        run = jax.jit(
            lambda x, opt=opt: optlab.minimize(
                problems.newton_cycle,
                x,
                opt,
                stop=stop,
                max_iters=config.max_iters,
                history=config.max_iters + 1,
                record_params=True,
            )
        )
        result = run(x0)
        iterations = int(result.iterations)
        status = optlab.Status(int(result.status))
        paths[name] = np.asarray(result.history.params)[: iterations + 1]
        rows.append(
            {
                "method": name,
                "status": status.name.lower(),
                "iterations": iterations,
                "x": float(result.params[0]),
                "y": float(result.params[1]),
                "distance": float(jnp.linalg.norm(result.params - x_star)),
                "value": float(result.value),
            }
        )
        log(f"{name}: {status.name.lower()} after {iterations} iterations")
    return {
        "config": dataclasses.asdict(config),
        "minimizer": np.asarray(x_star),
        "rows": rows,
        "hessian": hessian_story(np.asarray(x_star)),
        "newton_iterates": paths["newton"][: config.shown_iterates],
        "paths": paths,
    }


COLUMNS = [
    report.Column("method", "method"),
    report.Column("status", "status"),
    report.Column("iterations", "iterations"),
    report.Column("x", "x", "{:.6f}"),
    report.Column("y", "y", "{:.6f}"),
    report.Column("distance", "distance to (x*, 1)", "{:.2e}"),
    report.Column("value", "f", "{:.6f}"),
]
HESSIAN_COLUMNS = [
    report.Column("x", "x (y = 1)", "{:.4f}"),
    report.Column("f_x", "f_x", "{:.4f}"),
    report.Column("f_xx", "f_xx", "{:.4f}"),
    report.Column("hessian", "Hessian"),
    report.Column("newton_step_x", "Newton step in x", "{:+.4f}"),
]


def summary(config, results: dict) -> str:
    x_star = results["minimizer"]
    iterates = ", ".join(f"({x:g}, {y:g})" for x, y in results["newton_iterates"])
    newton = next(row for row in results["rows"] if row["method"] == "newton")
    return "\n".join(
        [
            f"## Newton's cycle on x^4/4 - x^2 + 2x + (y - 1)^2 from {config.start}",
            "",
            f"Minimizer: x* = {x_star[0]:.6f} (the real root of x^3 - 2x + 2 = 0), y* = 1.",
            "",
            report.markdown_table(results["rows"], COLUMNS),
            "",
            f"Pure Newton's iterates: {iterates}, ... (status {newton['status']}).",
            "",
            report.markdown_table(results["hessian"], HESSIAN_COLUMNS),
            "",
            "Why: y is quadratic, so Newton fixes y = 1 in one step. In x, at x = 0 the "
            "Hessian is indefinite (f_xx = -2 < 0): the Newton step -f_x/f_xx = +1 goes to the "
            "stationary point of the local model, which is its maximum in x, not a minimum. "
            "At x = 1, f_xx = 1 > 0 but f_x = 1 sends it back by -1: "
            "the two steps cancel exactly and the iterates repeat with period two. Gradient "
            "and steepest descent only ever step downhill and reach x*. The regularized "
            "Newton method replaces the negative curvature -2 by |-2|, which turns the step "
            "at x = 0 downhill (-f_x/|f_xx| = -1), and its line search keeps every step a "
            "decrease.",
        ]
    )


def write_outputs(config, results: dict, root) -> RunDir:
    run_dir = RunDir.create(root, "newton_cycle")
    run_dir.write_json("results.json", results)
    run_dir.write_text("table.md", summary(config, results) + "\n")
    run_dir.write_text("results.csv", report.csv_text(results["rows"], COLUMNS))
    run_dir.save_figure("contour.png", figure(results))
    return run_dir


def figure(results: dict):
    """The four paths on the contour plot of f; Newton's is the two-point cycle."""
    return plots.contour_figure(
        problems.newton_cycle,
        DOMAIN,
        results["paths"],
        minimizer=results["minimizer"],
        title="x^4/4 - x^2 + 2x + (y - 1)^2 from (0, 2)",
    )


def config_from_flags() -> default_config.Config:
    overrides = {
        name: getattr(FLAGS, name)
        for name in ("learning_rate", "min_curvature", "max_iters")
        if getattr(FLAGS, name) is not None
    }
    return dataclasses.replace(default_config.get_config(), **overrides)


def define_flags() -> None:
    flags.DEFINE_float("learning_rate", None, "Gradient descent's fixed step.")
    flags.DEFINE_float("min_curvature", None, "Eigenvalue floor of the regularized Newton method.")
    flags.DEFINE_integer("max_iters", None, "Iteration budget of each method.")
    flags.DEFINE_string("out", "runs", "Directory that receives the run directory.")


main = cli.study_main(
    NAME,
    config_from_flags=config_from_flags,
    validate=validate,
    run_study=run_study,
    render=summary,
    write_outputs=write_outputs,
    float64=True,
)


if __name__ == "__main__":
    cli.run_script(NAME, main, define_flags)
