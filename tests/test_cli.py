"""experiments.kit.options: config fields become flags, flags become a config."""

import dataclasses

import pytest
from absl import flags

from experiments.kit import options
from experiments.kit.options import at_least, each, one_of, option, some_of


@dataclasses.dataclass(frozen=True)
class Config(options.TrainingConfig):
    problem: str = option("quadratic", "Test problem.")
    sizes: tuple[int, ...] = option((228,), "Sizes.", flag="n", check=each(at_least(1)))
    eps: float = option(1e-5, "Tolerance.")
    scipy: bool = option(True, "Reference rows.")
    hidden: int = option(7, "Not a flag.", flag="")


def get_config(problem: str = "quadratic") -> Config:
    return Config(problem=problem, eps=1e-2) if problem == "rosenbrock" else Config()


def parse(*args):
    values = flags.FlagValues()
    checks = {"problem": one_of(("quadratic", "rosenbrock"))}
    options.define_flags(get_config, values, checks=checks)
    values(["study", *args])
    return values, options.config_from_flags(get_config, values)


def test_flags_follow_the_fields_and_show_defaults_and_requirements():
    values, config = parse()
    assert config == get_config()
    assert {"problem", "n", "eps", "scipy", "runs_per_vmap", "workdir", "wandb"} <= set(values)
    assert "hidden" not in values
    assert "(default: 228)" in values["n"].help and "must each be at least 1" in values["n"].help
    assert "must be one of quadratic, rosenbrock" in values["problem"].help
    assert "(default: 1)" in values["runs_per_vmap"].help


def test_a_selector_picks_the_config_the_other_flags_override():
    assert parse("--problem=rosenbrock")[1].eps == 1e-2
    assert parse("--problem=rosenbrock", "--eps=3e-3")[1].eps == 3e-3
    config = parse("--n=2,50", "--noscipy", "--runs_per_vmap=0", "--wandb")[1]
    assert (config.sizes, config.scipy, config.runs_per_vmap, config.wandb) == (
        (2, 50), False, None, True)


def test_values_that_do_not_parse_or_fail_a_check_name_the_flag():
    with pytest.raises(ValueError, match="--n takes integers separated by commas, got 2,x"):
        parse("--n=2,x")
    with pytest.raises(ValueError, match=r"--n must each be at least 1 \(one value at least\)"):
        options.validate(parse("--n=0")[1])
    with pytest.raises(ValueError, match=r"--runs_per_vmap must be at least 1 \(0: all\), got -1"):
        options.validate(parse("--runs_per_vmap=-1")[1])
    options.validate(parse("--runs_per_vmap=0")[1])  # None: every run vmapped


@pytest.mark.parametrize("check, good, bad", [
    (options.positive(), 1e-9, 0.0),
    (options.non_negative(), 0.0, -1e-9),
    (options.decay_rate(), 0.0, 1.0),
    (one_of(("a", "b")), "b", "c"),
    (some_of(("a", "b")), ("b", "a"), ("a", "a")),
    (each(options.positive()), (1.0, 2.0), ()),
])
def test_checks_accept_and_refuse(check, good, bad):
    assert check(good) is None
    assert check(bad).startswith(check.requirement)


def test_grid_options_carry_the_training_flags_and_let_the_study_override():
    @dataclasses.dataclass(frozen=True)
    class Training(options.TrainingConfig):
        seeds: int = option(3, "Seeds.")
        epochs: int = option(4, "Epochs.")

    config = Training(workdir="/tmp/work", runs_per_vmap=None)
    grid = config.grid_options(print, "batch-4", patience=2, max_epochs=1)
    assert grid == {"seeds": range(3), "max_epochs": 1, "log": print, "patience": 2,
                    "checkpoint_dir": "/tmp/work/batch-4", "runs_per_vmap": None}
    assert Training().grid_options(print)["checkpoint_dir"] is None
