"""How a study or benchmark script starts: its flags, parsed into one readable error.

Each script keeps its flag definitions in a function and calls ``cli.run(NAME, main,
define_flags)`` under ``if __name__ == "__main__"``; a study builds its ``main`` with
:func:`study_main` from its parts (flags to config, validation, the study, its report). Flags are then defined only when the
module runs as a script: several studies share flag names (``--seeds``, ``--out``), and
absl refuses a second definition in one process, e.g. when pytest imports several
studies. A malformed flag (``--seeds=abc``, an unknown flag) prints one line
``NAME: error: ...`` and exits with status 2, as the scripts' own checks do.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Callable

import jax
from absl import app, flags
from absl import logging as absl_logging


def fail(name: str, message: str) -> int:
    """Prints ``name: error: message`` to stderr; returns the exit status 2 for ``main``."""
    print(f"{name}: error: {message}", file=sys.stderr)
    return 2


def parse_floats(name: str, texts: list[str]) -> tuple[float, ...]:
    """The numbers of a ``DEFINE_list`` flag; ``ValueError`` names the flag otherwise."""
    try:
        return tuple(float(text) for text in texts)
    except ValueError:
        raise ValueError(
            f"--{name} must be a comma-separated list of numbers, got {','.join(texts)}"
        ) from None


def define_training_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """``--out``, ``--workdir`` and ``--wandb``, the flags every training study shares."""
    flags.DEFINE_string(
        "out", "runs", "Directory that receives the run directory.", flag_values=flag_values
    )
    flags.DEFINE_string(
        "workdir", None, "Checkpoint directory; a rerun with it resumes.", flag_values=flag_values
    )
    flags.DEFINE_bool(
        "wandb", False, "Also log the metrics to Weights & Biases (offline).",
        flag_values=flag_values,
    )


def wandb_project(name: str, flag_values: flags.FlagValues = flags.FLAGS) -> str | None:
    """The W&B project of study ``name`` when ``--wandb`` is given (``optlab-NAME``), else
    None; the value of the configs' ``wandb_project`` field."""
    return f"optlab-{name}" if flag_values.wandb else None


def define_runs_per_vmap(
    default: int | None, flag_values: flags.FlagValues = flags.FLAGS
) -> None:
    """``--runs_per_vmap``: runs vmapped at a time; 0 vmaps them all (a config's None).
    ``default`` is the config's value, named in the help; read the flag with
    :func:`runs_per_vmap`."""
    described = "all" if default is None else str(default)
    flags.DEFINE_integer(
        "runs_per_vmap", None,
        f"Runs vmapped at a time; 1 loops over them inside the program, 0 vmaps them all "
        f"(default {described}).",
        flag_values=flag_values,
    )


def runs_per_vmap(overrides: dict[str, Any], flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """Puts ``--runs_per_vmap`` into a config's ``overrides`` when given, 0 as None."""
    if flag_values.runs_per_vmap is not None:
        overrides["runs_per_vmap"] = flag_values.runs_per_vmap or None


def run(name: str, main: Callable[[list[str]], int], define_flags: Callable[[], None]) -> None:
    """Defines the script's flags and runs ``main`` under absl."""
    define_flags()

    def parse(argv: list[str]) -> list[str]:
        try:
            remaining = flags.FLAGS(argv)
        except flags.Error as error:
            sys.exit(fail(name, str(error)))
        # Progress goes to stdout; log records below WARNING (orbax's checkpoint notes,
        # JAX's note that no TPU runtime is installed) only with --verbosity=0 or higher.
        if not flags.FLAGS["verbosity"].present:
            absl_logging.set_verbosity(absl_logging.WARNING)
        return remaining

    app.run(main, flags_parser=parse)


def study_main(
    name: str,
    *,
    config_from_flags: Callable[[], Any],
    validate: Callable[[Any], None],
    run_study: Callable[[Any], dict],
    render: Callable[[Any, dict], str],
    write_outputs: Callable[[Any, dict, str], Any],
    float64: bool,
) -> Callable[[list[str]], int]:
    """The ``main`` of a study: config from flags, checks, the study, its tables and files.

    A configuration that cannot run (``ValueError`` from ``config_from_flags`` or
    ``validate``, or a stray positional argument) ends with one error line and status 2
    before anything is computed or written. ``--out`` names the directory that receives
    the run directory, which is printed at the end.
    """

    def main(argv: list[str]) -> int:
        if len(argv) > 1:
            return fail(name, f"unexpected argument {argv[1]!r}; every setting is a --flag")
        jax.config.update("jax_enable_x64", float64)
        try:
            config = config_from_flags()
            validate(config)
        except ValueError as error:
            return fail(name, str(error))
        start = time.perf_counter()
        results = run_study(config)
        print()
        print(render(config, results))
        run_dir = write_outputs(config, results, flags.FLAGS.out)
        print(f"Done in {time.perf_counter() - start:.1f} s. Results in {run_dir.path}")
        return 0

    return main
