"""synthesize(): token ids -> waveforms, as jitted programs over bucketed static shapes.

Shapes: B batch, T tokens (as given), Tb token bucket, F frames (a bucket or `max_frames`),
Z flow_size, S samples (F * hop).

Programs. Everything static under jit is a shape or the config:
- With `max_frames`, one program does the whole call: stage 1 (text encoder + duration
  predictor), the alignment and stage 2 (flow + decoder) over exactly `max_frames` frames.
- Without it, two programs: `_encode_stage` returns the durations and the token priors, the host
  reads the longest item's frames and rounds them up to a frame bucket, and `_render_stage`
  renders that many frames. Both paths give the same samples for the same key.

Buckets. Token lengths are padded to `bucket(T, MIN_TOKEN_BUCKET)`, frames to
`frame_bucket(F)`. Token buckets are 2^k and 3 * 2^(k-1) (two steps per octave: at most 50%
padding, 11 token buckets for 1 to 400 tokens); frame buckets take eight steps per octave (at most
12.5% padding), since the decoder's cost follows the frames rendered. The batch size is kept as given. The speaking
rate, noise scales, speaker ids and keys are traced arrays: changing them never recompiles.

Noise. Item i draws from `fold_in(key, i)` (one key) or from `key[i]` (one key per item). Within an
item, the noise of token (or frame) t is `normal(fold_in(fold_in(item_key, stream), t))`, so it
depends on neither the bucket nor the batch: an utterance sounds the same alone or in any padded
batch, with any `max_frames` that holds it.
"""

from __future__ import annotations

import dataclasses
import functools
import numbers
import warnings
from typing import Any, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from . import sharding
from .checkpoint import split_params
from .config import VitsConfig
from .model import VitsModel, cast_decoder

MAX_TOKENS = 2048          # longest accepted input (tokens per item)
MAX_FRAMES = 2 ** 16       # most frames rendered without `max_frames` (~17 min at MMS's 16 kHz)
MIN_TOKEN_BUCKET = 16
MIN_FRAME_BUCKET = 32
FRAME_STEPS_PER_OCTAVE = 8
_SDP_STREAM, _PRIOR_STREAM = 0, 1


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
# Traced code

def _positional_normal(keys: jax.Array, stream: int, length: int, width: int) -> jax.Array:
    """keys (B,) -> (B, length, width) standard normal; row t depends only on (key, stream, t)."""
    def item(key):
        key = jax.random.fold_in(key, stream)
        return jax.vmap(lambda t: jax.random.normal(jax.random.fold_in(key, t), (width,)))(
            jnp.arange(length))
    return jax.vmap(item)(keys)


def _encode(tree, ids, mask, speakers, keys, sdp_noise, length_scale, noise_scale_duration,
            config: VitsConfig):
    """ids (B, Tb), mask (B, Tb) -> durations (B, Tb) float, means and log variances (B, Tb, Z)."""
    if sdp_noise is None:
        sdp_noise = _positional_normal(keys, _SDP_STREAM, ids.shape[1], 2)    # (B, Tb, 2)
    return VitsModel(config).apply(
        {"params": tree}, ids, mask[..., None], speakers, sdp_noise,
        noise_scale_duration[:, None, None], length_scale[:, None, None], method=VitsModel.durations)


def _render(tree, means, log_variances, durations, speakers, keys, prior_noise, noise_scale,
            config: VitsConfig, num_frames: int, dtype=None):
    """Token priors (B, Tb, Z), durations (B, Tb) -> waveform (B, F*hop).

    dtype: the decoder's compute dtype (e.g. bfloat16; params stay float32 and are cast here).
    Durations, alignment and the flow always run in float32, so lengths never change with it.
    """
    if prior_noise is None:
        prior_noise = _positional_normal(keys, _PRIOR_STREAM, num_frames, config.flow_size)
    waveform, _, _ = VitsModel(config).apply(
        {"params": cast_decoder(tree, dtype)}, means, log_variances, durations, speakers, prior_noise,
        noise_scale[:, None, None], num_frames, dtype, method=VitsModel.render)
    return waveform


@functools.partial(jax.jit, static_argnames=("config",))
def _encode_stage(tree, ids, mask, speakers, keys, sdp_noise, length_scale, noise_scale_duration, *,
                  config):
    durations, means, log_variances = _encode(tree, ids, mask, speakers, keys, sdp_noise,
                                              length_scale, noise_scale_duration, config)
    return durations, means, log_variances


