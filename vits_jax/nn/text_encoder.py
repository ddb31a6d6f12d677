"""Text encoder: token embedding, relative-position transformer, prior projection.

Mirrors transformers' VitsFeedForward, VitsEncoderLayer, VitsEncoder and VitsTextEncoder.
Shapes: B batch, T tokens, C hidden_size, F ffn_dim, Z flow_size. Masks are (B, T, 1) floats.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax.numpy as jnp

from .attention import VitsAttention
from ..config import VitsConfig
from .layers import ACTIVATIONS, conv1d, layer_norm


class VitsFeedForward(nn.Module):
    hidden_size: int
    ffn_dim: int
    kernel_size: int
    activation: str = "relu"
    dropout: float = 0.0

    def setup(self):
        # Same asymmetric padding as transformers: (k-1)//2 left, k//2 right.
        pad = ((self.kernel_size - 1) // 2, self.kernel_size // 2)
        self.conv_1 = conv1d(self.ffn_dim, self.kernel_size, padding=pad)
        self.conv_2 = conv1d(self.hidden_size, self.kernel_size, padding=pad)
        self.drop = nn.Dropout(self.dropout)

    def __call__(self, x, padding_mask, deterministic: bool = True):
        """x: (B, T, C), padding_mask: (B, T, 1) -> (B, T, C)."""
        x = self.conv_1(x * padding_mask)                                      # (B, T, F)
        x = self.drop(ACTIVATIONS[self.activation](x), deterministic=deterministic)
        x = self.conv_2(x * padding_mask)                                      # (B, T, C)
        return x * padding_mask


class VitsEncoderLayer(nn.Module):
    config: VitsConfig

    def setup(self):
        c = self.config
        self.attention = VitsAttention(c.hidden_size, c.num_attention_heads, c.window_size,
                                       c.use_bias, c.attention_dropout)
        self.layer_norm = layer_norm(c.layer_norm_eps)
        self.feed_forward = VitsFeedForward(c.hidden_size, c.ffn_dim, c.ffn_kernel_size,
                                            c.hidden_act, c.activation_dropout)
        self.final_layer_norm = layer_norm(c.layer_norm_eps)
        self.drop = nn.Dropout(c.hidden_dropout)

    def __call__(self, x, padding_mask, key_mask, deterministic: bool = True):
        h = self.attention(x, key_mask, deterministic=deterministic)
        x = self.layer_norm(x + self.drop(h, deterministic=deterministic))
        h = self.feed_forward(x, padding_mask, deterministic=deterministic)
        return self.final_layer_norm(x + self.drop(h, deterministic=deterministic))


class VitsEncoder(nn.Module):
    config: VitsConfig

    def setup(self):
        self.layers = [VitsEncoderLayer(self.config) for _ in range(self.config.num_hidden_layers)]

    def __call__(self, x, padding_mask, deterministic: bool = True):
        """x: (B, T, C), padding_mask: (B, T, 1) -> (B, T, C). LayerDrop is not applied."""
        key_mask = padding_mask[..., 0] > 0                                    # (B, T)
        x = x * padding_mask
        for layer in self.layers:
            x = layer(x, padding_mask, key_mask, deterministic=deterministic)
        return x * padding_mask


class VitsTextEncoder(nn.Module):
    config: VitsConfig

    def setup(self):
        c = self.config
        self.embed_tokens = nn.Embed(c.vocab_size, c.hidden_size)
        self.encoder = VitsEncoder(c)
        self.project = conv1d(2 * c.flow_size, 1)

    def __call__(self, input_ids, padding_mask, deterministic: bool = True):
        """input_ids: (B, T) int, padding_mask: (B, T, 1).

        Returns hidden (B, T, C), prior_means (B, T, Z), prior_log_variances (B, T, Z).
        """
        c = self.config
        x = self.embed_tokens(input_ids) * math.sqrt(c.hidden_size)           # (B, T, C)
        x = self.encoder(x, padding_mask, deterministic=deterministic)
        stats = self.project(x) * padding_mask                                 # (B, T, 2Z)
        means, log_variances = jnp.split(stats, 2, axis=-1)
        return x, means, log_variances
