"""experiments.kit.cli: the flags the training studies share, read into config overrides."""

import pytest
from absl import flags

from experiments.kit import cli


@pytest.fixture
def flag_values():
    values = flags.FlagValues()
    cli.define_training_flags(values)
    cli.define_runs_per_vmap(1, values)
    return values


@pytest.mark.parametrize("args, expected", [
    ([], {}),
    (["--runs_per_vmap=3"], {"runs_per_vmap": 3}),
    (["--runs_per_vmap=0"], {"runs_per_vmap": None}),  # 0: every run vmapped at once
    (["--runs_per_vmap=-2"], {"runs_per_vmap": -2}),  # left for the study's validation
])
def test_runs_per_vmap_zero_means_all(flag_values, args, expected):
    flag_values(["study", *args])
    overrides = {}
    cli.runs_per_vmap(overrides, flag_values)
    assert overrides == expected


def test_the_help_names_the_config_default():
    values = flags.FlagValues()
    cli.define_runs_per_vmap(None, values)
    assert "0 vmaps them all (default all)" in values["runs_per_vmap"].help


@pytest.mark.parametrize("args, project", [([], None), (["--wandb"], "optlab-wine_mlp")])
def test_wandb_project(flag_values, args, project):
    flag_values(["study", *args])
    assert cli.wandb_project("wine_mlp", flag_values) == project
