"""Config fields that carry their own flag: help text, flag name, parser and check.

A study's config is a frozen dataclass; each field is declared once, with :func:`option`::

    seeds: int = option(20, "Random problems per size.", check=at_least(1))
    sizes: tuple[int, ...] = option((228,), "Problem sizes, e.g. 2,50,228.", flag="n",
                                    check=each(at_least(1)))

:func:`define_flags` turns the fields into absl flags (the kind follows the field's type:
``bool``, ``int``, ``float``, ``str``, a tuple as a comma-separated list, ``X | None`` as
``X``), each with its help and the default of the study's default config. A flag that is
not given is None, so :func:`config_from_flags` keeps the config's own value; the
parameters of the study's ``get_config`` (``problem`` in ``get_config(problem)``) are
read first and choose the config that the other flags override, so defaults that depend
on them keep working. :func:`validate` runs every field's :class:`Check`; a failed one
reads ``--FLAG must be positive, got 0``. Each check knows a flag value that fails it,
so one test can try every check of every study.
"""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from pathlib import Path
from typing import Any, Callable, Mapping, NamedTuple, Sequence

from absl import flags

_KEY = "optlab.option"
_ELEMENT_NAMES = {int: "integers", float: "numbers", str: "names"}


class Check(NamedTuple):
    """A requirement on a value: ``check(value)`` is None when it holds, else the message."""

    holds: Callable[[Any], bool]
    requirement: str  # e.g. "must be positive"
    counterexample: str  # a flag value that fails the check

    def __call__(self, value: Any) -> str | None:
        if self.holds(value):
            return None
        return f"{self.requirement}, got {_flag_text(value)}"


def at_least(bound: float) -> Check:
    return Check(lambda value: value >= bound, f"must be at least {bound:g}", f"{bound - 1:g}")


def decay_rate() -> Check:
    """A decay rate such as momentum's beta: in [0, 1)."""
    return Check(lambda value: 0 <= value < 1, "must lie in [0, 1)", "1")


def positive() -> Check:
    return Check(lambda value: value > 0, "must be positive", "0")


def non_negative() -> Check:
    return Check(lambda value: value >= 0, "must be non-negative", "-1")


def one_of(choices: Sequence[str]) -> Check:
    """A name among ``choices``."""
    choices = tuple(choices)
    return Check(lambda value: value in choices, f"must be one of {', '.join(choices)}",
                 "no_such_name")


def some_of(choices: Sequence[str]) -> Check:
    """A tuple of one or more names among ``choices``, none twice."""
    choices = tuple(choices)

    def holds(names):
        return bool(names) and len(set(names)) == len(names) and set(names) <= set(choices)

    return Check(holds, f"takes one or more of {', '.join(choices)}, each at most once",
                 "no_such_name")


def each(check: Check) -> Check:
    """``check`` on every element of a tuple, and at least one element."""
    return Check(
        lambda values: bool(values) and all(check.holds(value) for value in values),
        check.requirement.replace("must", "must each", 1) + " (one value at least)",
        check.counterexample,
    )


class Option(NamedTuple):
    """What a config field carries besides its default (``dataclasses.Field.metadata``)."""

    help: str
    flag: str | None  # the flag's name: None for the field's name, "" for no flag
    parse: Callable[[Any], Any] | None  # absl's value -> the field's value
    check: Check | None
    default_text: str | None  # the default as shown in --help, when str() will not do


def option(
    default: Any,
    help: str = "",
    *,
    flag: str | None = None,
    parse: Callable[[Any], Any] | None = None,
    check: Check | None = None,
    default_text: str | None = None,
) -> Any:
    """A dataclass field with its flag's help, name, parser and check. A field without a
    flag (``flag=""``) may go without help: a comment beside a group of them will do."""
    metadata = {_KEY: Option(help, flag, parse, check, default_text)}
    return dataclasses.field(default=default, metadata=metadata)


def zero_is_none(value: int) -> int | None:
    """The parser of counts where 0 means "no limit" (``--runs_per_vmap=0``)."""
    return value or None


def runs_per_vmap_option(default: int | None) -> Any:
    """The ``--runs_per_vmap`` field of a training config, with the study's default."""
    return option(
        default,
        "Runs vmapped at a time: 1 loops over them inside the program, 0 vmaps them all.",
        parse=zero_is_none, default_text="0 (all)" if default is None else None,
        check=Check(lambda count: count >= 1, "must be at least 1 (0: all)", "-1"))


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """The fields every training study shares: its config subclasses this one (and may
    declare ``runs_per_vmap = runs_per_vmap_option(None)`` for another default)."""

    runs_per_vmap: int | None = runs_per_vmap_option(1)
    workdir: str | None = option(None, "Checkpoint directory; a rerun with it resumes.")
    wandb: bool = option(False, "Also log the metrics to Weights & Biases (offline).")

    def grid_options(self, log: Callable[[str], None], subdirectory: str = "",
                     **options: Any) -> dict[str, Any]:
        """The keywords of ``optlab.train.run_grid`` that come from the config: seeds
        ``range(seeds)``, ``max_epochs=epochs``, ``--workdir`` (its ``subdirectory``) as the
        checkpoint directory, ``--runs_per_vmap`` and the progress ``log``; the study's
        own ``options`` (``validation``, ``patience``, ...) join them, and win."""
        workdir = str(Path(self.workdir) / subdirectory) if self.workdir else None
        return {"seeds": range(self.seeds), "max_epochs": self.epochs, "log": log,
                "checkpoint_dir": workdir, "runs_per_vmap": self.runs_per_vmap} | options


