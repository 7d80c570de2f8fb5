"""Tests of optlab.linalg.read_matrix_market and the shipped .mtx files."""

import hashlib
import importlib.resources

import numpy as np
import pytest
import scipy.io
import scipy.sparse

from optlab.linalg import read_matrix_market, shipped_matrices

# From /work/shared/data/README.md, section 2 (and optlab/datasets/PROVENANCE.md).
SHIPPED = {
    "494_bus": (494, 1666, "68f051d52e72593d1331344ee8be58a168ac0fac2f90a666c8821b2d4d3bd6d3"),
    "685_bus": (685, 3249, "31b1d5fa595c2c0972996c6517ff314c5acba98a7423cbd344971f280068bc5b"),
    "1138_bus": (1138, 4054, "91af071985d646ea6f0b478db765444a232a7dd79cab55b1c264b292137207ae"),
}


def test_shipped_matrices_are_listed():
    assert shipped_matrices() == sorted(SHIPPED)


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_files_match_their_checksums_and_load(name):
    n, nnz, sha256 = SHIPPED[name]
    path = importlib.resources.files("optlab.datasets") / "matrices" / f"{name}.mtx"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == sha256
    matrix = read_matrix_market(name)
    assert isinstance(matrix, scipy.sparse.csr_matrix)
    assert matrix.shape == (n, n)
    assert matrix.nnz == nnz
    assert abs(matrix - matrix.T).max() == 0
    assert read_matrix_market(str(path)).nnz == nnz


def test_provenance_is_shipped():
    text = (importlib.resources.files("optlab.datasets") / "PROVENANCE.md").read_text()
    assert "CC-BY 4.0" in text
    for _, _, sha256 in SHIPPED.values():
        assert sha256 in text


def test_reads_a_written_symmetric_matrix(tmp_path):
    matrix = scipy.sparse.csr_matrix(np.array([[2.0, -1.0], [-1.0, 2.0]]))
    scipy.io.mmwrite(tmp_path / "small.mtx", matrix, symmetry="symmetric")
    np.testing.assert_array_equal(read_matrix_market(tmp_path / "small.mtx").toarray(),
                                  matrix.toarray())


def test_missing_file(tmp_path):
    with pytest.raises(ValueError, match="no Matrix Market file"):
        read_matrix_market(tmp_path / "absent.mtx")
    with pytest.raises(ValueError, match="1138_bus"):
        read_matrix_market("no_such_matrix")


def test_file_that_is_not_a_matrix(tmp_path):
    path = tmp_path / "notes.mtx"
    path.write_text("these are not the numbers you are looking for\n")
    with pytest.raises(ValueError, match="not a Matrix Market matrix"):
        read_matrix_market(path)


def test_non_square_matrix(tmp_path):
    scipy.io.mmwrite(tmp_path / "wide.mtx", scipy.sparse.csr_matrix(np.ones((2, 3))))
    with pytest.raises(ValueError, match="not square"):
        read_matrix_market(tmp_path / "wide.mtx")


def test_non_symmetric_matrix(tmp_path):
    path = tmp_path / "skewed.mtx"
    path.write_text(
        "%%MatrixMarket matrix coordinate real general\n"
        "2 2 3\n"
        "1 1 2.0\n"
        "1 2 1.0\n"
        "2 2 2.0\n"
    )
    with pytest.raises(ValueError, match="not symmetric"):
        read_matrix_market(path)
