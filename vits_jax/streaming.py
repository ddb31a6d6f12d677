"""Exact chunked rendering: stream one utterance chunk by chunk, or render a long one in windows.

Shapes: B batch, T tokens, Tb token bucket, F frames, C output frames of one window (static),
W frames a window computes (C plus margins, static), Z flow_size, H hop (samples per frame).

Why it is exact. Stage 2 (alignment -> prior sample -> flow -> HiFi-GAN) is pointwise per frame up
to the flow and the decoder, which are stacks of convolutions with a finite receptive field, and
the prior noise of frame t depends only on (item key, stream, t). So output frames [a, b) depend
only on frames [a - left, b + right) of the prior, with (left, right) computed from the config
(`receptive_field`). A window that computes those frames, zero padded at its cut edges and with the
utterance's own end (its length mask) where the utterance really ends, gives the same samples as
the full rendering up to float32 round-off (XLA blocks convolutions of other lengths differently).

Two nested margins: the decoder (97% of the work) runs on the output frames plus its own margin;
the flow (cheap) runs on that plus the flow's margin. Each window is one jitted program whose
shapes depend only on C (stream() pads the token priors to MAX_TOKENS slots), so a schedule
drawn from a fixed set of chunk sizes compiles a fixed number of programs whatever the length.

Odd upsampling (kernel - rate odd: transposed convs one sample longer per stage) is not supported
by this decoder yet; `_decoder_extent` assumes each stage outputs exactly rate x its input.
"""

from __future__ import annotations

import functools
import numbers
import warnings
from typing import Iterator, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from . import alignment
from .config import VitsConfig
from .model import VitsModel, cast_decoder

# --- Stage 1 and the noise convention of synthesize ---------------------------------------------
# The one place that reads synthesis.py's internals: its argument checks and stage-1 program (so
# stream() validates and encodes exactly as synthesize does) and its prior-noise convention.
# When vits_jax.core lands, these become core.encode and the core's per-position noise helper.
from .synthesis import (MAX_FRAMES, MAX_TOKENS, _PRIOR_STREAM, _encode_stage,  # noqa: E402
                        _host_durations, _prepare, bucket)


def _positional_normal_at(keys: jax.Array, stream: int, start, length: int, width: int) -> jax.Array:
    """keys (B,) -> (B, length, width): rows start .. start+length-1 of synthesis._positional_normal
    (row t is normal(fold_in(fold_in(key, stream), t)), whatever the window)."""
    positions = start + jnp.arange(length, dtype=jnp.int32)

    def item(key):
        key = jax.random.fold_in(key, stream)
        return jax.vmap(lambda t: jax.random.normal(jax.random.fold_in(key, t), (width,)))(positions)
    return jax.vmap(item)(keys)
# -------------------------------------------------------------------------------------------------

FIRST_CHUNK_FRAMES = 16     # default first chunk (~0.26 s at MMS's 16 kHz): time to first audio
MAX_CHUNK_FRAMES = 1024     # default largest chunk (bounds a window's memory, see render_chunked)


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
    (kernel*dilation - dilation) // 2 on both sides (layers.conv1d)."""
    pad = (kernel * dilation - dilation) // 2
    return pad, (kernel - 1) * dilation - pad


def _flow_extent(config: VitsConfig) -> tuple[int, int]:
    """Every coupling layer's WaveNet: conv_pre and conv_post are 1x1, layer i a conv of
    wavenet_kernel_size dilated by wavenet_dilation_rate**i; the layers are in series."""
    left = right = 0
    for i in range(config.prior_encoder_num_wavenet_layers):
        l, r = _conv_extent(config.wavenet_kernel_size, config.wavenet_dilation_rate ** i)
        left, right = left + l, right + r
    return config.prior_encoder_num_flows * left, config.prior_encoder_num_flows * right


def _resblock_extent(config: VitsConfig, kernel: int, dilations) -> tuple[int, int]:
    """One residual block's convs are in series. ResBlock1 ("1", transformers'): per dilation d a
    conv dilated by d, then one undilated; ResBlock2 ("2", HiFi-GAN V2): one conv per dilation."""
    kind = str(getattr(config, "resblock", "1"))
    convs = []
    for d in dilations:
        convs.append((kernel, d))
        if kind == "1":
            convs.append((kernel, 1))
    extents = [_conv_extent(k, d) for k, d in convs]
    return sum(l for l, _ in extents), sum(r for _, r in extents)


