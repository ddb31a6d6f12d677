"""VITS' discriminator: one scale discriminator plus period discriminators (2, 3, 5, 7, 11).

Mirrors the original VITS `models.py` (DiscriminatorS, DiscriminatorP, MultiPeriodDiscriminator),
channels-last. Convolutions are weight-normalised as there (`use_spectral_norm=False`, the VITS
default; the spectral-norm variant is not provided): each conv holds `weight_g` (out,) and
`weight_v` (kernel..., in/groups, out) and uses kernel = g * v / ||v||, the norm over all axes but
the output one, so checkpoints from the original load without folding.

Shapes: B batch, S samples, P period, H = ceil(S / P) rows of a period discriminator, C channels.
Feature maps: scale discriminator (B, S_l, C_l); period discriminator (B, H_l, P, C_l), the
layout of torch's (B, C_l, H_l, P) moved channels-last. Logits are flattened per item in the
original's order: (B, S_L) and (B, H_L * P).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ..nn.layers import leaky_relu
from ..voice.files import read_weights
from ..voice.mapper import map_weights
from ..voice.tables import DISCRIMINATOR


@dataclasses.dataclass(frozen=True)
class DiscriminatorConfig:
    """Layer widths of the original VITS discriminator; `scaled(d)` divides them for small runs."""

    periods: tuple[int, ...] = (2, 3, 5, 7, 11)
    period_channels: tuple[int, ...] = (32, 128, 512, 1024, 1024)
    period_kernel_size: int = 5
    period_stride: int = 3
    scale_channels: tuple[int, ...] = (16, 64, 256, 1024, 1024, 1024)
    scale_kernel_sizes: tuple[int, ...] = (15, 41, 41, 41, 41, 5)
    scale_strides: tuple[int, ...] = (1, 4, 4, 4, 4, 1)
    scale_groups: tuple[int, ...] = (1, 4, 16, 64, 256, 1)
    leaky_relu_slope: float = 0.1

    def __post_init__(self):
        n = len(self.scale_channels)
        if not (len(self.scale_kernel_sizes) == len(self.scale_strides) == len(self.scale_groups) == n):
            raise ValueError("scale_channels, scale_kernel_sizes, scale_strides and scale_groups "
                             "must have the same length")
        in_channels = 1
        for out, groups in zip(self.scale_channels, self.scale_groups):
            if in_channels % groups or out % groups:
                raise ValueError(f"groups={groups} must divide the conv's channels ({in_channels} -> {out})")
            in_channels = out

    def scaled(self, divisor: int) -> "DiscriminatorConfig":
        """Every width divided by `divisor` (at least 1), groups too, for tests and tiny models."""
        return dataclasses.replace(
            self,
            period_channels=tuple(max(1, c // divisor) for c in self.period_channels),
            scale_channels=tuple(max(1, c // divisor) for c in self.scale_channels),
            scale_groups=tuple(max(1, g // divisor) for g in self.scale_groups))


def _torch_uniform(fan_in: int):
    """torch's default Conv init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases."""
    bound = 1.0 / np.sqrt(fan_in)
    return lambda key, shape, dtype=jnp.float32: jax.random.uniform(key, shape, dtype, -bound, bound)