@functools.partial(jax.jit, static_argnames=("config", "num_frames", "dtype"))
def _render_stage(tree, means, log_variances, durations, speakers, keys, prior_noise, noise_scale, *,
                  config, num_frames, dtype=None):
    return _render(tree, means, log_variances, durations, speakers, keys, prior_noise, noise_scale,
                   config, num_frames, dtype)


@functools.partial(jax.jit, static_argnames=("config", "num_frames", "dtype"))
def _synthesize_fixed(tree, ids, mask, speakers, keys, sdp_noise, prior_noise, length_scale,
                      noise_scale, noise_scale_duration, *, config, num_frames, dtype=None):
    durations, means, log_variances = _encode(tree, ids, mask, speakers, keys, sdp_noise,
                                              length_scale, noise_scale_duration, config)
    waveform = _render(tree, means, log_variances, durations, speakers, keys, prior_noise,
                       noise_scale, config, num_frames, dtype)
    return waveform, durations


@jax.jit
def _fold_items(key, items):
    return jax.vmap(lambda i: jax.random.fold_in(key, i))(items)


_PROGRAMS = {"encode": _encode_stage, "render": _render_stage, "fixed": _synthesize_fixed}


def compilation_counts() -> dict[str, int]:
    """Programs compiled so far per jitted stage ("encode", "render", "fixed"), for tests."""
    return {name: fn._cache_size() for name, fn in _PROGRAMS.items()}


# ---------------------------------------------------------------------------------------------
# Host-side checks

def _as_int_array(value, what: str) -> np.ndarray:
    array = np.asarray(value)
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
        mask = np.asarray(attention_mask)
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


def _check_speakers(speaker_id, batch: int, config: VitsConfig):
    if speaker_id is None:
        return None  # as transformers: no speaker conditioning, even on a multi-speaker model
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
    if positive and np.any(array <= 0):
        raise ValueError(f"{what} must be > 0, got {array.tolist()}")
    if not positive and np.any(array < 0):
        raise ValueError(f"{what} must be >= 0, got {array.tolist()}")
    return array


def _item_keys(key, batch: int) -> jax.Array:
    """One key (item i gets fold_in(key, i)) or one per item -> typed keys (B,)."""
    if key is None:
        key = jax.random.key(0)
    key = jnp.asarray(key) if not isinstance(key, jax.Array) else key
    if not jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        if key.dtype != jnp.uint32 or key.ndim not in (1, 2) or key.shape[-1] != 2:
            raise ValueError(f"key must be a jax.random.key, or one per batch item; got dtype "
                             f"{key.dtype} shape {key.shape}")
        key = jax.random.wrap_key_data(key)      # legacy PRNGKey(s): (2,) or (B, 2) uint32
    if key.ndim == 0:
        return _fold_items(key, jnp.arange(batch, dtype=jnp.uint32))
    if key.shape != (batch,):
        raise ValueError(f"key must be one key or one per batch item ({batch},), got shape {key.shape}")
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


def _host_durations(durations, t: int) -> np.ndarray:
    """Device durations (B, Tb) float -> host (B, T) float64, checked to fit the int32 lengths."""
    durations = np.asarray(durations, np.float64)[:, :t]
    if not np.all(np.isfinite(durations)) or durations.sum(axis=1).max() >= 2 ** 31:
        raise ValueError("predicted durations overflow: speaking_rate is too small")
    return durations


def _check_noise(noise, batch: int, length: int, width: int, what: str) -> np.ndarray:
    noise = np.asarray(noise, np.float32)
    if noise.ndim != 3 or noise.shape[0] != batch or noise.shape[2] != width or noise.shape[1] < length:
        raise ValueError(f"{what} must have shape ({batch}, >={length}, {width}), got {noise.shape}")
    return noise


