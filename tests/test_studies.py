"""Every study of the registry, through the kit: its flags, its errors and its files.

The studies' own tests check what each study finds; these check what the kit promises
for all of them: ``--help`` lists each flag once with its help and default, every check
of every field rejects its counterexample with one line before anything is written, an
unwritable ``--out`` stops before the study runs; test_study_runs.py makes a tiny run of each.
"""

import dataclasses
import importlib
import subprocess
import sys

from absl import flags

import pytest

from experiments import STUDIES
from experiments.kit import cli, options


def study_of(name: str) -> cli.Study:
    return importlib.import_module(f"experiments.{name}").STUDY


def bad_command_lines(study: cli.Study) -> list[tuple[list[str], str]]:
    """(arguments, the text the error line must hold) for one study."""
    config_type = type(study.get_config())
    cases = [(["--no_such_flag=1"], "no_such_flag"), (["stray"], "unexpected argument")]
    for flag, checks in options.all_checks(config_type, study.checks).items():
        cases += [([f"--{flag}={check.counterexample}"], f"--{flag}") for check in checks]
    numeric = [f for f in options.config_flags(config_type) if f.kind in (int, float)]
    if numeric:
        cases.append(([f"--{numeric[0].name}=abc"], f"--{numeric[0].name}"))
    return cases


@pytest.mark.parametrize("name", STUDIES)
def test_bad_command_lines_exit_with_one_readable_line(name, call_study, tmp_path):
    study = study_of(name)
    for args, expected in bad_command_lines(study):
        status, errors = call_study(study, f"--out={tmp_path}", *args)
        assert status == 2, args
        assert len(errors) == 1 and errors[0].startswith(f"{name}: error: "), (args, errors)
        assert expected in errors[0], (args, errors)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("name", STUDIES)
def test_unwritable_out_stops_before_the_study_runs(name, call_study, tmp_path):
    def must_not_run(config, log):
        raise AssertionError("the study ran")

    study = dataclasses.replace(study_of(name), run=must_not_run)
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    status, errors = call_study(study, f"--out={blocker}/runs")
    assert status == 2 and len(errors) == 1 and "--out=" in errors[0], errors


@pytest.mark.parametrize("name", STUDIES)
def test_help_lists_every_flag_once_with_its_default(name):
    # What --help prints: the flags of the study's module (absl's module_help).
    values = flags.FlagValues()
    assert cli.parse(study_of(name), ["study"], values, module_name=name) == ["study"]
    text = values.module_help(name)
    config_flags = options.config_flags(type(study_of(name).get_config()))
    for flag in config_flags:
        prefix = f"--[no]{flag.name}:" if flag.kind is bool else f"--{flag.name}:"
        assert text.count(prefix) == 1, prefix
    for kit_flag in ("--out:", "--compilation_cache:"):
        assert text.count(kit_flag) == 1, kit_flag
    assert text.count("(default:") >= len(config_flags) + 2


def test_help_runs_as_a_script():
    done = subprocess.run([sys.executable, "-m", "experiments.quasi_newton", "--help"],
                          capture_output=True, text=True, timeout=120)
    assert not done.stderr, done.stderr[-2000:]  # absl ends --help with status 1
    assert done.stdout.count("--n:") == 1 and "experiments/quasi_newton.py:" in done.stdout


def test_the_load_sentence_reports_the_load_or_says_it_is_unknown():
    machine = {"cpu_count": 2, "load_1min": 4.25, "load_5min": 3.0, "load_15min": 2.5}
    assert cli.load_sentence(machine) == (
        "Load average when the study ended: 4.2 (1 min), 2.5 (15 min) on 2 CPUs.")
    assert cli.load_sentence(machine | {"load_15min": float("nan")}) == (
        "The machine's load was not recorded.")
