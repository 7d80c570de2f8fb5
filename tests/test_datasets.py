"""Tests of optlab.datasets: the shipped MNIST, wine and NAB files and their loaders.

Known figures come from /work/shared/data/README.md (and optlab/datasets/PROVENANCE.md);
malformed inputs are written to tmp_path.
"""

import fnmatch
import gzip
import hashlib
import importlib.resources
import pathlib
import shutil
import statistics
import struct

import numpy as np
import pytest

from optlab import datasets

SHIPPED_SHA256 = {
    "mnist/train-images-idx3-ubyte.gz":
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "mnist/train-labels-idx1-ubyte.gz":
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "mnist/t10k-images-idx3-ubyte.gz":
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "mnist/t10k-labels-idx1-ubyte.gz":
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    "wine/winequality-red.csv": "4a402cf041b025d4566d954c3b9ba8635a3a8a01e039005d97d6a710278cf05e",
    "wine/winequality.names": "766c4fdc45be087c7efe720b7d8e0d4949baefb4cd620901bd36a3aaa83246ca",
    "nab/art_daily_small_noise.csv":
        "c4b304229f69f108eaa024fb2406fcd4510c5c5d95cd0053e2da6989682e4e6d",
    "nab/art_daily_jumpsup.csv": "f79f92b93ee4f9c10e2dc552505e8880b0c618639ed5e0f9816e044b75c26456",
    "nab/combined_windows_subset.json":
        "cde5b51bcb00bead48d6ef0e67e1fb150438449cd32b8b8d97792127145c753b",
    "nab/combined_labels_subset.json":
        "85ffacfbc8a998a7c2d2c2e093a586ce50b235fd395b1b5185cfaf0525567ff1",
}
MNIST_LABEL_COUNTS = {
    "train": [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
    "test": [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009],
}
MNIST_MEAN_PIXEL = {"train": 33.3184, "test": 33.7912}
WINE_QUALITY_COUNTS = {3: 10, 4: 53, 5: 681, 6: 638, 7: 199, 8: 18}
WINE_HEADER = (
    '"fixed acidity";"volatile acidity";"citric acid";"residual sugar";"chlorides";'
    '"free sulfur dioxide";"total sulfur dioxide";"density";"pH";"sulphates";"alcohol";'
    '"quality"'
)
WINE_ROW = "7.4;0.7;0;1.9;0.076;11;34;0.9978;3.51;0.56;9.4;5"


def _shipped(relative: str) -> pathlib.Path:
    return pathlib.Path(str(importlib.resources.files("optlab.datasets") / relative))


# --- shipped files ---------------------------------------------------------------------


@pytest.mark.parametrize("relative", sorted(SHIPPED_SHA256))
def test_shipped_files_match_their_checksums(relative):
    digest = hashlib.sha256(_shipped(relative).read_bytes()).hexdigest()
    assert digest == SHIPPED_SHA256[relative]


def test_provenance_lists_every_shipped_checksum():
    text = _shipped("PROVENANCE.md").read_text()
    for relative, sha256 in SHIPPED_SHA256.items():
        assert f"`{relative}`" in text
        assert sha256 in text


def test_package_data_globs_cover_the_shipped_files():
    tomllib = pytest.importorskip("tomllib")
    pyproject = pathlib.Path(__file__).parents[1] / "pyproject.toml"
    globs = tomllib.loads(pyproject.read_text())["tool"]["setuptools"]["package-data"][
        "optlab.datasets"
    ]
    root = _shipped(".")
    for folder in ("mnist", "wine", "nab"):
        for path in (root / folder).iterdir():
            relative = path.relative_to(root).as_posix()
            assert any(fnmatch.fnmatch(relative, glob) for glob in globs), relative


# --- MNIST -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mnist():
    return {split: datasets.load_mnist(split) for split in ("train", "test")}


@pytest.mark.parametrize("split, n", [("train", 60000), ("test", 10000)])
def test_load_mnist_matches_the_published_figures(mnist, split, n):
    images, labels = mnist[split]
    assert images.shape == (n, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (n,) and labels.dtype == np.int32
    assert images.min() == 0 and images.max() == 255
    assert images.mean(dtype=np.float64) == pytest.approx(MNIST_MEAN_PIXEL[split], abs=1e-4)
    np.testing.assert_array_equal(np.bincount(labels, minlength=10), MNIST_LABEL_COUNTS[split])


def test_mnist_arrays_scales_and_limits(mnist):
    x, y = datasets.mnist_arrays("test", limit=1000)
    images, labels = mnist["test"]
    assert x.shape == (1000, 784) and x.dtype == np.float32
    np.testing.assert_array_equal(x, images[:1000].reshape(1000, 784) / np.float32(255))
    np.testing.assert_array_equal(y, labels[:1000])
    square, _ = datasets.mnist_arrays("test", limit=3, flatten=False)
    assert square.shape == (3, 28, 28)
    with pytest.raises(ValueError, match="limit must be between 1 and 10000"):
        datasets.mnist_arrays("test", limit=10001)


def test_mnist_splits_default_to_the_coursework_subset(mnist):
    splits = datasets.mnist_splits()
    shapes = [array.shape for array in splits]
    assert shapes == [(4800, 784), (4800,), (1200, 784), (1200,), (1000, 784), (1000,)]
    train_images, train_labels = mnist["train"]
    np.testing.assert_array_equal(splits.x_validation * 255,
                                  train_images[4800:6000].reshape(1200, 784))
    np.testing.assert_array_equal(splits.y_train, train_labels[:4800])
    np.testing.assert_array_equal(splits.y_test, mnist["test"].labels[:1000])
    with pytest.raises(ValueError, match="empty training or validation set"):
        datasets.mnist_splits(validation_fraction=0.0)
    assert datasets.mnist_split_sizes() == (4800, 1200)
    assert datasets.mnist_split_sizes(None, 0.2) == (48_000, 12_000)
    full = datasets.mnist_splits(train_limit=None, test_limit=10)
    assert (len(full.y_train), len(full.y_validation)) == datasets.mnist_split_sizes(None)


def test_load_mnist_rejects_an_unknown_split():
    with pytest.raises(ValueError, match="split must be one of"):
        datasets.load_mnist("validation")


def _idx_bytes(array: np.ndarray, type_code: int) -> bytes:
    """An idx file written by hand: 0, 0, type, ndim, big-endian sizes, big-endian data."""
    header = struct.pack(">BBBB", 0, 0, type_code, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize(
    "dtype, type_code", [(np.uint8, 0x08), (np.int16, 0x0B), (np.float64, 0x0E)]
)
def test_read_idx_round_trips_raw_and_gzipped(tmp_path, compress, dtype, type_code):
    array = np.random.default_rng(0).integers(-100, 100, size=(3, 4, 5)).astype(dtype)
    if dtype == np.uint8:
        array = array + np.uint8(100)
    data = _idx_bytes(array, type_code)
    path = tmp_path / "array.idx"
    path.write_bytes(gzip.compress(data) if compress else data)
    loaded = datasets.read_idx(path)
    assert loaded.dtype == np.dtype(dtype) and loaded.dtype.isnative
    assert loaded.flags.writeable
    np.testing.assert_array_equal(loaded, array)


def _images_idx(n: int) -> bytes:
    return _idx_bytes(np.zeros((n, 28, 28), np.uint8), 0x08)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"\x00\x00", "too short for an idx header"),
        (b"\x01\x00\x08\x01" + struct.pack(">I", 1) + b"\x00", "bad idx magic number"),
        (b"\x00\x00\x07\x01" + struct.pack(">I", 1) + b"\x00", "bad idx magic number"),
        (b"\x00\x00\x08\x00", "bad idx magic number"),
        (b"\x00\x00\x08\x03" + struct.pack(">I", 2), "header cut short"),
        (_images_idx(2)[:-1], "truncated payload"),
        (_images_idx(2) + b"\x00", "oversized payload"),
        # A corrupt header announcing 2**32 - 1 rows fails cleanly, without a huge read.
        (b"\x00\x00\x08\x01" + struct.pack(">I", 2**32 - 1) + b"\x00", "truncated payload"),
    ],
    ids=["short", "nonzero-magic", "unknown-type", "no-dims", "cut-header", "truncated",
         "oversized", "absurd-size"],
)
def test_read_idx_rejects_malformed_files(tmp_path, data, message):
    path = tmp_path / "bad-idx"
    path.write_bytes(data)
    with pytest.raises(ValueError, match=message) as raised:
        datasets.read_idx(path)
    assert str(path) in str(raised.value)