def _decoder_extent(config: VitsConfig) -> tuple[int, int]:
    """HiFi-GAN, walked from the waveform back to the frames: conv_post (7 taps), then per stage
    (last first) its parallel residual blocks (the widest counts) and its transposed conv, then
    conv_pre (7 taps). Output samples [a*H, b*H) need stage-input positions [a*h - l, b*h + r) at
    each stage's rate h; a transposed conv of kernel k, stride s, padding p (output n reads input i
    when 0 <= n + p - i*s < k) maps (l, r) to (floor((l + k-1-p) / s), floor((r + p - 1) / s) + 1)."""
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
    fl, fr = _flow_extent(config)
    dl, dr = _decoder_extent(config)
    return ReceptiveField(fl, fr, dl, dr)


# ---------------------------------------------------------------------------------------------
# Traced code

def _window(module: VitsModel, means, log_variances, durations, speakers, keys, prior_noise,
            noise_scale, limit, start, chunk: int, margins: ReceptiveField, decoder_dtype):
    """Output frames [start, start + chunk) of VitsModel.render over the first `limit` frames.

    means, log_variances (B, Tb, Z); durations (B, Tb) float; start, limit () int32 traced;
    prior_noise (B, Wf, Z) rows [flow_start, flow_start + Wf) or None (drawn from keys).
    Returns the waveform (B, chunk * H): zero past each item's end.
    """
    hop = module.config.hop_length
    lengths = jnp.minimum(alignment.output_lengths(durations), limit)              # (B,) frames
    w_dec = chunk + margins.decoder_left + margins.decoder_right
    w_flow = w_dec + margins.flow_left + margins.flow_right
    dec_start = jnp.maximum(start - margins.decoder_left, 0)
    flow_start = jnp.maximum(dec_start - margins.flow_left, 0)
    speaker = module.speaker_conditioning(speakers)

    # Flow over frames [flow_start, flow_start + Wf): the alignment of frame flow_start + f is the
    # alignment of frame f for durations whose first token starts flow_start frames earlier.
    shifted = durations.at[:, 0].add(-flow_start.astype(durations.dtype))
    mask = alignment.frame_mask(lengths - flow_start, w_flow, means.dtype)          # (B, Wf, 1)
    means = alignment.expand(means, shifted, w_flow)                                # (B, Wf, Z)
    log_variances = alignment.expand(log_variances, shifted, w_flow)
    if prior_noise is None:
        prior_noise = _positional_normal_at(keys, _PRIOR_STREAM, flow_start, w_flow, means.shape[-1])
    prior = means + prior_noise * jnp.exp(log_variances) * noise_scale[:, None, None]
    latents = module.flow(prior, mask, speaker, reverse=True) * mask               # (B, Wf, Z)

    # Decoder over frames [dec_start, dec_start + Wd), its length mask at the utterance's end.
    latents = jax.lax.dynamic_slice_in_dim(latents, dec_start - flow_start, w_dec, axis=1)
    waveform = module.decode(latents, speaker, lengths - dec_start, decoder_dtype)  # (B, Wd*H)
    return jax.lax.dynamic_slice_in_dim(waveform, (start - dec_start) * hop, chunk * hop, axis=1)


@functools.partial(jax.jit, static_argnames=("config", "chunk", "margins", "dtype"))
def _render_window(tree, means, log_variances, durations, speakers, keys, prior_noise, noise_scale,
                   limit, start, *, config, chunk, margins, dtype=None):
    return VitsModel(config).apply(
        {"params": cast_decoder(tree, dtype)}, means, log_variances, durations, speakers, keys,
        prior_noise, noise_scale, limit, start, chunk, margins, dtype, method=_window)


def compilation_count() -> int:
    """Window programs compiled so far (one per config, chunk size and dtype), for tests."""
    return _render_window._cache_size()


def _flow_window_noise(prior_noise, start: int, chunk: int, margins: ReceptiveField):
    """Rows of caller-given prior noise (B, >=F, Z) for the flow window of output frame `start`."""
    dec_start = max(start - margins.decoder_left, 0)
    flow_start = max(dec_start - margins.flow_left, 0)
    w_flow = chunk + margins.left + margins.right
    rows = prior_noise[:, flow_start:flow_start + w_flow]
    return jnp.pad(rows, ((0, 0), (0, w_flow - rows.shape[1]), (0, 0)))


