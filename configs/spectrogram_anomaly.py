"""Default configuration of ``python -m experiments.spectrogram_anomaly``."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Config:
    # The synthetic data set (optlab.datasets.machine_sound_dataset), as in the coursework:
    # 1000 normal training clips; 1000 normal and 143 anomalous test clips.
    data_seed: int = 0
    n_train: int = 1000
    n_test_normal: int = 1000
    n_test_anomalous: int = 143
    # Fault amplitude multiplier. At 1.0 the trivial detector (distance to the mean
    # training spectrogram) flags about 5 % of the anomalies: the task is not trivial.
    severity: float = 1.0
    synthesis_batch: int = 32  # clips synthesised at once (about 10 MB of audio each)
    # Held-out normal training clips (seeded by data_seed): their errors set the threshold
    # and give the validation loss; the autoencoder never trains on them.
    validation_fraction: float = 0.1
    threshold_sigmas: float = 2.0  # threshold = mean + threshold_sigmas * std of their errors
    seeds: int = 5  # runs; seed s gives the initial weights and minibatch order
    # Adam, no early stopping; 20 epochs at Keras's 1e-3 left the validation MSE falling
    # (RESULTS.md).
    epochs: int = 50
    batch_size: int = 32
    learning_rate: float = 3e-3  # Adam
    pca_components: int = 16  # the linear reference detector
    # Seeds trained one after another inside the one program (optlab.train.fit); None
    # (--runs_per_vmap=0) vmaps every seed at once. On a CPU the loop is the faster
    # (BENCHMARKS.md).
    runs_per_vmap: int | None = 1
    workdir: str | None = None  # checkpoints; a rerun with the same workdir resumes
    wandb_project: str | None = None  # also log the metrics to this W&B project (offline)


def get_config() -> Config:
    """The study of the issue: 5 seeds, 20 epochs of Adam on 900 + 100 normal clips."""
    return Config()
