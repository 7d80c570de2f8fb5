"""Test problems: quadratics, Rosenbrock, Newton's cycle and the 2-D test functions."""

from optlab.problems.functions import (
    MULT_MINIMUM_RADIUS,
    ROSENBROCK_START,
    TEST_FUNCTIONS,
    TestFunction,
    bowl,
    easom,
    matyas,
    monkey_saddle,
    mult,
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
    "MULT_MINIMUM_RADIUS",
    "ROSENBROCK_START",
    "TEST_FUNCTIONS",
    "Quadratic",
    "TestFunction",
    "bowl",
    "conditioned_quadratic",
    "easom",
    "make_spd_matrix",
    "matyas",
    "monkey_saddle",
    "mult",
    "newton_cycle",
    "newton_cycle_minimizer",
    "rosenbrock",
    "rosenbrock_minimizer",
    "rosenbrock_starts",
    "seed_quadratic",
    "seed_quadratics",
]