class Flag(NamedTuple):
    field: str
    name: str
    kind: type  # bool, int, float, str, or tuple for a comma-separated list
    element: type | None  # a list's element type when int, float or str
    option: Option


def config_flags(config_type: type) -> list[Flag]:
    """The flags of a config dataclass, one per field that has one, in field order."""
    hints = typing.get_type_hints(config_type)
    result = []
    for field in dataclasses.fields(config_type):
        opt = field.metadata.get(_KEY)
        if opt is None or opt.flag == "":
            continue
        kind, element = _flag_kind(hints[field.name])
        result.append(Flag(field.name, opt.flag or field.name, kind, element, opt))
    return result


def define_flags(
    get_config: Callable[..., Any],
    flag_values: flags.FlagValues,
    module_name: str | None = None,
    checks: Mapping[str, Check] = types.MappingProxyType({}),
) -> None:
    """Defines one absl flag per option of ``get_config()``'s dataclass; the help names
    the default and what the field's checks and the extra ``checks`` require."""
    defaults = get_config()
    for flag in config_flags(type(defaults)):
        if not flag.option.help:
            raise TypeError(f"the flag --{flag.name} needs its help text")
        default = getattr(defaults, flag.field)
        shown = flag.option.default_text or _flag_text(default)
        required = [c.requirement for c in (flag.option.check, checks.get(flag.field)) if c]
        help_text = " ".join([flag.option.help, *(f"It {text}." for text in required),
                              f"(default: {shown})"])
        define = {
            bool: flags.DEFINE_bool, int: flags.DEFINE_integer, float: flags.DEFINE_float,
            str: flags.DEFINE_string, tuple: flags.DEFINE_list,
        }[flag.kind]
        extra = {"module_name": module_name} if module_name else {}
        define(flag.name, None, help_text, flag_values=flag_values, **extra)


def config_from_flags(get_config: Callable[..., Any], flag_values: flags.FlagValues) -> Any:
    """The config that the flags ask for: ``get_config``'s parameters first, then the rest.

    Raises ``ValueError`` with one readable line for a value that does not parse.
    """
    config_type = type(get_config())
    given = {}
    for flag in config_flags(config_type):
        value = flag_values[flag.name].value
        if value is not None:
            given[flag.field] = _parse(flag, value)
    selectors = set(inspect.signature(get_config).parameters)
    config = get_config(**{name: value for name, value in given.items() if name in selectors})
    return dataclasses.replace(config, **given)


def validate(config: Any, checks: Mapping[str, Check] = types.MappingProxyType({})) -> None:
    """Runs each field's check and the extra ``checks`` (field name -> check) on every
    field that is not None (None stands for a rule, such as "10 n iterations").

    Raises ``ValueError`` naming the flag, e.g. ``--seeds must be at least 1, got 0``.
    """
    names = {flag.field: flag.name for flag in config_flags(type(config))}
    for field in dataclasses.fields(config):
        opt = field.metadata.get(_KEY)
        value = getattr(config, field.name)
        for check in (opt.check if opt else None, checks.get(field.name)):
            message = check(value) if check and value is not None else None
            if message:
                raise ValueError(f"--{names.get(field.name, field.name)} {message}")


def all_checks(config_type: type, checks: Mapping[str, Check]) -> dict[str, Check]:
    """Flag name -> every check of that flag (the field's and the study's), for tests."""
    found = {}
    for flag in config_flags(config_type):
        for check in (flag.option.check, checks.get(flag.field)):
            if check is not None:
                found.setdefault(flag.name, []).append(check)
    return found


def _parse(flag: Flag, value: Any) -> Any:
    if flag.kind is tuple and flag.element is not None:
        try:
            value = tuple(flag.element(text) for text in value)
        except ValueError:
            raise ValueError(
                f"--{flag.name} takes {_ELEMENT_NAMES[flag.element]} separated by commas, "
                f"got {','.join(value)}"
            ) from None
    elif flag.kind is tuple:
        value = tuple(value)
    return flag.option.parse(value) if flag.option.parse else value


def _flag_kind(hint: Any) -> tuple[type, type | None]:
    """The absl kind of a field type, and a list's element type (None when not plain)."""
    args = [arg for arg in typing.get_args(hint) if arg is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and len(args) == 1:
        hint = args[0]
    if typing.get_origin(hint) is tuple:
        element = typing.get_args(hint)[0]
        return tuple, element if element in (int, float, str) else None
    if hint in (bool, int, float, str):
        return hint, None
    raise TypeError(f"no flag kind for a field of type {hint}; give it flag=''")


def _flag_text(value: Any) -> str:
    """A value as one would type it after ``--flag=``."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return ",".join(_flag_text(item) for item in value)
    if isinstance(value, float):
        return f"{value:g}"
    if value is None:
        return "none"
    return str(value)
