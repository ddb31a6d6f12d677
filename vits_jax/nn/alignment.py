"""Durations -> frame alignment with a static number of frames.

Shapes: B batch, T tokens, F frames (static), C channels.
transformers builds a (B, F, T) one-hot path and multiplies; each frame picks exactly one token,
so gathering that token's row gives bit-identical values without the O(F*T*C) matmul.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def durations_from_log(log_durations: jax.Array, padding_mask: jax.Array, length_scale) -> jax.Array:
    """log_durations (B, T, 1), padding_mask (B, T, 1) -> frames per token (B, T), float."""
    return jnp.ceil(jnp.exp(log_durations) * padding_mask * length_scale)[..., 0]


def output_lengths(durations: jax.Array) -> jax.Array:
    """durations (B, T) -> frames per item (B,) int32, at least 1 (as transformers)."""
    return jnp.maximum(jnp.sum(durations, axis=-1), 1).astype(jnp.int32)


def frame_token_index(durations: jax.Array, num_frames: int, start=0):
    """For each frame start .. start+F-1, the token it belongs to. Returns index (B, F) int32 and
    valid (B, F) bool. `start` (a window's first frame) may be traced."""
    ends = jnp.cumsum(durations, axis=-1)                                      # (B, T)
    frames = (jnp.arange(num_frames) + start).astype(durations.dtype)          # (F,)
    index = jnp.sum(ends[:, None, :] <= frames[None, :, None], axis=-1)        # (B, F)
    valid = frames[None, :] < ends[:, -1:]
    index = jnp.minimum(index, durations.shape[-1] - 1).astype(jnp.int32)
    return index, valid


def expand(values: jax.Array, durations: jax.Array, num_frames: int, start=0) -> jax.Array:
    """values (B, T, C), durations (B, T) -> (B, F, C) for frames start .. start+F-1: each token's
    row repeated, zero past the end."""
    index, valid = frame_token_index(durations, num_frames, start)
    out = jnp.take_along_axis(values, index[..., None], axis=1)                # (B, F, C)
    return out * valid[..., None].astype(values.dtype)


def frame_mask(lengths: jax.Array, num_frames: int, dtype=jnp.float32) -> jax.Array:
    """lengths (B,) -> (B, F, 1) mask of the first `lengths` positions (frames or tokens)."""
    return (jnp.arange(num_frames)[None, :] < lengths[:, None])[..., None].astype(dtype)
