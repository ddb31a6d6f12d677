"""Streaming: one utterance rendered chunk by chunk, exactly as `synthesize` renders it whole.

Shapes: T tokens, F frames, C frames of a chunk, H hop (samples per frame).

Stage 1 (text encoder + durations) runs once, through synthesize's checks and program
(`synthesis.encode_checked`); stage 2 runs on windows of frames overlapped by the networks'
receptive field (`windows.render_window`, computed from the config), so the chunks concatenate to
synthesize's waveform up to float32 round-off. Each window is one compiled program whose shapes
depend only on its chunk size (the token priors are padded to MAX_TOKENS slots), so a schedule
drawn from a fixed set of chunk sizes compiles a fixed number of programs whatever the length.
"""

from __future__ import annotations

import numbers
import warnings
from typing import Iterator, Optional

import jax
import numpy as np

from .. import core
from .synthesis import MAX_FRAMES, MAX_TOKENS, bucket, encode_checked
from ..core.windows import ReceptiveField, compilation_count, receptive_field  # noqa: F401  (re-exported)
from ..core import windows

FIRST_CHUNK_FRAMES = 16     # default first chunk (~0.26 s at MMS's 16 kHz): time to first audio
MAX_CHUNK_FRAMES = 1024     # default largest chunk (bounds a window's memory, see windows.render_chunked)


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


def _pad_tokens(x, length: int) -> jax.Array:
    """(B, Tb, ...) -> (B, length, ...) zero padded, on the host (no program per Tb)."""
    x = np.asarray(x)
    return jax.device_put(np.pad(x, [(0, 0), (0, length - x.shape[1])] + [(0, 0)] * (x.ndim - 2)))


def stream(params, ids, *, key: Optional[jax.Array] = None, speaker_id=None, speaking_rate=None,
           noise_scale=None, noise_scale_duration=None,
           chunk_frames: Optional[int] = None, dtype=None,
           programs=None) -> Iterator[np.ndarray]:
    """One utterance -> an iterator of float32 waveform chunks (S_k,), produced as they render.

    ids: (T,) or (1, T). Other arguments as `synthesize` (checked by the same code). The chunks
    concatenate to `synthesize(params, ids[None], key=key, ...).waveform[0, :lengths[0]]` (to float32
    round-off, same length). Stage 1 runs once, at the call (argument errors raise there); each
    chunk is then one window program: `chunk_frames` frames per chunk, or by default a small first
    chunk for latency and larger ones after (see `chunk_schedule`). The next chunk is computed
    while the caller handles the current one. dtype: the decoder's compute dtype, as `synthesize`.
    programs: exported programs for stage 1 (as synthesize's).
    """
    dtype = core.check_dtype(dtype)
    if chunk_frames is not None:
        chunk_frames = _check_chunk_frames(chunk_frames, "chunk_frames")
    if np.ndim(ids) == 2 and np.shape(ids)[0] != 1:
        raise ValueError(f"stream() speaks one utterance: ids must have shape (T,) or (1, T), got "
                         f"{np.shape(ids)}")
    stage1 = encode_checked(params, ids, key=key, speaker_id=speaker_id, speaking_rate=speaking_rate,
                            noise_scale=noise_scale, noise_scale_duration=noise_scale_duration,
                            programs=programs)
    # The windows see all MAX_TOKENS token slots (zero durations past the text), so their programs
    # do not depend on the text's token bucket: a fixed set of programs for every length.
    e = stage1.encoded
    encoded = core.Encoded(*(_pad_tokens(x, MAX_TOKENS) for x in (e.durations, e.means, e.log_variances)),
                           lengths=e.lengths)
    predicted = int(max(stage1.durations.sum(), 1))
    frames = min(predicted, MAX_FRAMES)
    if predicted > frames:
        warnings.warn(f"the utterance needs {predicted} frames, more than the {frames} rendered; its "
                      f"audio is cut", stacklevel=2)
    margins = receptive_field(stage1.params.config)
    schedule = chunk_schedule(frames, chunk_frames, margins.decoder_left + margins.decoder_right)
    hop = stage1.params.config.hop_length
    params = jax.device_put(stage1.params)   # once, not per window, if params are numpy

    def dispatch(start, size):   # asynchronous: returns before the window is computed
        # The first chunk starts at the utterance's start: no left margin to compute.
        window = margins._replace(flow_left=0, decoder_left=0) if start == 0 else margins
        return windows.dispatch_window(params, encoded, stage1.key, start_frame=start, num_frames=size,
                                       margins=window, limit=frames, speaker_id=stage1.speaker_id,
                                       noise_scale=stage1.noise_scale, dtype=dtype)

    def chunks(pending):
        for i, (start, size) in enumerate(schedule):
            wave = np.asarray(pending)[0, :(min(start + size, frames) - start) * hop]
            if i + 1 < len(schedule):
                pending = dispatch(*schedule[i + 1])
            yield wave
    return chunks(dispatch(*schedule[0]))   # the first window starts computing now