# ---------------------------------------------------------------------------------------------
# Host API

def render_chunked(tree, means, log_variances, durations, speakers, keys, noise_scale, *,
                   config: VitsConfig, num_frames: int, window_frames: int, prior_noise=None,
                   dtype=None, _margins: Optional[ReceptiveField] = None) -> np.ndarray:
    """Stage 2 in windows of `window_frames` output frames: the same samples as synthesize's
    `_render_stage(..., num_frames=num_frames)` (to float32 round-off) in bounded memory.

    Arguments as `_render_stage`: tree (decoder float32), means / log_variances (B, Tb, Z) and
    durations (B, Tb) from stage 1, speakers (B,) or None, keys (B,), noise_scale (B,),
    prior_noise (B, >=num_frames, Z) or None. Returns the waveform (B, num_frames * H) float32
    (float64 for float64 inputs),
    zero past each item's end; an item longer than num_frames is cut as `_render_stage` cuts it.

    Memory: one window at a time. At the MMS-eng size on CPU a window's temporary buffers take
    224 KB per decoder frame and item (XLA's memory analysis of the compiled window: 19.8 MB for
    64 + 26 frames, 117.8 MB for 512 + 26), i.e. B * (window_frames + 26) * 224 KB: 235 MB per item
    for 1024-frame windows, whatever num_frames; plus the output, 4 * H bytes per frame and item. One program per window_frames, whatever num_frames.
    `_margins` overrides the receptive field (for the tests that show it cannot be smaller).
    """
    window_frames = _check_chunk_frames(window_frames, "window_frames")
    margins = receptive_field(config) if _margins is None else ReceptiveField(*_margins)
    hop = config.hop_length
    chunk = min(window_frames, int(num_frames))
    out = np.zeros((means.shape[0], int(num_frames) * hop), np.result_type(means.dtype, np.float32))
    limit = jnp.asarray(num_frames, jnp.int32)
    starts = range(0, int(num_frames), chunk)
    for start in starts:
        noise = None if prior_noise is None else _flow_window_noise(prior_noise, start, chunk, margins)
        wave = _render_window(tree, means, log_variances, durations, speakers, keys, noise, noise_scale,
                              limit, jnp.asarray(start, jnp.int32), config=config, chunk=chunk,
                              margins=margins, dtype=dtype)
        stop = min(start + chunk, int(num_frames))
        out[:, start * hop:stop * hop] = np.asarray(wave)[:, :(stop - start) * hop]
    return out


