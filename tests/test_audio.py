"""optlab.datasets.audio: STFT against scipy, the Slaney mel filterbank against its formula,
log-mel spectrograms against a NumPy reference, and bad arguments."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.signal

from optlab.datasets import audio


def _signal(num_samples, seed=0):
    return np.random.default_rng(seed).standard_normal(num_samples)


@pytest.mark.parametrize(
    "num_samples, n_fft, hop_length, window",
    [
        (5000, 256, 64, "hann"),
        (4097, 255, 100, "hann"),  # odd window, hop not dividing it, ragged tail
        (3000, 512, 512, ("kaiser", 8.0)),
        (2048, 1024, 512, "hamming"),
    ],
)
def test_stft_centred_matches_scipy_short_time_fft(num_samples, n_fft, hop_length, window):
    signal = _signal(num_samples)
    frames = audio.num_frames(num_samples, n_fft, hop_length, center=True)
    window_samples = scipy.signal.get_window(window, n_fft)
    reference = scipy.signal.ShortTimeFFT(
        window_samples, hop_length, fs=1.0, scale_to=None, phase_shift=None
    ).stft(signal, p0=0, p1=frames)
    result = np.asarray(audio.stft(signal, n_fft, hop_length, window, center=True))
    assert result.shape == (frames, n_fft // 2 + 1) == reference.T.shape
    assert result.dtype == np.complex128
    np.testing.assert_allclose(result, reference.T, rtol=0, atol=1e-10 * np.abs(reference).max())


@pytest.mark.parametrize("num_samples, n_fft, hop_length", [(5000, 256, 64), (160256, 1024, 512)])
def test_stft_uncentred_matches_scipy_stft(num_samples, n_fft, hop_length):
    signal = _signal(num_samples, seed=1)
    window_samples = scipy.signal.get_window("hann", n_fft)
    _, _, reference = scipy.signal.stft(
        signal,
        window="hann",
        nperseg=n_fft,
        noverlap=n_fft - hop_length,
        boundary=None,
        padded=False,
        detrend=False,
    )
    reference = reference * window_samples.sum()  # undo scaling="spectrum"
    result = np.asarray(audio.stft(signal, n_fft, hop_length, center=False))
    assert result.shape == reference.T.shape
    assert result.shape[0] == audio.num_frames(num_samples, n_fft, hop_length, center=False)
    np.testing.assert_allclose(result, reference.T, rtol=0, atol=1e-10 * np.abs(reference).max())


def test_stft_float32_jit_vmap_and_window_array():
    signals = _signal(3 * 3000).reshape(3, 3000)
    exact = np.stack([np.asarray(audio.stft(s, 256, 128)) for s in signals])
    stft = jax.jit(jax.vmap(lambda s: audio.stft(s, 256, 128)))
    batched = stft(jnp.asarray(signals, jnp.float32))
    assert batched.dtype == jnp.complex64
    np.testing.assert_allclose(np.asarray(batched), exact, atol=1e-4 * np.abs(exact).max())
    window = scipy.signal.get_window("hann", 256)
    np.testing.assert_array_equal(np.asarray(audio.stft(signals[0], 256, 128, window)), exact[0])


@pytest.mark.parametrize(
    "signal, kwargs, error",
    [
        (np.zeros((2, 100)), {}, ValueError),  # batch: vmap instead
        (np.zeros(100, np.complex128), {}, TypeError),
        (np.zeros(100, np.int32), {}, TypeError),
        (np.zeros(100), dict(n_fft=0), ValueError),
        (np.zeros(100), dict(n_fft=64, hop_length=0), ValueError),
        (np.zeros(100), dict(n_fft=64, hop_length=2.5), ValueError),
        (np.zeros(100), dict(n_fft=128, center=False), ValueError),  # shorter than a frame
        (np.zeros(100), dict(n_fft=64, window=np.ones(63)), ValueError),
    ],
)
def test_stft_rejects_bad_arguments(signal, kwargs, error):
    kwargs = {"n_fft": 64, "hop_length": 16, **kwargs}
    with pytest.raises(error):
        audio.stft(jnp.asarray(signal), **kwargs)


def _slaney_mel(frequency):
    """The Slaney scale written out: 3 f / 200 below 1 kHz; 15 + 27 ln(f / 1000) / ln 6.4."""
    frequency = np.asarray(frequency, np.float64)
    with np.errstate(divide="ignore"):
        log_part = 15 + 27 * np.log(frequency / 1000) / np.log(6.4)
    return np.where(frequency < 1000, 3 * frequency / 200, log_part)


def test_mel_scale_values_and_inverse():
    np.testing.assert_allclose(audio.hz_to_mel([0.0, 500.0, 1000.0, 6400.0]), [0, 7.5, 15, 42])
    frequencies = np.linspace(0, 8000, 101)
    np.testing.assert_allclose(audio.hz_to_mel(frequencies), _slaney_mel(frequencies), rtol=1e-12)
    round_trip = audio.mel_to_hz(audio.hz_to_mel(frequencies))
    np.testing.assert_allclose(round_trip, frequencies, atol=1e-9)


def _reference_filterbank(sample_rate, n_fft, n_mels, fmin, fmax, norm):
    """Each triangle by np.interp through (left, 0), (centre, 1), (right, 0)."""
    mels = np.linspace(_slaney_mel(fmin), _slaney_mel(fmax), n_mels + 2)
    edges = np.array([_slaney_hz(m) for m in mels])
    bins = np.arange(n_fft // 2 + 1) * sample_rate / n_fft
    columns = []
    for left, centre, right in zip(edges[:-2], edges[1:-1], edges[2:]):
        triangle = np.interp(bins, [left, centre, right], [0, 1, 0], left=0, right=0)
        columns.append(triangle * (2 / (right - left) if norm == "slaney" else 1))
    return np.stack(columns, axis=1), edges


def _slaney_hz(mel):
    return 200 * mel / 3 if mel < 15 else 1000 * 6.4 ** ((mel - 15) / 27)


@pytest.mark.parametrize(
    "sample_rate, n_fft, n_mels, fmin, fmax, norm",
    [
        (16000, 1024, 64, 0.0, None, "slaney"),
        (16000, 1024, 64, 0.0, None, None),
        (22050, 2048, 40, 50.0, 9000.0, "slaney"),
    ],
)
def test_mel_filterbank_matches_triangle_formula(sample_rate, n_fft, n_mels, fmin, fmax, norm):
    filterbank = audio.mel_filterbank(sample_rate, n_fft, n_mels, fmin, fmax, norm=norm)
    reference, edges = _reference_filterbank(
        sample_rate, n_fft, n_mels, fmin, sample_rate / 2 if fmax is None else fmax, norm
    )
    assert filterbank.shape == (n_fft // 2 + 1, n_mels)
    np.testing.assert_allclose(filterbank, reference, rtol=1e-9, atol=1e-12)
    assert np.all(filterbank >= 0)
    assert np.all(np.diff(edges) > 0)
    bins = np.arange(n_fft // 2 + 1) * sample_rate / n_fft
    centroids = bins @ filterbank / filterbank.sum(axis=0)
    assert np.all(np.diff(centroids) > 0)
    bin_width = sample_rate / n_fft
    if norm is None:
        assert np.all(filterbank.max(axis=0) <= 1) and filterbank.max() > 0.95
    else:  # unit area, where a triangle spans enough bins for the sum to be an integral
        wide = (edges[2:] - edges[:-2]) > 20 * bin_width
        np.testing.assert_allclose(filterbank.sum(axis=0)[wide] * bin_width, 1.0, atol=0.01)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(sample_rate=0.0),
        dict(n_mels=0),
        dict(fmin=-1.0),
        dict(fmin=4000.0, fmax=3000.0),
        dict(fmax=9000.0),  # above Nyquist
        dict(norm="area"),
        dict(n_fft=256, n_mels=128),  # bands narrower than the bins: empty filters
    ],
)
def test_mel_filterbank_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        audio.mel_filterbank(**{"sample_rate": 16000, "n_fft": 1024, "n_mels": 64, **kwargs})


def test_log_mel_spectrogram_matches_numpy_reference():
    signal = _signal(20000, seed=2)
    result = audio.log_mel_spectrogram(signal, center=False)
    window = scipy.signal.get_window("hann", 1024)
    frames = np.lib.stride_tricks.sliding_window_view(signal, 1024)[::512]
    power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2
    filterbank, _ = _reference_filterbank(16000, 1024, 64, 0.0, 8000.0, "slaney")
    reference = 10 * np.log10(np.maximum(power @ filterbank, 1e-10)).T
    assert result.shape == (64, len(frames)) and result.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(result), reference, atol=1e-4)
    silence = audio.log_mel_spectrogram(jnp.zeros(4096, jnp.float32), amin=1e-8)
    np.testing.assert_array_equal(np.asarray(silence), -80.0)
    with pytest.raises(ValueError):
        audio.log_mel_spectrogram(signal, amin=0.0)


@pytest.mark.parametrize("band", [3, 20, 40, 62])
def test_a_pure_tone_lands_in_its_mel_band(band):
    edges = audio.mel_to_hz(np.linspace(0, audio.hz_to_mel(8000.0), 64 + 2))
    frequency = edges[band + 1]  # the centre of the band's triangle
    time = np.arange(16000) / 16000
    tone = jnp.asarray(np.sin(2 * math.pi * frequency * time), jnp.float32)
    spectrogram = np.asarray(jax.jit(audio.log_mel_spectrogram)(tone))
    assert spectrogram.shape == (64, 32)
    assert np.all(np.argmax(spectrogram[:, 1:-1], axis=0) == band)  # edge frames are padded
