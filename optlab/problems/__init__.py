"""Test problems: quadratics, Rosenbrock, Newton's cycle, the 2-D test functions, the
Moré–Garbow–Hillstrom problems (:func:`mgh`), the CUTEst collection (:func:`cutest`,
with sif2jax), regression, sparse logistic regression at any size
(:func:`sparse_logistic_data`, :func:`sparse_logistic_loss`); any of them, or a user
function, as a :class:`Problem`.

Synthetic least squares lives in its own namespace, ``optlab.problems.regression``.
"""

from optlab.problems import regression

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
from optlab.problems.cutest_set import cutest, cutest_problems
from optlab.problems.logistic import sparse_logistic_data, sparse_logistic_loss
from optlab.problems.mgh_set import MGH_PROBLEMS, iterations_to_solve, mgh, mgh_problems, solved
from optlab.problems.suite import Problem, ProblemStack, stack
from optlab.problems.quadratic import (
    Quadratic,
    conditioned_quadratic,
    make_spd_matrix,
    seed_quadratic,
    seed_quadratics,
)

__all__ = [
    "regression",
    "MGH_PROBLEMS",
    "MULT_MINIMUM_RADIUS",
    "ROSENBROCK_START",
    "TEST_FUNCTIONS",
    "Problem",
    "ProblemStack",
    "Quadratic",
    "TestFunction",
    "bowl",
    "conditioned_quadratic",
    "cutest",
    "cutest_problems",
    "easom",
    "iterations_to_solve",
    "make_spd_matrix",
    "matyas",
    "mgh",
    "mgh_problems",
    "monkey_saddle",
    "mult",
    "newton_cycle",
    "newton_cycle_minimizer",
    "rosenbrock",
    "rosenbrock_minimizer",
    "rosenbrock_starts",
    "seed_quadratic",
    "seed_quadratics",
    "solved",
    "sparse_logistic_data",
    "sparse_logistic_loss",
    "stack",
]
