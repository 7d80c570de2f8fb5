"""Solvers over a problem set, every start of a problem in one compiled call, with history.

:func:`run_problems` runs one solver on many problems of different sizes from several
starts each, and returns :class:`Runs`: per problem and start, the objective and the
count of evaluations along the run, its iterations, status and time. That is what
:mod:`optlab.profiles` turns into performance and data profiles, with no run repeated.

A solver is a pure function ``solve(fun, x0, lower, upper) -> Trace`` of one run, e.g.
:func:`minimize_solver` of an optax transformation, or any peer written as a JAX loop
that records its history. Problems are compiled in groups (``group`` of them, sorted by
size and padded to the group's largest ``n``): the objective is a ``lax.switch`` over the
group with the problem's index an argument of the program, not a batched value, so a
call evaluates one problem only, all its starts ``jax.vmap``-ed, and one compiled program
serves the whole group. A call per problem is timed on its own (``block_until_ready``),
the compiles apart. The padding does not enter the objective: its gradient is zero there,
the solvers leave it at 0, and the bounds there are infinite.

>>> from optlab import problems
>>> import optlab
>>> runs = run_problems(minimize_solver(optlab.bfgs(), stop=optlab.stopping.grad_norm(1e-8),
...                                     max_iters=50),
...                     [problems.mgh("rosenbrock"), problems.mgh("beale")],
...                     starts=[[problems.mgh("rosenbrock").x0], [problems.mgh("beale").x0]])
>>> runs.iterations.shape, bool(runs.values[0, 0, -1] < 1e-12)
((2, 1), True)
"""

from __future__ import annotations

import time
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from optlab import stopping, sweep
from optlab.minimize import minimize
from optlab.problems.suite import Problem, stack

Log = Callable[[str], None]


class Trace(NamedTuple):
    """One run, as a solver returns it inside JAX."""

    values: jax.Array  # (entries,) f after k iterations (entry 0: the start); the last repeats
    evaluations: jax.Array  # (entries,) int32, evaluations of f (with its gradient) so far
    iterations: jax.Array  # int32
    status: jax.Array  # int32 optlab.Status code


class Runs(NamedTuple):
    """One solver on a problem set: runs indexed ``(problem, start)``."""

    values: np.ndarray  # (problems, starts, entries) float64
    evaluations: np.ndarray  # (problems, starts, entries) int
    iterations: np.ndarray  # (problems, starts) int
    status: np.ndarray  # (problems, starts) int optlab.Status codes
    seconds: np.ndarray  # (problems, starts) a problem's call time over its count of starts
    compile_seconds: float  # tracing and compiling every group's program


Solver = Callable[[Callable, jax.Array, jax.Array, jax.Array], Trace]


def minimize_solver(opt_or_factory, *, stop: stopping.StopRule | Callable, max_iters: int,
                    ) -> Solver:
    """:func:`optlab.minimize` as a solver, its history the whole run.

    ``opt_or_factory`` is an optax transformation, or ``(lower, upper) -> transformation``
    for a rule that takes the problem's bounds (``optlab.lbfgsb``); ``stop`` is a rule,
    or ``(lower, upper) -> rule`` (``stopping.projected_grad_norm``)."""

    def solve(fun, x0, lower, upper):
        opt = opt_or_factory(lower, upper) if _takes_bounds(opt_or_factory) else opt_or_factory
        rule = stop if isinstance(stop, stopping.StopRule) else stop(lower, upper)
        result = minimize(fun, x0, opt, stop=rule, max_iters=max_iters,
                                          history=max_iters + 1)
        return Trace(result.history.values, result.history.evaluations, result.iterations,
                     result.status)

    return solve


def _takes_bounds(opt_or_factory) -> bool:
    return not hasattr(opt_or_factory, "update")


def perturbed_starts(problem: Problem, seeds: int, scale: float = 0.1) -> np.ndarray:
    """``(1 + seeds, n)``: the standard start, then one start per seed,
    ``x0 + scale (1 + |x0|) z`` with ``z`` standard normal (seed ``s``, NumPy's
    ``default_rng``), clipped into the problem's bounds."""
    if seeds < 0 or scale < 0:
        raise ValueError(f"seeds and scale must be non-negative, got {seeds} and {scale}")
    x0 = np.asarray(problem.x0, np.float64)
    moved = [x0 + scale * (1 + np.abs(x0)) * np.random.default_rng(seed).standard_normal(x0.shape)
             for seed in range(seeds)]
    starts = np.stack([x0, *moved])
    if problem.bounded:
        starts = np.clip(starts, *problem.box())
    return starts


