"""Default configuration of ``python -m experiments.spectrogram_anomaly``."""

from __future__ import annotations

import dataclasses

from experiments.kit.options import Check, TrainingConfig, at_least, option, positive


@dataclasses.dataclass(frozen=True)
class Config(TrainingConfig):
    # The synthetic data set (optlab.datasets.machine_sound_dataset), as in the coursework:
    # 1000 normal training clips; 1000 normal and 143 anomalous test clips.
    data_seed: int = option(0, "Seed of the synthetic clips and the held-out split.", flag="")
    n_train: int = option(1000, "Normal training clips.", check=at_least(1))
    n_test_normal: int = option(1000, "Normal test clips.", check=at_least(1))
    n_test_anomalous: int = option(143, "Anomalous test clips.", check=at_least(1))
    # At 1.0 a fixed template (the mean training spectrogram) finds few anomalies.
    severity: float = option(1.0, "Fault amplitude multiplier.", check=positive())
    synthesis_batch: int = option(32, "Clips synthesised at once (about 10 MB of audio each).",
                                  flag="", check=at_least(1))
    # The held-out normal clips set the threshold and give the validation loss.
    validation_fraction: float = option(
        0.1, "Held-out fraction of the normal training clips.",
        check=Check(lambda fraction: 0 < fraction < 1, "must lie in (0, 1)", "1.5"))
    threshold_sigmas: float = option(2.0, "Threshold: mean + this many std of their errors.",
                                     check=positive())
    seeds: int = option(5, "Runs; seed s gives the initial weights and minibatch order.",
                        check=at_least(1))
    # Adam, no early stopping; 20 epochs at Keras's 1e-3 left the loss falling (RESULTS.md).
    epochs: int = option(50, "Training epochs.", check=at_least(1))
    batch_size: int = option(32, "Clips per minibatch.", check=at_least(1))
    learning_rate: float = option(3e-3, "Adam's learning rate.", check=positive())
    pca_components: int = option(16, "Components of the PCA reference detector.",
                                 check=at_least(1))


def get_config() -> Config:
    """The study of the issue: 5 seeds, 50 epochs of Adam on 900 + 100 normal clips."""
    return Config()
