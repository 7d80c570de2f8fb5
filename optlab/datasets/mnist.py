"""MNIST from the original idx files, shipped in ``optlab/datasets/mnist`` (never downloaded).

Contract: :func:`load_mnist` returns one split as NumPy arrays, images ``uint8`` of shape
``(n, 28, 28)`` and labels ``int32`` of shape ``(n,)`` in ``0..9``, exactly as stored;
:func:`mnist_arrays` scales the images to ``float32`` in ``[0, 1]`` (``pixel / 255``)
and can keep only the first ``limit`` examples; :func:`mnist_splits` cuts the
train / validation / test subsets that the MLP study uses. No jax is needed here.

:func:`read_idx` parses any idx file (LeCun's format: a big-endian header ``0, 0, type,
ndim``, then ``ndim`` big-endian ``uint32`` sizes, then the payload in C order), gzipped
or raw; it decides by the gzip magic bytes, not by the file name. Every problem with a
file raises ``ValueError`` naming the file and what is wrong; a missing file raises
``FileNotFoundError`` with its path. The payload is decoded with one ``np.frombuffer``,
so the full 60 000 training images load in about a quarter of a second, nearly all of it
gzip's inflate.
"""

from __future__ import annotations

import gzip
import importlib.resources
import math
import os
import pathlib
import zlib
from typing import BinaryIO, NamedTuple

import numpy as np

IMAGE_SHAPE = (28, 28)
NUM_CLASSES = 10

# The idx type byte, and the big-endian element type it stands for.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"
# File names of the official distribution; each may be gzipped (".gz") or raw.
_SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
TRAIN_IMAGES = 60_000  # images in the official training split


class Mnist(NamedTuple):
    """One MNIST split as stored."""

    images: np.ndarray  # (n, 28, 28) uint8, 0 = background, 255 = ink
    labels: np.ndarray  # (n,) int32 in 0..9


class MnistSplits(NamedTuple):
    """Train, validation and test arrays; images ``float32`` in ``[0, 1]``."""

    x_train: np.ndarray  # (n_train, 784) or (n_train, 28, 28) float32
    y_train: np.ndarray  # (n_train,) int32
    x_validation: np.ndarray  # (n_validation, ...) float32
    y_validation: np.ndarray  # (n_validation,) int32
    x_test: np.ndarray  # (n_test, ...) float32
    y_test: np.ndarray  # (n_test,) int32


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Reads an idx file (gzipped or raw) into a native-endian NumPy array.

    Args:
      path: the file.

    Returns:
      A writable array of the stored shape; the dtype is the stored element type in
      native byte order (``uint8`` for MNIST).

    Raises:
      FileNotFoundError: no file at ``path``.
      ValueError: naming the file: not gzip data although it starts like it, a corrupt or
        truncated gzip stream, a magic number that is not ``0x0000TTDD`` with a known type
        ``TT`` and ``DD >= 1`` dimensions, a header cut short, or a payload shorter or
        longer than the product of the dimensions.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no idx file at {path}")
    with open(path, "rb") as raw:
        gzipped = raw.read(2) == _GZIP_MAGIC
    try:
        with (gzip.open(path, "rb") if gzipped else open(path, "rb")) as stream:
            return _read_idx_stream(stream, path)
    except (EOFError, gzip.BadGzipFile, zlib.error) as error:
        raise ValueError(f"{path}: corrupt or truncated gzip data ({error})") from error


def load_mnist(split: str = "train", *, path: str | os.PathLike | None = None) -> Mnist:
    """Loads one MNIST split: images ``uint8 (n, 28, 28)`` and labels ``int32 (n,)``.

    Args:
      split: ``"train"`` (60 000 examples) or ``"test"`` (10 000).
      path: a directory holding the split's files under their official names
        (``train-images-idx3-ubyte[.gz]``, ``train-labels-idx1-ubyte[.gz]``,
        ``t10k-...``); the gzipped file is read when both forms are present. ``None``
        reads the copies shipped with optlab.

    Raises:
      ValueError: unknown ``split``; a malformed file (see :func:`read_idx`); images
        not ``uint8`` of shape ``(n, 28, 28)``; labels not ``uint8`` of shape ``(n,)``
        with values ``0..9``; image and label counts that differ.
      FileNotFoundError: a file is missing from ``path``.
    """
    if split not in _SPLIT_FILES:
        raise ValueError(f"split must be one of {sorted(_SPLIT_FILES)}, got {split!r}")
    directory = _shipped_dir() if path is None else pathlib.Path(path)
    images_name, labels_name = _SPLIT_FILES[split]
    images_path = _find_idx(directory, images_name)
    labels_path = _find_idx(directory, labels_name)
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE:
        raise ValueError(
            f"{images_path}: expected uint8 images of shape (n, 28, 28), "
            f"got {images.dtype} {images.shape}"
        )
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise ValueError(
            f"{labels_path}: expected uint8 labels of shape (n,), got {labels.dtype} "
            f"{labels.shape}"
        )
    if labels.shape[0] != images.shape[0]:
        raise ValueError(
            f"{labels_path}: {labels.shape[0]} labels for {images.shape[0]} images in "
            f"{images_path}"
        )
    if labels.size and labels.max() >= NUM_CLASSES:
        raise ValueError(f"{labels_path}: label {labels.max()} outside 0..{NUM_CLASSES - 1}")
    return Mnist(images=images, labels=labels.astype(np.int32))


