r"""Why Newton's method cycles on ``f(x, y) = x^4/4 - x^2 + 2x + (y - 1)^2`` from (0, 2).

Question: why does pure Newton never converge here, and which fixes do? Newton sets
``y = 1`` in one step while ``x`` jumps 0 -> 1 -> 0 -> ...: ``f_xx = 3x^2 - 2`` is -2 at
``x = 0`` (the Hessian is indefinite, the step goes to the local model's maximum in x)
and 1 at ``x = 1``, and the two steps ``-f_x / f_xx`` are +1 and -1. The study runs pure
Newton (status ``cycling``), gradient descent with a fixed step, steepest descent with a
line search, and Newton with its eigenvalues floored at their absolute value and
backtracking (every step descends).

    python -m experiments.newton_cycle
    python -m experiments.newton_cycle --learning_rate=0.05

Writes table.md (per method: status, iterations, final point, distance to the minimizer
``(x*, 1)``; the Hessian's signs along the cycle), results.json, results.csv, contour.png.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

import optlab
from configs import newton_cycle as default_config
from experiments.kit import cli
from optlab import plots, problems, report

DOMAIN = (-2.5, 2.0, -1.0, 3.0)  # x_min, x_max, y_min, y_max of the contour plot


def methods(config) -> dict:
    return {
        "newton": optlab.newton(),
        "gradient descent": optlab.gradient_descent(config.learning_rate),
        "steepest descent": optlab.steepest_descent(),
        "regularized newton": optlab.newton("backtracking", min_curvature=config.min_curvature),
    }


def hessian_story(x_star: np.ndarray) -> list[dict]:
    """Gradient, Hessian eigenvalues and Newton step at x = 0, x = 1 (y = 1) and at x*."""
    rows = []
    for x in (0.0, 1.0, float(x_star[0])):
        point = jnp.array([x, 1.0])
        gradient = jax.grad(problems.newton_cycle)(point)
        hessian = jax.hessian(problems.newton_cycle)(point)
        definite = bool(jnp.all(jnp.linalg.eigvalsh(hessian) > 0))
        rows.append({"x": x, "f_x": float(gradient[0]), "f_xx": float(hessian[0, 0]),
                     "hessian": "positive definite" if definite else "indefinite",
                     "newton_step_x": float(-jnp.linalg.solve(hessian, gradient)[0])})
    return rows


def run_study(config: default_config.Config, log: cli.Log = print) -> dict:
    """Runs every method from the start (no file output) and returns the results."""
    x_star = problems.newton_cycle_minimizer()
    stop = optlab.stopping.distance_to(x_star, config.eps)
    rows, paths = [], {}
    for name, opt in methods(config).items():
        result = jax.jit(lambda x, opt=opt: optlab.minimize(
            problems.newton_cycle, x, opt, stop=stop, max_iters=config.max_iters,
            history=config.max_iters + 1, record_params=True))(jnp.asarray(config.start))
        iterations, status = int(result.iterations), optlab.Status(int(result.status))
        paths[name] = np.asarray(result.history.params)[: iterations + 1]
        rows.append({"method": name, "status": status.name.lower(), "iterations": iterations,
                     "x": float(result.params[0]), "y": float(result.params[1]),
                     "distance": float(jnp.linalg.norm(result.params - x_star)),
                     "value": float(result.value)})
        log(f"{name}: {status.name.lower()} after {iterations} iterations")
    return {
        "config": dataclasses.asdict(config), "minimizer": np.asarray(x_star), "rows": rows,
        "hessian": hessian_story(np.asarray(x_star)),
        "newton_iterates": paths["newton"][: config.shown_iterates], "paths": paths,
    }


COLUMNS = [("method", "method"), ("status", "status"), ("iterations", "iterations"),
           ("x", "x", "{:.6f}"), ("y", "y", "{:.6f}"),
           ("distance", "distance to (x*, 1)", "{:.2e}"), ("value", "f", "{:.6f}")]
HESSIAN_COLUMNS = [("x", "x (y = 1)", "{:.4f}"), ("f_x", "f_x", "{:.4f}"),
                   ("f_xx", "f_xx", "{:.4f}"), ("hessian", "Hessian"),
                   ("newton_step_x", "Newton step in x", "{:+.4f}")]


def summary(config, results: dict) -> str:
    x_star = results["minimizer"]
    iterates = ", ".join(f"({x:g}, {y:g})" for x, y in results["newton_iterates"])
    newton = next(row for row in results["rows"] if row["method"] == "newton")
    return "\n".join([
            f"## Newton's cycle on x^4/4 - x^2 + 2x + (y - 1)^2 from {config.start}", "",
            f"Minimizer: x* = {x_star[0]:.6f} (the real root of x^3 - 2x + 2 = 0), y* = 1.", "",
            report.markdown_table(results["rows"], COLUMNS), "",
            f"Pure Newton's iterates: {iterates}, ... (status {newton['status']}).", "",
            report.markdown_table(results["hessian"], HESSIAN_COLUMNS), "",
            "Why: Newton fixes the quadratic y = 1 in one step. At x = 0 the Hessian is "
            "indefinite: the step +1 goes to the local model's maximum in x; at x = 1 the step "
            "-1 sends it back, and the iterates repeat with period two. Gradient and steepest "
            "descent only step downhill; the regularized Newton method takes |f_xx| = 2, "
            "which turns the step at x = 0 downhill, and its line search keeps each a decrease."])


def write(config, results: dict) -> cli.Report:
    # The four paths on the contour plot of f; Newton's is the two-point cycle.
    figure = plots.contour_figure(problems.newton_cycle, DOMAIN, results["paths"],
                                  minimizer=results["minimizer"],
                                  title="x^4/4 - x^2 + 2x + (y - 1)^2 from (0, 2)")
    return cli.Report(markdown=summary(config, results), results=results,
                      tables={"results.csv": results["rows"]}, figures={"contour.png": figure})


STUDY = cli.Study(
    "newton_cycle", default_config.get_config, run_study, write, float64=True,
    smoke_flags=("--max_iters=50",))


if __name__ == "__main__":
    cli.run(STUDY)
