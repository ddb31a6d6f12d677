"""The pure core: token ids -> waveforms as functions of arrays, traceable under jit, vmap and sharding.

Shapes: B batch, T tokens, F frames (`num_frames`, static), Z flow_size, S samples (F * hop).

    generate(params, ids, attention_mask, key, *, num_frames, ...) -> GenerateOutput
      = render(params, encode(params, ids, attention_mask, key, ...), key, num_frames=..., ...)

`params` is a `VitsParams`: its config travels as static pytree metadata, so the only static
argument is `num_frames` (and the decoder's compute `dtype`, a policy fixed per program). Every
option is a traced scalar or one value per item (None: the config's default), so changing a rate,
a noise scale, a speaker or a key never recompiles.

Noise. `key` is one key (item i draws from fold_in(key, i)) or one key per item, shape (B,);
legacy uint32 PRNGKeys, (2,) or (B, 2), are accepted too. Within an item, the noise of token (or
frame) t is `normal(fold_in(fold_in(item_key, stream), t))` (`positional_normal`): it depends on
neither the padded length nor the batch nor the frame window, so an utterance sounds the same
alone, in any padded batch, with any `num_frames` that holds it, and rendered in windows.

Nothing here checks values (a traced function cannot raise on them): `vits_jax.synthesize` is the
host layer that validates inputs with named errors, picks bucketed shapes and returns numpy.
"""

from __future__ import annotations

from typing import Optional

import flax.struct
import jax
import jax.numpy as jnp
from jax import export as _export

from ..nn import alignment
from ..nn.model import VitsModel
from .noise import PRIOR_STREAM, SDP_STREAM, item_keys, positional_normal, slice_noise
from .params import tree_and_config



@flax.struct.dataclass
class Encoded:
    """Stage 1's results, everything `render` needs besides the params and the key.

    durations:     (B, T) float32 frames per token (0 where masked), before any truncation.
    means:         (B, T, Z) prior means per token.
    log_variances: (B, T, Z) prior log standard deviations per token (transformers' name).
    lengths:       (B,) int32 frames of each utterance, at least 1 (sum of its durations).
    """

    durations: jax.Array
    means: jax.Array
    log_variances: jax.Array
    lengths: jax.Array


@flax.struct.dataclass
class GenerateOutput:
    """waveform (B, num_frames * hop) float32, zero past each item's length; lengths (B,) int32
    samples rendered; durations (B, T) int32 predicted frames per token, before any truncation;
    truncated (B,) bool, True where the predicted frames exceed num_frames."""

    waveform: jax.Array
    lengths: jax.Array
    durations: jax.Array
    truncated: jax.Array


for _cls in (Encoded, GenerateOutput):      # flax dataclasses: no static fields (aux is ())
    _export.register_pytree_node_serialization(
        _cls, serialized_name=f"vits_jax.{_cls.__name__}", serialize_auxdata=lambda aux: b"",
        deserialize_auxdata=lambda data: ())


COMPUTE_DTYPES = ("float32", "bfloat16", "float16")   # decoder compute dtypes


def check_dtype(dtype) -> jnp.dtype:
    """The decoder's compute dtype (None: float32) -> a jnp.dtype, one of COMPUTE_DTYPES; a static
    argument, so checked here (ValueError naming it): integer or bool dtypes would give other
    audio or NaN, float64 is not a decoder policy."""
    try:
        checked = jnp.dtype(jnp.float32 if dtype is None else dtype)
    except TypeError:
        checked = None
    if checked is None or checked.name not in COMPUTE_DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(COMPUTE_DTYPES)} (the decoder's compute "
                         f"dtype), got {dtype!r}")
    return checked


def per_item(value, default: float, batch: int) -> jax.Array:
    """None (the config's default), a scalar or one per item -> (B,) float32."""
    value = default if value is None else value
    return jnp.broadcast_to(jnp.asarray(value, jnp.float32), (batch,))


def speaker_ids(speaker_id, batch: int) -> Optional[jax.Array]:
    """None (no conditioning, as transformers), a scalar or one id per item -> (B,) int32."""
    if speaker_id is None:
        return None
    return jnp.broadcast_to(jnp.asarray(speaker_id, jnp.int32), (batch,))


