"""Short-time Fourier transform, mel filterbank and log-mel spectrogram in JAX.

Contract:

* :func:`stft` maps a real 1-D signal ``x`` to the complex matrix ``X`` of shape
  ``(frames, n_fft // 2 + 1)``, ``X[t, k] = sum_n w[n] x[t * hop + n] exp(-2 pi i k n /
  n_fft)`` (no scaling), where ``x`` is first padded with ``n_fft // 2`` zeros on both
  sides when ``center`` is true (frame ``t`` is then centred on sample ``t * hop``) and
  ``frames = 1 + (len(x_padded) - n_fft) // hop``; trailing samples that do not fill a
  frame are dropped. Frames are cut with one gather of precomputed indices and
  transformed with ``jnp.fft.rfft``. The window is periodic (a DFT window, as in scipy's
  ``get_window(..., fftbins=True)``, librosa and torch). With ``center=True`` this is
  ``scipy.signal.ShortTimeFFT(win, hop, fs, scale_to=None, phase_shift=None).stft(x, p0=0,
  p1=frames)`` transposed, and librosa's ``stft(..., center=True, pad_mode="constant")``.
* :func:`mel_filterbank` is the ``(n_fft // 2 + 1, n_mels)`` matrix of triangular filters
  on the **Slaney** mel scale (linear below 1 kHz, ``mel = 3 f / 200``; logarithmic above,
  ``mel = 15 + 27 ln(f / 1000) / ln 6.4``), with ``n_mels + 2`` edge frequencies equally
  spaced in mel between ``fmin`` and ``fmax``, each filter evaluated at the DFT bin
  frequencies, and by default Slaney's area normalisation (each triangle scaled by
  ``2 / (f_right - f_left)``, so that its continuous area is one): the defaults of
  ``librosa.filters.mel``, which the DCASE machine-sound baselines use. ``norm=None``
  keeps triangles whose continuous peak is one.
* :func:`log_mel_spectrogram` is ``10 log10(max(|X|^2 @ M, amin))``, of shape
  ``(n_mels, frames)`` and dtype float32 (librosa's ``power_to_db`` without the top-dB
  clipping).

Helpers: :func:`hz_to_mel` and :func:`mel_to_hz` (the Slaney scale, NumPy), and
:func:`num_frames` (the frame count :func:`stft` gives).

The scipy equivalences are tested; the librosa ones follow librosa's published algorithm
but are not tested here (librosa is not a dependency).

All three are pure and jit- / vmap-friendly: the sizes, window and filterbank are static
(Python numbers and NumPy constants); batch signals with ``jax.vmap``. Bad arguments
raise ``ValueError`` (sizes, frequencies, too-short signals, empty mel filters) or
``TypeError`` (a complex or integer signal).

The defaults (16 kHz, ``n_fft = 1024`` (64 ms), ``hop = 512``, 64 mel bands from 0 to
8 kHz) are those of the spectrogram anomaly study; see
:mod:`optlab.datasets.machine_sounds` for the clip length that gives 312 frames.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import scipy.signal

SAMPLE_RATE = 16_000  # Hz
N_FFT = 1024  # 64 ms at 16 kHz
HOP_LENGTH = 512  # half a window: 31.25 frames per second
N_MELS = 64

# Slaney's mel scale (Auditory Toolbox): linear up to 1 kHz, logarithmic above.
_MEL_LINEAR_HZ_PER_MEL = 200.0 / 3.0
_MEL_BREAK_HZ = 1000.0
_MEL_AT_BREAK = _MEL_BREAK_HZ / _MEL_LINEAR_HZ_PER_MEL  # 15
_MEL_LOG_STEP = math.log(6.4) / 27.0


def hz_to_mel(frequency):
    """Slaney mel of ``frequency`` (Hz, scalar or NumPy array): ``3 f / 200`` below
    1 kHz, ``15 + ln(f / 1000) / (ln 6.4 / 27)`` above."""
    frequency = np.asarray(frequency, dtype=np.float64)
    linear = frequency / _MEL_LINEAR_HZ_PER_MEL
    # The maximum keeps log away from zero in the branch that np.where discards.
    above_break = np.maximum(frequency, _MEL_BREAK_HZ) / _MEL_BREAK_HZ
    logarithmic = _MEL_AT_BREAK + np.log(above_break) / _MEL_LOG_STEP
    return np.where(frequency < _MEL_BREAK_HZ, linear, logarithmic)


def mel_to_hz(mel):
    """The inverse of :func:`hz_to_mel`."""
    mel = np.asarray(mel, dtype=np.float64)
    linear = mel * _MEL_LINEAR_HZ_PER_MEL
    mel_above_break = np.maximum(mel, _MEL_AT_BREAK) - _MEL_AT_BREAK
    logarithmic = _MEL_BREAK_HZ * np.exp(_MEL_LOG_STEP * mel_above_break)
    return np.where(mel < _MEL_AT_BREAK, linear, logarithmic)


def _check_positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _window_array(window, n_fft: int) -> np.ndarray:
    """The window as a float64 array of length ``n_fft``: a scipy window name / spec
    (``"hann"``, ``("kaiser", 8.0)``), made periodic, or the samples themselves."""
    if isinstance(window, (str, tuple)):
        return scipy.signal.get_window(window, n_fft, fftbins=True)
    samples = np.asarray(window, dtype=np.float64)
    if samples.shape != (n_fft,):
        raise ValueError(f"window must have shape ({n_fft},), got {samples.shape}")
    return samples


def num_frames(num_samples: int, n_fft: int, hop_length: int, *, center: bool = True) -> int:
    """The number of frames :func:`stft` returns for a signal of ``num_samples``:
    ``1 + (num_samples + 2 (n_fft // 2) - n_fft) // hop`` with ``center``, else
    ``1 + (num_samples - n_fft) // hop``.

    Raises:
      ValueError: a size is not a positive integer, or the (padded) signal is shorter
        than one frame.
    """
    _check_positive_int("num_samples", num_samples)
    _check_positive_int("n_fft", n_fft)
    _check_positive_int("hop_length", hop_length)
    padded = num_samples + 2 * (n_fft // 2) if center else num_samples
    if padded < n_fft:  # only without centring: padding makes any signal one frame long
        raise ValueError(
            f"a signal of {num_samples} samples is shorter than one frame (n_fft={n_fft}); "
            f"pad it or use center=True"
        )
    return 1 + (padded - n_fft) // hop_length


def stft(
    signal: jax.Array,
    n_fft: int = N_FFT,
    hop_length: int = HOP_LENGTH,
    window="hann",
    center: bool = True,
) -> jax.Array:
    """Short-time Fourier transform of a real 1-D signal (see the module docstring).

    Args:
      signal: ``(num_samples,)``, real floating.
      n_fft: frame length and DFT size.
      hop_length: samples between frame starts.
      window: a scipy window name or spec (made periodic), or an array of ``n_fft`` samples.
      center: pad ``n_fft // 2`` zeros on both sides so that frame ``t`` is centred on
        sample ``t * hop_length``.

    Returns:
      ``(frames, n_fft // 2 + 1)`` complex (complex64 for float32 input), unscaled.

    Raises:
      TypeError: ``signal`` is not real floating.
      ValueError: ``signal`` is not 1-D, a size is not a positive integer, the window
        has the wrong length, or the signal is shorter than one frame.
    """
    signal = jnp.asarray(signal)
    if not jnp.issubdtype(signal.dtype, jnp.floating):
        raise TypeError(f"signal must be real floating, got dtype {signal.dtype}")
    if signal.ndim != 1:
        raise ValueError(f"signal must be 1-D (vmap over a batch), got shape {signal.shape}")
    frames = num_frames(signal.shape[0], n_fft, hop_length, center=center)
    window_samples = jnp.asarray(_window_array(window, n_fft), dtype=signal.dtype)
    if center:
        signal = jnp.pad(signal, n_fft // 2)
    frame_indices = hop_length * np.arange(frames)[:, None] + np.arange(n_fft)[None, :]
    return jnp.fft.rfft(signal[frame_indices] * window_samples[None, :], axis=-1)


def mel_filterbank(
    sample_rate: float = SAMPLE_RATE,
    n_fft: int = N_FFT,
    n_mels: int = N_MELS,
    fmin: float = 0.0,
    fmax: float | None = None,
    *,
    norm: str | None = "slaney",
) -> np.ndarray:
    """Triangular filters on the Slaney mel scale, ``(n_fft // 2 + 1, n_mels)`` float64.

    Edge frequencies ``f_0 < ... < f_{n_mels + 1}`` are equally spaced in mel from
    ``fmin`` to ``fmax``; filter ``m`` rises linearly from 0 at ``f_m`` to 1 at
    ``f_{m+1}`` and falls to 0 at ``f_{m+2}``, evaluated at the bin frequencies
    ``k * sample_rate / n_fft``. With ``norm="slaney"`` it is then multiplied by
    ``2 / (f_{m+2} - f_m)`` (unit area); with ``norm=None`` it is left as it is. This is
    ``librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin,
    fmax=fmax, htk=False, norm=norm).T``.

    Raises:
      ValueError: ``sample_rate <= 0``, a size is not a positive integer, not ``0 <= fmin <
        fmax <= sample_rate / 2``, an unknown ``norm``, or a filter that covers no DFT bin
        (too many mel bands for ``n_fft``: its band would read ``amin`` forever).
    """
    if not sample_rate > 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate!r}")
    _check_positive_int("n_fft", n_fft)
    _check_positive_int("n_mels", n_mels)
    nyquist = sample_rate / 2
    fmax = nyquist if fmax is None else fmax
    if not 0 <= fmin < fmax <= nyquist:
        raise ValueError(
            f"need 0 <= fmin < fmax <= sample_rate / 2 = {nyquist}, got fmin={fmin}, fmax={fmax}"
        )
    if norm not in ("slaney", None):
        raise ValueError(f"norm must be 'slaney' or None, got {norm!r}")
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    bin_frequencies = np.fft.rfftfreq(n_fft, d=1.0 / sample_rate)
    left, centre, right = edges[:-2], edges[1:-1], edges[2:]
    rising = (bin_frequencies[:, None] - left[None, :]) / (centre - left)[None, :]
    falling = (right[None, :] - bin_frequencies[:, None]) / (right - centre)[None, :]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    empty = np.flatnonzero(~np.any(weights > 0, axis=0))
    if empty.size:
        raise ValueError(
            f"mel bands {empty.tolist()} contain no DFT bin (bins are {sample_rate / n_fft:g} Hz "
            f"apart); use fewer mel bands or a larger n_fft"
        )
    if norm == "slaney":
        weights = weights * (2.0 / (right - left))[None, :]
    return weights


def log_mel_spectrogram(
    signal: jax.Array,
    *,
    sample_rate: float = SAMPLE_RATE,
    n_fft: int = N_FFT,
    hop_length: int = HOP_LENGTH,
    n_mels: int = N_MELS,
    fmin: float = 0.0,
    fmax: float | None = None,
    window="hann",
    center: bool = True,
    norm: str | None = "slaney",
    amin: float = 1e-10,
) -> jax.Array:
    """``10 log10(max(|stft(signal)|^2 @ mel_filterbank(...), amin))``, transposed.

    The power is computed in the signal's precision and the result cast to float32.

    Returns:
      ``(n_mels, frames)`` float32, in dB (relative to a unit-amplitude power).

    Raises:
      ValueError / TypeError: as :func:`stft` and :func:`mel_filterbank`; ``amin <= 0``.
    """
    if not amin > 0:
        raise ValueError(f"amin must be positive, got {amin!r}")
    filterbank = mel_filterbank(sample_rate, n_fft, n_mels, fmin, fmax, norm=norm)
    spectrum = stft(signal, n_fft, hop_length, window, center)
    power = jnp.real(spectrum) ** 2 + jnp.imag(spectrum) ** 2
    mel_power = power @ jnp.asarray(filterbank, dtype=power.dtype)
    return (10.0 * jnp.log10(jnp.maximum(mel_power, amin))).T.astype(jnp.float32)
