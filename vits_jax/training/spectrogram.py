"""Mel spectrograms as VITS computes them (mel_processing.py), in JAX, over the linear one.

Shapes: B batch, S samples, F frames (S // hop), K frequency bins (n_fft // 2 + 1), M mel bands.
Channels-last: spectrograms are (B, F, K) / (B, F, M).

The STFT (`linear_spectrogram`, `SpectrogramConfig`) lives in core/spectrogram.py, since voice
conversion's pure core reads it too; it is re-exported here for training's callers.
The mel filterbank is librosa's `filters.mel(htk=False, norm="slaney")`, built here in numpy;
mel spectrograms are log(max(mel, 1e-5)) (VITS' dynamic range compression).
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from ..core.spectrogram import SpectrogramConfig, hann_window, linear_spectrogram, num_frames  # noqa: F401


# --- mel filterbank (librosa, htk=False, norm="slaney") ---------------------------------------

_F_SP = 200.0 / 3
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = np.log(6.4) / 27.0


def hz_to_mel(hz):
    """Slaney's mel scale: linear below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, np.float64)
    linear = hz / _F_SP
    log = _MIN_LOG_MEL + np.log(np.maximum(hz, _MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOGSTEP
    return np.where(hz >= _MIN_LOG_HZ, log, linear)


def mel_to_hz(mel):
    mel = np.asarray(mel, np.float64)
    linear = _F_SP * mel
    log = _MIN_LOG_HZ * np.exp(_LOGSTEP * (mel - _MIN_LOG_MEL))
    return np.where(mel >= _MIN_LOG_MEL, log, linear)


def mel_filterbank(sampling_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0,
                   fmax: Optional[float] = None) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) float32: librosa.filters.mel(sr, n_fft, n_mels, fmin, fmax)."""
    fmax = sampling_rate / 2 if fmax is None else fmax
    fft_freqs = np.linspace(0, sampling_rate / 2, 1 + n_fft // 2)
    mel_freqs = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))  # (M+2,)
    widths = np.diff(mel_freqs)                                                         # (M+1,)
    ramps = mel_freqs[:, None] - fft_freqs[None, :]                                     # (M+2, K)
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))                                 # (M, K)
    weights *= (2.0 / (mel_freqs[2:] - mel_freqs[:-2]))[:, None]                        # slaney norm
    return weights.astype(np.float32)


def dynamic_range_compression(x: jax.Array, clip: float = 1e-5) -> jax.Array:
    return jnp.log(jnp.maximum(x, clip))


def linear_to_mel(spectrogram: jax.Array, config: SpectrogramConfig = SpectrogramConfig()) -> jax.Array:
    """magnitude (B, F, K) -> log mel (B, F, M) (VITS' spec_to_mel_torch)."""
    c = config
    fb = jnp.asarray(mel_filterbank(c.sampling_rate, c.n_fft, c.n_mels, c.fmin, c.fmax), spectrogram.dtype)
    mel = jnp.einsum("bfk,mk->bfm", spectrogram, fb, precision=jax.lax.Precision.HIGHEST)
    return dynamic_range_compression(mel)


def mel_spectrogram(waveform: jax.Array, config: SpectrogramConfig = SpectrogramConfig()) -> jax.Array:
    """waveform (B, S) -> log mel (B, F, M) (VITS' mel_spectrogram_torch)."""
    return linear_to_mel(linear_spectrogram(waveform, config), config)