def encode(params, ids: jax.Array, attention_mask: Optional[jax.Array], key: jax.Array, *,
           speaker_id=None, speaking_rate=None, noise_scale_duration=None,
           sdp_noise: Optional[jax.Array] = None) -> Encoded:
    """Stage 1: ids (B, T) int, attention_mask (B, T) 0/1 (None: all ones) -> Encoded.

    The length scale is 1 / speaking_rate in float32. sdp_noise (B, >=T, 2) standard normal
    replaces the key's draws for the duration predictor (e.g. transformers' own, in parity tests).
    """
    tree, config = tree_and_config(params)
    b, t = ids.shape
    mask = jnp.ones((b, t), jnp.float32) if attention_mask is None else jnp.asarray(attention_mask, jnp.float32)
    if sdp_noise is None:
        sdp_noise = positional_normal(item_keys(key, b), SDP_STREAM, 0, t, 2)      # (B, T, 2)
    else:
        sdp_noise = slice_noise(sdp_noise, t, 2, "sdp_noise")
    length_scale = 1.0 / per_item(speaking_rate, config.speaking_rate, b)
    noise_scale_duration = per_item(noise_scale_duration, config.noise_scale_duration, b)
    durations, means, log_variances = VitsModel(config).apply(
        {"params": tree}, jnp.asarray(ids, jnp.int32), mask[..., None], speaker_ids(speaker_id, b), sdp_noise,
        noise_scale_duration[:, None, None], length_scale[:, None, None], method=VitsModel.durations)
    return Encoded(durations, means, log_variances, alignment.output_lengths(durations))


def render(params, encoded: Encoded, key: jax.Array, *, num_frames: int, speaker_id=None,
           noise_scale=None, prior_noise: Optional[jax.Array] = None, start_frame=0,
           dtype=jnp.float32) -> jax.Array:
    """Stage 2: Encoded -> waveform (B, num_frames * hop) float32, zero past each item's length.

    Renders frames start_frame .. start_frame + num_frames - 1 (start_frame may be traced), as if
    the utterance began and ended at the window's edges: items longer than the window are cut
    there. prior_noise (B, >=num_frames, Z) standard normal (the window's rows) replaces the key's
    draws. dtype: the decoder's compute dtype (static).
    """
    tree, config = tree_and_config(params)
    dtype = check_dtype(dtype)
    b = encoded.durations.shape[0]
    if prior_noise is None:
        prior_noise = positional_normal(item_keys(key, b), PRIOR_STREAM, start_frame, num_frames,
                                        config.flow_size)
    else:
        prior_noise = slice_noise(prior_noise, num_frames, config.flow_size, "prior_noise")
    noise_scale = per_item(noise_scale, config.noise_scale, b)
    waveform, _, _ = VitsModel(config, decoder_dtype=dtype).apply(
        {"params": tree}, encoded.means, encoded.log_variances, encoded.durations, speaker_ids(speaker_id, b),
        prior_noise, noise_scale[:, None, None], num_frames, start_frame, method=VitsModel.render)
    return waveform


def finish(encoded: Encoded, waveform: jax.Array, num_frames: int, hop: int) -> GenerateOutput:
    """Stage 1's durations and a render of num_frames frames -> GenerateOutput."""
    return GenerateOutput(waveform=waveform,
                          lengths=jnp.minimum(encoded.lengths, num_frames) * hop,
                          durations=encoded.durations.astype(jnp.int32),
                          truncated=encoded.lengths > num_frames)


def generate(params, ids: jax.Array, attention_mask: Optional[jax.Array], key: jax.Array, *,
             num_frames: int, speaker_id=None, speaking_rate=None, noise_scale=None,
             noise_scale_duration=None, sdp_noise: Optional[jax.Array] = None,
             prior_noise: Optional[jax.Array] = None, dtype=jnp.float32) -> GenerateOutput:
    """ids (B, T) -> GenerateOutput over exactly num_frames frames (static): `encode` then `render`.

    Pure and traceable, e.g. `jax.jit(functools.partial(generate, num_frames=256))`, `jax.vmap`
    over keys, or with the batch axis sharded (`NamedSharding`); equal to `vits_jax.synthesize`
    with `max_frames=num_frames` for the same key. speaker_id, speaking_rate, noise_scale,
    noise_scale_duration: scalars or one per item (None: the config's; no speaker conditioning).
    """
    _, config = tree_and_config(params)
    encoded = encode(params, ids, attention_mask, key, speaker_id=speaker_id, speaking_rate=speaking_rate,
                     noise_scale_duration=noise_scale_duration, sdp_noise=sdp_noise)
    waveform = render(params, encoded, key, num_frames=num_frames, speaker_id=speaker_id,
                      noise_scale=noise_scale, prior_noise=prior_noise, dtype=dtype)
    return finish(encoded, waveform, num_frames, config.hop_length)
