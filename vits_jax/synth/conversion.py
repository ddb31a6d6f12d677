"""voice_conversion: waveforms spoken by one speaker -> the same speech in another speaker's voice.

Shapes: B batch, S samples (padded), F frames (S // H, bucketed), H hop (samples per frame).

    out = voice_conversion(params, waveform, source_speaker=3, target_speaker=7, noise_scale=0.0)

VITS' `SynthesizerTrn.voice_conversion` (original VITS, Piper's training code, coqui): linear
spectrogram -> posterior encoder with the source speaker -> flow forward with the source speaker ->
flow reverse with the target speaker -> decoder with the target speaker. The pure program is
`vits_jax.core.convert_speaker`; this is the host layer around it: it checks the voice and the
inputs (named errors), pads a batch to one bucketed length and slices each item back.

What a voice needs. The posterior encoder, which only training checkpoints hold (an original VITS
G_*.pth, a Piper .ckpt, a transformers folder: Piper's .onnx export drops it), and several
speakers (conversion maps one speaker's latents onto another's). Otherwise
`VoiceConversionError` says why and what would work.

Lengths. An input of S samples gives S // H frames and S // H * H output samples (the remainder,
less than one frame, is dropped, as VITS' spectrogram drops it). Same speaker in and out keeps the
frame count exactly.

Batches. Several inputs run as one padded batch; each item's spectrogram is reflected at its own
end, its masks end at its own frames and the decoder masks padding at every layer, so an item
converts to the same samples (to float32 round-off) alone or in any batch. With noise, item i
draws from fold_in(key, i) (or its own key when `key` holds one per item), per frame, so its noise
does not depend on the padding either.

Long inputs. Up to WHOLE_FRAMES frames (about a minute at MMS' rate and hop) the input is one
program. Longer inputs (or any, with `window_frames=`) run in exact windows: the spectrogram is
computed whole (cheap), then output frames [a, a + C) are converted from spectrogram frames
[a - left, a + C + right), (left, right) = `core.conversion.conversion_field(config)` (the
posterior's WaveNet, the flow both ways and the decoder, from the config), and the posterior noise
of frame t is drawn for t wherever the window starts: the windows concatenate to the whole
conversion up to float32 round-off, in memory bounded by the window.
"""

from __future__ import annotations

import functools
from typing import Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np

from ..core.conversion import conversion_field, convert_speaker
from ..core.noise import item_keys
from ..core.params import tree_and_config
from ..core.spectrogram import SpectrogramConfig, linear_spectrogram
from ..core.stages import check_dtype

__all__ = ["voice_conversion", "VoiceConversionError", "check_convertible", "FRAME_BUCKET", "WHOLE_FRAMES",
           "WINDOW_FRAMES"]

FRAME_BUCKET = 32        # frames are padded to a multiple of this (one compiled program per bucket)
WHOLE_FRAMES = 4096      # longer inputs are converted in windows of WINDOW_FRAMES output frames
WINDOW_FRAMES = 1024


class VoiceConversionError(ValueError):
    """A voice that cannot convert (no posterior encoder, one speaker) or an input it cannot take."""


def check_convertible(params, where: str = "this voice") -> None:
    """Raises VoiceConversionError unless the voice has a posterior encoder and several speakers."""
    tree, config = tree_and_config(params)
    if "posterior_encoder" not in tree:
        raise VoiceConversionError(
            f"{where} has no posterior encoder, so it cannot convert voices: the posterior encoder "
            "turns the input's spectrogram into latents and only training checkpoints hold it (Piper's "
            ".onnx export drops it). Use the voice's training checkpoint instead: a Piper .ckpt, an "
            "original VITS G_*.pth with its config.json, or a transformers model folder")
    if config.num_speakers <= 1:
        raise VoiceConversionError(
            f"{where} has a single speaker, so there is no other voice to convert to: voice conversion "
            "maps one speaker of a multi-speaker voice onto another. Use a multi-speaker training "
            "checkpoint (e.g. a Piper .ckpt of a multi-speaker voice such as libritts, or VCTK VITS)")


