"""HiFi-GAN decoder: latent frames -> waveform (transformers' HifiGanResidualBlock, VitsHifiGan).

Shapes: B batch, F frames, Z flow_size, S samples (F * prod(upsample_rates)), C channels at a stage.

Padding: given `lengths` (valid frames per item), every conv's input is multiplied by the mask at
its resolution, so positions past an item's end are zeros exactly as the conv's zero padding would
be in an unpadded run. A padded batch item therefore equals the item computed alone (transformers
lets padded frames leak into each item's last samples). The multiply rides in the same
elementwise pass as the leaky ReLU before each conv, so it costs no extra sweep over memory.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from .config import VitsConfig
from .layers import ConvTranspose1d, conv1d, leaky_relu, same_padding


def _masked(x, mask):
    return x if mask is None else x * mask


class HifiGanResidualBlock(nn.Module):
    channels: int
    kernel_size: int = 3
    dilation: Sequence[int] = (1, 3, 5)
    leaky_relu_slope: float = 0.1
    dtype: Any = jnp.float32        # compute dtype; params stay float32

    def setup(self):
        k = self.kernel_size
        self.convs1 = [conv1d(self.channels, k, d, same_padding(k, d), dtype=self.dtype) for d in self.dilation]
        self.convs2 = [conv1d(self.channels, k, 1, same_padding(k, 1), dtype=self.dtype) for _ in self.dilation]

    def __call__(self, x, mask=None):
        """x: (B, S, C), mask (B, S, 1) or None -> (B, S, C); past the mask the output is
        undefined (callers mask it before the next conv)."""
        act = lambda y: _masked(leaky_relu(y, self.leaky_relu_slope), mask)
        for conv1, conv2 in zip(self.convs1, self.convs2):
            x = x + conv2(act(conv1(act(x))))
        return x


class VitsHifiGan(nn.Module):
    """dtype: the compute dtype (e.g. bfloat16; 97% of the model's FLOPs are here). Params stay
    float32 and are cast inside the convs, so their gradients are float32; the waveform is float32."""

    config: VitsConfig
    dtype: Any = jnp.float32

    def setup(self):
        c = self.config
        self.conv_pre = conv1d(c.upsample_initial_channel, 7, padding=3, dtype=self.dtype)
        self.upsampler = [
            ConvTranspose1d(c.upsample_initial_channel // 2 ** (i + 1), k, rate, (k - rate) // 2)
            for i, (rate, k) in enumerate(zip(c.upsample_rates, c.upsample_kernel_sizes))]
        self.resblocks = [
            HifiGanResidualBlock(c.upsample_initial_channel // 2 ** (i + 1), k, d, c.leaky_relu_slope, self.dtype)
            for i in range(len(c.upsample_rates))
            for k, d in zip(c.resblock_kernel_sizes, c.resblock_dilation_sizes)]
        self.conv_post = conv1d(1, 7, padding=3, use_bias=False, dtype=self.dtype)
        if c.speaker_embedding_size != 0:
            self.cond = conv1d(c.upsample_initial_channel, 1, dtype=self.dtype)

    def __call__(self, spectrogram, global_conditioning=None, lengths: Optional[jax.Array] = None):
        """spectrogram (B, F, Z), global_conditioning (B, 1, E), lengths (B,) valid frames.

        Returns the waveform (B, S) float32.
        """
        c = self.config
        spectrogram = spectrogram.astype(self.dtype)
        num_kernels = len(c.resblock_kernel_sizes)

        def mask_at(hop):
            if lengths is None:
                return None
            positions = jnp.arange(spectrogram.shape[1] * hop)
            return (positions[None, :] < (lengths[:, None] * hop))[..., None].astype(spectrogram.dtype)

        hop = 1
        mask = mask_at(hop)
        x = self.conv_pre(spectrogram)                                         # (B, F, C0)
        if global_conditioning is not None:
            x = x + self.cond(global_conditioning)
        for i, rate in enumerate(c.upsample_rates):
            x = self.upsampler[i](_masked(leaky_relu(x, c.leaky_relu_slope), mask))
            hop *= rate
            mask = mask_at(hop)                                                # x: (B, F*hop, C0/2^(i+1))
            res = self.resblocks[i * num_kernels](x, mask)
            for j in range(1, num_kernels):
                res = res + self.resblocks[i * num_kernels + j](x, mask)
            x = res / num_kernels
        # transformers' final leaky_relu uses torch's default slope, 0.01, not the config's.
        x = self.conv_post(_masked(leaky_relu(x, 0.01), mask))                 # (B, S, 1)
        return _masked(jnp.tanh(x), mask)[..., 0].astype(jnp.float32)