def test_read_idx_rejects_a_truncated_gzip_stream(tmp_path):
    path = tmp_path / "cut.gz"
    path.write_bytes(gzip.compress(_images_idx(5))[:-20])
    with pytest.raises(ValueError, match="corrupt or truncated gzip") as raised:
        datasets.read_idx(path)
    assert str(path) in str(raised.value)


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.idx"):
        datasets.read_idx(tmp_path / "absent.idx")


def _write_split(directory, images: bytes, labels: bytes):
    (directory / "t10k-images-idx3-ubyte").write_bytes(images)
    (directory / "t10k-labels-idx1-ubyte").write_bytes(labels)


def test_load_mnist_from_a_directory_of_raw_files(tmp_path):
    images = np.arange(2 * 28 * 28, dtype=np.int64).reshape(2, 28, 28).astype(np.uint8)
    _write_split(tmp_path, _idx_bytes(images, 0x08), _idx_bytes(np.array([7, 3], np.uint8), 0x08))
    loaded = datasets.load_mnist("test", path=tmp_path)
    np.testing.assert_array_equal(loaded.images, images)
    np.testing.assert_array_equal(loaded.labels, [7, 3])


@pytest.mark.parametrize(
    "images, labels, message",
    [
        (_images_idx(3), _idx_bytes(np.zeros(2, np.uint8), 0x08), "2 labels for 3 images"),
        (_idx_bytes(np.zeros((2, 28, 27), np.uint8), 0x08),
         _idx_bytes(np.zeros(2, np.uint8), 0x08), r"shape \(n, 28, 28\)"),
        (_images_idx(2), _idx_bytes(np.zeros((2, 1), np.uint8), 0x08), r"labels of shape \(n,\)"),
        (_images_idx(2), _idx_bytes(np.array([1, 10], np.uint8), 0x08), "label 10 outside 0..9"),
    ],
    ids=["count-mismatch", "image-shape", "label-shape", "label-value"],
)
def test_load_mnist_rejects_inconsistent_files(tmp_path, images, labels, message):
    _write_split(tmp_path, images, labels)
    with pytest.raises(ValueError, match=message):
        datasets.load_mnist("test", path=tmp_path)