def _speaker(value, name: str, num_speakers: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise VoiceConversionError(f"{name} must be a speaker id (an int), got {value!r}; "
                                   "Voice.convert also takes speaker names")
    if not 0 <= int(value) < num_speakers:
        raise VoiceConversionError(f"{name} {value} is out of range: the voice has {num_speakers} "
                                   f"speakers (ids 0 to {num_speakers - 1})")
    return int(value)


def _speakers(value, name: str, num_speakers: int, batch: int) -> list[int]:
    """One speaker id for every item, or one per item -> [id] * batch."""
    values = list(value) if isinstance(value, (list, tuple, np.ndarray)) else [value] * batch
    if len(values) != batch:
        raise VoiceConversionError(f"{name}: {len(values)} speakers for {batch} waveforms; give one "
                                   "for all or one per waveform")
    return [_speaker(v, name, num_speakers) for v in values]


def _waveform(x, index: Optional[int], minimum: int, rate: int) -> np.ndarray:
    what = "waveform" if index is None else f"waveform {index}"
    try:
        array = np.asarray(x)
    except Exception:       # ragged nested lists and the like
        raise VoiceConversionError(f"{what} is not an array of samples") from None
    if array.ndim != 1:
        raise VoiceConversionError(f"{what} must be mono samples of shape (samples,), got shape {array.shape}"
                                   + ("; average the channels first" if array.ndim == 2 else ""))
    if not np.issubdtype(array.dtype, np.floating):
        hint = " (16-bit PCM: divide by 32768)" if np.issubdtype(array.dtype, np.integer) else ""
        raise VoiceConversionError(f"{what} must hold float samples in [-1, 1], got dtype {array.dtype}{hint}")
    if array.size < minimum:
        raise VoiceConversionError(f"{what} is too short: {array.size} samples, at least {minimum} "
                                   f"({minimum / rate * 1000:.0f} ms at {rate} Hz) are needed")
    if not np.all(np.isfinite(array)):
        raise VoiceConversionError(f"{what} has NaN or infinite samples")
    return array.astype(np.float32)


def minimum_samples(config) -> int:
    """The shortest input: one frame, and more than the STFT's reflect padding."""
    c = SpectrogramConfig.from_vits(config)
    return max(c.hop_length, (c.n_fft - c.hop_length) // 2 + 1)


@functools.partial(jax.jit, static_argnames=("dtype",))
def _program(params, waveform, samples, key, source, target, noise_scale, dtype):
    _, config = tree_and_config(params)
    spectrogram = linear_spectrogram(waveform, config, samples)                     # (B, F, K)
    frames = samples // config.hop_length
    return convert_speaker(params, spectrogram, frames, key, source_speaker_id=source,
                           target_speaker_id=target, noise_scale=noise_scale, dtype=dtype)


@jax.jit
def _spectrogram_program(params, waveform, samples):
    _, config = tree_and_config(params)
    return linear_spectrogram(waveform, config, samples)                            # (B, F, K)


@functools.partial(jax.jit, static_argnames=("dtype",))
def _window_program(params, spectrogram, frames, keys, source, target, noise_scale, start, dtype):
    return convert_speaker(params, spectrogram, frames, keys, source_speaker_id=source, target_speaker_id=target,
                           noise_scale=noise_scale, noise_start=start, dtype=dtype)


def _convert_windows(params, padded, lengths, keys, sources, targets, noise_scale, dtype, chunk: int):
    """The conversion in windows of `chunk` output frames (see the module docstring): (B, F * H)."""
    _, config = tree_and_config(params)
    hop = config.hop_length
    left, right = conversion_field(config)
    spectrogram = np.asarray(_spectrogram_program(params, padded, lengths))         # (B, F, K)
    b, f, k = spectrogram.shape
    frames = lengths // hop
    width = chunk + left + right
    out = np.zeros((b, f * hop), np.float32)
    for start in range(0, int(frames.max()), chunk):
        first = max(start - left, 0)
        window = np.zeros((b, width, k), np.float32)
        rows = spectrogram[:, first:first + width]
        window[:, :rows.shape[1]] = rows
        valid = np.clip(frames - first, 0, width).astype(np.int32)
        wave = np.asarray(_window_program(params, window, valid, keys, sources, targets, noise_scale,
                                          np.int32(first), dtype=dtype))
        stop = min(f, start + chunk)
        out[:, start * hop:stop * hop] = wave[:, (start - first) * hop:(stop - first) * hop]
    return out


def compilation_count() -> int:
    """Conversion programs compiled so far (one per batch size, frame bucket, config and dtype)."""
    return _program._cache_size()


def voice_conversion(params, waveform: Union[np.ndarray, Sequence[np.ndarray]], *, source_speaker,
                     target_speaker, key: Optional[jax.Array] = None, noise_scale: float = 1.0,
                     dtype=None, window_frames: Optional[int] = None) -> Union[np.ndarray, list[np.ndarray]]:
    """Speech in `source_speaker`'s voice -> the same speech in `target_speaker`'s voice.

    waveform: float samples (S,) at the voice's sampling rate, or a list of them (converted as one
    padded batch; see the module docstring). Returns float32 (S // hop * hop,), or a list of them.
    source_speaker, target_speaker: speaker ids (`Voice.convert` also takes names), or one per item.
    key: jax.random key for the posterior's noise (None: key(0)); one key, or one per item.
    noise_scale: the posterior sample's spread (0: its means, the deterministic conversion).
    dtype: the decoder's compute dtype (None: float32). window_frames: convert in exact windows of
    this many output frames (None: whole up to WHOLE_FRAMES frames, else windows of WINDOW_FRAMES).
    Raises VoiceConversionError for a voice that cannot convert or an input it cannot take.
    """
    tree, config = tree_and_config(params)
    check_convertible(params)
    single = isinstance(waveform, (np.ndarray, jax.Array)) and np.ndim(waveform) == 1
    items = [waveform] if single else list(waveform)
    if not items:
        raise VoiceConversionError("no waveforms to convert")
    minimum = minimum_samples(config)
    items = [_waveform(x, None if single else i, minimum, config.sampling_rate) for i, x in enumerate(items)]
    b = len(items)
    sources = _speakers(source_speaker, "source_speaker", config.num_speakers, b)
    targets = _speakers(target_speaker, "target_speaker", config.num_speakers, b)
    try:
        noise_scale = float(noise_scale)
    except (TypeError, ValueError):
        raise VoiceConversionError(f"noise_scale must be a number >= 0, got {noise_scale!r}") from None
    if not np.isfinite(noise_scale) or noise_scale < 0:
        raise VoiceConversionError(f"noise_scale must be a number >= 0, got {noise_scale}")
    dtype = check_dtype(dtype)
    # one key per item, made here, so one program serves a single key and per-item keys alike
    keys = item_keys(jax.random.key(0) if key is None else key, b)

    hop = config.hop_length
    lengths = np.array([x.size for x in items], np.int32)                      # (B,) samples
    frames = lengths // hop
    bucket = -(-int(frames.max()) // FRAME_BUCKET) * FRAME_BUCKET
    # bucket * hop + hop - 1 samples hold every item (its remainder past its last frame included,
    # which that frame's STFT window reads) and still give exactly `bucket` frames
    padded = np.zeros((b, bucket * hop + hop - 1), np.float32)
    for i, x in enumerate(items):
        padded[i, :x.size] = x
    sources, targets = np.array(sources, np.int32), np.array(targets, np.int32)
    if window_frames is None and bucket > WHOLE_FRAMES:
        window_frames = WINDOW_FRAMES
    if window_frames is not None:
        if isinstance(window_frames, bool) or not isinstance(window_frames, (int, np.integer)) or window_frames < 1:
            raise VoiceConversionError(f"window_frames must be a positive int, got {window_frames!r}")
        out = _convert_windows(params, padded, lengths, keys, sources, targets, np.float32(noise_scale), dtype,
                               int(window_frames))
    else:
        out = np.asarray(_program(params, padded, lengths, keys, sources, targets, np.float32(noise_scale),
                                  dtype=dtype))
    results = [out[i, :frames[i] * hop].copy() for i in range(b)]
    return results[0] if single else results
