"""Exact windowed rendering: stage 2 over any window of output frames, the same samples as `core.render`.

Shapes: B batch, T tokens, F frames, C output frames of a window (static), Wd frames the decoder
computes (C plus its margins), Wf frames the flow computes (Wd plus the flow's margins),
Z flow_size, H hop (samples per frame).

Why it is exact. Stage 2 is pointwise per frame up to the flow and the decoder, which are stacks of
convolutions with a finite receptive field, and the prior noise of frame t depends only on (item
key, stream, t) (`core.positional_normal`). So output frames [a, b) depend only on prior frames
[a - left, b + right), (left, right) computed from the config (`receptive_field`). A window that
computes those frames, zero padded at its cut edges and with the utterance's own end (its length
mask) where the utterance really ends, gives the full rendering's samples up to float32 round-off.

Two nested margins: the decoder (97% of the work, margin 13 frames each side at MMS-eng size) runs
on the output frames plus its own margin; the flow (cheap, margin 32) on that plus the flow's. One
margin for both would make the decoder compute 90 frames per window instead of 26.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from ..config import VitsConfig
from ..nn.model import VitsModel
from .noise import PRIOR_STREAM, item_keys, positional_normal, slice_noise
from .params import tree_and_config
from .stages import Encoded, per_item, speaker_ids


class ReceptiveField(NamedTuple):
    """Frames of context each side that an output frame depends on, per network."""

    flow_left: int
    flow_right: int
    decoder_left: int
    decoder_right: int

    @property
    def left(self) -> int:
        return self.flow_left + self.decoder_left

    @property
    def right(self) -> int:
        return self.flow_right + self.decoder_right


def _conv_extent(kernel: int, dilation: int = 1) -> tuple[int, int]:
    """Inputs each side an output of a stride-1 conv reads, with the blocks' padding
    (kernel*dilation - dilation) // 2 on both sides (layers.same_padding)."""
    pad = (kernel * dilation - dilation) // 2
    return pad, (kernel - 1) * dilation - pad


def _flow_extent(config: VitsConfig) -> tuple[int, int]:
    """Every coupling layer's WaveNet: conv_pre and conv_post are 1x1, layer i a conv of
    wavenet_kernel_size dilated by wavenet_dilation_rate**i; layers and flows are in series."""
    left = right = 0
    for i in range(config.prior_encoder_num_wavenet_layers):
        l, r = _conv_extent(config.wavenet_kernel_size, config.wavenet_dilation_rate ** i)
        left, right = left + l, right + r
    return config.prior_encoder_num_flows * left, config.prior_encoder_num_flows * right


def _resblock_extent(config: VitsConfig, kernel: int, dilations) -> tuple[int, int]:
    """One residual block's convs are in series. ResBlock1 ("1", transformers'): per dilation d a
    conv dilated by d, then one undilated; ResBlock2 ("2", HiFi-GAN V2): one conv per dilation."""
    convs = []
    for d in dilations:
        convs.append((kernel, d))
        if str(config.resblock) == "1":
            convs.append((kernel, 1))
    extents = [_conv_extent(k, d) for k, d in convs]
    return sum(l for l, _ in extents), sum(r for _, r in extents)


def _decoder_extent(config: VitsConfig) -> tuple[int, int]:
    """HiFi-GAN, walked from the waveform back to the frames: conv_post (7 taps), then per stage
    (last first) its parallel residual blocks (the widest counts) and its transposed conv, then
    conv_pre (7 taps). Output samples [a*h - l, b*h + r) at a stage's output rate h need inputs
    [a - l', b + r'); a transposed conv of kernel k, stride s, padding p = (k - s) // 2 (output n
    reads input i when 0 <= n + p - i*s < k) gives l' = floor((l + k-1-p) / s), r' =
    floor((r + p - 1) / s) + 1. Odd (k - s) only adds a sample past the end (hifigan.output_length):
    sample n of a window starting at frame d is still global sample n + d*H."""
    left, right = _conv_extent(7)                                           # conv_post
    stages = list(zip(config.upsample_rates, config.upsample_kernel_sizes))
    for rate, kernel in reversed(stages):
        blocks = [_resblock_extent(config, k, d)
                  for k, d in zip(config.resblock_kernel_sizes, config.resblock_dilation_sizes)]
        left += max(l for l, _ in blocks)
        right += max(r for _, r in blocks)
        pad = (kernel - rate) // 2
        left, right = (left + kernel - 1 - pad) // rate, (right + pad - 1) // rate + 1
    l, r = _conv_extent(7)                                                  # conv_pre
    return left + l, right + r


def receptive_field(config: VitsConfig) -> ReceptiveField:
    """Frames of context an output frame of stage 2 depends on, computed from the config.

    `.left` / `.right` are the totals: output frames [a, b) are exactly determined by prior frames
    [a - left, b + right) (the flow's margin plus the decoder's). MMS-eng: flow 32 + decoder 13
    each side."""
    return ReceptiveField(*_flow_extent(config), *_decoder_extent(config))


# ---------------------------------------------------------------------------------------------
# Traced code

