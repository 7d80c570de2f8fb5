"""Default configuration of ``python -m experiments.profiles``."""

from __future__ import annotations

import dataclasses

from experiments.kit.options import at_least, decay_rate, each, non_negative, option, positive

DEFAULT_SOLVERS = ("bfgs", "lbfgs", "newton_cg", "trust_ncg", "nonlinear_cg", "optax_lbfgs",
                   "optimistix_bfgs", "scipy_bfgs", "scipy_lbfgsb")


@dataclasses.dataclass(frozen=True)
class Config:
    problems: str = option(
        "cutest", "The problem set: cutest (CUTEst's unconstrained problems), cutest_bounded "
        "(its bound-constrained ones), mgh (the 18 Moré–Garbow–Hillstrom problems), or "
        "CUTEst names, e.g. ROSENBR,BEALE.")
    max_n: int = option(100, "Largest problem size taken from a set.", check=at_least(1))
    known_minimum: bool = option(
        True, "From CUTEst, only the problems whose minimum value the collection gives (the "
        "others are the slowest to run here: large data fits that end at the budget).")
    solvers: tuple[str, ...] = option(
        DEFAULT_SOLVERS, "Solvers: optlab methods by name (bfgs, lbfgsb, ...), optax_lbfgs, "
        "optimistix_{bfgs,lbfgs,nonlinear_cg}, scipy_{bfgs,lbfgsb,cg,newton_cg,trust_ncg}.")
    seeds: int = option(4, "Perturbed starts per problem, besides its standard start.",
                        check=non_negative())
    perturbation: float = option(
        0.1, "Seed s starts at x0 + perturbation (1 + |x0|) z, z ~ N(0, I).", check=non_negative())
    max_iters: int = option(1000, "Iteration budget of every run.", check=at_least(1))
    max_evaluations: int = option(
        2000, "Evaluation budget: a run that needs more to pass a test has not solved it.",
        check=at_least(1))
    gtol: float = option(1e-6, "Every run stops at ||grad f|| <= gtol (projected, in a box).",
                         check=positive())
    tolerance: float = option(
        1e-5, "The performance profiles' test: f <= f_L + tolerance (f(x0) - f_L).",
        check=decay_rate())
    data_tolerances: tuple[float, ...] = option(
        (1e-1, 1e-3, 1e-5, 1e-7), "The data profiles' tolerances, one panel each.",
        check=each(decay_rate()))
    group: int = option(16, "Problems per compiled program.", check=at_least(1))
    repeats: int = option(1, "Timed calls per problem after the first (median kept).",
                          check=non_negative())


def get_config() -> Config:
    return Config()
