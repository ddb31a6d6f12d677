"""Residual coupling flow of the prior (transformers' VitsResidualCouplingLayer / Block).

Mean-only affine couplings (log-scale 0), each followed by a channel flip.
Shapes: B batch, F frames, Z flow_size, E speaker_embedding_size.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from ..config import VitsConfig
from .layers import conv1d
from .wavenet import wavenet_from_config


class VitsResidualCouplingLayer(nn.Module):
    config: VitsConfig

    def setup(self):
        c = self.config
        self.conv_pre = conv1d(c.hidden_size, 1)
        self.wavenet = wavenet_from_config(c, c.prior_encoder_num_wavenet_layers)
        self.conv_post = conv1d(c.flow_size // 2, 1)

    def __call__(self, x, padding_mask, global_conditioning=None, reverse: bool = False,
                 deterministic: bool = True):
        """x: (B, F, Z) -> (B, F, Z). The log-determinant is 0 (mean-only), so it is not returned."""
        half = self.config.flow_size // 2
        first, second = x[..., :half], x[..., half:]
        h = self.conv_pre(first) * padding_mask
        h = self.wavenet(h, padding_mask, global_conditioning, deterministic=deterministic)
        mean = self.conv_post(h) * padding_mask
        if not reverse:
            second = mean + second * padding_mask
        else:
            second = (second - mean) * padding_mask
        return jnp.concatenate([first, second], axis=-1)


class VitsResidualCouplingBlock(nn.Module):
    config: VitsConfig

    def setup(self):
        self.flows = [VitsResidualCouplingLayer(self.config)
                      for _ in range(self.config.prior_encoder_num_flows)]

    def __call__(self, x, padding_mask, global_conditioning=None, reverse: bool = False,
                 deterministic: bool = True):
        """x: (B, F, Z) -> (B, F, Z); reverse maps prior latents to decoder input."""
        if not reverse:
            for flow in self.flows:
                x = flow(x, padding_mask, global_conditioning, deterministic=deterministic)[..., ::-1]
        else:
            for flow in reversed(self.flows):
                x = flow(x[..., ::-1], padding_mask, global_conditioning, reverse=True,
                         deterministic=deterministic)
        return x
