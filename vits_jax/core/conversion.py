"""The posterior path as pure functions: spectrogram -> posterior -> flow (both ways) -> decoder.

Shapes: B batch, S samples, F frames (static), K spectrogram_bins, Z flow_size, H hop (samples per
frame). Masks are (B, F, 1), built from `lengths` (B,) frames; None means every frame is valid.

    linear_spectrogram(waveform, config, lengths=None)             (B, S) -> (B, F, K)    core/spectrogram.py
    posterior(params, spectrogram, lengths, key, *, speaker_id, noise_scale)
                                                                  -> latents, means, log_stds (B, F, Z)
    flow(params, latents, lengths, *, speaker_id, reverse)         (B, F, Z) -> (B, F, Z)
    decode(params, latents, lengths, *, speaker_id, dtype)         (B, F, Z) -> (B, F * H)
    convert_speaker(params, spectrogram, lengths, key, *, source_speaker_id, target_speaker_id, ...)
        = decode(flow(flow(posterior(source), source), target, reverse=True), target)   (B, F * H)

Voice conversion is VITS' `SynthesizerTrn.voice_conversion`: the posterior encoder reads the source
speaker's spectrogram conditioned on the source speaker, the flow maps its latents into the
speaker-independent prior space, and the flow run backwards with the target speaker, then the
decoder with the target speaker, speak it in the target's voice.

All are traceable under jit / vmap and differentiable; nothing checks values (the host layer,
`vits_jax.synth.conversion`, does). Noise: the posterior's frame t of item i draws from
`positional_normal` of item i's key (stream POSTERIOR_STREAM), so it depends on neither padding
nor batch; key=None (or noise_scale=0) gives the posterior means.
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp

from ..nn import alignment
from ..nn.model import VitsModel
from .noise import POSTERIOR_STREAM, item_keys, positional_normal, slice_noise
from .params import tree_and_config
from .spectrogram import linear_spectrogram  # noqa: F401  (part of this module's API)
from .stages import check_dtype, per_item, speaker_ids
from .windows import _conv_extent, _decoder_extent, _flow_extent

__all__ = ["linear_spectrogram", "posterior", "flow", "decode", "convert_speaker", "frame_lengths",
           "conversion_field"]


def frame_lengths(lengths: Optional[jax.Array], batch: int, frames: int) -> jax.Array:
    """lengths (B,) frames or None (all `frames`) -> (B,) int32."""
    if lengths is None:
        return jnp.full((batch,), frames, jnp.int32)
    return jnp.broadcast_to(jnp.asarray(lengths, jnp.int32), (batch,))


def _posterior_noise(key, noise, batch: int, frames: int, width: int, start=0):
    if noise is not None:
        return slice_noise(noise, frames, width, "noise")
    if key is None:
        return jnp.zeros((batch, frames, width), jnp.float32)
    return positional_normal(item_keys(key, batch), POSTERIOR_STREAM, start, frames, width)  # (B, F, Z)


def conversion_field(config) -> tuple[int, int]:
    """Frames of context (left, right) an output frame of voice conversion depends on: the
    posterior encoder's WaveNet, the flow twice (forward, then reverse) and the decoder, in series
    (their extents computed from the config as core/windows.py does for synthesis). Output frames
    [a, b) are exactly determined by spectrogram frames [a - left, b + right)."""
    config = getattr(config, "config", config)
    left = right = 0
    for i in range(config.posterior_encoder_num_wavenet_layers):
        l, r = _conv_extent(config.wavenet_kernel_size, config.wavenet_dilation_rate ** i)
        left, right = left + l, right + r
    flow_l, flow_r = _flow_extent(config)
    dec_l, dec_r = _decoder_extent(config)
    return left + 2 * flow_l + dec_l, right + 2 * flow_r + dec_r


def posterior(params, spectrogram: jax.Array, lengths: Optional[jax.Array], key: Optional[jax.Array], *,
              speaker_id=None, noise_scale=1.0, noise: Optional[jax.Array] = None):
    """Posterior encoder: linear spectrogram (B, F, K) -> (latents, means, log_stds), each (B, F, Z),
    zero past each item's `lengths` (B,) frames.

    latents = means + noise_scale * noise * exp(log_stds): noise from `key` (one key, or one per
    item), or `noise` (B, >=F, Z) standard normal given (e.g. a reference's own draws); key=None
    and no noise: the means. speaker_id: scalar or (B,) (None: no conditioning); noise_scale:
    scalar or (B,), traced.
    """
    tree, config = tree_and_config(params)
    b, f, _ = spectrogram.shape
    lengths = frame_lengths(lengths, b, f)
    mask = alignment.frame_mask(lengths, f, jnp.float32)                                    # (B, F, 1)
    noise = _posterior_noise(key, noise, b, f, config.flow_size)
    scale = per_item(noise_scale, 1.0, b)[:, None, None]
    return VitsModel(config).apply({"params": tree}, jnp.asarray(spectrogram, jnp.float32), mask,
                                   speaker_ids(speaker_id, b), noise, scale,
                                   method=VitsModel.encode_spectrogram)


def flow(params, latents: jax.Array, lengths: Optional[jax.Array], *, speaker_id=None,
         reverse: bool = False) -> jax.Array:
    """The coupling flow, latents (B, F, Z) -> (B, F, Z) under the mask of `lengths` (B,) frames.
    Forward: posterior latents -> the prior's space (training's z -> z_p); reverse=True (static):
    back, as synthesis does before the decoder. Volume-preserving: the two are exact inverses."""
    tree, config = tree_and_config(params)
    b, f, _ = latents.shape
    mask = alignment.frame_mask(frame_lengths(lengths, b, f), f, latents.dtype)
    return VitsModel(config).apply({"params": tree}, latents, mask, speaker_ids(speaker_id, b),
                                   reverse, method=VitsModel.run_flow)


def decode(params, latents: jax.Array, lengths: Optional[jax.Array], *, speaker_id=None,
           dtype=None) -> jax.Array:
    """HiFi-GAN, latents (B, F, Z) -> waveform (B, F * H) float32. lengths (B,) frames (None: all):
    frames past an item's end are masked at every layer, so a padded item equals itself alone up to
    its own lengths * H samples (the rest is not meaningful). dtype: the decoder's compute dtype
    (static; None: float32, or float64 for float64 latents)."""
    tree, config = tree_and_config(params)
    b, f, _ = latents.shape
    lengths = frame_lengths(lengths, b, f)
    latents = latents * alignment.frame_mask(lengths, f, latents.dtype)
    # float64 latents (under jax.experimental.enable_x64, params cast too) decode in float64:
    # what gradient checks against finite differences need; otherwise a decoder policy dtype
    float64 = dtype is None and latents.dtype == jnp.float64
    model = VitsModel(config, decoder_dtype=jnp.float64 if float64 else check_dtype(dtype))
    return model.apply({"params": tree}, latents, speaker_ids(speaker_id, b), lengths,
                       method=VitsModel.decode_latents)


def convert_speaker(params, spectrogram: jax.Array, lengths: Optional[jax.Array], key: Optional[jax.Array], *,
                    source_speaker_id, target_speaker_id, noise_scale=1.0,
                    noise: Optional[jax.Array] = None, noise_start=0, dtype=None) -> jax.Array:
    """Voice conversion of linear spectrograms (B, F, K) with `lengths` (B,) frames: the waveform
    (B, F * H) float32 as the target speaker, zero past each item's lengths * H samples. Speaker
    ids: scalars or (B,), traced. Noise as `posterior`'s (key=None or noise_scale=0: the means);
    noise_start (traced): the utterance frame of the first row, for a window of a longer input
    (with `conversion_field`'s margins a window gives the whole input's samples)."""
    tree, config = tree_and_config(params)
    b, f, _ = spectrogram.shape
    lengths = frame_lengths(lengths, b, f)
    noise = _posterior_noise(key, noise, b, f, config.flow_size, noise_start)
    scale = per_item(noise_scale, 1.0, b)[:, None, None]
    model = VitsModel(config, decoder_dtype=check_dtype(dtype))
    waveform = model.apply({"params": tree}, jnp.asarray(spectrogram, jnp.float32), lengths,
                           speaker_ids(source_speaker_id, b), speaker_ids(target_speaker_id, b), noise, scale,
                           method=VitsModel.convert_voice)
    samples = lengths * config.hop_length
    keep = jnp.arange(waveform.shape[1])[None, :] < samples[:, None]
    return jnp.where(keep, waveform, 0.0)