def run_problems(
    solve: Solver,
    problems: Sequence[Problem],
    starts: Sequence[Any],
    *,
    group: int = 16,
    repeats: int = 1,
    log: Log | None = None,
    label: str = "",
) -> Runs:
    """Runs ``solve`` on every problem from each of its starts.

    Args:
      solve: one run, ``solve(fun, x0, lower, upper) -> Trace`` (see :func:`minimize_solver`).
      problems: the problems, any sizes.
      starts: per problem, ``(starts, n)`` points; every problem has the same count.
      group: problems per compiled program (fewer programs against a larger one each:
        XLA's compile time grows faster than the program).
      repeats: timed calls per problem after the first (their median is kept); 0 times
        the first call, which then includes no compile but may include warm-up.
      log: takes one progress line per group.
      label: the solver's name in those lines.

    Returns:
      :class:`Runs` in the order of ``problems``.
    """
    problems = list(problems)
    starts = [np.asarray(s, np.float64) for s in starts]
    if len(starts) != len(problems) or not problems:
        raise ValueError(f"need one (starts, n) array per problem: {len(problems)} problems, "
                         f"{len(starts)} arrays of starts")
    counts = {s.shape[0] for s in starts}
    for problem, points in zip(problems, starts):
        if points.ndim != 2 or points.shape[1] != problem.n:
            raise ValueError(f"{problem.name}: starts must be (starts, {problem.n}), "
                             f"got {points.shape}")
    if len(counts) != 1:
        raise ValueError(f"every problem needs as many starts, got {sorted(counts)}")
    if group < 1 or repeats < 0:
        raise ValueError(f"group must be positive and repeats non-negative, got {group}, "
                         f"{repeats}")
    order = sorted(range(len(problems)), key=lambda i: (problems[i].n, i))
    outputs: dict[int, tuple] = {}
    compile_seconds = 0.0
    for first in range(0, len(order), group):
        members = order[first:first + group]
        chosen = [problems[i] for i in members]
        width = max(problem.n for problem in chosen)
        program = _group_program(solve, chosen)
        padded = [_pad_inputs(problems[i], starts[i], width) for i in members]
        begin = time.perf_counter()
        compiled = jax.jit(program).lower(0, *padded[0]).compile()
        compile_seconds += time.perf_counter() - begin
        for k, (index, inputs) in enumerate(zip(members, padded)):
            trace, seconds = _timed(compiled, k, inputs, repeats)
            outputs[index] = (trace, seconds)
        if log is not None:
            log(f"{label}: problems {first + 1}-{first + len(members)} of {len(order)} "
                f"(n <= {width}) done, {compile_seconds:.1f} s compiling so far")
    runs = [outputs[i] for i in range(len(problems))]
    count = counts.pop()
    return Runs(
        values=np.stack([np.asarray(trace.values, np.float64) for trace, _ in runs]),
        evaluations=np.stack([np.asarray(trace.evaluations) for trace, _ in runs]),
        iterations=np.stack([np.asarray(trace.iterations) for trace, _ in runs]),
        status=np.stack([np.asarray(trace.status) for trace, _ in runs]),
        seconds=np.stack([np.full(count, seconds / count) for _, seconds in runs]),
        compile_seconds=compile_seconds)


def _group_program(solve: Solver, problems: list[Problem]) -> Callable:
    objective = stack(problems).fun  # a lax.switch over the group

    def program(k, starts, lower, upper):
        fun = lambda x: objective(k, x)  # noqa: E731  k is not batched: one branch runs
        return jax.vmap(lambda x0: solve(fun, x0, lower, upper))(starts)

    return program


def _pad_inputs(problem: Problem, starts: np.ndarray, width: int) -> tuple:
    pad = width - problem.n
    lower, upper = problem.box()
    return (jnp.asarray(np.pad(starts, ((0, 0), (0, pad)))),
            jnp.asarray(np.pad(lower, (0, pad), constant_values=-np.inf)),
            jnp.asarray(np.pad(upper, (0, pad), constant_values=np.inf)))


def _timed(compiled, k: int, inputs: tuple, repeats: int) -> tuple[Trace, float]:
    """The median of ``repeats`` calls after a first one, or the first alone."""
    call = lambda: compiled(k, *inputs)  # noqa: E731
    if not repeats:
        return sweep.timed(call, 1)
    jax.block_until_ready(call())
    return sweep.timed(call, repeats)
