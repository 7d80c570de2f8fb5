"""Test problems with known minimizers: quadratics, Rosenbrock, Newton's cycle."""

from optlab.problems.functions import (
    ROSENBROCK_START,
    newton_cycle,
    newton_cycle_minimizer,
    rosenbrock,
    rosenbrock_minimizer,
    rosenbrock_starts,
)
from optlab.problems.quadratic import (
    Quadratic,
    conditioned_quadratic,
    make_spd_matrix,
    seed_quadratic,
    seed_quadratics,
)

__all__ = [
    "ROSENBROCK_START",
    "Quadratic",
    "conditioned_quadratic",
    "make_spd_matrix",
    "newton_cycle",
    "newton_cycle_minimizer",
    "rosenbrock",
    "rosenbrock_minimizer",
    "rosenbrock_starts",
    "seed_quadratic",
    "seed_quadratics",
]
