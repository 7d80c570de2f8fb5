"""optlab: optimization methods as pure, jit- and vmap-friendly JAX transformations.

Update rules are ``optax`` gradient transformations; :func:`minimize` runs any of them in
one ``lax.while_loop`` and returns a :class:`Result` whose :class:`Status` says why it
stopped.
"""

from optlab import (
    benchmark,
    bounded,
    first_order,
    line_search,
    linalg,
    problems,
    profiles,
    search,
    stats,
    stopping,
    sweep,
    train,
    trust_region,
)
from optlab.bounded import lbfgsb
from optlab.first_order import (
    adagrad,
    adam,
    amsgrad,
    heavy_ball,
    momentum,
    nesterov,
    noisy_sgd,
    rmsprop,
    sgd,
)
from optlab.minimize import History, Result, minimize
from optlab.second_order import (
    bfgs,
    gradient_descent,
    lbfgs,
    newton,
    newton_cg,
    nonlinear_cg,
    quasi_newton,
    sr1,
    steepest_descent,
)
from optlab.status import Status
from optlab.trust_region import trust_ncg, trust_sr1

__all__ = [
    "History",
    "adagrad",
    "adam",
    "amsgrad",
    "first_order",
    "heavy_ball",
    "momentum",
    "nesterov",
    "noisy_sgd",
    "rmsprop",
    "sgd",
    "Result",
    "Status",
    "benchmark",
    "bfgs",
    "bounded",
    "gradient_descent",
    "lbfgs",
    "lbfgsb",
    "line_search",
    "linalg",
    "minimize",
    "newton",
    "newton_cg",
    "nonlinear_cg",
    "problems",
    "profiles",
    "quasi_newton",
    "search",
    "sr1",
    "stats",
    "steepest_descent",
    "stopping",
    "sweep",
    "train",
    "trust_ncg",
    "trust_region",
    "trust_sr1",
]
