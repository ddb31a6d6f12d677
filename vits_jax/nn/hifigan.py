"""HiFi-GAN decoder: latent frames -> waveform (transformers' HifiGanResidualBlock, VitsHifiGan).

Shapes: B batch, F frames, Z flow_size, S samples, C channels at a stage.
S = F * prod(upsample_rates) when every (kernel - rate) is even; a stage whose (kernel - rate) is
odd adds one sample (transformers' padding (kernel - rate) // 2 rounds down), see `output_length`.

Residual blocks: config.resblock "1" is transformers' block (convs1/convs2 pairs), "2" is HiFi-GAN
V2/V3's block (one dilated conv per dilation), which Piper's low/medium voices use.

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

from ..config import VitsConfig
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


class HifiGanResidualBlock2(nn.Module):
    """HiFi-GAN V2/V3's ResBlock2: x = x + conv_d(leaky_relu(x)) for each dilation d (one `convs` list,
    kernel `kernel_size`, as the original HiFi-GAN / VITS `ResBlock2`)."""

    channels: int
    kernel_size: int = 3
    dilation: Sequence[int] = (1, 3)
    leaky_relu_slope: float = 0.1
    dtype: Any = jnp.float32        # compute dtype; params stay float32

    def setup(self):
        k = self.kernel_size
        self.convs = [conv1d(self.channels, k, d, same_padding(k, d), dtype=self.dtype) for d in self.dilation]

    def __call__(self, x, mask=None):
        """x: (B, S, C), mask (B, S, 1) or None -> (B, S, C); past the mask the output is
        undefined (callers mask it before the next conv)."""
        for conv in self.convs:
            x = x + conv(_masked(leaky_relu(x, self.leaky_relu_slope), mask))
        return x


RESIDUAL_BLOCKS = {"1": HifiGanResidualBlock, "2": HifiGanResidualBlock2}


def upsampled_length(length, rate: int, kernel_size: int):
    """Samples out of one transposed-conv stage for `length` in: (length - 1) * rate - 2p + k with
    p = (k - rate) // 2, i.e. length * rate, plus one when (k - rate) is odd. Works on ints and arrays."""
    return (length - 1) * rate - 2 * ((kernel_size - rate) // 2) + kernel_size


def output_length(config: VitsConfig, frames):
    """Waveform samples the decoder gives for `frames` latent frames (int or array), as transformers'
    VitsHifiGan. Equals frames * hop_length unless a stage's (kernel - rate) is odd."""
    for rate, k in zip(config.upsample_rates, config.upsample_kernel_sizes):
        frames = upsampled_length(frames, rate, k)
    return frames


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
        block = RESIDUAL_BLOCKS[c.resblock]
        self.resblocks = [
            block(c.upsample_initial_channel // 2 ** (i + 1), k, d, c.leaky_relu_slope, self.dtype)
            for i in range(len(c.upsample_rates))
            for k, d in zip(c.resblock_kernel_sizes, c.resblock_dilation_sizes)]
        self.conv_post = conv1d(1, 7, padding=3, use_bias=False, dtype=self.dtype)
        if c.speaker_embedding_size != 0:
            self.cond = conv1d(c.upsample_initial_channel, 1, dtype=self.dtype)

    def __call__(self, spectrogram, global_conditioning=None, lengths: Optional[jax.Array] = None):
        """spectrogram (B, F, Z), global_conditioning (B, 1, E), lengths (B,) valid frames.

        Returns the waveform (B, S) float32, S = output_length(config, F) samples, exactly transformers'
        (frames * hop_length, plus the extra samples of stages whose (kernel - rate) is odd).
        transformers reports `sequence_lengths` = frames * hop_length regardless, and so do vits-jax's
        callers; item b's valid samples here are output_length(config, lengths[b]).
        """
        c = self.config
        spectrogram = spectrogram.astype(self.dtype)
        num_kernels = len(c.resblock_kernel_sizes)

        def mask_for(valid, x):
            # valid: (B,) samples of each item at x's resolution, as the item alone would have.
            if valid is None:
                return None
            positions = jnp.arange(x.shape[1])
            return (positions[None, :] < valid[:, None])[..., None].astype(x.dtype)

        valid = lengths
        mask = mask_for(valid, spectrogram)
        x = self.conv_pre(spectrogram)                                         # (B, F, C0)
        if global_conditioning is not None:
            x = x + self.cond(global_conditioning)
        for i, (rate, k) in enumerate(zip(c.upsample_rates, c.upsample_kernel_sizes)):
            x = self.upsampler[i](_masked(leaky_relu(x, c.leaky_relu_slope), mask))
            valid = None if valid is None else upsampled_length(valid, rate, k)
            mask = mask_for(valid, x)                                          # x: (B, S_i, C0/2^(i+1))
            res = self.resblocks[i * num_kernels](x, mask)
            for j in range(1, num_kernels):
                res = res + self.resblocks[i * num_kernels + j](x, mask)
            x = res / num_kernels
        # transformers' final leaky_relu uses torch's default slope, 0.01, not the config's.
        x = self.conv_post(_masked(leaky_relu(x, 0.01), mask))                 # (B, S, 1)
        # float32 for the float32 / bfloat16 / float16 policies; float64 (x64, gradient checks) stays
        return _masked(jnp.tanh(x), mask)[..., 0].astype(jnp.promote_types(self.dtype, jnp.float32))