def window_start(start, margins: ReceptiveField):
    """First prior frame the window of output frame `start` reads (host ints or traced)."""
    maximum = jnp.maximum if isinstance(start, jax.Array) else max
    return maximum(maximum(start - margins.decoder_left, 0) - margins.flow_left, 0)


def render_window(params, encoded: Encoded, key: jax.Array, *, start_frame, num_frames: int,
                  margins: ReceptiveField, limit=None, speaker_id=None, noise_scale=None,
                  prior_noise: Optional[jax.Array] = None, dtype=jnp.float32) -> jax.Array:
    """Frames start_frame .. start_frame + num_frames - 1 of `core.render`'s waveform over `limit`
    frames (None: each utterance's own length): (B, num_frames * H) float32, zero past each item's
    end; exact when `margins` is `receptive_field(config)` (or has zero left margins and
    start_frame == 0). start_frame, limit traced; num_frames, margins, dtype static.

    prior_noise: (B, >= Wf, Z) standard normal, rows window_start(start_frame) onwards (None:
    the key's draws, `core.positional_normal`, the rows `core.render` draws).
    """
    tree, config = tree_and_config(params)
    b = encoded.durations.shape[0]
    w_flow = num_frames + margins.left + margins.right
    start = jnp.asarray(start_frame, jnp.int32)
    if prior_noise is None:
        prior_noise = positional_normal(item_keys(key, b), PRIOR_STREAM,
                                             window_start(start, margins), w_flow, config.flow_size)
    else:
        prior_noise = slice_noise(prior_noise, w_flow, config.flow_size, "prior_noise")
    limit = jnp.asarray(np.iinfo(np.int32).max if limit is None else limit, jnp.int32)
    return VitsModel(config, decoder_dtype=dtype).apply(
        {"params": tree}, encoded.means, encoded.log_variances, encoded.durations,
        speaker_ids(speaker_id, b), prior_noise, per_item(noise_scale, config.noise_scale, b),
        limit, start, num_frames, margins, method=VitsModel.render_window)


_window_program = jax.jit(render_window, static_argnames=("num_frames", "margins", "dtype"))


def compilation_count() -> int:
    """Window programs compiled so far (one per config, window size, margins, token count and
    dtype), for tests."""
    return _window_program._cache_size()


def dispatch_window(params, encoded, key, *, start_frame: int, num_frames: int, margins: ReceptiveField,
                    limit=None, speaker_id=None, noise_scale=None, prior_noise=None, dtype=jnp.float32):
    """`render_window` as a compiled program, dispatched asynchronously (returns before it runs).

    prior_noise: caller-given noise over the whole utterance (B, >= frames, Z), host or device;
    the window's rows are cut here (zero past its end, where the frames are masked anyway)."""
    if prior_noise is not None:
        first = window_start(int(start_frame), margins)
        w_flow = num_frames + margins.left + margins.right
        rows = np.asarray(prior_noise)[:, first:first + w_flow]
        prior_noise = np.pad(rows, ((0, 0), (0, w_flow - rows.shape[1]), (0, 0)))
    return _window_program(params, encoded, key, start_frame=np.int32(start_frame), num_frames=num_frames,
                           margins=margins, limit=None if limit is None else np.int32(limit),
                           speaker_id=speaker_id, noise_scale=noise_scale, prior_noise=prior_noise,
                           dtype=dtype)


def render_chunked(params, encoded: Encoded, key: jax.Array, *, num_frames: int, window_frames: int,
                   stop_frame: Optional[int] = None, speaker_id=None, noise_scale=None, prior_noise=None,
                   dtype=jnp.float32, margins: Optional[ReceptiveField] = None) -> np.ndarray:
    """`core.render(..., num_frames=num_frames)` in windows of `window_frames` output frames: the
    same samples (to float32 round-off) in bounded memory, as numpy (B, min(num_frames, stop_frame) * H).

    stop_frame: render only the first stop_frame frames (e.g. the longest item's end: the rest
    is zeros). One program per window size (and token count), whatever num_frames.
    Memory: one window at a time, ~229 KB per output frame and item at MMS-eng size
    on CPU (XLA's memory analysis: 20.8 MB for a 64-frame window, 241.0 MB for 1024), plus the
    output, 4 * H bytes per frame and item.
    `margins` overrides the receptive field (for the tests that show it cannot be smaller).
    """
    _, config = tree_and_config(params)
    margins = receptive_field(config) if margins is None else ReceptiveField(*margins)
    hop = config.hop_length
    frames = int(num_frames) if stop_frame is None else min(int(num_frames), int(stop_frame))
    chunk = min(int(window_frames), int(num_frames))
    dtype_out = np.result_type(encoded.means.dtype, np.float32)
    out = np.zeros((encoded.durations.shape[0], frames * hop), dtype_out)
    for start in range(0, frames, chunk):      # one window alive at a time: bounded memory
        wave = np.asarray(dispatch_window(params, encoded, key, start_frame=start, num_frames=chunk,
                                          margins=margins, limit=num_frames, speaker_id=speaker_id,
                                          noise_scale=noise_scale, prior_noise=prior_noise, dtype=dtype))
        stop = min(out.shape[1], start * hop + wave.shape[1])
        out[:, start * hop:stop] = wave[:, :stop - start * hop]
    return out
