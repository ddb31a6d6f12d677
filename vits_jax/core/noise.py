"""Noise as a function of position: the draws of an utterance do not depend on padding, batch or window.

Shapes: B batch, L positions (tokens or frames), W width (channels).

Item i of a batch draws from `fold_in(key, i)` (or its own key); within an item, position t of
noise stream s is `normal(fold_in(fold_in(item_key, s), t))`. So an utterance sounds the same
alone, in any padded batch, with any frame count that holds it, and rendered in windows.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

SDP_STREAM, PRIOR_STREAM, POSTERIOR_STREAM = 0, 1, 2
# noise streams: duration predictor (per token), prior (per frame), posterior encoder (per frame)


def item_keys(key: jax.Array, batch: int) -> jax.Array:
    """One key (item i gets fold_in(key, i)) or one per item -> typed keys (B,). Traceable."""
    key = jnp.asarray(key)
    if not jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.wrap_key_data(key)        # legacy PRNGKey(s): (2,) or (B, 2) uint32
    if key.ndim == 0:
        return jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(batch, dtype=jnp.uint32))
    if key.shape != (batch,):
        raise ValueError(f"key must be one key or one per batch item ({batch},), got shape {key.shape}")
    return key


def positional_normal(keys: jax.Array, stream: int, start, length: int, width: int) -> jax.Array:
    """keys (B,) -> (B, length, width) standard normal for positions start .. start+length-1.

    Row t depends only on (key, stream, start + t), so any window of positions draws exactly the
    rows the whole utterance would. `start` may be traced; `length` and `width` are static."""
    def item(key):
        key = jax.random.fold_in(key, stream)
        positions = jnp.arange(length) + start
        return jax.vmap(lambda t: jax.random.normal(jax.random.fold_in(key, t), (width,)))(positions)
    return jax.vmap(item)(keys)


def slice_noise(noise, length: int, width: int, what: str) -> jax.Array:
    """(B, >=length, width) -> (B, length, width) float32; shapes are static, so checked at trace."""
    if noise.ndim != 3 or noise.shape[1] < length or noise.shape[2] != width:
        raise ValueError(f"{what} must have shape (batch, >={length}, {width}), got {noise.shape}")
    return jnp.asarray(noise[:, :length], jnp.float32)
