"""synthesize(): the host layer over the pure core (vits_jax/core): checks, buckets, strategies, numpy out.

Shapes: B batch, T tokens (as given), Tb token bucket, F frames (a bucket or `max_frames`),
Z flow_size, S samples (F * hop).

Programs: the core's functions jitted with only shapes (and the decoder dtype) static.
- With `max_frames`, one program, `generate`, does the whole call over exactly `max_frames` frames.
- Without it, two: `encode` returns the durations and the token priors, the host reads the
  durations once, rounds the longest item's frames up to a frame bucket, and `render` renders that
  many frames. Both paths give the same samples for the same key.

Buckets. Token lengths are padded to `bucket(T, MIN_TOKEN_BUCKET)`, frames to
`frame_bucket(F)`. Token buckets are 2^k and 3 * 2^(k-1) (two steps per octave: at most 50%
padding, 11 token buckets for 1 to 400 tokens); frame buckets take eight steps per octave (at most
12.5% padding), since the decoder's cost follows the frames rendered. The batch size is kept as
given. The speaking rate, noise scales, speaker ids and keys are traced arrays: changing them
never recompiles.

Noise: as the core's (item i draws from fold_in(key, i), or key[i]; each position's draw depends
only on the item's key and the position), so an utterance sounds the same alone or in any padded
batch, with any `max_frames` that holds it.

Exported programs. `synthesize(programs=...)` takes a set of `jax.export`ed stage programs (a Voice
loaded from a `vits-jax export` folder passes its own: synth/exported.py). `stage_program` is the
one place a stage's program is chosen: the exported one where `programs.find` holds one for exactly
these arguments (shapes, dtypes, pytree), else the jitted core function. Both compute the same
program, so the samples do not depend on which ran.
"""

from __future__ import annotations

import dataclasses
import numbers
import warnings
from typing import Callable, Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding

from .. import core
from ..core import sharding, windows
from ..core.params import VitsParams, split_params
from ..config import VitsConfig

MAX_TOKENS = 2048          # longest accepted input (tokens per item)
MAX_FRAMES = 2 ** 16       # most frames rendered without `max_frames` (~17 min at MMS's 16 kHz)
MIN_TOKEN_BUCKET = 16
MIN_FRAME_BUCKET = 32
FRAME_STEPS_PER_OCTAVE = 8
RENDER_WINDOW_FRAMES = 1024  # longer renders go in exact windows of at most this many frames (memory)
MAX_OUTPUT_BYTES = 2 ** 30   # largest waveform a call returns (B x S x 4 bytes): ~4.6 h at 16 kHz


@dataclasses.dataclass(frozen=True)
class SynthesisOutput:
    """Host (numpy) results of `synthesize`.

    waveform:  (B, S) float32, S = max(lengths); zero past each item's length.
    lengths:   (B,) int64 samples rendered per item (frames * hop, as transformers'
               `sequence_lengths`); for a truncated item, max_frames * hop.
    durations: (B, T) int64 predicted frames per token (0 where masked), before any truncation.
    truncated: (B,) bool, True where the predicted frames exceeded the frames rendered.
    """

    waveform: np.ndarray
    lengths: np.ndarray
    durations: np.ndarray
    truncated: np.ndarray


