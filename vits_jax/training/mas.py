"""Monotonic alignment search (VITS' `monotonic_align.maximum_path`), jitted and batched.

Shapes: B batch, T tokens, F frames. Masks are (B, T, 1) / (B, F, 1) (or (B, T) / (B, F)) and
must be prefix masks: an item's lengths are their sums.

The original is a Cython double loop per item. Here the dynamic programme is a `lax.scan` over
frames that updates every token of every item at once, and the backtrack is a second scan over
frames in reverse; all shapes are static. Results (tie-breaking included) equal the original's:

  forward:   value[y, x] = ll[y, x] + max(value[y-1, x-1], value[y-1, x])   inside the band
             max(0, t_x + y - t_y) <= x < min(t_x, y + 1), with -1e9 standing in for the
             cells outside it (and 0 for the virtual cell before (0, 0));
  backtrack: from x = t_x - 1 at the last frame, mark (y, x), then step to x - 1 when x == y or
             value[y-1, x] < value[y-1, x-1] (strictly: a tie stays on the same token).

An alignment needs t_x <= t_y (at least one frame per token); items with more tokens than frames
get a monotonic path that is not a valid alignment (the original reads out of bounds there).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

NEG = -1e9  # the original's max_neg_val


def _lengths(mask: jax.Array, size: int) -> jax.Array:
    return jnp.sum(mask.reshape(mask.shape[0], size), axis=-1).astype(jnp.int32)


@jax.jit
def maximum_path(log_likelihood: jax.Array, text_mask: jax.Array, frame_mask: jax.Array) -> jax.Array:
    """log_likelihood (B, T, F) -> hard alignment (B, T, F), 1 where frame f belongs to token t.

    Computed in float32 (as the original) and returned in the input's dtype.
    """
    b, t, f = log_likelihood.shape
    ll = jnp.moveaxis(log_likelihood.astype(jnp.float32), 2, 0)              # (F, B, T)
    t_x = _lengths(text_mask, t)[:, None]                                     # (B, 1)
    t_y = _lengths(frame_mask, f)[:, None]                                    # (B, 1)
    x = jnp.arange(t)[None, :]                                                # (1, T)
    neg = jnp.full((b, 1), NEG, jnp.float32)

    def forward(prev, inputs):                                                # prev: value[y-1] (B, T)
        y, ll_y = inputs
        first = jnp.where(y == 0, jnp.zeros_like(neg), neg)
        diagonal = jnp.concatenate([first, prev[:, :-1]], axis=1)             # value[y-1, x-1]
        in_band = (x >= jnp.maximum(0, t_x + y - t_y)) & (x < jnp.minimum(t_x, y + 1))
        value = jnp.where(in_band, ll_y + jnp.maximum(diagonal, prev), NEG)   # (B, T)
        # Backtrack decision for a path standing at (y, x): move to x - 1 on the previous frame?
        move = (x > 0) & ((x == y) | (prev < diagonal))                      # (B, T) bool
        return value, move

    frames = jnp.arange(f)
    _, moves = jax.lax.scan(forward, jnp.full((b, t), NEG, jnp.float32), (frames, ll))  # (F, B, T)

    def backward(index, inputs):                                              # index (B,)
        y, move_y = inputs
        active = y < t_y[:, 0]                                                # (B,)
        row = (x == index[:, None]) & active[:, None]                         # (B, T)
        step = jnp.take_along_axis(move_y, index[:, None].clip(0), axis=1)[:, 0] & active
        return index - step.astype(index.dtype), row

    _, path = jax.lax.scan(backward, t_x[:, 0] - 1, (frames, moves), reverse=True)  # (F, B, T)
    return jnp.moveaxis(path, 0, 2).astype(log_likelihood.dtype)              # (B, T, F)


def gaussian_log_likelihood(latents: jax.Array, means: jax.Array, log_stddevs: jax.Array) -> jax.Array:
    """log N(latents[f] | means[t], exp(log_stddevs[t])^2) summed over channels: (B, T, F).

    latents (B, F, Z) are the flowed posterior samples, means / log_stddevs (B, T, Z) the text
    encoder's prior (transformers calls the latter `prior_log_variances`; it is a log standard
    deviation). The expansion of VITS' `neg_cent`, as four matmul-friendly terms.
    """
    inv_var = jnp.exp(-2.0 * log_stddevs)                                     # (B, T, Z)
    term1 = jnp.sum(-0.5 * math.log(2 * math.pi) - log_stddevs, axis=-1)[..., None]  # (B, T, 1)
    term2 = jnp.einsum("bfz,btz->btf", -0.5 * latents ** 2, inv_var)          # (B, T, F)
    term3 = jnp.einsum("bfz,btz->btf", latents, means * inv_var)
    term4 = jnp.sum(-0.5 * means ** 2 * inv_var, axis=-1)[..., None]          # (B, T, 1)
    return term1 + term2 + term3 + term4