def test_load_mnist_missing_file(tmp_path):
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(_images_idx(1))
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        datasets.load_mnist("test", path=tmp_path)


# --- wine ------------------------------------------------------------------------------


def test_load_wine_table_reads_the_shipped_file():
    values, columns = datasets.load_wine_table()
    assert values.shape == (1599, 12) and values.dtype == np.float64
    assert columns[0] == "fixed acidity" and columns[-1] == "quality" and len(columns) == 12
    np.testing.assert_array_equal(values[0], [float(cell) for cell in WINE_ROW.split(";")])
    qualities, counts = np.unique(values[:, -1], return_counts=True)
    assert dict(zip(qualities.tolist(), counts.tolist())) == WINE_QUALITY_COUNTS


def test_load_wine_splits_stratified_and_scales_with_training_statistics():
    split = datasets.load_wine()
    table = datasets.load_wine_table().values
    assert split.x_train.shape == (1199, 11) and split.x_test.shape == (400, 11)
    assert split.x_train.dtype == np.float32 and split.y_train.dtype == np.int32
    assert split.feature_names == datasets.load_wine_table().columns[:-1]
    # 855 wines of quality >= 6 and 744 below; a quarter of each class is test data.
    assert (split.y_train.sum(), split.y_test.sum()) == (855 - 214, 214)
    assert (split.y_test == 0).sum() == 186
    # Min-max fitted on the training rows: they span exactly [0, 1] in every column ...
    np.testing.assert_array_equal(split.x_train.min(axis=0), 0)
    np.testing.assert_array_equal(split.x_train.max(axis=0), 1)
    # ... and the test rows went through the same increasing affine map, so together the
    # two sets are an affine image of each raw column, not rescaled to [0, 1] on their own.
    for column in range(11):
        scaled = np.sort(np.concatenate([split.x_train[:, column], split.x_test[:, column]]))
        raw = np.sort(table[:, column])
        slope, intercept = np.polyfit(raw, scaled, 1)
        assert slope > 0
        np.testing.assert_allclose(scaled, slope * raw + intercept, atol=1e-6)
    assert split.x_test.min() < 0 or split.x_test.max() > 1


