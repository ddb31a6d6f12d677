"""Random training segments (VITS' commons.rand_slice_segments / slice_segments), jittable.

Shapes: B batch, F frames, C channels, S samples, L segment length in frames, hop samples per frame.
The decoder is trained on a window of L latent frames per item; the real audio and mel it is
compared with are the matching windows (starts x hop samples, L x hop long).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def random_starts(key: jax.Array, lengths: jax.Array, segment_frames: int) -> jax.Array:
    """lengths (B,) valid frames -> starts (B,) int32, uniform over [0, lengths - L].

    As the original, `floor(u * (lengths - L + 1))`; items shorter than L start at 0 (their
    window runs into padding).
    """
    num_starts = jnp.maximum(lengths.astype(jnp.int32) - segment_frames + 1, 1)   # (B,)
    u = jax.random.uniform(key, lengths.shape)
    return jnp.minimum(jnp.floor(u * num_starts).astype(jnp.int32), num_starts - 1)


def slice_segments(x: jax.Array, starts: jax.Array, size: int) -> jax.Array:
    """x (B, T, ...) -> (B, size, ...): x[i, starts[i]:starts[i] + size].

    `size` must not exceed T (static check). Starts past T - size would be clamped by
    lax.dynamic_slice; random_starts never produces them for lengths <= T.
    """
    if size > x.shape[1]:
        raise ValueError(f"segment of {size} steps is longer than the input's {x.shape[1]}")
    return jax.vmap(lambda row, start: jax.lax.dynamic_slice_in_dim(row, start, size, axis=0))(x, starts)


def slice_audio(waveform: jax.Array, starts: jax.Array, segment_frames: int, hop_length: int) -> jax.Array:
    """waveform (B, S) -> (B, L * hop), the samples under latent frames [start, start + L)."""
    return slice_segments(waveform, starts * hop_length, segment_frames * hop_length)


def random_segments(key: jax.Array, x: jax.Array, lengths: jax.Array, segment_frames: int):
    """rand_slice_segments: x (B, F, C), lengths (B,) -> (segments (B, L, C), starts (B,))."""
    starts = random_starts(key, lengths, segment_frames)
    return slice_segments(x, starts, segment_frames), starts
