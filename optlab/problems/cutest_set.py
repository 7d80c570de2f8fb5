"""The CUTEst collection's unconstrained and bound-constrained problems, from sif2jax.

sif2jax (``pip install optlab[bench]``) writes the CUTEst problems as pure JAX
functions; here each becomes a :class:`~optlab.problems.Problem`: its objective as a
function of a flat vector, its standard start, the minimum value the collection gives
(``nan`` where it gives none) and, for the bound-constrained ones, its bounds.

>>> problem = cutest("ROSENBR")
>>> problem.n, round(float(problem.fun(problem.x0)), 4), problem.f_star
(2, 24.2, 0.0)
>>> len(cutest_problems(max_n=10)) > 50
True

sif2jax is imported on first use, so ``optlab.problems`` imports without it; only the
parts of it that hold these two kinds are imported (:func:`_problem_lists`).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import importlib.util
import math
import pathlib
import sys
import types
from typing import Iterable

import jax
import numpy as np

from optlab.problems.suite import Problem

KINDS = ("unconstrained", "bounded")


def cutest(name: str, n: int | None = None) -> Problem:
    """The CUTEst problem ``name`` (sif2jax's class name, e.g. ``"ROSENBR"``), at its
    standard size or, for a problem whose size is a parameter, at size ``n``. The known
    minimum value is kept at the standard size only (``nan`` at another ``n``)."""
    instance = _collection().get(name)
    if instance is None:
        raise ValueError(f"unknown CUTEst problem {name!r}: cutest_problems() lists the "
                         "unconstrained and bound-constrained problems sif2jax has")
    if n is not None and n != instance.num_variables():
        if "n" not in {field.name for field in dataclasses.fields(instance)}:
            raise ValueError(f"{name} has a fixed size {instance.num_variables()}, got n={n}")
        instance = type(instance)(n=n)
        return _as_problem(instance, known_minimum=False)
    return _as_problem(instance, known_minimum=True)


def cutest_problems(
    kind: str = "unconstrained",
    *,
    min_n: int = 1,
    max_n: int = 100,
    names: Iterable[str] | None = None,
    known_minimum: bool = False,
) -> list[Problem]:
    """The collection's problems of one ``kind`` (``"unconstrained"`` or ``"bounded"``)
    at their standard sizes, ``min_n <= n <= max_n``, in sif2jax's order; ``names``
    keeps only those named, ``known_minimum`` only those whose minimum value is known."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    wanted = None if names is None else set(names)
    if wanted is not None:
        unknown = wanted - set(_collection())
        if unknown:
            raise ValueError(f"unknown CUTEst problems: {', '.join(sorted(unknown))}")
    chosen = []
    for instance in _instances(kind):
        if wanted is not None and instance.name not in wanted:
            continue
        if not min_n <= _size(instance) <= max_n:
            continue
        problem = _as_problem(instance, known_minimum=True)
        if not (known_minimum and math.isnan(problem.f_star)):
            chosen.append(problem)
    return chosen


def _size(instance) -> int:
    """The problem's number of variables, from the shape of its start alone (no data
    computed)."""
    shapes = jax.eval_shape(lambda: instance.y0)
    return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(shapes))


def _as_problem(instance, *, known_minimum: bool) -> Problem:
    x0 = np.asarray(instance.y0, np.float64).ravel()
    args = instance.args
    shape = np.shape(instance.y0)
    f_star = instance.expected_objective_value if known_minimum else None
    lower = upper = None
    if hasattr(instance, "bounds") and instance.bounds is not None:
        lower, upper = (np.broadcast_to(np.asarray(b, np.float64), shape).ravel()
                        for b in instance.bounds)

    def fun(x: jax.Array) -> jax.Array:
        return instance.objective(x.reshape(shape), args)

    return Problem(instance.name, fun, x0, math.nan if f_star is None else float(f_star),
                   lower, upper)


def _instances(kind: str) -> tuple:
    return _problem_lists()[kind]


@functools.cache
def _collection() -> dict:
    """Name -> sif2jax instance, unconstrained and bound-constrained."""
    return {instance.name: instance for kind in KINDS for instance in _instances(kind)}


# sif2jax's subpackages that hold these two kinds, with the lists they define.
_SUBPACKAGES = {"unconstrained": [("_unconstrained_minimisation",
                                   "unconstrained_minimisation_problems")],
                "bounded": [("_bounded_minimisation", "bounded_minimisation_problems"),
                            ("_quadratic_problems", "bounded_quadratic_problems")]}


@functools.cache
def _problem_lists() -> dict[str, tuple]:
    """sif2jax's lists of unconstrained and bound-constrained problems.

    ``import sif2jax`` imports the whole collection, and one constrained problem computes
    its data at import, op by op, for half a minute or more. The subpackages that these
    two kinds live in are imported alone instead, below bare stand-ins for the packages
    above them (whose ``__init__`` would import everything); the stand-ins are removed
    afterwards, so a later ``import sif2jax`` is the real one and finds these modules
    loaded. If sif2jax's layout has changed, the whole package is imported.
    """
    spec = importlib.util.find_spec("sif2jax")
    if spec is None:
        raise ImportError("the CUTEst problems need sif2jax: pip install 'optlab[bench]'")
    if "sif2jax.cutest" in sys.modules and hasattr(sys.modules["sif2jax.cutest"], "problems"):
        return _from_package(importlib.import_module("sif2jax.cutest"))
    root = pathlib.Path(spec.origin).parent
    stand_ins = [name for name in ("sif2jax", "sif2jax.cutest") if name not in sys.modules]
    for name in stand_ins:
        module = types.ModuleType(name)
        module.__path__ = [str(root if name == "sif2jax" else root / "cutest")]
        sys.modules[name] = module
    try:
        if "sif2jax" in stand_ins:  # some modules import their base class from the top
            problem_classes = importlib.import_module("sif2jax._problem")
            for attribute in dir(problem_classes):
                if attribute.startswith("Abstract"):
                    setattr(sys.modules["sif2jax"], attribute,
                            getattr(problem_classes, attribute))
        return {kind: tuple(problem for subpackage, attribute in parts
                            for problem in getattr(importlib.import_module(
                                f"sif2jax.cutest.{subpackage}"), attribute))
                for kind, parts in _SUBPACKAGES.items()}
    except (ImportError, AttributeError):
        for name in stand_ins:
            del sys.modules[name]
        stand_ins = []
        return _from_package(importlib.import_module("sif2jax.cutest"))
    finally:
        for name in stand_ins:
            del sys.modules[name]


def _from_package(cutest) -> dict[str, tuple]:
    return {"unconstrained": tuple(cutest.unconstrained_minimisation_problems),
            "bounded": tuple(cutest.bounded_minimisation_problems)}