def test_load_wine_coursework_is_scikit_learns_split_of_the_scaled_table():
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import MinMaxScaler

    table = datasets.load_wine_table().values
    scaled = MinMaxScaler().fit_transform(table[:, :-1])
    labels = (table[:, -1] >= 6).astype(np.int32)
    x_train, x_test, y_train, y_test = train_test_split(scaled, labels, test_size=0.25,
                                                        random_state=1)
    split = datasets.load_wine_coursework()
    assert (len(split.y_train), len(split.y_test)) == (1199, 400)
    np.testing.assert_allclose(split.x_train, x_train, atol=1e-6)
    np.testing.assert_allclose(split.x_test, x_test, atol=1e-6)
    np.testing.assert_array_equal(split.y_train, y_train)
    np.testing.assert_array_equal(split.y_test, y_test)
    # The first test rows are RandomState(1)'s first indices.
    first = np.random.RandomState(1).permutation(1599)[:3]
    np.testing.assert_allclose(split.x_test[:3], scaled[first], atol=1e-6)


def test_load_wine_is_seeded():
    first, again, other = (datasets.load_wine(seed=seed) for seed in (0, 0, 1))
    np.testing.assert_array_equal(first.x_test, again.x_test)
    assert not np.array_equal(first.x_test, other.x_test)
    assert datasets.load_wine(threshold=7).y_test.sum() == round(0.25 * 217)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"test_fraction": 0.0}, "test_fraction must be in"),
        ({"test_fraction": 1.0}, "test_fraction must be in"),
        ({"threshold": 9}, "class 1 has 0 rows"),
    ],
)
def test_load_wine_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        datasets.load_wine(**kwargs)


@pytest.mark.parametrize(
    "lines, message",
    [
        ([WINE_HEADER.replace(";", ","), WINE_ROW], "line 1: expected the header"),
        ([WINE_HEADER.replace(';"quality"', ""), WINE_ROW], "line 1: expected the header"),
        ([WINE_HEADER, WINE_ROW, WINE_ROW.rsplit(";", 1)[0]], "line 3: 11 cells, expected 12"),
        ([WINE_HEADER, WINE_ROW.replace("7.4", "seven")], "line 2: not a number"),
        ([WINE_HEADER, WINE_ROW.replace("7.4", "")], "line 2: not a number"),
        ([WINE_HEADER, WINE_ROW.replace("7.4", "nan")], "line 2: non-finite"),
        ([WINE_HEADER, WINE_ROW[:-1] + "5.5"], "line 2: quality '5.5' is not a whole number"),
        ([WINE_HEADER], "no data rows"),
        ([], "line 1: expected the header"),
    ],
)
def test_load_wine_table_rejects_malformed_files(tmp_path, lines, message):
    path = tmp_path / "wine.csv"
    path.write_text("".join(line + "\n" for line in lines))
    with pytest.raises(ValueError, match=message) as raised:
        datasets.load_wine_table(path=path)
    assert str(path) in str(raised.value)


def test_load_wine_reads_a_given_file(tmp_path):
    path = tmp_path / "wine.csv"
    shutil.copy(_shipped("wine/winequality-red.csv"), path)
    np.testing.assert_array_equal(datasets.load_wine(path=path).x_test,
                                  datasets.load_wine().x_test)
    with pytest.raises(FileNotFoundError, match="absent.csv"):
        datasets.load_wine_table(path=tmp_path / "absent.csv")


