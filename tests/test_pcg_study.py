"""The preconditioning study (experiments.pcg) on small configurations."""

import dataclasses

import numpy as np
import pytest

from configs import pcg as default_config
from experiments import pcg as study

CONFIG = dataclasses.replace(
    default_config.get_config(), matrix="494_bus", rhs=3, repeats=1
)


@pytest.fixture(scope="module")
def results():
    return study.run_study(CONFIG, log=lambda line: None)


def rows_by(results, solver):
    return {row["preconditioner"]: row for row in results["rows"] if row["solver"] == solver}


def test_context_is_the_matrix_and_its_condition_number(results):
    matrix = results["matrix"]
    assert (matrix["n"], matrix["nnz"]) == (494, 1666)
    # shared/data/README.md: lambda_max / lambda_min of 494_bus
    np.testing.assert_allclose(matrix["condition_number"], 2.415411e6, rtol=1e-6)
    assert matrix["layout"].startswith("CSRMatrix(shape=(494, 494), nnz=1666")


def test_iterations_agree_with_scipy_and_preconditioners_help(results):
    optlab, scipy = rows_by(results, "optlab"), rows_by(results, "scipy")
    assert list(optlab) == ["none", "jacobi", "ic0", "ideal"]
    for name, row in optlab.items():
        assert row["status"] == "converged" and scipy[name]["status"] == "converged"
        reference = scipy[name]["iterations"]
        assert abs(row["iterations"] - reference) <= max(1, 0.03 * reference), name
        assert row["true_residual"] < 1e-6
        assert row["solve_seconds"] > 0
    assert optlab["ideal"]["iterations"] == 1
    assert optlab["ic0"]["iterations"] < optlab["jacobi"]["iterations"] < optlab["none"]["iterations"]


def test_residual_history_has_one_entry_per_iteration(results):
    for name, row in rows_by(results, "optlab").items():
        curve = results["residual_norms"][name]
        assert curve.shape == (row["iterations"] + 1,)
        assert np.all(np.isfinite(curve)) and curve[-1] < CONFIG.tol <= curve[-2]


def test_vmapped_right_hand_sides_match_the_scipy_loop(results):
    rows = {(row["preconditioner"], row["solver"]): row for row in results["rhs_rows"]}
    for name in CONFIG.preconditioners:
        ours, theirs = rows[name, "optlab (vmapped)"], rows[name, "scipy (loop)"]
        assert ours["converged"] == theirs["converged"] == CONFIG.rhs
        assert ours["iterations"].total == CONFIG.rhs
        mean = theirs["iterations"].mean
        assert abs(ours["iterations"].mean - mean) <= max(1, 0.03 * mean), name


def test_the_summary_names_the_matrix_and_the_right_hand_sides(results):
    written = study.write(CONFIG, results)
    assert "cond(A)" in written.markdown and "3 random right-hand sides" in written.markdown
    assert len(results["residual_norms"]["none"]) == results["rows"][0]["iterations"] + 1


def test_poisson_uses_the_diagonal_layout_and_skips_a_large_ideal():
    config = dataclasses.replace(
        CONFIG, matrix="poisson2d", size=12, rhs=1, ideal_max_n=100, scipy=False
    )
    results = study.run_study(config, log=lambda line: None)
    assert results["matrix"]["n"] == 144
    assert results["matrix"]["layout"].startswith("DiagonalMatrix(shape=(144, 144), diagonals=5")
    assert [row["preconditioner"] for row in results["rows"]] == ["none", "jacobi", "ic0"]
    assert results["skipped"] and "ideal" in results["skipped"][0]
    # Closed-form extreme eigenvalues of the 5-point Laplacian.
    lambda_min = 4 - 4 * np.cos(np.pi / 13)
    np.testing.assert_allclose(results["matrix"]["lambda_min"], lambda_min, rtol=1e-12)


def test_any_mtx_path_is_accepted(tmp_path):
    import scipy.io

    from optlab.linalg import poisson2d

    path = tmp_path / "laplacian.mtx"
    scipy.io.mmwrite(path, poisson2d(6, as_scipy=True), symmetry="symmetric")
    config = dataclasses.replace(
        CONFIG, matrix=str(path), rhs=1, preconditioners=("none", "ic0"), scipy=False
    )
    results = study.run_study(config, log=lambda line: None)
    assert results["matrix"]["n"] == 36
    assert all(row["status"] == "converged" for row in results["rows"])


def test_ic0_finds_its_shift_where_the_matrix_needs_one(tmp_path):
    import scipy.io
    import scipy.linalg
    import scipy.sparse

    # Kershaw's SPD matrix, ten times along the diagonal: IC(0) meets a negative pivot.
    kershaw = np.array([[3.0, -2.0, 0.0, 2.0], [-2.0, 3.0, -2.0, 0.0], [0.0, -2.0, 3.0, -2.0],
                        [2.0, 0.0, -2.0, 3.0]])
    path = tmp_path / "kershaw.mtx"
    scipy.io.mmwrite(path, scipy.sparse.coo_array(scipy.linalg.block_diag(*[kershaw] * 10)),
                     symmetry="symmetric")
    config = dataclasses.replace(CONFIG, matrix=str(path), rhs=2, preconditioners=("ic0",))
    lines = []
    results = study.run_study(config, log=lines.append)
    assert any("IC(0) broke down on A" in line for line in lines)
    assert {row["status"] for row in results["rows"]} == {"converged"}
    optlab_row, scipy_row = results["rows"]
    assert abs(optlab_row["iterations"] - scipy_row["iterations"]) <= 1


def test_a_missing_or_non_symmetric_matrix_is_a_readable_error(tmp_path, call_study):
    path = tmp_path / "general.mtx"
    path.write_text("%%MatrixMarket matrix coordinate real general\n2 2 3\n1 1 1\n1 2 2\n2 2 1\n")
    for matrix, message in (("no_such_matrix", "no Matrix Market file"), (path, "not symmetric")):
        status, errors = call_study(study.STUDY, f"--out={tmp_path}", f"--matrix={matrix}")
        assert status == 2
        assert len(errors) == 1 and message in errors[0], errors
