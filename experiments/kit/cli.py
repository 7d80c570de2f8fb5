"""The study engine: a study declares what it is, the kit runs it from the command line.

A study module builds one :class:`Study` (its name, its config, the function that runs
it, the function that reports it) and ends with::

    if __name__ == "__main__":
        cli.run(STUDY)

:func:`main` then does, in this order: flags built from the config's fields (see
:mod:`experiments.kit.options`), validation, the processes of a run on several hosts
(``jax.distributed``, :func:`start_processes`: only process 0 goes on to write and
print, the others run their share in silence), JAX's persistent compilation cache, the run
directory (created before any work, so an unwritable ``--out`` costs nothing), the study
with its progress lines, and its :class:`Report` written into the run directory, which is
named at the end with ``run.json`` (the command, the wall time, the devices and the load
of the machine). A bad command line ends with one line ``NAME: error: ...`` on stderr
and status 2, whether absl, a field's check or the study's own ``validate`` found it.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import jax
from absl import app, flags
from absl import logging as absl_logging

from experiments.kit import options, training_log
from experiments.kit.rundir import RunDir
from optlab import report

Log = Callable[[str], None]


class Report(NamedTuple):
    """What a study writes: the Markdown summary (printed too), JSON, CSVs and figures."""

    markdown: str  # table.md, also printed
    results: Any  # results.json, anything optlab.report.to_jsonable takes
    # CSV file name -> rows (every scalar key a column), or (rows, columns)
    tables: Mapping[str, Sequence[Mapping] | tuple[Sequence[Mapping], Sequence]] = {}
    figures: Mapping[str, Any] = {}  # file name -> matplotlib Figure
    animations: Mapping[str, tuple[Any, int]] = {}  # GIF name -> (animation, frames per second)
    # variant -> history (runs: seeds 0, 1, ...), or (history, seeds)
    metrics: Mapping[str, Mapping | tuple[Mapping, Sequence[int]]] = {}


@dataclasses.dataclass(frozen=True)
class Study:
    """A study as the kit runs it.

    ``run(config, log)`` computes the results (no files; ``log`` takes progress lines) and
    ``report(config, results)`` turns them into a :class:`Report`. ``validate`` adds the
    checks that span fields; ``checks`` adds field checks that need the study's own
    names (field name -> :class:`~experiments.kit.options.Check`). ``smoke_flags`` make
    the tiny run that the registry's test makes of every study.
    """

    name: str
    get_config: Callable[..., Any]
    run: Callable[[Any, Log], Any]
    report: Callable[[Any, Any], Report]
    float64: bool = False
    validate: Callable[[Any], None] | None = None
    checks: Mapping[str, options.Check] = dataclasses.field(default_factory=dict)
    run_name: Callable[[Any], str] | None = None  # the run directory's prefix; default name
    smoke_flags: tuple[str, ...] = ()

    def check(self, config: Any) -> None:
        """Raises ``ValueError`` with one readable line for a config that cannot run."""
        options.validate(config, self.checks)
        if self.validate is not None:
            self.validate(config)


def default_cache_dir() -> str:
    """``$XDG_CACHE_HOME/optlab/jax``, or ``~/.cache/optlab/jax``."""
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return str(Path(root) / "optlab" / "jax")


def define_kit_flags(flag_values: flags.FlagValues, module_name: str | None = None) -> None:
    """The flags of every study: ``--out`` and ``--compilation_cache``."""
    extra = {"module_name": module_name} if module_name else {}
    flags.DEFINE_string(
        "out", "runs", "Directory that receives the run directory.",
        flag_values=flag_values, **extra,
    )
    flags.DEFINE_string(
        "coordinator_address", None,
        "Run as one of several processes (jax.distributed): the address host:port of "
        "process 0, which every process names.", flag_values=flag_values, **extra)
    flags.DEFINE_integer("num_processes", None, "With --coordinator_address: how many "
                         "processes run the study.", flag_values=flag_values, **extra)
    flags.DEFINE_integer("process_id", None, "With --coordinator_address: this process's "
                         "index, 0 to num_processes - 1.", flag_values=flag_values, **extra)
    flags.DEFINE_bool(
        "distributed", False, "Run as one of several processes, found by jax.distributed "
        "from the environment (SLURM, a TPU pod, Open MPI; JAX_COORDINATOR_ADDRESS).",
        flag_values=flag_values, **extra)
    flags.DEFINE_string(
        "compilation_cache", default_cache_dir(),
        "Directory of JAX's persistent compilation cache, so that a rerun does not compile "
        "again; empty turns it off.",
        flag_values=flag_values, **extra,
    )


def start_processes(flag_values: flags.FlagValues) -> None:
    """``jax.distributed.initialize`` when the flags ask for several processes: with the
    address, count and index given, or, with ``--distributed`` alone, as JAX finds them in
    the environment. CPU processes exchange data over gloo."""
    given = {name: flag_values[name].value
             for name in ("coordinator_address", "num_processes", "process_id")}
    if not flag_values.distributed and all(value is None for value in given.values()):
        return
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(**{name: value for name, value in given.items()
                                  if value is not None})


def enable_compilation_cache(directory: str) -> None:
    """Keeps every compiled program in ``directory``, even those that compile in a blink."""
    jax.config.update("jax_compilation_cache_dir", directory)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def write_report(run_dir: RunDir, written: Report, wandb_project: str | None = None) -> None:
    """Writes a :class:`Report`: results.json, table.md, the CSVs, figures, animations and
    the training histories as metrics.jsonl (and to Weights & Biases when a project is
    named)."""
    run_dir.write_json("results.json", written.results)
    run_dir.write_text("table.md", written.markdown.rstrip("\n") + "\n")
    for name, table in written.tables.items():
        rows, columns = table if isinstance(table, tuple) else (table, None)
        run_dir.write_text(name, report.csv_text(rows, columns))
    for name, figure in written.figures.items():
        run_dir.save_figure(name, figure)
    for name, (animation, fps) in written.animations.items():
        run_dir.save_animation(name, animation, fps)
    if written.metrics:
        training_log.write_metrics(run_dir, written.metrics, wandb_project=wandb_project)


def machine_load() -> dict:
    """The CPU count and the load averages now, to read a study's timings by: a load
    well above the CPU count means other work shared the machine."""
    one, five, fifteen = os.getloadavg() if hasattr(os, "getloadavg") else (math.nan,) * 3
    return {"cpu_count": os.cpu_count(), "load_1min": one, "load_5min": five,
            "load_15min": fifteen}


def load_sentence(machine: dict) -> str:
    """:func:`machine_load`'s record in words, for the end of a study's table."""
    if not math.isfinite(machine["load_15min"]):
        return "The machine's load was not recorded."
    return (f"Load average when the study ended: {machine['load_1min']:.1f} (1 min), "
            f"{machine['load_15min']:.1f} (15 min) on {machine['cpu_count']} CPUs.")


def fail(name: str, message: str) -> int:
    """Prints ``name: error: message`` to stderr; returns the exit status 2 for ``main``."""
    print(f"{name}: error: {message}", file=sys.stderr)
    return 2


def main(study: Study, argv: Sequence[str], flag_values: flags.FlagValues) -> int:
    """Runs ``study`` for the parsed ``flag_values``; returns the exit status."""
    if len(argv) > 1:
        return fail(study.name, f"unexpected argument {argv[1]!r}; every setting is a --flag")
    try:
        config = options.config_from_flags(study.get_config, flag_values)
        study.check(config)
    except ValueError as error:
        return fail(study.name, str(error))
    jax.config.update("jax_enable_x64", study.float64)
    start_processes(flag_values)
    if flag_values.compilation_cache:  # across processes, JAX has process 0 alone write it
        enable_compilation_cache(flag_values.compilation_cache)
    if jax.process_index() != 0:  # runs its share, writes nothing, prints errors only
        warnings.simplefilter("ignore")  # process 0 shows them, once
        sys.stdout.flush()
        with open(os.devnull, "w") as devnull:  # gloo's own lines too
            os.dup2(devnull.fileno(), sys.stdout.fileno())
        study.run(config, lambda line: None)
        return 0
    run_name = study.run_name(config) if study.run_name else study.name
    try:
        run_dir = RunDir.create(flag_values.out, run_name)
        run_dir.write_json("config.json", config)
    except OSError as error:
        return fail(study.name, f"cannot write the run directory under --out={flag_values.out}: "
                                f"{error.strerror or error}")
    print(f"Writing to {run_dir.path}", flush=True)
    start = time.perf_counter()
    results = study.run(config, lambda line: print(line, flush=True))
    machine = machine_load()
    written = study.report(config, results)
    markdown = f"{written.markdown.rstrip()}\n\n{load_sentence(machine)}\n"
    written = written._replace(markdown=markdown)
    print()
    print(written.markdown)
    wandb = getattr(config, "wandb", False)
    write_report(run_dir, written, wandb_project=f"optlab-{study.name}" if wandb else None)
    seconds = time.perf_counter() - start
    run_dir.write_json("run.json", {
        "study": study.name, "argv": list(sys.argv), "seconds": seconds, "machine": machine,
        "devices": [str(device) for device in jax.devices()], "processes": jax.process_count(),
        "jax": jax.__version__})
    print(f"Done in {seconds:.1f} s. Results in {run_dir.path}")
    return 0


def parse(study: Study, argv: Sequence[str], flag_values: flags.FlagValues,
          module_name: str | None = None) -> list[str] | int:
    """Defines the study's flags in ``flag_values`` and parses ``argv`` into them.

    Returns the arguments left over, or exit status 2 after one error line.
    """
    options.define_flags(study.get_config, flag_values, module_name, study.checks)
    define_kit_flags(flag_values, module_name)
    try:
        return flag_values(list(argv))
    except flags.Error as error:
        return fail(study.name, str(error))


def run(study: Study) -> None:
    """The command line of a study module (under ``if __name__ == "__main__"``)."""

    def parse_flags(argv: list[str]) -> list[str]:
        remaining = parse(study, argv, flags.FLAGS, module_name=sys.argv[0])
        if isinstance(remaining, int):
            sys.exit(remaining)
        _quiet_logs()
        return remaining

    app.run(lambda argv: main(study, argv, flags.FLAGS), flags_parser=parse_flags)


def run_script(
    name: str, main: Callable[[list[str]], int], define_flags: Callable[[], None]
) -> None:
    """Runs a script that is no study (a benchmark) under absl, its flags its own."""
    define_flags()

    def parse_flags(argv: list[str]) -> list[str]:
        try:
            remaining = flags.FLAGS(argv)
        except flags.Error as error:
            sys.exit(fail(name, str(error)))
        _quiet_logs()
        return remaining

    app.run(main, flags_parser=parse_flags)


def _quiet_logs() -> None:
    """Progress goes to stdout; log records below WARNING (orbax's checkpoint notes, JAX's
    note that no TPU runtime is installed) only with --verbosity=0 or higher."""
    if not flags.FLAGS["verbosity"].present:
        absl_logging.set_verbosity(absl_logging.WARNING)