def mnist_arrays(
    split: str = "train",
    *,
    limit: int | None = None,
    flatten: bool = True,
    path: str | os.PathLike | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The first ``limit`` examples of a split, images scaled to ``float32`` in ``[0, 1]``.

    ``x = pixel / 255`` (min-max scaling with the fixed pixel range, so it needs no
    statistics of the data and leaks nothing between splits).

    Args:
      split: ``"train"`` or ``"test"``.
      limit: how many examples to keep, from the start of the file; ``None`` keeps all.
      flatten: images as rows of 784 values (``True``) or as ``(28, 28)``.
      path: as in :func:`load_mnist`.

    Returns:
      ``(x, y)``: ``x`` of shape ``(n, 784)`` or ``(n, 28, 28)``, ``float32``; ``y`` of
      shape ``(n,)``, ``int32``.

    Raises:
      ValueError: ``limit`` below 1 or above the size of the split, and as
        :func:`load_mnist`.
    """
    images, labels = load_mnist(split, path=path)
    if limit is not None:
        if not 1 <= limit <= images.shape[0]:
            raise ValueError(
                f"limit must be between 1 and {images.shape[0]} for the {split} split, "
                f"got {limit}"
            )
        images, labels = images[:limit], labels[:limit]
    x = images.astype(np.float32) / np.float32(255)
    if flatten:
        x = x.reshape(x.shape[0], -1)
    return x, labels


def mnist_split_sizes(
    train_limit: int | None = 6000, validation_fraction: float = 0.2
) -> tuple[int, int]:
    """The training and validation rows that :func:`mnist_splits` cuts, without reading
    a file (e.g. to check a batch size before any work): ``(n - v, v)`` for the first
    ``n = train_limit`` images (all 60 000 for None), ``v = round(validation_fraction * n)``."""
    images = TRAIN_IMAGES if train_limit is None else train_limit
    validation = round(validation_fraction * images)
    return images - validation, validation


def mnist_splits(
    *,
    train_limit: int | None = 6000,
    validation_fraction: float = 0.2,
    test_limit: int | None = 1000,
    flatten: bool = True,
    path: str | os.PathLike | None = None,
) -> MnistSplits:
    """Train / validation / test subsets as the MNIST MLP study uses them.

    The first ``train_limit`` training images are cut in order, without shuffling: the
    last ``round(validation_fraction * train_limit)`` of them are the validation set and
    the rest the training set; the test set is the first ``test_limit`` test images. The
    defaults give 4800 / 1200 / 1000; ``train_limit=None, test_limit=None`` give the full
    48 000 / 12 000 / 10 000. Images are scaled as in :func:`mnist_arrays`.

    Raises:
      ValueError: ``validation_fraction`` leaves the training or the validation set
        empty, and as :func:`mnist_arrays`.
    """
    x, y = mnist_arrays("train", limit=train_limit, flatten=flatten, path=path)
    n_train, n_validation = mnist_split_sizes(x.shape[0], validation_fraction)
    if n_train < 1 or n_validation < 1:
        raise ValueError(
            f"validation_fraction={validation_fraction} of {x.shape[0]} training images "
            f"leaves an empty training or validation set"
        )
    x_test, y_test = mnist_arrays("test", limit=test_limit, flatten=flatten, path=path)
    return MnistSplits(
        x_train=x[:n_train],
        y_train=y[:n_train],
        x_validation=x[n_train:],
        y_validation=y[n_train:],
        x_test=x_test,
        y_test=y_test,
    )


def _read_idx_stream(stream: BinaryIO, path: pathlib.Path) -> np.ndarray:
    magic = stream.read(4)
    if len(magic) < 4:
        raise ValueError(f"{path}: file too short for an idx header ({len(magic)} bytes)")
    zero, type_code, ndim = magic[:2], magic[2], magic[3]
    if zero != b"\0\0" or type_code not in _IDX_DTYPES or ndim == 0:
        raise ValueError(
            f"{path}: bad idx magic number 0x{magic.hex()} (expected 0x0000TTDD with type "
            f"TT in {{{', '.join(f'{code:02x}' for code in _IDX_DTYPES)}}} and DD >= 1 "
            f"dimensions)"
        )
    size_bytes = stream.read(4 * ndim)
    if len(size_bytes) < 4 * ndim:
        raise ValueError(f"{path}: idx header cut short: {ndim} dimension sizes announced")
    shape = tuple(int(size) for size in np.frombuffer(size_bytes, dtype=">u4"))
    stored_dtype = _IDX_DTYPES[type_code]
    expected = math.prod(shape) * stored_dtype.itemsize
    # Reading to the end, rather than `expected` bytes, bounds the memory by the data
    # present, whatever sizes a corrupt header announces.
    payload = stream.read()
    if len(payload) != expected:
        problem = "truncated" if len(payload) < expected else "oversized"
        raise ValueError(
            f"{path}: {problem} payload: {len(payload)} bytes where shape {shape} of "
            f"{stored_dtype.name} needs {expected}"
        )
    # The copy makes the array writable (frombuffer views the immutable bytes) and puts
    # multi-byte types in the machine's byte order.
    return np.frombuffer(payload, dtype=stored_dtype).reshape(shape).astype(
        stored_dtype.newbyteorder("=")
    )


def _find_idx(directory: pathlib.Path, name: str) -> pathlib.Path:
    for candidate in (directory / f"{name}.gz", directory / name):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"no {name}.gz or {name} in {directory}")


def _shipped_dir() -> pathlib.Path:
    return pathlib.Path(str(importlib.resources.files("optlab.datasets") / "mnist"))
