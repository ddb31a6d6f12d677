"""Spectrograms against VITS' mel_processing (torch.stft) and the mel filterbank against
transformers' slaney filterbank (librosa's slaney filterbank is the same construction)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from conftest import assert_close, small_config

from vits_jax import VitsConfig
from vits_jax.training.spectrogram import (SpectrogramConfig, linear_spectrogram, mel_filterbank,
                                           mel_spectrogram, num_frames)


def vits_spectrogram(y, n_fft, hop, win):
    """mel_processing.spectrogram_torch from VITS (center=False), y (B, S) -> (B, K, F)."""
    y = torch.nn.functional.pad(y.unsqueeze(1), ((n_fft - hop) // 2, (n_fft - hop) // 2), mode="reflect")
    spec = torch.stft(y.squeeze(1), n_fft, hop_length=hop, win_length=win, window=torch.hann_window(win),
                      center=False, pad_mode="reflect", normalized=False, onesided=True, return_complex=True)
    spec = torch.view_as_real(spec)
    return torch.sqrt(spec.pow(2).sum(-1) + 1e-6)


def waveforms(b, s, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(s) / 16000
    tone = 0.5 * np.sin(2 * np.pi * (200 + 3000 * t) * t)
    return (tone[None] + 0.1 * rng.normal(size=(b, s))).astype(np.float32)


# Tolerance: both sides are float32 FFTs of ~1e3 products; 1e-4 relative to the largest magnitude.
@pytest.mark.parametrize("n_fft,hop,win,s", [(1024, 256, 1024, 256 * 12), (1024, 256, 1024, 256 * 12 + 100),
                                              (256, 64, 256, 64 * 9), (512, 128, 400, 128 * 7)])
def test_linear_matches_torch_stft(n_fft, hop, win, s):
    y = waveforms(2, s)
    ref = vits_spectrogram(torch.from_numpy(y), n_fft, hop, win).numpy().transpose(0, 2, 1)
    cfg = SpectrogramConfig(n_fft=n_fft, hop_length=hop, win_length=win)
    ours = jax.jit(linear_spectrogram, static_argnums=1)(y, cfg)
    assert ours.shape == ref.shape == (2, num_frames(s, cfg), n_fft // 2 + 1)
    assert_close(ours, ref, tol=1e-4, what="linear spectrogram")


def test_mel_matches_torch():
    y = waveforms(2, 256 * 10, seed=1)
    cfg = SpectrogramConfig()
    spec = vits_spectrogram(torch.from_numpy(y), 1024, 256, 1024)
    fb = torch.from_numpy(mel_filterbank(16000, 1024, 80))
    ref = torch.log(torch.clamp(torch.matmul(fb, spec), min=1e-5)).numpy().transpose(0, 2, 1)
    ours = mel_spectrogram(jnp.asarray(y), cfg)
    assert ours.shape == (2, 10, 80)
    assert_close(ours, ref, tol=1e-4, what="log mel")


@pytest.mark.parametrize("sr,n_fft,n_mels,fmin,fmax", [(16000, 1024, 80, 0.0, None),
                                                       (22050, 1024, 80, 0.0, None),
                                                       (16000, 256, 40, 50.0, 7000.0)])
def test_filterbank_matches_transformers_slaney(sr, n_fft, n_mels, fmin, fmax):
    from transformers.audio_utils import mel_filter_bank

    ref = mel_filter_bank(num_frequency_bins=n_fft // 2 + 1, num_mel_filters=n_mels, min_frequency=fmin,
                          max_frequency=sr / 2 if fmax is None else fmax, sampling_rate=sr,
                          norm="slaney", mel_scale="slaney").T
    assert_close(mel_filterbank(sr, n_fft, n_mels, fmin, fmax), ref, tol=1e-6, what="filterbank")


def test_from_vits_config():
    cfg = SpectrogramConfig.from_vits(VitsConfig())
    assert (cfg.n_fft, cfg.hop_length, cfg.win_length, cfg.bins) == (1024, 256, 1024, 513)
    small = SpectrogramConfig.from_vits(VitsConfig(**small_config()), n_mels=4)
    assert (small.n_fft, small.hop_length, small.bins) == (16, 8, 9)
    with pytest.raises(ValueError):
        SpectrogramConfig(n_fft=256, win_length=512)


def test_gradient_is_finite():
    y = jnp.asarray(waveforms(1, 64 * 6))
    cfg = SpectrogramConfig(n_fft=256, hop_length=64, win_length=256, n_mels=20)
    g = jax.grad(lambda w: jnp.sum(mel_spectrogram(w, cfg)))(y)
    assert g.shape == y.shape and bool(jnp.all(jnp.isfinite(g)))
