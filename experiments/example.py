r"""An example study: two optimizers of your choice on a problem of yours, over seeds.

Question: from 20 random starts in [-2, 2]^n, how many steps do Adam and Nesterov's
momentum take to bring the gradient of the Rosenbrock function below a tolerance, and
how often do they get there? Copy this file to start a study of your own: a config, a
function that runs it, and its table and figure; the kit gives the flags, the checks,
the run directory and the compilation cache.

    python -m experiments.example
    python -m experiments.example --seeds=50 --n=10 --learning_rate=3e-3

Writes table.md, results.json, results.csv and convergence.png (f(x_k) against step:
median over seeds, interquartile band).
"""

from __future__ import annotations

import dataclasses

import numpy as np

import optlab
from experiments.kit import cli
from experiments.kit.options import at_least, option, positive
from optlab import plots, problems, report, stats, sweep


@dataclasses.dataclass(frozen=True)
class Config:
    n: int = option(2, "Dimension of the Rosenbrock function.", check=at_least(2))
    seeds: int = option(20, "Random starting points.", check=at_least(1))
    learning_rate: float = option(1e-3, "Step size of both optimizers.", check=positive())
    tol: float = option(1e-3, "Stop when ||grad f|| < tol.", check=positive())
    max_iters: int = option(20_000, "Step budget per run.", check=at_least(1))


def get_config() -> Config:
    return Config()


def optimizers(config: Config) -> dict:
    """The optimizers to compare: any optax GradientTransformation goes here."""
    return {
        "adam": optlab.adam(config.learning_rate),
        "nesterov": optlab.nesterov(config.learning_rate, gamma=0.9),
    }


def run(config: Config, log: cli.Log) -> dict:
    """Every optimizer from every start, one compiled program per optimizer."""
    starts = problems.rosenbrock_starts(config.n, config.seeds)
    stop = optlab.stopping.grad_norm(config.tol)
    rows, curves = [], {}
    for name, optimizer in optimizers(config).items():

        def solve(x0, optimizer=optimizer):
            return optlab.minimize(problems.rosenbrock, x0, optimizer, stop=stop,
                                   max_iters=config.max_iters, history=config.max_iters + 1)

        result, timing = sweep.run_seeds(solve, starts, repeats=1)
        converged = np.asarray(result.status) == optlab.Status.CONVERGED
        steps = np.where(converged, np.asarray(result.iterations), np.nan)
        diverged = np.asarray(result.status) == optlab.Status.NONFINITE
        rows.append({"optimizer": name, "converged": f"{converged.sum()}/{config.seeds}",
                     "diverged": f"{diverged.sum()}/{config.seeds}",
                     "steps": stats.format_mean_std(steps, ".0f", spread="interval"),
                     "compile_s": timing.compile_seconds, "run_s": timing.run_seconds})
        curves[name] = np.asarray(result.history.values)
        log(f"{name}: {converged.sum()}/{config.seeds} converged, "
            f"{report.format_seconds(timing.run_seconds)} for all seeds")
    return {"config": config, "rows": rows, "curves": curves}


COLUMNS = [
    report.Column("optimizer", "optimizer"),
    report.Column("converged", "converged"),
    report.Column("diverged", "diverged"),
    report.Column("steps", "steps, mean ± std [95% CI]"),
    report.Column("run_s", "time, all seeds", report.format_seconds),
    report.Column("compile_s", "compile", report.format_seconds),
]


def write(config: Config, results: dict) -> cli.Report:
    title = (f"## Rosenbrock, n = {config.n}, {config.seeds} starts, "
             f"stop at ||grad f|| < {config.tol:g}")
    figure = plots.convergence_figure(results["curves"], ylabel="f(x_k)", title=title[3:])
    return cli.Report(
        markdown="\n".join([title, "", report.markdown_table(results["rows"], COLUMNS)]),
        results={"config": config, "rows": results["rows"]},
        tables={"results.csv": (results["rows"], COLUMNS)}, figures={"convergence.png": figure})


STUDY = cli.Study(name="example", get_config=get_config, run=run, report=write, float64=True,
                  smoke_flags=("--seeds=2", "--max_iters=50"))

if __name__ == "__main__":
    cli.run(STUDY)
