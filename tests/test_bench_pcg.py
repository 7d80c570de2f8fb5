"""experiments.bench_pcg at a tiny size: same systems on both sides, counts agree, report.

No speed is asserted: the numbers depend on the machine and on what else runs on it.
"""

import pytest

from experiments import bench_pcg as bench


@pytest.fixture(scope="module")
def measured():
    return bench.measure(
        matrix="494_bus", rhs=3, poisson_size=12, poisson_iterations=5, repeats=1,
        layout_scale=0.1, layout_steps=3, layout_iterations=3, log=lambda _: None
    )


def test_every_comparison_solves_the_same_system_on_both_sides(measured):
    names = [row["comparison"] for row in measured["rows"]]
    assert names == [
        "CG",
        "Jacobi-PCG",
        "IC(0)-PCG",
        "3 right-hand sides, vmapped (494_bus)",
        "3 right-hand sides, vmapped (27-point, 3^3, permuted)",
        "Poisson 2-D, per iteration (diagonal layout)",
        "Poisson 2-D, per iteration (bcoo layout)",
    ]
    for row in measured["rows"]:
        assert row["agree"] and row["converged"], row
        assert row["optlab_seconds"] > 0 and row["scipy_seconds"] > 0
    poisson = measured["rows"][-1]
    assert poisson["optlab_iterations"] == poisson["scipy_iterations"] == 5
    # Both are timed (one call each here), so neither bounds the other on a busy machine.
    assert measured["ic0_seconds"] > 0 and measured["factor_seconds"] > 0


def test_every_test_matrix_has_its_layouts_timed_and_the_picked_one_named(measured):
    names = [row["matrix"] for row in measured["layouts"]]
    assert names[:3] == ["494_bus", "685_bus", "1138_bus"] and len(names) == 10
    for row in measured["layouts"]:
        assert {"csr", "bcoo"} <= set(row["products"]) and row["scipy_product"] > 0
        assert row["layout"] in row["products"]
        assert row["cg"] > 0 and row["scipy_jacobi"] > 0
    by_name = dict(zip(names, measured["layouts"]))
    assert by_name["494_bus"]["layout"] == "csr" and by_name["494_bus"]["goal"] == 0.5
    assert by_name["27-point, 3^3, permuted"]["goal"] == 1.0


def test_report_has_a_row_and_a_verdict_per_goal(measured):
    text = bench.format_report(measured)
    assert text.startswith("| comparison")
    for goal in ("≤ 0.5:", "≤ 1:", "≤ 0.2:"):
        assert goal in text
    assert "IC(0) set-up on 494_bus" in text
    assert "residual norm, against the solve without: CG " in text
    assert text.count("\n| ") == len(measured["rows"]) + len(measured["layouts"]) + 1
    assert all(row["history_cost"] > 0 for row in measured["rows"][:3])


def test_bad_flags_exit_with_one_readable_line(run_script):
    done, errors = run_script("experiments.bench_pcg", "--rhs=0")
    assert done.returncode == 2
    assert len(errors) == 1 and "--rhs" in errors[0], done.stderr[-2000:]
    done, errors = run_script("experiments.bench_pcg", "--matrix=nope")
    assert done.returncode == 2 and "no Matrix Market file" in errors[0]