def bucket(n: int, minimum: int = 1, steps_per_octave: int = 2) -> int:
    """The smallest size >= max(n, minimum) on a grid of `steps_per_octave` equal steps between
    consecutive powers of two (2: sizes 2^k and 3 * 2^(k-1), at most 50% padding)."""
    n = max(int(n), int(minimum), 1)
    power = 1 << (n - 1).bit_length()            # smallest power of two >= n
    base = power // 2                            # n lies in (base, power]
    if base < steps_per_octave:
        return power if base < 2 else n          # steps finer than 1: every size
    step = base // steps_per_octave
    return -(-n // step) * step


def frame_bucket(n: int) -> int:
    """Frame counts get a finer grid (at most 12.5% padding): the decoder's cost, 97% of the
    total, is proportional to the frames rendered, while a frame program compiles in seconds and
    lands in the persistent cache."""
    return bucket(n, MIN_FRAME_BUCKET, FRAME_STEPS_PER_OCTAVE)


# ---------------------------------------------------------------------------------------------
# The compiled programs: the core's functions, jitted with the shapes and the decoder dtype static.

generate_program = jax.jit(core.generate, static_argnames=("num_frames", "dtype"))
encode_program = jax.jit(core.encode)
render_program = jax.jit(core.render, static_argnames=("num_frames", "dtype"))
_item_keys_program = jax.jit(core.item_keys, static_argnums=1)   # so every program sees (B,) typed keys


def stage_program(programs, stage: str, jitted, static: dict, params, *args, **kwargs):
    """Runs one stage ("encode" or "render"): `programs.find(stage, static, params, *args,
    **kwargs)` (an exported program taking the traced arguments, or None) when `programs` is
    given, else (or when it has none for these arguments) `jitted(params, *args, **kwargs,
    **static)`. `static`: the jitted function's static arguments (num_frames, dtype)."""
    program = None if programs is None else programs.find(stage, static, params, *args, **kwargs)
    if program is not None:
        return program(params, *args, **kwargs)
    return jitted(params, *args, **kwargs, **static)


def _encode(params, encode_args: dict, programs=None):
    """Stage 1 (`core.encode`) on synthesize's prepared arguments."""
    return stage_program(programs, "encode", encode_program, {}, params, **encode_args)


# ---------------------------------------------------------------------------------------------
# Host-side checks

def _as_array(value, what: str) -> np.ndarray:
    """np.asarray, with ragged nested lists (rows of different lengths) named as such."""
    try:
        return np.asarray(value)
    except ValueError:
        raise ValueError(f"{what} must be a rectangular array: its rows have different lengths (pad "
                         "them to one length and pass an attention_mask)") from None


def _as_int_array(value, what: str) -> np.ndarray:
    array = _as_array(value, what)
    if array.dtype == bool or not (np.issubdtype(array.dtype, np.integer) or array.size == 0):
        raise ValueError(f"{what} must be integers, got dtype {array.dtype}")
    return array


def _check_ids(ids, attention_mask, config: VitsConfig):
    ids = _as_int_array(ids, "ids")
    if ids.ndim == 1:
        ids = ids[None]
    if ids.ndim != 2:
        raise ValueError(f"ids must have shape (batch, tokens) or (tokens,), got {ids.shape}")
    b, t = ids.shape
    if b == 0 or t == 0:
        raise ValueError(f"empty input: ids have shape {ids.shape}")
    if t > MAX_TOKENS:
        raise ValueError(f"input too long: {t} tokens > MAX_TOKENS={MAX_TOKENS}; split the text")
    if attention_mask is None:
        mask = np.ones((b, t), np.float32)
    else:
        mask = _as_array(attention_mask, "attention_mask")
        if mask.ndim == 1:
            mask = mask[None]
        if mask.shape != ids.shape:
            raise ValueError(f"attention_mask shape {np.shape(attention_mask)} does not match ids shape "
                             f"{ids.shape}")
        if not np.all((mask == 0) | (mask == 1)):
            raise ValueError("attention_mask must hold only 0 and 1")
        mask = mask.astype(np.float32)
        empty = np.flatnonzero(mask.sum(axis=1) == 0)
        if empty.size:
            raise ValueError(f"attention_mask rows {empty.tolist()} are all zero (no tokens to speak)")
    valid = mask > 0
    bad = valid & ((ids < 0) | (ids >= config.vocab_size))
    if np.any(bad):
        raise ValueError(f"ids must lie in [0, vocab_size={config.vocab_size}); got "
                         f"{np.unique(ids[bad])[:10].tolist()}")
    ids = np.where(valid, ids, 0).astype(np.int32)   # masked positions never reach the output
    return ids, mask


def check_speaker_ids(speaker_id, batch: int, config: VitsConfig) -> Optional[np.ndarray]:
    """The one speaker validator: None (no conditioning, as transformers), an int or one id per item
    -> None or (B,) int32 ids in [0, num_speakers). Raises ValueError naming the problem."""
    if speaker_id is None:
        return None
    if config.num_speakers <= 1:
        raise ValueError("speaker_id given to a single-speaker model (num_speakers="
                         f"{config.num_speakers}); pass speaker_id=None")
    speakers = _as_int_array(speaker_id, "speaker_id")
    if speakers.ndim == 0:
        speakers = np.full((batch,), speakers)
    if speakers.shape != (batch,):
        raise ValueError(f"speaker_id must be an int or one id per batch item ({batch},), got shape "
                         f"{speakers.shape}")
    if np.any((speakers < 0) | (speakers >= config.num_speakers)):
        raise ValueError(f"speaker_id must lie in [0, {config.num_speakers}), got {speakers.tolist()}")
    return speakers.astype(np.int32)


def _per_item(value, default, batch: int, what: str, positive: bool) -> np.ndarray:
    """A float or one per item -> (B,) float64, checked finite and > 0 (or >= 0)."""
    value = default if value is None else value
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number or one per batch item, got {value!r}") from None
    if array.ndim == 0:
        array = np.full((batch,), array)
    if array.shape != (batch,):
        raise ValueError(f"{what} must be a number or one per batch item ({batch},), got shape "
                         f"{array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{what} must be finite, got {array.tolist()}")
    if np.any(np.abs(array) > np.finfo(np.float32).max):   # the core computes in float32
        raise ValueError(f"{what} must be finite in float32 (|x| <= {np.finfo(np.float32).max:.3g}), "
                         f"got {array.tolist()}")
    if positive and np.any(array <= 0):
        raise ValueError(f"{what} must be > 0, got {array.tolist()}")
    if not positive and np.any(array < 0):
        raise ValueError(f"{what} must be >= 0, got {array.tolist()}")
    return array


def _check_key(key, batch: int) -> jax.Array:
    """One key or one per item (typed, or legacy uint32 (2,) / (B, 2)), checked; default key(0)."""
    if key is None:
        return jax.random.key(0)
    key = key if isinstance(key, jax.Array) else jnp.asarray(key)
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        shape = key.shape
    elif key.dtype == jnp.uint32 and key.ndim in (1, 2) and key.shape[-1] == 2:
        shape = key.shape[:-1]
    else:
        raise ValueError(f"key must be a jax.random.key, or one per batch item; got dtype "
                         f"{key.dtype} shape {key.shape}")
    if shape not in ((), (batch,)):
        raise ValueError(f"key must be one key or one per batch item ({batch},), got shape {shape}")
    return key


def _check_max_frames(max_frames) -> Optional[int]:
    if max_frames is None:
        return None
    if isinstance(max_frames, bool) or not isinstance(max_frames, numbers.Integral) or max_frames <= 0:
        raise ValueError(f"max_frames must be a positive int, got {max_frames!r}")
    return int(max_frames)


def _pad_to(array: np.ndarray, length: int, axis: int = 1) -> np.ndarray:
    """Zero-pads (or cuts) `axis` to `length`, keeping the dtype."""
    array = np.asarray(array)
    if array.shape[axis] >= length:
        return np.take(array, np.arange(length), axis=axis)
    pad = [(0, 0)] * array.ndim
    pad[axis] = (0, length - array.shape[axis])
    return np.pad(array, pad)


def _overflowing(durations, t: int) -> np.ndarray:
    """Rows of device durations (B', Tb) that are non-finite or reach the int32 limit (the
    core's int32 durations saturate there: a non-finite duration arrives as 2**31 - 1)."""
    durations = np.asarray(durations, np.float64)[:, :t]
    with np.errstate(invalid="ignore", over="ignore"):
        return np.flatnonzero(~np.all(np.isfinite(durations), axis=1)
                              | (durations.sum(axis=1) >= 2 ** 31 - 1))


def _host_durations(durations, t: int, explain=None) -> np.ndarray:
    """Device durations (B', Tb) -> host (B', T) float64, checked to fit the int32 lengths.

    explain: () -> str, why they overflow (`_overflow_cause`); without it the message names both
    options that scale the durations."""
    if _overflowing(durations, t).size:
        raise ValueError(explain() if explain is not None else
                         "predicted durations overflow: speaking_rate is too small or "
                         "noise_scale_duration too large")
    return np.asarray(durations, np.float64)[:, :t]


def _overflow_cause(params, encode_args: dict, t: int, b: int) -> str:
    """Which option made the durations overflow, found by encoding again (error path only, same
    program: the options are traced): with noise_scale_duration 0, then also speaking_rate 1."""
    items = [int(i) for i in _overflowing(encode_program(params, **encode_args).durations, t) if i < b]
    rate, noise = encode_args["speaking_rate"], encode_args["noise_scale_duration"]
    values = lambda x: "[" + ", ".join(f"{v:.4g}" for v in np.asarray(x)[items]) + "]"   # noqa: E731
    quiet = dict(encode_args, noise_scale_duration=noise * 0)
    head = f"predicted durations overflow (non-finite or over 2**31 frames) for items {items}"
    if not _overflowing(encode_program(params, **quiet).durations, t).size:
        return (f"{head}: noise_scale_duration={values(noise)} is too large (they fit with "
                "noise_scale_duration=0); lower it")
    if not _overflowing(encode_program(params, **dict(quiet, speaking_rate=rate * 0 + 1)).durations, t).size:
        return f"{head}: speaking_rate={values(rate)} is too small; raise it"
    return (f"{head} even at speaking_rate=1 and noise_scale_duration=0: the model's duration "
            "predictor is broken (check its weights)")


def _check_waveform(waveform: np.ndarray, noise_scale, dtype) -> None:
    """Refuses non-finite samples (the durations are already checked): the prior noise scale or a
    float16 decoder overflowed."""
    bad = np.flatnonzero(~np.all(np.isfinite(waveform), axis=1))
    if bad.size:
        shown = ", ".join(f"{v:.4g}" for v in np.asarray(noise_scale)[bad])
        raise ValueError(f"items {bad.tolist()} rendered non-finite samples: noise_scale=[{shown}] is "
                         "too large"
                         + (f" or the {jnp.dtype(dtype).name} decoder overflowed (try float32)"
                            if jnp.dtype(dtype) != jnp.float32 else ""))


def _check_noise(noise, batch: int, width: int, what: str) -> np.ndarray:
    """(B, L, width) standard normal, checked before any work; L is checked against the tokens (sdp)
    or the frames rendered (prior) once they are known."""
    try:
        noise = np.asarray(noise, np.float32)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be an array of shape ({batch}, length, {width})") from None
    if noise.ndim != 3 or noise.shape[0] != batch or noise.shape[2] != width:
        raise ValueError(f"{what} must have shape ({batch}, length, {width}), got {noise.shape}")
    if not np.all(np.isfinite(noise)):
        raise ValueError(f"{what} must be finite")
    return noise


@jax.jit
def _take_item(tree, index):
    """Row `index` (traced) of every (B, ...) leaf, kept as (1, ...): one small program per batch
    shape (slicing with Python ints would compile one per row)."""
    return jax.tree.map(lambda x: jax.lax.dynamic_slice_in_dim(x, index, 1), tree)


def _first_equal_rows(encode_args: dict, options: dict) -> np.ndarray:
    """(B,) index of the first row whose inputs (ids, mask, key, speaker, rate, noise scales,
    prior noise) equal each row's: a batch filled up with repeats (speak's last batch) renders
    each distinct row once. Identical inputs give identical samples, so this is exact."""
    columns = [np.asarray(encode_args["ids"]), np.asarray(encode_args["attention_mask"]),
               np.asarray(jax.random.key_data(encode_args["key"]))]
    for value in (encode_args["speaking_rate"], encode_args["noise_scale_duration"],
                  encode_args["speaker_id"], encode_args["sdp_noise"], *options.values()):
        if value is not None:
            columns.append(np.asarray(value))
    rows = [b"".join(np.ascontiguousarray(c[i]).tobytes() for c in columns) for i in range(len(columns[0]))]
    first: dict[bytes, int] = {}
    return np.asarray([first.setdefault(row, i) for i, row in enumerate(rows)], np.int64)


def _render_items(params, encoded, key, traced: dict, item_frames: np.ndarray, frames: int,
                  hop: int, dtype, programs=None, same_as: Optional[np.ndarray] = None,
                  done: Optional[Callable[[int, np.ndarray], None]] = None) -> np.ndarray:
    """Stage 2 item by item, each at its own frame bucket -> (B, frames * hop) host waveform.

    On a CPU one item's convolutions already keep every core busy, so a padded batch only adds
    work: every item would be decoded over the longest item's frames (plus the bucket's padding).
    Rendering items one by one decodes each over its own bucket, and the batch-1 programs are the
    same ones single calls use. Each item's result is exactly what a batch-1 call computes; an
    item longer than RENDER_WINDOW_FRAMES is rendered in windows (`_render`).
    same_as: (B,) `_first_equal_rows`; a row equal to an earlier one is copied, not rendered.
    done(i, row): called with each row of the result as soon as it is complete, in item order (all
    items are dispatched first, so item 0 is ready while the others still render).
    """
    out = np.zeros((len(item_frames), int(np.minimum(item_frames, frames).max()) * hop), np.float32)
    same_as = np.arange(len(item_frames)) if same_as is None else same_as
    pending = {}
    for i, needed in enumerate(item_frames):
        if same_as[i] != i:
            continue
        item, item_key, options = _take_item((encoded, key, traced), np.int32(i))
        pending[i] = render_item(params, item, item_key, options, int(needed), frames, dtype,
                                 programs)[0]
    for i, wave in pending.items():
        # A stage whose (kernel - rate) is odd adds samples past frames * hop (see
        # hifigan.output_length); lengths count frames * hop, as transformers', so they are cut.
        wave = np.asarray(wave)[0, :out.shape[1]]
        out[i, :wave.shape[0]] = wave
        for j in np.flatnonzero(same_as == i):
            out[j] = out[i]
            if done is not None:
                done(int(j), out[j])
    return out


def render_item(params, encoded, key, options: dict, needed: int, limit: int, dtype, programs=None):
    """One item's stage 2 (batch of 1) at its own frame bucket, at most `limit` frames ->
    (waveform (1, >= frames * hop), frames rendered). The one per-item renderer on a CPU:
    synthesize's items and corpus synthesis' units both go through it, so they share programs
    and bytes. Dispatched asynchronously unless windowed (past RENDER_WINDOW_FRAMES)."""
    num_frames = min(frame_bucket(int(needed)), limit)
    if options.get("prior_noise") is not None:
        options = dict(options, prior_noise=options["prior_noise"][:, :num_frames])
    return (_render(params, encoded, key, options, num_frames, min(int(needed), num_frames), dtype, programs),
            num_frames)


def _render(params, encoded, key, options: dict, num_frames: int, stop_frame: int, dtype, programs=None):
    """Stage 2 over num_frames frames: one program (a device array, dispatched asynchronously) up to
    RENDER_WINDOW_FRAMES frames, beyond that exact windows of at most RENDER_WINDOW_FRAMES frames
    up to stop_frame (the longest item's end; zeros after), as numpy (B, stop_frame * hop).
    Windows are balanced (k windows of about num / k frames, on the frame grid) so a length just
    over the budget does not decode a nearly empty second window."""
    if num_frames <= RENDER_WINDOW_FRAMES:
        return stage_program(programs, "render", render_program, dict(num_frames=num_frames, dtype=dtype),
                             params, encoded, key, **options)
    count = -(-stop_frame // RENDER_WINDOW_FRAMES)
    window = min(frame_bucket(-(-stop_frame // count)), RENDER_WINDOW_FRAMES)
    return windows.render_chunked(params, encoded, key, num_frames=num_frames, window_frames=window,
                                  stop_frame=stop_frame, dtype=dtype, **options)


def _check_output_size(batch: int, frames: int, hop: int, max_frames, predicted: np.ndarray) -> None:
    """Refuses, before rendering, a waveform larger than MAX_OUTPUT_BYTES, naming its cause."""
    size = batch * frames * hop * 4
    if size <= MAX_OUTPUT_BYTES:
        return
    cause = (f"max_frames={max_frames} lets items render up to {frames} frames" if max_frames is not None
             else f"the predicted durations ask for {int(predicted.max())} frames")
    raise ValueError(
        f"output too large: {batch} item(s) x {frames} frames x {hop} samples x 4 bytes = "
        f"{size / 2 ** 30:.2f} GiB > MAX_OUTPUT_BYTES={MAX_OUTPUT_BYTES} ({cause}; check speaking_rate "
        f"and noise_scale_duration, lower max_frames, or split the batch)")


# ---------------------------------------------------------------------------------------------
# Public API

def _placement(mesh, devices):
    """mesh= (a Mesh or a batch NamedSharding) or devices= -> (batch sharding, replicated) or Nones."""
    where = sharding.placement(mesh, devices)
    return where.split, where.replicated


def _prepare(params, ids, attention_mask, key, speaker_id, speaking_rate, noise_scale,
             noise_scale_duration, config, sdp_noise, prior_noise, mesh, devices):
    """Checks everything on the host before any work; returns (VitsParams, T, B, encode's arguments
    padded to Tb (and to the mesh's batch), render's per-item options, the batch sharding)."""
    tree, config = split_params(params, config)
    ids, mask = _check_ids(ids, attention_mask, config)
    b, t = ids.shape
    split, replicated = _placement(mesh, devices)
    speakers = check_speaker_ids(speaker_id, b, config)
    rate = _per_item(speaking_rate, config.speaking_rate, b, "speaking_rate", positive=True)
    noise_scale = _per_item(noise_scale, config.noise_scale, b, "noise_scale", positive=False)
    noise_scale_duration = _per_item(noise_scale_duration, config.noise_scale_duration, b,
                                     "noise_scale_duration", positive=False)
    rate = rate.astype(np.float32)   # the core computes the length scale 1 / rate in float32
    with np.errstate(over="ignore", divide="ignore"):
        if not np.all(np.isfinite(np.float32(1.0) / rate)) or np.any(rate == 0):
            raise ValueError(f"speaking_rate too small for float32: {rate.tolist()}")
    key = _item_keys_program(_check_key(key, b), b)                    # (B,) typed: one program shape
    tb = bucket(t, MIN_TOKEN_BUCKET)
    if sdp_noise is not None:
        sdp_noise = _check_noise(sdp_noise, b, 2, "sdp_noise")
        if sdp_noise.shape[1] < t:
            raise ValueError(f"sdp_noise covers {sdp_noise.shape[1]} tokens, the input has {t}")
        sdp_noise = _pad_to(sdp_noise, tb)
    if prior_noise is not None:
        prior_noise = _check_noise(prior_noise, b, config.flow_size, "prior_noise")
    place = lambda x: sharding.shard_batch(x, b, split)
    if split is not None:
        tree = jax.device_put(tree, replicated)      # no copy when the params are already there
        key = place(key)
    encode_args = dict(ids=place(_pad_to(ids, tb)), attention_mask=place(_pad_to(mask, tb)), key=key,
                       speaker_id=place(speakers), speaking_rate=place(rate),
                       noise_scale_duration=place(noise_scale_duration.astype(np.float32)),
                       sdp_noise=place(sdp_noise))
    options = dict(speaker_id=encode_args["speaker_id"], noise_scale=place(noise_scale.astype(np.float32)),
                   prior_noise=prior_noise)
    return VitsParams(tree, config), t, b, encode_args, options, split


def predict_durations(params, ids, attention_mask=None, *, key: Optional[jax.Array] = None,
                      speaker_id=None, speaking_rate=None, noise_scale_duration=None,
                      config: Optional[VitsConfig] = None) -> np.ndarray:
    """Frames per token (B, T) int64, as `synthesize(...).durations` with the same arguments.

    Runs only stage 1 of `synthesize` (the same compiled program), so it is cheap: use it to
    plan `max_frames` or to group texts of similar spoken length before batching.
    """
    params, t, b, encode_args, _, _ = _prepare(params, ids, attention_mask, key, speaker_id, speaking_rate,
                                               None, noise_scale_duration, config, None, None, None, None)
    encoded = encode_program(params, **encode_args)
    explain = lambda: _overflow_cause(params, encode_args, t, b)   # noqa: E731
    return _host_durations(encoded.durations, t, explain)[:b].astype(np.int64)


def stage_arguments(params, batch: int, tokens: int, speaker_id=None) -> tuple[VitsParams, dict, dict]:
    """(params, encode's arguments, render's traced options) exactly as synthesize passes them to
    its programs for `batch` items padded to `tokens` (a token bucket), with `speaker_id` (None or
    an id): the exporter's example arguments (synth/exported.py), so an exported program's
    signature is synthesize's by construction. Render's options are per item when `batch` is 1."""
    params, _, _, encode_args, options, _ = _prepare(
        params, np.zeros((batch, tokens), np.int32), None, None, speaker_id, None, None, None, None,
        None, None, None, None)
    return params, encode_args, options


@dataclasses.dataclass(frozen=True)
class Stage1:
    """`encode_checked`'s results: what stage 2 needs, as synthesize prepares it.

    params: VitsParams; encoded: core.Encoded over the token bucket Tb; durations: (B, T) float64
    host frames per token (checked to fit); key: (B,) typed keys; speaker_id: (B,) int32 or None;
    noise_scale: (B,) float32.
    """

    params: VitsParams
    encoded: core.Encoded
    durations: np.ndarray
    key: jax.Array
    speaker_id: Optional[jax.Array]
    noise_scale: jax.Array


def encode_checked(params, ids, attention_mask=None, *, key: Optional[jax.Array] = None,
                   speaker_id=None, speaking_rate=None, noise_scale=None, noise_scale_duration=None,
                   config: Optional[VitsConfig] = None, sdp_noise=None, programs=None) -> Stage1:
    """synthesize's argument checks (the same ValueErrors) and its stage-1 program, for callers that
    render stage 2 themselves (vits_jax.synth.streaming): `core.render` / `windows.render_window` with
    the returned key, speaker_id and noise_scale give synthesize's samples. programs: as synthesize's."""
    params, t, b, encode_args, options, _ = _prepare(params, ids, attention_mask, key, speaker_id,
                                                     speaking_rate, noise_scale, noise_scale_duration,
                                                     config, sdp_noise, None, None, None)
    encoded = _encode(params, encode_args, programs)
    return Stage1(params, encoded, _host_durations(encoded.durations, t)[:b], encode_args["key"],
                  options["speaker_id"], options["noise_scale"])

def synthesize(params, ids, attention_mask=None, *, key: Optional[jax.Array] = None,
               speaker_id=None, speaking_rate=None, noise_scale=None, noise_scale_duration=None,
               max_frames: Optional[int] = None, config: Optional[VitsConfig] = None,
               mesh: Optional[Union[Mesh, NamedSharding]] = None,
               devices: Optional[Sequence[jax.Device]] = None, dtype=None,
               sdp_noise=None, prior_noise=None, programs=None,
               on_item: Optional[Callable[[int, "SynthesisOutput"], None]] = None) -> SynthesisOutput:
    """Token ids -> waveforms, as numpy (the host layer over `vits_jax.generate`).

    params: VitsParams (carries its config) or a plain param dict with `config=`.
    ids: (B, T) or (T,) ints in [0, vocab_size); attention_mask: (B, T) of 0/1 (default all ones).
    key: one jax.random key (item i draws from fold_in(key, i)) or one key per item, shape (B,).
        Default jax.random.key(0), so repeated calls give the same audio.
    speaker_id: None (no speaker conditioning, as transformers), an int, or one id per item.
    speaking_rate, noise_scale, noise_scale_duration: a float or one per item; default from config.
    max_frames: render exactly this many frames (the same samples for any max_frames that holds
        an item). Items predicted longer are cut at max_frames, flagged in `truncated`, and a
        warning is raised. Without it, frames are rounded up to a bucket (at most MAX_FRAMES,
        beyond which items are truncated likewise). A cut item is rendered as if its utterance
        ended there; its `lengths` is max_frames * hop. The returned waveform holds only the
        longest item's frames, so a large max_frames costs nothing past the items' ends.
    mesh: a jax.sharding.Mesh (the batch is split over all its devices) or a NamedSharding for
        the batch axis: data parallel, batch padded to a multiple of the shards, params replicated
        (place them once with `jax.device_put(params, NamedSharding(mesh, P()))` to avoid a copy
        per call), trimmed back. devices: the same over a 1-D mesh of these devices (default: all
        local devices). Each item's result does not change.
    dtype: compute dtype of the decoder (97% of the FLOPs), e.g. jnp.bfloat16; params stay float32.
        Default float32 throughout, the parity reference. Durations never depend on it.
    sdp_noise (B, >=T, 2), prior_noise (B, >=F, Z): standard normal draws replacing the key's (for
        parity tests against transformers); the prior noise must cover the frames rendered.
    programs: exported stage programs (`vits_jax.synth.exported.ExportedPrograms`; a Voice loaded
        from a `vits-jax export` folder passes its own), run for the shapes they cover instead of
        tracing the jitted ones; the same samples. Not used with a mesh (they run on one device).

    Memory: rendering takes ~229 KB per frame and item at MMS-eng size on CPU (XLA's memory
    analysis of the compiled window program: 20.8 MB for 64 frames, 241.0 MB for 1024). Renders
    longer than RENDER_WINDOW_FRAMES (1024) frames go in exact windows of at most that many frames,
    overlapped by the networks' receptive field (vits_jax.core.windows): the same samples to float32
    round-off, at most ~241 MB per item whatever the length (plus the output). The returned waveform must fit
    MAX_OUTPUT_BYTES (1 GiB at 4 bytes per sample): a larger one is refused before any rendering
    with a ValueError naming the option that asked for it (max_frames, or a speaking_rate /
    noise_scale_duration giving very long durations).

    Padded items equal their unpadded selves: the result for an item does not depend on the
    other items, the buckets or `max_frames` (as long as it is not truncated).
    Param leaves given as numpy are copied to the device on every call; pass
    `jax.device_put(params)` to keep them there.
    on_item(i, out): called once per item with its own SynthesisOutput (a batch of one, cut to
        its length) as soon as its audio is complete, before synthesize returns: on a CPU, where
        items render one by one, item 0 arrives while the others still render (the serving engine
        streams each sentence so); elsewhere all arrive after the batch. Items with non-finite
        samples are never passed (synthesize then raises, as without it).
    """
    max_frames = _check_max_frames(max_frames)
    dtype = core.check_dtype(dtype)
    params, t, b, encode_args, options, split = _prepare(
        params, ids, attention_mask, key, speaker_id, speaking_rate, noise_scale, noise_scale_duration,
        config, sdp_noise, prior_noise, mesh, devices)
    config = params.config
    hop = config.hop_length
    explain = lambda: _overflow_cause(params, encode_args, t, b)   # noqa: E731
    prior_noise = options.pop("prior_noise")
    key = encode_args["key"]
    if split is not None:
        programs = None          # exported for one device; a sharded batch runs the jitted programs
    reported: set[int] = set()

    def report(i: int, row: np.ndarray) -> None:        # on_item for item i (durations, frames: below)
        wanted = max(int(durations[i].sum()), 1)
        n = min(wanted, frames) * hop
        row = np.asarray(row)[None, :n]
        if i in reported or not np.all(np.isfinite(row)):
            return
        reported.add(i)
        on_item(i, SynthesisOutput(waveform=row, lengths=np.array([n]), durations=durations[i:i + 1].astype(np.int64),
                                   truncated=np.array([wanted > frames])))

    if max_frames is not None and max_frames <= RENDER_WINDOW_FRAMES and prior_noise is None:
        out = jax.device_get(generate_program(params, **encode_args, noise_scale=options["noise_scale"],
                                               num_frames=max_frames, dtype=dtype))  # one program, one transfer
        frames, waveform = max_frames, out.waveform
        durations = _host_durations(out.durations, t, explain)[:b]
    else:
        encoded = _encode(params, encode_args, programs)
        durations = _host_durations(encoded.durations, t, explain)[:b]    # the one host sync
        item_frames = np.maximum(durations.sum(axis=1), 1).astype(np.int64)
        frames = max_frames or min(frame_bucket(int(item_frames.max())), MAX_FRAMES)
        stop = int(np.minimum(item_frames, frames).max())                  # frames returned
        _check_output_size(b, stop, hop, max_frames, item_frames)
        if prior_noise is not None:
            needed = int(np.minimum(item_frames, frames).max())
            if prior_noise.shape[1] < needed:
                raise ValueError(f"prior_noise covers {prior_noise.shape[1]} frames, {needed} are rendered")
            prior_noise = _pad_to(prior_noise, frames)
        options["prior_noise"] = sharding.shard_batch(prior_noise, b, split)
        if split is None and b > 1 and max_frames is None and jax.default_backend() == "cpu":
            waveform = _render_items(params, encoded, key, options, item_frames, frames, hop, dtype,
                                     programs, _first_equal_rows(encode_args, options),
                                     done=None if on_item is None else report)
        else:
            waveform = _render(params, encoded, key, options, frames, stop, dtype, programs)

    predicted = np.maximum(durations.sum(axis=1), 1).astype(np.int64)      # (B,) frames wanted
    truncated = predicted > frames
    rendered = np.minimum(predicted, frames)
    if np.any(truncated):
        warnings.warn(
            f"items {np.flatnonzero(truncated).tolist()} need {predicted[truncated].tolist()} frames, "
            f"more than the {frames} rendered; their audio is cut (see SynthesisOutput.truncated)",
            stacklevel=2)
    waveform = np.asarray(waveform)[:b, :int(rendered.max()) * hop]
    for i in range(b if on_item is not None else 0):
        report(i, waveform[i])          # those not reported as they rendered
    _check_waveform(waveform, options["noise_scale"], dtype)
    return SynthesisOutput(waveform=waveform, lengths=rendered * hop,
                           durations=durations.astype(np.int64), truncated=truncated)
