"""Default configuration of ``python -m experiments.test_functions``: a :class:`Scenario`
per 2-D test function. The bowl has the classic exercise's sigma = 1; elsewhere sigma is
small next to the gradient's norm at the start, so that noise perturbs the runs only."""

from __future__ import annotations

import dataclasses

from experiments.kit.options import at_least, non_negative, option, positive


@dataclasses.dataclass(frozen=True)
class Method:
    """One update rule with its hyperparameters (the names of ``optlab``'s arguments)."""

    rule: str  # "sgd", "heavy_ball" (v <- gamma v + a g), "adagrad" or "adam"
    learning_rate: float
    beta: float = 0.9  # heavy_ball's gamma, adam's b1; unused by sgd and adagrad
    beta2: float = 0.999  # adam's b2; unused by the others


@dataclasses.dataclass(frozen=True)
class Scenario:
    name: str  # the --scenario name, also in the file names
    function: str  # key of optlab.problems.TEST_FUNCTIONS
    start: tuple[float, float]
    steps: int  # every run takes exactly this many steps (unless it turns non-finite)
    sigma: float  # standard deviation of the Gaussian gradient noise
    methods: tuple[Method, ...]
    question: str  # what the scenario shows, printed above its table


SCENARIOS = (
    Scenario("bowl", "bowl", (6.0, 6.0), 20, 1.0,
             (Method("sgd", 2.0), Method("sgd", 0.01), Method("sgd", 0.1)),
             "Learning rate too high, too low, right: noisy SGD on x^2 + y^2."),
    Scenario("matyas", "matyas", (4.0, -4.0), 300, 0.1,
             (Method("sgd", 0.01), Method("heavy_ball", 0.01, beta=0.99)),
             "SGD against heavy-ball momentum on Matyas's function."),
    Scenario("monkey_saddle", "monkey_saddle", (4.0, 4.0), 100, 1.0,
             (Method("sgd", 0.3), Method("heavy_ball", 0.3, beta=0.9), Method("adagrad", 0.3)),
             "At the saddle x^3 + 3xy^2, which is unbounded below: the right outcome is to "
             "leave the saddle (distances are to the saddle point)."),
    Scenario("mult", "mult", (0.8, 0.8), 200, 0.1,
             (Method("adam", 0.7, beta=0.99, beta2=0.9), Method("adagrad", 0.7),
              Method("heavy_ball", 0.7, beta=0.99), Method("sgd", 0.7)),
             "Escaping the local minimum of sin(r) at the origin towards its global minima, "
             "the circles r = 3pi/2 + 2pi k (distances are to the nearest circle)."),
    Scenario("easom", "easom", (2.0, 2.0), 200, 0.01,
             (Method("sgd", 0.1), Method("heavy_ball", 0.1, beta=0.9)),
             "Easom's function from inside the basin (pi/2, 3pi/2)^2 of its minimizer, a "
             "narrow well in an almost flat plateau: momentum against plain SGD."),
)


@dataclasses.dataclass(frozen=True)
class Config:
    scenarios: tuple[Scenario, ...] = option(SCENARIOS, "The scenarios defined.", flag="")
    scenario: tuple[str, ...] | None = option(None, "Scenarios to run.", default_text="all")
    seeds: int = option(10, "Noise seeds per method (one program each).", check=at_least(1))
    sigma: float | None = option(None, "Gradient noise of every scenario.",
                                 check=non_negative(), default_text="per scenario")
    lr: float | None = option(None, "Learning rate of every method.", default_text="per method")
    beta: float | None = option(None, "Momentum decay of every method that has one (γ, Adam's "
                                "β₁).", default_text="per method")
    threshold: float = option(1.0, "Iterations until the distance is below this.", check=positive())
    animate: bool = option(False, "Also write an animated GIF of the paths per scenario.")
    fps: int = option(10, "Frames per second of the animations.", flag="", check=at_least(1))
    repeats: int = option(3, "Timed calls of each program (their median).", check=at_least(1))


def get_config() -> Config:
    """The study's defaults: every scenario, 10 seeds, threshold 1."""
    return Config()
