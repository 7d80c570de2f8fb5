"""Smoke test of experiments.bench_quasi_newton at a tiny size: rows, keys, finite times.

No speed is asserted: the numbers depend on the machine and on what else runs on it.
"""

import math

import jax
import pytest

pytest.importorskip("optimistix")

from experiments import bench_quasi_newton as bench  # noqa: E402


@pytest.fixture(scope="module")
def measured():
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    try:
        yield bench.measure(n=10, seeds=2, steps=5, repeats=1, eps=1e-6, scipy=False)
    finally:
        jax.config.update("jax_enable_x64", previous)


def test_rows_have_the_expected_keys_and_positive_finite_times(measured):
    rows, _ = measured
    assert [row["benchmark"] for row in rows] == [
        "BFGS, 5 steps, vmapped",
        "L-BFGS(10), 5 steps, vmapped",
        "L-BFGS(10) to eps: time per run",
        "L-BFGS(10) to eps: iterations (mean)",
    ]
    for row in rows:
        assert set(row) == set(bench.ROW_KEYS)
        for key in ("ours_value", "peer_value", "ratio"):
            assert math.isfinite(row[key]) and row[key] > 0, (row["benchmark"], key, row[key])
        assert row["met"] in (None, True, False)
    goals = {row["benchmark"]: row["goal"] for row in rows}
    assert goals["BFGS, 5 steps, vmapped"] == "≤ 1.0"
    assert goals["L-BFGS(10), 5 steps, vmapped"] == "≤ 0.5"


def test_every_program_is_timed_apart_from_its_compile(measured):
    _, compiles = measured
    assert len(compiles) == 7
    for entry in compiles:
        assert set(entry) == set(bench.COMPILE_KEYS)
        assert math.isfinite(entry["compile_s"]) and entry["compile_s"] > 0
        assert math.isfinite(entry["run_s"]) and entry["run_s"] > 0


def test_table_lists_every_row(measured):
    rows, compiles = measured
    table = bench.format_table(rows)
    for row in rows:
        assert row["benchmark"] in table
    assert all(c["program"] in bench.format_compile_table(compiles) for c in compiles)


def test_refuses_float32():
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", False)
    try:
        with pytest.raises(RuntimeError, match="float64"):
            bench.measure(n=3, seeds=1, steps=1, repeats=1, scipy=False)
    finally:
        jax.config.update("jax_enable_x64", previous)
