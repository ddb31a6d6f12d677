"""Linear and mel spectrograms as VITS computes them (mel_processing.py), in JAX.

Shapes: B batch, S samples, F frames (S // hop), K frequency bins (n_fft // 2 + 1), M mel bands.
Channels-last: spectrograms are (B, F, K) / (B, F, M), the posterior encoder's input layout.

VITS' STFT: the waveform is reflect-padded by (n_fft - hop) / 2 on both sides, then framed with
center=False, a periodic Hann window of win_length (zero-padded to n_fft, centred, as torch.stft
does), and no normalisation; magnitude sqrt(re^2 + im^2 + 1e-6). A waveform of S samples (a
multiple of hop) gives S / hop frames, one per decoder frame.
The mel filterbank is librosa's `filters.mel(htk=False, norm="slaney")`, built here in numpy;
mel spectrograms are log(max(mel, 1e-5)) (VITS' dynamic range compression).
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from ..config import VitsConfig


@dataclasses.dataclass(frozen=True)
class SpectrogramConfig:
    """STFT / mel settings. Defaults are VITS' (and MMS-TTS') at 16 kHz."""

    n_fft: int = 1024
    hop_length: int = 256
    win_length: int = 1024
    sampling_rate: int = 16_000
    n_mels: int = 80
    fmin: float = 0.0
    fmax: Optional[float] = None   # None: sampling_rate / 2

    def __post_init__(self):
        if self.win_length > self.n_fft:
            raise ValueError(f"win_length ({self.win_length}) > n_fft ({self.n_fft})")
        if (self.n_fft - self.hop_length) % 2:
            raise ValueError("n_fft - hop_length must be even (VITS pads half of it on each side)")

    @property
    def bins(self) -> int:
        return self.n_fft // 2 + 1

    @classmethod
    def from_vits(cls, config: VitsConfig, **overrides) -> "SpectrogramConfig":
        """hop = the decoder's upsampling factor, n_fft = win = 2 * (spectrogram_bins - 1), so the
        linear spectrogram fits the posterior encoder and has one frame per decoder frame."""
        n_fft = 2 * (config.spectrogram_bins - 1)
        kwargs = dict(n_fft=n_fft, hop_length=config.hop_length, win_length=n_fft,
                      sampling_rate=config.sampling_rate)
        return cls(**{**kwargs, **overrides})


def hann_window(length: int) -> np.ndarray:
    """Periodic Hann window (torch.hann_window's default), float64."""
    return 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(length) / length)


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


# --- STFT --------------------------------------------------------------------------------------

def num_frames(num_samples: int, config: SpectrogramConfig) -> int:
    padded = num_samples + config.n_fft - config.hop_length
    return 1 + (padded - config.n_fft) // config.hop_length


def linear_spectrogram(waveform: jax.Array, config: SpectrogramConfig = SpectrogramConfig()) -> jax.Array:
    """waveform (B, S) -> magnitude spectrogram (B, F, K), F = num_frames(S)."""
    c = config
    pad = (c.n_fft - c.hop_length) // 2
    x = jnp.pad(waveform, ((0, 0), (pad, pad)), mode="reflect")               # (B, S + n_fft - hop)
    frames = num_frames(waveform.shape[-1], c)
    index = np.arange(frames)[:, None] * c.hop_length + np.arange(c.n_fft)[None, :]  # (F, n_fft)
    window = np.zeros(c.n_fft)
    left = (c.n_fft - c.win_length) // 2
    window[left:left + c.win_length] = hann_window(c.win_length)
    x = x[:, index] * jnp.asarray(window, x.dtype)                            # (B, F, n_fft)
    spectrum = jnp.fft.rfft(x, axis=-1)                                       # (B, F, K)
    return jnp.sqrt(jnp.real(spectrum) ** 2 + jnp.imag(spectrum) ** 2 + 1e-6)


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
