"""Posterior encoder: linear spectrogram -> latent z (transformers' VitsPosteriorEncoder).

Used for training only. Shapes: B batch, F frames, S spectrogram_bins, C hidden_size, Z flow_size.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from ..config import VitsConfig
from .layers import conv1d
from .wavenet import wavenet_from_config


class VitsPosteriorEncoder(nn.Module):
    config: VitsConfig

    def setup(self):
        c = self.config
        self.conv_pre = conv1d(c.hidden_size, 1)
        self.wavenet = wavenet_from_config(c, c.posterior_encoder_num_wavenet_layers)
        self.conv_proj = conv1d(2 * c.flow_size, 1)

    def __call__(self, spectrogram, padding_mask, global_conditioning=None, *, noise,
                 deterministic: bool = True):
        """spectrogram (B, F, S), padding_mask (B, F, 1), noise (B, F, Z) standard normal.

        Returns sampled latents, means and log standard deviations, each (B, F, Z).
        """
        x = self.conv_pre(spectrogram) * padding_mask
        x = self.wavenet(x, padding_mask, global_conditioning, deterministic=deterministic)
        stats = self.conv_proj(x) * padding_mask
        mean, log_stddev = jnp.split(stats, 2, axis=-1)
        sampled = (mean + noise * jnp.exp(log_stddev)) * padding_mask
        return sampled, mean, log_stddev