def _render_items(stage2: dict, item_frames: np.ndarray, frames: int, hop: int) -> np.ndarray:
    """Stage 2 item by item, each at its own frame bucket -> (B, frames * hop) host waveform.

    On a CPU one item's convolutions already keep every core busy, so a padded batch only adds
    work: every item would be decoded over the longest item's frames (plus the bucket's padding).
    Rendering items one by one decodes each over its own bucket, and the batch-1 programs are the
    same ones single calls use. Each item's result is exactly what a batch-1 call computes.
    """
    out = np.zeros((len(item_frames), frames * hop), np.float32)
    pending = []
    for i, needed in enumerate(item_frames):
        num_frames = min(frame_bucket(int(needed)), frames)
        item = {k: v if k in ("tree", "config", "dtype") or v is None else v[i:i + 1]
                for k, v in stage2.items()}
        if item["prior_noise"] is not None:
            item["prior_noise"] = item["prior_noise"][:, :num_frames]
        pending.append(_render_stage(num_frames=num_frames, **item))   # dispatched asynchronously
    for i, wave in enumerate(pending):
        wave = np.asarray(wave)[0]
        out[i, :wave.shape[0]] = wave
    return out


# ---------------------------------------------------------------------------------------------
# Public API

def _prepare(params, ids, attention_mask, key, speaker_id, speaking_rate, noise_scale,
             noise_scale_duration, config, sdp_noise):
    """Checks everything on the host; returns the config, T, and stage 1's arguments padded to Tb."""
    tree, config = split_params(params, config)
    ids, mask = _check_ids(ids, attention_mask, config)
    b, t = ids.shape
    speakers = _check_speakers(speaker_id, b, config)
    rate = _per_item(speaking_rate, config.speaking_rate, b, "speaking_rate", positive=True)
    noise_scale = _per_item(noise_scale, config.noise_scale, b, "noise_scale", positive=False)
    noise_scale_duration = _per_item(noise_scale_duration, config.noise_scale_duration, b,
                                     "noise_scale_duration", positive=False)
    with np.errstate(over="ignore"):  # as transformers: 1 / rate in double, then used in float32
        length_scale = (1.0 / rate).astype(np.float32)
    if not np.all(np.isfinite(length_scale)):
        raise ValueError(f"speaking_rate too small for float32: {rate.tolist()}")
    keys = _item_keys(key, b)
    tb = bucket(t, MIN_TOKEN_BUCKET)
    if sdp_noise is not None:
        sdp_noise = jnp.asarray(_pad_to(_check_noise(sdp_noise, b, t, 2, "sdp noise"), tb))
    stage1 = dict(
        tree=tree, ids=jnp.asarray(_pad_to(ids, tb)), mask=jnp.asarray(_pad_to(mask, tb)),  # (B, Tb)
        speakers=None if speakers is None else jnp.asarray(speakers), keys=keys, sdp_noise=sdp_noise,
        length_scale=jnp.asarray(length_scale),
        noise_scale_duration=jnp.asarray(noise_scale_duration, jnp.float32))
    return config, t, stage1, jnp.asarray(noise_scale, jnp.float32)


def predict_durations(params, ids, attention_mask=None, *, key: Optional[jax.Array] = None,
                      speaker_id=None, speaking_rate=None, noise_scale_duration=None,
                      config: Optional[VitsConfig] = None) -> np.ndarray:
    """Frames per token (B, T) int64, as `synthesize(...).durations` with the same arguments.

    Runs only stage 1 of `synthesize` (the same compiled program), so it is cheap: use it to
    plan `max_frames` or to group texts of similar spoken length before batching.
    """
    config, t, stage1, _ = _prepare(params, ids, attention_mask, key, speaker_id, speaking_rate,
                                    None, noise_scale_duration, config, None)
    return _host_durations(_encode_stage(**stage1, config=config)[0], t).astype(np.int64)


