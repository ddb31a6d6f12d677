"""Non-causal WaveNet with gated activations and global conditioning (transformers' VitsWaveNet).

Shared by the flow's coupling layers and the posterior encoder.
Shapes: B batch, T frames, C hidden_size, E speaker_embedding_size, L layers.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from ..config import VitsConfig
from .layers import conv1d, same_padding


class VitsWaveNet(nn.Module):
    hidden_size: int
    num_layers: int
    kernel_size: int
    dilation_rate: int = 1
    speaker_embedding_size: int = 0
    dropout: float = 0.0

    def setup(self):
        c = self.hidden_size
        if self.speaker_embedding_size != 0:
            self.cond_layer = conv1d(2 * c * self.num_layers, 1)
        in_layers, res_skip_layers = [], []
        for i in range(self.num_layers):
            dilation = self.dilation_rate ** i
            in_layers.append(conv1d(2 * c, self.kernel_size, dilation, same_padding(self.kernel_size, dilation)))
            # The last layer only feeds the skip path.
            res_skip_layers.append(conv1d(2 * c if i < self.num_layers - 1 else c, 1))
        self.in_layers, self.res_skip_layers = in_layers, res_skip_layers
        self.drop = nn.Dropout(self.dropout)

    def __call__(self, x, padding_mask, global_conditioning=None, deterministic: bool = True):
        """x: (B, T, C), padding_mask (B, T, 1), global_conditioning (B, 1, E) -> (B, T, C)."""
        c = self.hidden_size
        outputs = jnp.zeros_like(x)
        if global_conditioning is not None:
            global_conditioning = self.cond_layer(global_conditioning)       # (B, 1, 2CL)
        for i in range(self.num_layers):
            h = self.in_layers[i](x)                                           # (B, T, 2C)
            if global_conditioning is not None:
                h = h + global_conditioning[..., 2 * c * i:2 * c * (i + 1)]
            acts = jnp.tanh(h[..., :c]) * jax.nn.sigmoid(h[..., c:])            # (B, T, C)
            acts = self.drop(acts, deterministic=deterministic)
            res_skip = self.res_skip_layers[i](acts)
            if i < self.num_layers - 1:
                x = (x + res_skip[..., :c]) * padding_mask
                outputs = outputs + res_skip[..., c:]
            else:
                outputs = outputs + res_skip
        return outputs * padding_mask


def wavenet_from_config(config: VitsConfig, num_layers: int) -> VitsWaveNet:
    """The WaveNet of the flow's couplings and of the posterior encoder: the config's hidden size,
    kernel, dilation rate, speaker embedding and dropout, with `num_layers` layers."""
    return VitsWaveNet(config.hidden_size, num_layers, config.wavenet_kernel_size, config.wavenet_dilation_rate,
                       config.speaker_embedding_size, config.wavenet_dropout)
