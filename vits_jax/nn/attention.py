"""Multi-head self-attention with relative position embeddings (transformers' VitsAttention).

Shapes: B batch, T tokens, H heads, D head dim, C = H*D channels, R = 2T-1 relative offsets.
The relative helpers are pure functions of static lengths, usable under jit and vmap.
"""

from __future__ import annotations

from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp


def relative_embeddings(embeddings: jax.Array, length: int, window_size: int) -> jax.Array:
    """(2W+1, D) table -> (2T-1, D): offsets -(T-1)..T-1, zero beyond the window."""
    pad = max(length - (window_size + 1), 0)
    if pad:
        embeddings = jnp.pad(embeddings, ((pad, pad), (0, 0)))
    start = max((window_size + 1) - length, 0)
    return embeddings[start:start + 2 * length - 1]


def relative_to_absolute(x: jax.Array) -> jax.Array:
    """(..., T, 2T-1) logits indexed by offset -> (..., T, T) indexed by key position."""
    *lead, t, _ = x.shape
    no_pad = [(0, 0)] * len(lead)
    x = jnp.pad(x, no_pad + [(0, 0), (0, 1)])                # (..., T, 2T)
    x = x.reshape(*lead, t * 2 * t)
    x = jnp.pad(x, no_pad + [(0, t - 1)])                    # (..., (T+1)(2T-1))
    x = x.reshape(*lead, t + 1, 2 * t - 1)
    return x[..., :t, t - 1:]


def absolute_to_relative(x: jax.Array) -> jax.Array:
    """(..., T, T) weights indexed by key position -> (..., T, 2T-1) indexed by offset."""
    *lead, t, _ = x.shape
    no_pad = [(0, 0)] * len(lead)
    x = jnp.pad(x, no_pad + [(0, 0), (0, t - 1)])            # (..., T, 2T-1)
    x = x.reshape(*lead, t * (2 * t - 1))
    x = jnp.pad(x, no_pad + [(t, 0)])                        # (..., 2T*T)
    return x.reshape(*lead, t, 2 * t)[..., 1:]


def attention_probs(q, k, emb_rel_k, key_mask, window_size):
    """q, k: (B, T, H, D), q already scaled; key_mask: (B, T) bool or None -> (B, H, T, T)."""
    t = q.shape[1]
    logits = jnp.einsum("bqhd,bkhd->bhqk", q, k)                               # (B, H, T, T)
    if window_size is not None:
        rel_k = relative_embeddings(emb_rel_k, t, window_size)                 # (R, D)
        logits = logits + relative_to_absolute(jnp.einsum("bqhd,rd->bhqr", q, rel_k))
    if key_mask is not None:
        # transformers adds finfo.min to masked logits; selecting gives the same softmax.
        logits = jnp.where(key_mask[:, None, None, :], logits, jnp.finfo(logits.dtype).min)
    probs = jax.nn.softmax(logits, axis=-1)
    return probs


def attend(probs, v, emb_rel_v, window_size):
    """probs (B, H, T, T), v (B, T, H, D) -> (B, T, H, D)."""
    t = v.shape[1]
    out = jnp.einsum("bhqk,bkhd->bqhd", probs, v)
    if window_size is not None:
        rel_v = relative_embeddings(emb_rel_v, t, window_size)                 # (R, D)
        out = out + jnp.einsum("bhqr,rd->bqhd", absolute_to_relative(probs), rel_v)
    return out


class VitsAttention(nn.Module):
    hidden_size: int
    num_heads: int
    window_size: Optional[int] = 4
    use_bias: bool = True
    dropout: float = 0.0

    def setup(self):
        self.head_dim = self.hidden_size // self.num_heads
        self.q_proj = nn.Dense(self.hidden_size, use_bias=self.use_bias)
        self.k_proj = nn.Dense(self.hidden_size, use_bias=self.use_bias)
        self.v_proj = nn.Dense(self.hidden_size, use_bias=self.use_bias)
        self.out_proj = nn.Dense(self.hidden_size, use_bias=self.use_bias)
        if self.window_size:
            init = nn.initializers.normal(self.head_dim ** -0.5)
            shape = (2 * self.window_size + 1, self.head_dim)
            self.emb_rel_k = self.param("emb_rel_k", init, shape)
            self.emb_rel_v = self.param("emb_rel_v", init, shape)
        self.attn_dropout = nn.Dropout(self.dropout)

    def __call__(self, x: jax.Array, key_mask: jax.Array | None = None,
                 deterministic: bool = True) -> jax.Array:
        """x: (B, T, C); key_mask: (B, T) bool, True where a token is real. Returns (B, T, C)."""
        b, t, _ = x.shape
        split = lambda y: y.reshape(b, t, self.num_heads, self.head_dim)       # (B, T, H, D)
        q = split(self.q_proj(x) * self.head_dim ** -0.5)
        k = split(self.k_proj(x))
        v = split(self.v_proj(x))
        window = self.window_size or None
        rel_k = self.emb_rel_k if window else None
        rel_v = self.emb_rel_v if window else None
        probs = attention_probs(q, k, rel_k, key_mask, window)
        probs = self.attn_dropout(probs, deterministic=deterministic)
        out = attend(probs, v, rel_v, window).reshape(b, t, self.hidden_size)
        return self.out_proj(out)
