"""Studies (``python -m experiments.NAME``), benchmarks (``bench_*``) and the study kit.

``STUDIES`` names every study on the kit: each module ``experiments.NAME`` holds a
``STUDY`` (:class:`experiments.kit.cli.Study`), and one test runs them all.
"""

STUDIES = (
    "example", "linear_regression", "mnist_autoencoders", "mnist_cnn", "mnist_mlp",
    "nab_anomaly", "newton_cycle", "pcg", "profiles", "quasi_newton", "spectrogram_anomaly",
    "test_functions", "wine_mlp",
)
