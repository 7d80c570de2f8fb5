"""Data files shipped with optlab, and their loaders (read from the installed package,
never downloaded). The loaders return NumPy arrays and need no jax.

* ``mnist/``: the four original MNIST idx files (gzipped); :func:`load_mnist`,
  :func:`mnist_arrays` (``float32`` in ``[0, 1]``), :func:`mnist_splits` (the MLP
  study's train / validation / test subsets), :func:`read_idx` (any idx file).
* ``wine/``: UCI Wine Quality, red (``winequality-red.csv`` and its ``.names``);
  :func:`load_wine_table` (the raw table), :func:`load_wine` (binary task, seeded
  stratified split, min-max scaling fitted on the training rows).
* ``nab/``: the Numenta Anomaly Benchmark series ``art_daily_small_noise`` and
  ``art_daily_jumpsup`` with their labels; :func:`load_nab`, :func:`labelled_windows`,
  :func:`in_windows`, :class:`Standardizer`, :func:`sliding_windows`,
  :func:`anomalous_points`.
* ``matrices/``: SPD matrices from the SuiteSparse Matrix Collection in Matrix Market
  format (load them with :func:`optlab.linalg.read_matrix_market`, e.g. ``"1138_bus"``).
* Machine sounds (no file: **synthetic**, generated in JAX from a seed, since no public
  machine-sound recordings could be shipped): :func:`machine_sound_dataset` (log-mel
  spectrograms 64 x 312 of normal and anomalous clips), :func:`machine_sound`,
  :class:`BandStandardizer`; the spectrogram itself is :mod:`optlab.datasets.audio`
  (:func:`stft`, :func:`mel_filterbank`, :func:`log_mel_spectrogram`). These need jax.

Sources, licences, modifications and checksums are in ``PROVENANCE.md`` beside this file;
locate files with ``importlib.resources.files("optlab.datasets")``.
"""

from optlab.datasets.audio import log_mel_spectrogram, mel_filterbank, stft
from optlab.datasets.machine_sounds import (
    BandStandardizer,
    MachineSounds,
    machine_sound,
    machine_sound_dataset,
)
from optlab.datasets.mnist import (
    Mnist,
    MnistSplits,
    load_mnist,
    mnist_arrays,
    mnist_split_sizes,
    mnist_splits,
    read_idx,
)
from optlab.datasets.nab import (
    NabSeries,
    Standardizer,
    anomalous_points,
    in_windows,
    labelled_windows,
    load_nab,
    sliding_windows,
)
from optlab.datasets.wine import (
    WineSplit, WineTable, load_wine, load_wine_coursework, load_wine_table)

__all__ = [
    "BandStandardizer",
    "MachineSounds",
    "Mnist",
    "MnistSplits",
    "NabSeries",
    "Standardizer",
    "WineSplit",
    "WineTable",
    "anomalous_points",
    "in_windows",
    "labelled_windows",
    "load_mnist",
    "load_nab",
    "load_wine",
    "load_wine_coursework",
    "load_wine_table",
    "log_mel_spectrogram",
    "machine_sound",
    "machine_sound_dataset",
    "mel_filterbank",
    "mnist_arrays",
    "mnist_split_sizes",
    "mnist_splits",
    "read_idx",
    "sliding_windows",
    "stft",
]