def _check_chunk_frames(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{what} must be a positive int, got {value!r}")
    return int(value)


def _chunk_sizes() -> list[int]:
    """Chunk sizes of the default schedule: two per octave (as synthesis.bucket) from
    FIRST_CHUNK_FRAMES to MAX_CHUNK_FRAMES: 16, 24, 32, 48, ..., 768, 1024."""
    sizes, size = [], FIRST_CHUNK_FRAMES
    while size <= MAX_CHUNK_FRAMES:
        sizes.append(size)
        size = bucket(size + 1, steps_per_octave=2)
    return sizes


def chunk_schedule(frames: int, chunk_frames: Optional[int] = None,
                   margin: int = 0) -> list[tuple[int, int]]:
    """(start, size) of each chunk covering `frames` frames; the last may run past the end.

    With chunk_frames, every chunk has that size (one program, plus one for the first chunk,
    which needs no left margin). Without, the first chunk is FIRST_CHUNK_FRAMES (time to first
    audio) and the rest is covered at the least cost by sizes from `_chunk_sizes()`, smallest
    first, a window of size c costing c + margin frames (margin: the decoder's, both sides): the
    total then stays within a few percent of one full rendering, with a bounded set of programs.
    """
    if chunk_frames is not None:
        return [(s, chunk_frames) for s in range(0, frames, chunk_frames)]
    rest, remaining = [], frames - FIRST_CHUNK_FRAMES
    while remaining > 2 * MAX_CHUNK_FRAMES:
        rest.append(MAX_CHUNK_FRAMES)
        remaining -= MAX_CHUNK_FRAMES
    if remaining > 0:
        rest += _cheapest_cover(remaining, _chunk_sizes(), margin)
    sizes = [FIRST_CHUNK_FRAMES] + sorted(rest)
    schedule, start = [], 0
    for size in sizes:
        schedule.append((start, size))
        start += size
    return schedule


def _cheapest_cover(frames: int, sizes: list[int], margin: int) -> list[int]:
    """Sizes (repeats allowed) summing to >= frames at the least sum of (size + margin)."""
    best = {0: (0, [])}                 # covered frames (capped at `frames`) -> (cost, sizes)
    for covered in range(frames):       # frames <= 2 * MAX_CHUNK_FRAMES: a small table
        if covered not in best:
            continue
        cost, used = best[covered]
        for size in sizes:
            nxt = min(covered + size, frames)
            if nxt not in best or cost + size + margin < best[nxt][0]:
                best[nxt] = (cost + size + margin, used + [size])
    return best[frames][1]


def _pad_tokens(x: jax.Array, length: int) -> jax.Array:
    """(B, Tb, ...) -> (B, length, ...) zero padded, on the host (no program per Tb)."""
    x = np.asarray(x)
    return jax.device_put(np.pad(x, [(0, 0), (0, length - x.shape[1])] + [(0, 0)] * (x.ndim - 2)))


def stream(params, ids, *, key: Optional[jax.Array] = None, speaker_id=None, speaking_rate=None,
           noise_scale=None, noise_scale_duration=None,
           chunk_frames: Optional[int] = None) -> Iterator[np.ndarray]:
    """One utterance -> an iterator of float32 waveform chunks (S_k,), produced as they render.

    ids: (T,) or (1, T). Other arguments as `synthesize` (checked by the same code). The chunks
    concatenate to `synthesize(params, ids[None], key=key, ...).waveform[0, :lengths[0]]` (to float32
    round-off, same length). Stage 1 runs once, at the call (argument errors raise there); each
    chunk is then one window program: `chunk_frames` frames per chunk, or by default a small first
    chunk for latency and larger ones after (see `chunk_schedule`). The next chunk is computed
    while the caller handles the current one.
    """
    if chunk_frames is not None:
        chunk_frames = _check_chunk_frames(chunk_frames, "chunk_frames")
    config, t, stage1, scale_prior = _prepare(params, ids, None, key, speaker_id, speaking_rate,
                                              noise_scale, noise_scale_duration, None, None)
    if stage1["ids"].shape[0] != 1:
        raise ValueError(f"stream() speaks one utterance: ids must have shape (T,) or (1, T), got "
                         f"{np.shape(ids)}")
    durations, means, log_variances = _encode_stage(**stage1, config=config)
    # The windows see all MAX_TOKENS token slots (zero durations past the text), so their programs
    # do not depend on the text's token bucket: a fixed set of programs for every length.
    means, log_variances, durations = (_pad_tokens(x, MAX_TOKENS) for x in (means, log_variances, durations))
    predicted = int(max(_host_durations(durations, t).sum(), 1))
    frames = min(predicted, MAX_FRAMES)
    if predicted > frames:
        warnings.warn(f"the utterance needs {predicted} frames, more than the {frames} rendered; its "
                      f"audio is cut", stacklevel=2)
    tree = jax.device_put(stage1["tree"])   # once, not per window, if params are numpy
    margins = receptive_field(config)
    schedule = chunk_schedule(frames, chunk_frames, margins.decoder_left + margins.decoder_right)
    hop = config.hop_length
    limit = jnp.asarray(frames, jnp.int32)

    def dispatch(start, size):   # asynchronous: returns before the window is computed
        # The first chunk starts at the utterance's start: no left margin to compute.
        window = margins._replace(flow_left=0, decoder_left=0) if start == 0 else margins
        return _render_window(tree, means, log_variances, durations, stage1["speakers"],
                              stage1["keys"], None, scale_prior, limit, jnp.asarray(start, jnp.int32),
                              config=config, chunk=size, margins=window)

    def chunks(pending):
        for i, (start, size) in enumerate(schedule):
            wave = np.asarray(pending)[0, :(min(start + size, frames) - start) * hop]
            if i + 1 < len(schedule):
                pending = dispatch(*schedule[i + 1])
            yield wave
    return chunks(dispatch(*schedule[0]))   # the first window starts computing now
