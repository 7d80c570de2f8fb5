"""optlab.datasets.machine_sounds: shapes, determinism, the documented key layout, each
anomaly kind changing the spectrogram the way it should, the band standardizer, and bad
arguments. Anomalous clips are compared with the normal clip of the same key (the fault
is the only difference), at a severity where each effect is unambiguous."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from optlab.datasets import audio
from optlab.datasets import machine_sounds as ms

_NUM_KEYS = 4
_FRAME_RATE = ms.SAMPLE_RATE / ms.HOP_LENGTH  # 31.25 frames per second
# Compiled once: op-by-op dispatch of a whole clip takes seconds.
_machine_sound = jax.jit(ms.machine_sound)
_log_mel = jax.jit(ms.log_mel)


@pytest.fixture(scope="module")
def spectrograms():
    """``spectrograms(kind, severity)``: the log-mel spectrograms ``(4, 64, 312)`` of the
    clips of four fixed keys (one compiled program for all kinds and severities)."""
    keys = jax.random.split(jax.random.key(11), _NUM_KEYS)
    return lambda kind, severity: np.stack(
        [np.asarray(_log_mel(_machine_sound(key, kind, severity))) for key in keys]
    )


@pytest.fixture(scope="module")
def normal(spectrograms):
    return spectrograms(ms.NORMAL, 0.0)


def _band_centres():
    edges = audio.mel_to_hz(np.linspace(0, audio.hz_to_mel(ms.SAMPLE_RATE / 2), ms.N_MELS + 2))
    return edges[1:-1]


def _bands(low_hz, high_hz):
    centres = _band_centres()
    return (centres >= low_hz) & (centres <= high_hz)


def test_clip_length_gives_312_full_frames():
    assert ms.CLIP_SAMPLES == 160256
    assert audio.num_frames(ms.CLIP_SAMPLES, ms.N_FFT, ms.HOP_LENGTH, center=False) == 312


def test_normal_clip_audio_and_spectrogram(normal):
    clip = _machine_sound(jax.random.key(11), ms.NORMAL, 0.0)
    assert clip.shape == (ms.CLIP_SAMPLES,) and clip.dtype == jnp.float32
    assert np.all(np.isfinite(clip))
    assert normal.shape == (_NUM_KEYS, 64, 312) and normal.dtype == np.float32
    # The fundamental: the strongest line below 150 Hz, found with 0.1 Hz resolution.
    magnitude = np.abs(np.fft.rfft(np.asarray(clip, np.float64)))
    frequencies = np.fft.rfftfreq(ms.CLIP_SAMPLES, 1 / ms.SAMPLE_RATE)
    low = (frequencies > 50) & (frequencies < 150)
    f0 = frequencies[low][np.argmax(magnitude[low])]
    assert ms.F0_RANGE[0] - 1 <= f0 <= ms.F0_RANGE[1] + 1
    # and its second harmonic beside it, far above the noise floor around it
    near_second = np.abs(frequencies - 2 * f0) < 2
    floor = np.median(magnitude[(frequencies > 2 * f0 + 20) & (frequencies < 2 * f0 + 40)])
    assert magnitude[near_second].max() > 30 * floor


def test_clip_length_is_a_parameter():
    short = jax.eval_shape(lambda key: ms.machine_sound(key, ms.RUB, num_samples=4000),
                           jax.random.key(0))
    assert short.shape == (4000,) and short.dtype == jnp.float32


@pytest.mark.parametrize("kind", range(1, len(ms.KINDS)))
def test_severity_zero_is_the_normal_clip(spectrograms, normal, kind):
    np.testing.assert_allclose(spectrograms(kind, 0.0), normal, atol=1e-4)


def test_clicks_raise_high_frequencies_in_short_frames(spectrograms, normal):
    rise = spectrograms(ms.CLICKS, 2.0) - normal
    # The ringing is narrow-band (1 to 3 ms decay): the rise of the most affected band.
    high_rise = rise[:, _bands(2000, 6000)].max(axis=1)  # (clips, frames)
    assert np.all(high_rise.max(axis=1) > 6.0)
    assert np.all((high_rise > 3.0).mean(axis=1) < 0.75)  # impulses, not a steady rise
    assert np.all(np.abs(rise[:, _bands(0, 500)]).mean(axis=(1, 2)) < 0.3)


def test_extra_harmonic_is_a_steady_line_below_1200_hz(spectrograms, normal):
    rise = spectrograms(ms.EXTRA_HARMONIC, 2.0) - normal
    band_rise = rise.mean(axis=2)  # (clips, bands)
    strongest = np.argmax(band_rise, axis=1)
    assert np.all(_band_centres()[strongest] < 1200)
    assert np.all(band_rise.max(axis=1) > 2.0)
    steady = rise[np.arange(_NUM_KEYS), strongest] > 0  # (clips, frames)
    assert np.all(steady.mean(axis=1) > 0.9)
    assert np.all(np.abs(band_rise[:, _bands(2500, 8000)]).max(axis=1) < 0.5)


def test_amplitude_modulation_is_periodic_at_a_few_hertz(spectrograms, normal):
    modulated = spectrograms(ms.AMPLITUDE_MODULATION, 2.0)
    tonal = _bands(80, 600)
    level = modulated[:, tonal].mean(axis=1)  # (clips, frames), dB
    normal_level = normal[:, tonal].mean(axis=1)
    assert np.all(level.std(axis=1) > 1.5 * normal_level.std(axis=1))
    change = level - normal_level
    spectrum = np.abs(np.fft.rfft(change - change.mean(axis=1, keepdims=True), axis=1))
    rates = np.fft.rfftfreq(change.shape[1], 1 / _FRAME_RATE)
    peak_rates = rates[np.argmax(spectrum, axis=1)]
    assert np.all((peak_rates > 1.3) & (peak_rates < 6.5))


def test_rub_is_bursts_of_noise_between_1_and_4_khz(spectrograms, normal):
    rise = spectrograms(ms.RUB, 2.0) - normal
    band_rise = rise[:, _bands(1000, 3500)].mean(axis=1)  # (clips, frames)
    loud = (band_rise > 2.0).mean(axis=1)
    assert np.all((loud > 0.02) & (loud < 0.8))
    assert np.all(band_rise.min(axis=1) > -1.0)  # added noise only adds power
    assert np.all(np.abs(rise[:, _bands(0, 300)]).mean(axis=(1, 2)) < 0.3)


# One size for all data-set tests, so that they share the compiled programs.
_SMALL = dict(n_train=8, n_test_normal=3, n_test_anomalous=5, batch_size=4)  # 8 and 8


def test_dataset_layout_labels_and_key_layout():
    data = ms.machine_sound_dataset(3, **_SMALL)
    assert data.train.shape == data.test.shape == (8, 64, 312)
    assert data.train.dtype == data.test.dtype == np.float32
    assert data.test_labels.dtype == data.test_kinds.dtype == np.int32
    np.testing.assert_array_equal(data.test_labels, (data.test_kinds != ms.NORMAL).astype(np.int32))
    np.testing.assert_array_equal(np.bincount(data.test_kinds, minlength=5), [3, 2, 1, 1, 1])
    # The documented keys: clip i of the training set comes from split(k_train, n_train)[i];
    # this also checks that a clip made in a batch is the clip made alone.
    train_key, _, _ = jax.random.split(jax.random.key(3), 3)
    second = _log_mel(_machine_sound(jax.random.split(train_key, 8)[1], ms.NORMAL, 0.0))
    # dB: a batch rounds its float32 FFTs (162000 points) differently from a single clip.
    np.testing.assert_allclose(data.train[1], second, atol=0.1)


def test_dataset_is_deterministic_for_a_seed():
    first = ms.machine_sound_dataset(7, **_SMALL)
    again = ms.machine_sound_dataset(jax.random.key(7), **_SMALL)
    other = ms.machine_sound_dataset(8, **_SMALL)
    for name in first._fields:
        np.testing.assert_array_equal(getattr(first, name), getattr(again, name))
    assert not np.allclose(first.train, other.train)


def test_band_standardizer(normal):
    standardizer = ms.BandStandardizer.fit(normal[:3])
    scaled = standardizer.transform(normal[:3])
    assert scaled.dtype == np.float32
    np.testing.assert_allclose(scaled.mean(axis=(0, 2)), 0.0, atol=1e-4)
    np.testing.assert_allclose(scaled.std(axis=(0, 2)), 1.0, atol=1e-4)
    mean = normal[:3].astype(np.float64).mean(axis=(0, 2))
    std = normal[:3].astype(np.float64).std(axis=(0, 2))
    expected = (normal[3] - mean[:, None]) / std[:, None]
    np.testing.assert_allclose(standardizer.transform(normal[3]), expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError):
        standardizer.transform(normal[:, :32])
    with pytest.raises(ValueError):
        ms.BandStandardizer.fit(normal[0])  # not (clips, bands, frames)
    with pytest.raises(ValueError):
        ms.BandStandardizer.fit(np.ones((2, 64, 10)))  # constant bands
    with pytest.raises(ValueError):
        ms.BandStandardizer.fit(np.full((2, 64, 10), np.nan))


@pytest.mark.parametrize(
    "call, error",
    [
        (lambda: ms.machine_sound(jax.random.key(0), 5), ValueError),
        (lambda: ms.machine_sound(jax.random.key(0), -1), ValueError),
        (lambda: ms.machine_sound(jax.random.key(0), ms.CLICKS, -0.5), ValueError),
        (lambda: ms.machine_sound(jax.random.key(0), num_samples=0), ValueError),
        (lambda: ms.machine_sound(jax.random.key(0), num_samples=100.0), TypeError),
        (lambda: ms.machine_sound_dataset(0, n_train=0), ValueError),
        (lambda: ms.machine_sound_dataset(0, n_train=2.0), TypeError),
        (lambda: ms.machine_sound_dataset(0, n_test_normal=-1), ValueError),
        (lambda: ms.machine_sound_dataset(0, n_test_normal=0, n_test_anomalous=0), ValueError),
        (lambda: ms.machine_sound_dataset(0, severity=-1.0), ValueError),
        (lambda: ms.machine_sound_dataset(0, batch_size=0), ValueError),
    ],
)
def test_bad_arguments(call, error):
    with pytest.raises(error):
        call()


def test_detection_counts_match_a_clip_by_clip_reference():
    rng = np.random.default_rng(0)
    validation = rng.normal(1.0, 0.1, size=30)
    test = rng.normal(1.2, 0.3, size=50)
    kinds = rng.integers(0, 5, size=50)
    row = ms.detection(validation, test, kinds, sigmas=2.0)
    mean = sum(validation) / len(validation)
    std = (sum((v - mean) ** 2 for v in validation) / (len(validation) - 1)) ** 0.5
    threshold = mean + 2 * std
    counts = {"tp": 0, "fp": 0, "fn": 0, "tn": 0}
    per_kind = [0] * 5
    for score, kind in zip(test, kinds):
        flagged = score > threshold
        key = ("t" if flagged == (kind != 0) else "f") + ("p" if flagged else "n")
        counts[key] += 1
        per_kind[kind] += flagged
    assert row["threshold"] == pytest.approx(threshold)
    assert {key: row[key] for key in counts} == counts
    assert [row[kind] for kind in ms.KINDS[1:]] == per_kind[1:]
    assert row["detection_rate"] == counts["tp"] / np.sum(kinds != 0)
    assert row["false_positive_rate"] == counts["fp"] / np.sum(kinds == 0)


def test_clip_mse_keeps_leading_axes():
    inputs = np.arange(12.0).reshape(3, 2, 2)
    reconstructions = np.stack([inputs + 1.0, inputs - 2.0])  # (runs, clips, ...)
    np.testing.assert_allclose(ms.clip_mse(inputs, reconstructions), [[1.0] * 3, [4.0] * 3])
    np.testing.assert_allclose(ms.clip_mse(inputs, inputs * 0.0), [3.5, 31.5, 91.5])


def test_reference_detectors_match_their_definitions():
    rng = np.random.default_rng(1)
    low_rank = rng.normal(size=(20, 2)) @ rng.normal(size=(2, 8 * 16))
    clips = (low_rank + 0.01 * rng.normal(size=low_rank.shape)).reshape(20, 8, 16, 1)
    train, validation, test = clips[:12], clips[12:16], clips[16:]
    scores = ms.reference_scores(train, (validation, test), components=2)
    template_validation, _ = scores["mean spectrogram"]
    mean = train.mean(axis=0)
    np.testing.assert_allclose(
        template_validation, [np.mean((clip - mean) ** 2) for clip in validation]
    )
    # Reference PCA: the top eigenvectors of the training clips' scatter matrix.
    flat = train.reshape(12, -1)
    centred_train = flat - flat.mean(axis=0)
    _, eigenvectors = np.linalg.eigh(centred_train.T @ centred_train)
    top = eigenvectors[:, -2:]
    for set_clips, pca_scores in zip((validation, test), scores["PCA 2"]):
        centred = set_clips.reshape(len(set_clips), -1) - flat.mean(axis=0)
        residual = centred - centred @ top @ top.T
        np.testing.assert_allclose(pca_scores, np.mean(residual**2, axis=1), rtol=1e-6)
    pca_validation = scores["PCA 2"][0]
    assert np.all(template_validation > 100 * pca_validation)