# --- NAB -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, minimum, maximum, mean",
    [
        ("art_daily_small_noise", 18.001, 87.976, 42.438),
        ("art_daily_jumpsup", 18.001, 164.947, 44.494),
    ],
)
def test_load_nab_matches_the_published_figures(name, minimum, maximum, mean):
    timestamps, values = datasets.load_nab(name)
    assert timestamps.shape == values.shape == (4032,)
    assert timestamps.dtype == np.dtype("datetime64[s]") and values.dtype == np.float64
    assert timestamps[0] == np.datetime64("2014-04-01T00:00:00")
    assert timestamps[-1] == np.datetime64("2014-04-14T23:55:00")
    assert set(np.diff(timestamps).tolist()) == {np.timedelta64(5, "m").item()}
    assert (round(values.min(), 3), round(values.max(), 3), round(values.mean(), 3)) == (
        minimum, maximum, mean)
    by_path = datasets.load_nab(_shipped(f"nab/{name}.csv"))
    np.testing.assert_array_equal(by_path.values, values)


def test_labelled_windows_of_the_shipped_series():
    assert datasets.labelled_windows("art_daily_small_noise") == []
    windows = datasets.labelled_windows("art_daily_jumpsup")
    assert windows == [(np.datetime64("2014-04-10T16:15:00"), np.datetime64("2014-04-12T01:45:00"))]
    timestamps, values = datasets.load_nab("art_daily_jumpsup")
    inside = datasets.in_windows(timestamps, windows)
    assert inside.sum() == 403
    assert round(values[inside].max(), 2) == 164.95 and round(values[~inside].max(), 2) == 87.97
    with pytest.raises(ValueError, match="0 entries for art_daily_flatline.csv"):
        datasets.labelled_windows("art_daily_flatline")


@pytest.mark.parametrize(
    "text, message",
    [
        ("[1, 2]", "not a NAB label file"),
        ("{not json", "not a NAB label file"),
        ('{"a/s.csv": [["2014-04-02 00:00:00"]]}', "malformed windows"),
        ('{"a/s.csv": [["2014-04-02", "yesterday"]]}', "malformed windows"),
        ('{"a/s.csv": [["2014-04-02", "2014-04-01"]]}', "malformed window"),
        ('{"a/s.csv": [], "b/s.csv": []}', "2 entries for s.csv"),
    ],
)
def test_labelled_windows_rejects_malformed_label_files(tmp_path, text, message):
    path = tmp_path / "windows.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        datasets.labelled_windows("s", path=path)


def test_labelled_windows_reads_a_given_label_file(tmp_path):
    path = tmp_path / "windows.json"
    path.write_text('{"x/s.csv": [["2014-04-02 00:00:00.000000", "2014-04-02 01:00:00"]]}')
    assert datasets.labelled_windows("s", path=path) == [
        (np.datetime64("2014-04-02T00:00:00"), np.datetime64("2014-04-02T01:00:00"))]
    with pytest.raises(FileNotFoundError, match="absent.json"):
        datasets.labelled_windows("s", path=tmp_path / "absent.json")


@pytest.mark.parametrize(
    "lines, message",
    [
        (["time,value", "2014-04-01 00:00:00,1.0"], "line 1: expected the header"),
        (["timestamp,value", "2014-04-01 00:00:00,1.0,2.0"], "line 2: 3 cells, expected 2"),
        (["timestamp,value", "2014-04-01 00:00:00,1.0", "2014-04-01 00:05:00,x"],
         "line 3: value 'x' is not a number"),
        (["timestamp,value", "2014-04-01 00:00:00,inf"], "line 2: value 'inf' is not finite"),
        (["timestamp,value", "2014-04-01 24:61:00,1.0"], "line 2: bad time stamp"),
        (["timestamp,value", ",1.0"], "line 2: missing time stamp"),
        (["timestamp,value", "2014-04-01 00:05:00,1.0", "2014-04-01 00:05:00,2.0"],
         "line 3: time stamp 2014-04-01T00:05:00 does not come after"),
        (["timestamp,value"], "no data rows"),
    ],
)
def test_load_nab_rejects_malformed_files(tmp_path, lines, message):
    path = tmp_path / "series.csv"
    path.write_text("".join(line + "\n" for line in lines))
    with pytest.raises(ValueError, match=message) as raised:
        datasets.load_nab(path)
    assert str(path) in str(raised.value)


