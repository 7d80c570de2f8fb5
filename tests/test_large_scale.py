"""experiments.large_scale at a tiny size: each kind of run, the table and the goals.

No speed is asserted: timings belong to the benchmark's own output.
"""

import json
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest

import optlab
from experiments import large_scale


@pytest.mark.parametrize("method", ["newton_cg", "trust_ncg", "scipy Newton-CG",
                                    "scipy trust-ncg", "optimistix BFGS"])
def test_each_kind_of_run_reaches_the_gradient_test(method):
    if method.startswith("optimistix"):
        pytest.importorskip("optimistix")
    row = large_scale.run_case("logistic", 40, method, gtol=1e-6, max_iters=200)
    assert row["status"] == "converged" and row["grad_norm"] <= 1e-6
    assert row["iterations"] >= 1 and row["evaluations"] >= row["iterations"]
    assert row["seconds"] > 0 and row["peak_bytes"] > 0
    header, _, line = large_scale.format_table([row]).splitlines()
    assert [cell.strip() for cell in header.split("|")[1:4]] == ["problem", "n", "method"]
    assert [cell.strip() for cell in line.split("|")[1:4]] == ["logistic", "40", method]


def test_the_objectives_are_the_library_problems():
    fun, w0, data, box = large_scale.objective("logistic", 30)
    assert fun is optlab.problems.sparse_logistic_loss and w0.shape == (30,) and box is None
    fun, w0, data, box = large_scale.objective("bounded_logistic_x20", 30)
    assert w0.shape == (large_scale.BATCH, 30) and box.shape == (large_scale.BATCH,)
    rows, columns, values, labels = data  # one pattern, each problem's values and labels
    assert rows.shape == columns.shape == values.shape[1:] == (300,) and labels.shape[1:] == (30,)
    with pytest.raises(ValueError, match="unknown problem 'quadratic'"):
        large_scale.objective("quadratic", 10)


def test_goals_read_the_rows():
    rows = [{"problem": "rosenbrock", "n": 10**6, "method": "newton_cg", "status": "converged",
             "iterations": 70, "seconds": 5.0},
            {"problem": "rosenbrock", "n": 10**5, "method": "newton_cg", "status": "converged",
             "iterations": 70, "seconds": 1.0},
            {"problem": "rosenbrock", "n": 10**5, "method": "scipy Newton-CG",
             "status": "converged", "iterations": 80, "seconds": 3.0}]
    first, second = large_scale.goals(rows)
    assert "n = 10^6" in first and ": yes" in first
    assert "time 0.33 (goal <= 0.5: yes)" in second and "within 25%: yes" in second


@pytest.mark.parametrize("problem", ["bounded_logistic", "bounded_logistic_x20"])
def test_bounded_runs_agree_with_scipy_and_hold_weights_at_the_box(problem):
    ours = large_scale.run_case(problem, 40, "lbfgsb", gtol=1e-8, max_iters=200)
    theirs = large_scale.run_case(problem, 40, "scipy L-BFGS-B", gtol=1e-8, max_iters=200)
    for row in (ours, theirs):
        assert row["status"] == "converged" and row["grad_norm"] <= 1e-8
    assert 0 < theirs["evaluation_seconds"] < theirs["seconds"]
    assert abs(ours["iterations"] - theirs["iterations"]) <= 0.25 * theirs["iterations"]
    if problem == "bounded_logistic":
        assert ours["active"] == theirs["active"] > 0
    else:  # one after another in the same call: the same runs as vmapped
        in_sequence = large_scale.run_case(problem, 40, large_scale.IN_SEQUENCE, gtol=1e-8,
                                           max_iters=200)
        assert in_sequence["status"] == "converged" and in_sequence["grad_norm"] <= 1e-8
        assert in_sequence["iterations"] == ours["iterations"]
        assert in_sequence["evaluations"] == ours["evaluations"]
    with pytest.raises(ValueError, match="run by lbfgsb"):
        large_scale.run_case(problem, 40, "newton_cg", gtol=1e-9, max_iters=10)


def test_bounded_goals_read_the_rows():
    rows = [{"problem": "bounded_logistic", "n": 10**4, "method": "lbfgsb", "seconds": 1.0,
             "iterations": 10},
            {"problem": "bounded_logistic", "n": 10**4, "method": "scipy L-BFGS-B",
             "seconds": 4.0, "iterations": 11},
            {"problem": "bounded_logistic_x20", "n": 1000, "method": "lbfgsb", "seconds": 1.0,
             "iterations": 10.5},
            {"problem": "bounded_logistic_x20", "n": 1000, "method": "scipy L-BFGS-B",
             "seconds": 8.0, "iterations": 10.5, "evaluations": 240, "evaluation_seconds": 0.5},
            {"problem": "bounded_logistic_x20", "n": 1000, "method": large_scale.IN_SEQUENCE,
             "seconds": 0.5, "iterations": 10.5},
            {"problem": "bounded_logistic_x20", "n": 1000, "method": large_scale.EVERY_CORE,
             "seconds": 0.25, "iterations": 10.5, "devices": 2}]
    first, bound, second, third, fourth = large_scale.goals(rows)
    assert "240 evaluations alone take 500 ms" in bound and "more than 16.0x faster" in bound
    assert "time 0.25 (goal <= 0.5: yes)" in first and "within 25%: yes" in first
    assert "vmapped in one call: 8.0x faster" in second and "goal >= 10: no" in second
    assert "in sequence in one call: 16.0x faster" in third and "goal >= 10: yes" in third
    assert "in sequence over 2 CPU devices in one call: 32.0x faster" in fourth


def test_a_case_on_every_core_runs_over_the_cpu_devices_it_is_given():
    # Its own process, which it gives two CPU devices: the x20 batch sharded over them.
    case = f"--case=bounded_logistic_x20:40:{large_scale.EVERY_CORE}"
    done = subprocess.run([sys.executable, "-m", "experiments.large_scale", case, "--gtol=1e-8",
                           "--max_iters=200", "--cpu_devices=2"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    row = json.loads(done.stdout.strip().splitlines()[-1])
    assert row["devices"] == 2 and row["status"] == "converged" and row["grad_norm"] <= 1e-8
    assert "can hang" not in done.stderr  # no LAPACK call kept it to one device
