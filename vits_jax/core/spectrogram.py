"""VITS' linear spectrogram (mel_processing.py's spectrogram_torch), in JAX: the posterior encoder's input.

Shapes: B batch, S samples, F frames (S // hop), K frequency bins (n_fft // 2 + 1).
Channels-last: spectrograms are (B, F, K), the posterior encoder's input layout.

VITS' STFT: the waveform is reflect-padded by (n_fft - hop) / 2 on both sides, then framed with
center=False, a periodic Hann window of win_length (zero-padded to n_fft, centred, as torch.stft
does), and no normalisation; magnitude sqrt(re^2 + im^2 + 1e-6). A waveform of S samples gives
S // hop frames, one per decoder frame.

Padded batches: with `lengths` (samples per item), each item is reflected at its own end, so its
first lengths // hop frames equal the item's spectrogram computed alone (the reflection is an
index gather, so it stays traceable under jit / vmap and differentiable).
Training's mel spectrograms (training/spectrogram.py) build on this one.
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


# --- STFT --------------------------------------------------------------------------------------

def num_frames(num_samples: int, config: SpectrogramConfig) -> int:
    padded = num_samples + config.n_fft - config.hop_length
    return 1 + (padded - config.n_fft) // config.hop_length


def spectrogram_config(config) -> SpectrogramConfig:
    """A SpectrogramConfig, a VitsConfig or a VitsParams (its config) -> SpectrogramConfig."""
    if isinstance(config, SpectrogramConfig):
        return config
    config = getattr(config, "config", config)
    if isinstance(config, VitsConfig):
        return SpectrogramConfig.from_vits(config)
    raise TypeError(f"config must be a SpectrogramConfig, VitsConfig or VitsParams, got {type(config).__name__}")


def linear_spectrogram(waveform: jax.Array, config=SpectrogramConfig(),
                       lengths: Optional[jax.Array] = None) -> jax.Array:
    """waveform (B, S) -> magnitude spectrogram (B, F, K), F = num_frames(S).

    config: a SpectrogramConfig, or a VitsConfig / VitsParams (`SpectrogramConfig.from_vits`: the
    spectrogram its posterior encoder reads). lengths (B,) int samples per item (None: S each):
    item b is reflect-padded at its own end, so its first lengths[b] // hop frames are those of
    waveform[b, :lengths[b]] alone; later frames are not meaningful (mask them). Each length must
    exceed (n_fft - hop) / 2, as for torch's reflect padding.
    """
    c = spectrogram_config(config)
    b, s = waveform.shape
    pad = (c.n_fft - c.hop_length) // 2
    frames = num_frames(s, c)
    length = jnp.full((b,), s, jnp.int32) if lengths is None else jnp.asarray(lengths, jnp.int32)
    # sample index of every (frame, tap) in the reflect-padded signal: i = f * hop + n - pad,
    # reflected at 0 (-i) and at each item's own end (2 (L - 1) - i)
    taps = np.arange(frames)[:, None] * c.hop_length + np.arange(c.n_fft)[None, :] - pad   # (F, n_fft)
    index = jnp.abs(jnp.asarray(taps, jnp.int32))[None]                                   # (1, F, n_fft)
    last = (length - 1)[:, None, None]
    index = jnp.where(index > last, 2 * last - index, index)
    index = jnp.clip(index, 0, s - 1)                    # past a short item's use: masked frames only
    window = np.zeros(c.n_fft)
    left = (c.n_fft - c.win_length) // 2
    window[left:left + c.win_length] = hann_window(c.win_length)
    x = jnp.take_along_axis(waveform, index.reshape(b, -1), axis=1)                       # (B, F * n_fft)
    x = x.reshape(b, frames, c.n_fft) * jnp.asarray(window, waveform.dtype)               # (B, F, n_fft)
    spectrum = jnp.fft.rfft(x, axis=-1)                                                  # (B, F, K)
    return jnp.sqrt(jnp.real(spectrum) ** 2 + jnp.imag(spectrum) ** 2 + 1e-6)