def synthesize(params, ids, attention_mask=None, *, key: Optional[jax.Array] = None,
               speaker_id=None, speaking_rate=None, noise_scale=None, noise_scale_duration=None,
               max_frames: Optional[int] = None, config: Optional[VitsConfig] = None,
               devices: Optional[Sequence[jax.Device]] = None, dtype=None,
               _noise: Optional[tuple[Any, Any]] = None) -> SynthesisOutput:
    """Token ids -> waveforms.

    params: VitsParams (carries its config) or a plain param dict with `config=`.
    ids: (B, T) or (T,) ints in [0, vocab_size); attention_mask: (B, T) of 0/1 (default all ones).
    key: one jax.random key (item i draws from fold_in(key, i)) or one key per item, shape (B,).
        Default jax.random.key(0), so repeated calls give the same audio.
    speaker_id: None (no speaker conditioning, as transformers), an int, or one id per item.
    speaking_rate, noise_scale, noise_scale_duration: a float or one per item; default from config.
    max_frames: render exactly this many frames in one program. Items predicted longer are cut at
        max_frames, flagged in `truncated`, and a warning is raised. Without it, frames are rounded
        up to a bucket (at most MAX_FRAMES, beyond which items are truncated likewise). A cut item
        is rendered as if its utterance ended there; its `lengths` is max_frames * hop.
    devices: devices to run on (default: all local devices). With several, the batch is split
        over them (data parallel: padded to a multiple of their number, params replicated) and
        trimmed back; each item's result does not change.
    dtype: compute dtype of the decoder (97% of the FLOPs), e.g. jnp.bfloat16; params stay float32.
        Default (None) is float32 throughout, the parity reference. Durations never depend on it.
    _noise: (sdp_noise (B, >=T, 2), prior_noise (B, >=F, Z)) standard normal, replacing the key's
        draws (for parity tests against transformers); the prior noise must cover the frames rendered.

    Padded items equal their unpadded selves: the result for an item does not depend on the
    other items, the buckets or `max_frames` (as long as it is not truncated).
    Param leaves given as numpy are copied to the device on every call; pass
    `jax.device_put(params)` to keep them there.
    """
    max_frames = _check_max_frames(max_frames)
    config, t, stage1, scale_prior = _prepare(
        params, ids, attention_mask, key, speaker_id, speaking_rate, noise_scale, noise_scale_duration,
        config, None if _noise is None else _noise[0])
    b = stage1["ids"].shape[0]
    prior_noise = None if _noise is None else _check_noise(_noise[1], b, 1, config.flow_size, "prior noise")
    mesh = sharding.batch_mesh(devices)
    if mesh is not None:
        stage1 = {name: sharding.replicate(x, mesh) if name == "tree" else sharding.shard_batch(x, b, mesh)
                  for name, x in stage1.items()}
        scale_prior = sharding.shard_batch(scale_prior, b, mesh)
    dtype = None if dtype is None or jnp.dtype(dtype) == jnp.float32 else jnp.dtype(dtype)
    traced = dict(tree=stage1["tree"], speakers=stage1["speakers"], keys=stage1["keys"],
                  noise_scale=scale_prior, config=config, dtype=dtype)

    if max_frames is not None:
        frames = max_frames
        if prior_noise is not None:
            prior_noise = sharding.shard_batch(jnp.asarray(_pad_to(prior_noise, frames)), b, mesh)
        waveform, durations = _synthesize_fixed(
            **stage1, prior_noise=prior_noise, noise_scale=scale_prior, config=config, num_frames=frames,
            dtype=dtype)
    else:
        durations, means, log_variances = _encode_stage(**stage1, config=config)
        item_frames = np.maximum(_host_durations(durations, t)[:b].sum(axis=1), 1).astype(np.int64)
        frames = min(frame_bucket(int(item_frames.max())), MAX_FRAMES)
        if prior_noise is not None:
            prior_noise = sharding.shard_batch(jnp.asarray(_pad_to(prior_noise, frames)), b, mesh)
        stage2 = dict(means=means, log_variances=log_variances, durations=durations,
                      prior_noise=prior_noise, **traced)
        if mesh is None and b > 1 and jax.default_backend() == "cpu":
            waveform = _render_items(stage2, item_frames, frames, config.hop_length)
        else:
            waveform = _render_stage(num_frames=frames, **stage2)

    durations = _host_durations(durations, t)[:b]                          # (B, T)
    predicted = np.maximum(durations.sum(axis=1), 1).astype(np.int64)      # (B,) frames wanted
    truncated = predicted > frames
    rendered = np.minimum(predicted, frames)
    if prior_noise is not None and np.shape(_noise[1])[1] < rendered.max():
        raise ValueError(f"prior noise covers {np.shape(_noise[1])[1]} frames, {rendered.max()} rendered")
    if np.any(truncated):
        warnings.warn(
            f"items {np.flatnonzero(truncated).tolist()} need {predicted[truncated].tolist()} frames, "
            f"more than the {frames} rendered; their audio is cut (see SynthesisOutput.truncated)",
            stacklevel=2)
    hop = config.hop_length
    waveform = np.asarray(waveform)[:b, :int(rendered.max()) * hop]
    return SynthesisOutput(waveform=waveform, lengths=rendered * hop,
                           durations=durations.astype(np.int64), truncated=truncated)