def test_load_nab_accepts_an_irregular_step_and_rejects_a_missing_file(tmp_path):
    path = tmp_path / "series.csv"
    path.write_text("timestamp,value\n2014-04-01 00:00:00,1.5\n2014-04-01 00:07:00,-2\n")
    timestamps, values = datasets.load_nab(path)
    np.testing.assert_array_equal(values, [1.5, -2.0])
    assert timestamps[1] - timestamps[0] == np.timedelta64(7, "m")
    with pytest.raises(FileNotFoundError, match="shipped series are art_daily_small_noise"):
        datasets.load_nab("art_daily_nojump")


def test_standardizer_uses_the_training_statistics():
    train = datasets.load_nab("art_daily_small_noise").values
    test = datasets.load_nab("art_daily_jumpsup").values
    scaler = datasets.Standardizer.fit(train)
    assert scaler.mean == pytest.approx(statistics.fmean(train), rel=1e-12)
    assert scaler.std == pytest.approx(statistics.stdev(train), rel=1e-12)
    np.testing.assert_allclose(scaler.transform(test), (test - scaler.mean) / scaler.std)
    np.testing.assert_allclose(scaler.inverse(scaler.transform(test)), test, rtol=1e-12)
    assert scaler.transform(train.astype(np.float32)).dtype == np.float32
    assert datasets.Standardizer.fit(train, ddof=0).std == pytest.approx(
        statistics.pstdev(train), rel=1e-12)


@pytest.mark.parametrize(
    "values, message",
    [(np.ones(5), "constant series"), (np.array([1.0]), "need more than 1"),
     (np.array([1.0, np.nan, 2.0]), "1 non-finite")],
)
def test_standardizer_rejects_unusable_series(values, message):
    with pytest.raises(ValueError, match=message):
        datasets.Standardizer.fit(values)


def test_sliding_windows_of_the_training_series():
    values = datasets.load_nab("art_daily_small_noise").values
    windows = datasets.sliding_windows(values, dtype=np.float32)
    assert windows.shape == (4032 - 288 + 1, 288) and windows.dtype == np.float32
    assert windows.flags.c_contiguous and windows.flags.writeable
    for start in (0, 1, 1000, 3744):
        np.testing.assert_array_equal(windows[start], values[start:start + 288].astype(np.float32))


def test_sliding_windows_copies_and_checks():
    values = np.arange(6.0)
    windows = datasets.sliding_windows(values, 4)
    np.testing.assert_array_equal(windows, [[0, 1, 2, 3], [1, 2, 3, 4], [2, 3, 4, 5]])
    windows[0, 0] = 99
    assert values[0] == 0
    with pytest.raises(ValueError, match="length must be between 1 and 6"):
        datasets.sliding_windows(values, 7)
    with pytest.raises(ValueError, match="1-D"):
        datasets.sliding_windows(values.reshape(2, 3), 2)


def _anomalous_points_brute_force(flags, length):
    num_steps = flags.size + length - 1
    return np.array([all(flags[i] for i in range(flags.size) if i <= step < i + length)
                     for step in range(num_steps)])


@pytest.mark.parametrize("length", [1, 2, 5, 12, 40])
@pytest.mark.parametrize("num_windows", [1, 3, 30])
@pytest.mark.parametrize("anomaly_rate", [0.2, 0.8, 1.0])
def test_anomalous_points_against_brute_force(length, num_windows, anomaly_rate):
    rng = np.random.default_rng(length * 1000 + num_windows)
    flags = rng.random(num_windows) < anomaly_rate
    expected = _anomalous_points_brute_force(flags, length)
    np.testing.assert_array_equal(datasets.anomalous_points(flags, length), expected)


def test_anomalous_points_edge_rule():
    # Windows of 3 over 6 steps: steps 0 and 5 lie in one window each.
    flags = np.array([True, False, False, True])
    np.testing.assert_array_equal(datasets.anomalous_points(flags, 3),
                                  [True, False, False, False, False, True])


@pytest.mark.parametrize(
    "flags, length, message",
    [(np.array([1, 0]), 2, "boolean"), (np.zeros(0, bool), 2, "non-empty"),
     (np.zeros((2, 2), bool), 2, "1-D"), (np.ones(3, bool), 0, "length must be at least 1")],
)
def test_anomalous_points_rejects_bad_input(flags, length, message):
    with pytest.raises(ValueError, match=message):
        datasets.anomalous_points(flags, length)