class WeightNormConv(nn.Module):
    """torch's weight_norm(ConvNd) with explicit zero padding, channels-last (1-D or 2-D).

    x (B, *spatial, in) -> (B, *spatial', features).
    """

    features: int
    kernel_size: Sequence[int]
    strides: Sequence[int]
    padding: Sequence[tuple[int, int]]
    groups: int = 1

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        in_features = x.shape[-1]
        fan_in = in_features // self.groups * int(np.prod(self.kernel_size))
        shape = (*self.kernel_size, in_features // self.groups, self.features)
        axes = tuple(range(len(shape) - 1))
        v = self.param("weight_v", _torch_uniform(fan_in), shape)
        g = self.param("weight_g", lambda key, s: jnp.sqrt(jnp.sum(v ** 2, axis=axes)), (self.features,))
        bias = self.param("bias", _torch_uniform(fan_in), (self.features,))
        kernel = g * v / jnp.sqrt(jnp.sum(v ** 2, axis=axes, keepdims=True))
        spatial = "W" if len(self.kernel_size) == 1 else "HW"
        y = jax.lax.conv_general_dilated(
            x, kernel.astype(x.dtype), window_strides=tuple(self.strides), padding=list(self.padding),
            feature_group_count=self.groups,
            dimension_numbers=(f"N{spatial}C", f"{spatial}IO", f"N{spatial}C"))
        return y + bias.astype(x.dtype)


class PeriodDiscriminator(nn.Module):
    """DiscriminatorP: the waveform folded into rows of `period` samples, 2-D convs (k, 1)."""

    period: int
    config: DiscriminatorConfig = DiscriminatorConfig()

    def setup(self):
        c = self.config
        k, pad = c.period_kernel_size, (c.period_kernel_size - 1) // 2
        n = len(c.period_channels)
        self.convs = [WeightNormConv(ch, (k, 1), (c.period_stride if i < n - 1 else 1, 1),
                                     ((pad, pad), (0, 0)))
                      for i, ch in enumerate(c.period_channels)]
        self.conv_post = WeightNormConv(1, (3, 1), (1, 1), ((1, 1), (0, 0)))

    def __call__(self, waveform: jax.Array):
        """waveform (B, S) -> logits (B, H_L * P), feature maps [(B, H_l, P, C_l)]."""
        b, s = waveform.shape
        p = self.period
        if s % p:  # as the original: reflect-pad on the right to a multiple of the period
            waveform = jnp.pad(waveform, ((0, 0), (0, p - s % p)), mode="reflect")
        x = waveform.reshape(b, -1, p, 1)                                      # (B, H, P, 1)
        fmaps = []
        for conv in self.convs:
            x = leaky_relu(conv(x), self.config.leaky_relu_slope)
            fmaps.append(x)
        x = self.conv_post(x)                                                  # (B, H_L, P, 1)
        fmaps.append(x)
        return x.reshape(b, -1), fmaps


class ScaleDiscriminator(nn.Module):
    """DiscriminatorS: strided grouped 1-D convs on the raw waveform."""

    config: DiscriminatorConfig = DiscriminatorConfig()

    def setup(self):
        c = self.config
        self.convs = [WeightNormConv(ch, (k,), (s,), (((k - 1) // 2, (k - 1) // 2),), g)
                      for ch, k, s, g in zip(c.scale_channels, c.scale_kernel_sizes, c.scale_strides,
                                             c.scale_groups)]
        self.conv_post = WeightNormConv(1, (3,), (1,), ((1, 1),))

    def __call__(self, waveform: jax.Array):
        """waveform (B, S) -> logits (B, S_L), feature maps [(B, S_l, C_l)]."""
        x = waveform[..., None]                                                # (B, S, 1)
        fmaps = []
        for conv in self.convs:
            x = leaky_relu(conv(x), self.config.leaky_relu_slope)
            fmaps.append(x)
        x = self.conv_post(x)
        fmaps.append(x)
        return x.reshape(x.shape[0], -1), fmaps


class MultiPeriodDiscriminator(nn.Module):
    """The original's MultiPeriodDiscriminator: [scale] + [period p for p in periods].

    Called on one batch of waveforms (B, S); to score real and generated audio together,
    concatenate them along the batch (there is no batch statistic, so that is exact).
    Returns a list of logits (one per discriminator) and a list of feature-map lists.
    """

    config: DiscriminatorConfig = DiscriminatorConfig()

    def setup(self):
        self.discriminators = [ScaleDiscriminator(self.config)] + [
            PeriodDiscriminator(p, self.config) for p in self.config.periods]

    def __call__(self, waveform: jax.Array):
        logits, fmaps = [], []
        for d in self.discriminators:
            out, fmap = d(waveform)
            logits.append(out)
            fmaps.append(fmap)
        return logits, fmaps


def discriminator_shapes(config: DiscriminatorConfig = DiscriminatorConfig()):
    """The parameter tree as ShapeDtypeStructs, without allocating or compiling anything."""
    return jax.eval_shape(lambda k: MultiPeriodDiscriminator(config).init(k, jnp.zeros((1, 512)))["params"],
                          jax.random.key(0))


def init_discriminator(config: DiscriminatorConfig, key: jax.Array):
    """Random parameters with WeightNormConv's initialisers (weights and biases uniform in
    +-1/sqrt(fan_in), weight_g = ||weight_v||), as numpy arrays.

    All values come from one `jax.random.uniform` draw, cut into the leaves on the host: flax's
    `init` compiles one small program per parameter shape, which takes tens of seconds on CPU.
    """
    shapes = discriminator_shapes(config)
    convs, _ = jax.tree_util.tree_flatten_with_path(
        shapes, is_leaf=lambda x: isinstance(x, dict) and "weight_v" in x)         # [(path, conv)]
    sizes = [int(np.prod(conv["weight_v"].shape)) + conv["bias"].shape[0] for _, conv in convs]
    flat = np.asarray(jax.random.uniform(key, (sum(sizes),), jnp.float32, -1.0, 1.0))
    tree: dict = {}
    offset = 0
    for (path, conv), size in zip(convs, sizes):
        v_shape = conv["weight_v"].shape
        bound = 1.0 / np.sqrt(np.prod(v_shape[:-1]))
        v = flat[offset:offset + int(np.prod(v_shape))].reshape(v_shape) * bound
        b = flat[offset + v.size:offset + size] * bound
        offset += size
        axes = tuple(range(len(v_shape) - 1))
        node = tree
        for k in path[:-1]:
            node = node.setdefault(k.key, {})
        g = np.sqrt(np.sum(v.astype(np.float64) ** 2, axis=axes))
        node[path[-1].key] = {"weight_v": v.astype(np.float32), "weight_g": g.astype(np.float32),
                              "bias": b.astype(np.float32)}
    return tree


# --- PyTorch state dicts (original VITS naming) -------------------------------------------------

def from_torch_state_dict(state_dict: Mapping[str, Any], config: DiscriminatorConfig = DiscriminatorConfig(),
                          *, source: str = ""):
    """A state dict of the original VITS MultiPeriodDiscriminator (`discriminators.0.convs.0.weight_g`,
    `...conv_post.bias`; `parametrizations.weight.original0/1` accepted too; a `module.` prefix from
    DistributedDataParallel is dropped) -> this module's params, through the strict mapper and the
    DISCRIMINATOR table (weight norm kept as g and v). Raises ConversionError listing missing,
    unexpected, mis-shaped and non-finite keys."""
    return map_weights(state_dict, DISCRIMINATOR, discriminator_shapes(config), optional={},
                       source=source).tree


def load_discriminator(path: str, config: DiscriminatorConfig = DiscriminatorConfig()):
    """Discriminator params from a weights file, read without torch (vits_jax.voice.files):
    `.safetensors` or a torch pickle (`.pth`/`.pt`/`.bin`) holding the state dict itself, VITS'
    training checkpoint `{"model": state_dict, ...}` (its D_*.pth files) or Piper's Lightning
    `.ckpt` (its `model_d.` entries). A file of a whole model whose discriminator keys start with
    `discriminator.` is reduced to those keys. Strict as `from_torch_state_dict`."""
    state_dict = read_weights(path)
    for prefix in ("discriminator.", "model_d."):
        if any(k.startswith(prefix) for k in state_dict):
            state_dict = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
            break
    return from_torch_state_dict(state_dict, config, source=path)
