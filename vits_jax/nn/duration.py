"""Duration predictors: stochastic (flow-based) and deterministic, with their building blocks.

Mirrors transformers' VitsDilatedDepthSeparableConv, VitsConvFlow, VitsElementwiseAffine,
VitsStochasticDurationPredictor and VitsDurationPredictor.
Shapes: B batch, T tokens, C hidden_size, E speaker_embedding_size, K flow bins.
Masks are (B, T, 1); speaker conditioning is (B, 1, E) and broadcasts over T.

Both predictors share one interface, so the model and training never ask which one they hold:
  log_durations(x, padding_mask, g, *, noise, noise_scale)   inference: log frames per token (B, T, 1)
  nll(x, padding_mask, g, *, durations, noise, deterministic) training: per-item loss (B,), summed over
      tokens (stochastic: the variational bound on -log p(durations); deterministic: the squared error
      of the log durations); the duration loss is sum(nll) / number of tokens.
`noise` is (B, T, 2) standard normal; the deterministic predictor ignores it.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from ..config import VitsConfig
from .layers import ACTIVATIONS, conv1d, layer_norm, same_padding
from .spline import unconstrained_rational_quadratic_spline

_gelu = ACTIVATIONS["gelu"]  # torch's default (erf) GELU


class VitsDilatedDepthSeparableConv(nn.Module):
    channels: int
    kernel_size: int
    num_layers: int
    dropout: float = 0.0

    def setup(self):
        convs_dilated, convs_pointwise, norms_1, norms_2 = [], [], [], []
        for i in range(self.num_layers):
            dilation = self.kernel_size ** i
            convs_dilated.append(conv1d(self.channels, self.kernel_size, dilation,
                                        same_padding(self.kernel_size, dilation), groups=self.channels))
            convs_pointwise.append(conv1d(self.channels, 1))
            norms_1.append(layer_norm(1e-5))
            norms_2.append(layer_norm(1e-5))
        self.convs_dilated, self.convs_pointwise = convs_dilated, convs_pointwise
        self.norms_1, self.norms_2 = norms_1, norms_2
        self.drop = nn.Dropout(self.dropout)

    def __call__(self, x, padding_mask, global_conditioning=None, deterministic: bool = True):
        """x: (B, T, C), padding_mask (B, T, 1), global_conditioning (B, T or 1, C)."""
        if global_conditioning is not None:
            x = x + global_conditioning
        for i in range(self.num_layers):
            h = _gelu(self.norms_1[i](self.convs_dilated[i](x * padding_mask)))
            h = _gelu(self.norms_2[i](self.convs_pointwise[i](h)))
            x = x + self.drop(h, deterministic=deterministic)
        return x * padding_mask


class VitsConvFlow(nn.Module):
    """Coupling layer whose transform is a rational-quadratic spline."""

    filter_channels: int
    channels: int          # depth_separable_channels: the flow's width (2)
    kernel_size: int
    num_layers: int
    num_bins: int
    tail_bound: float

    def setup(self):
        half = self.channels // 2
        self.conv_pre = conv1d(self.filter_channels, 1)
        self.conv_dds = VitsDilatedDepthSeparableConv(self.filter_channels, self.kernel_size,
                                                      self.num_layers)
        self.conv_proj = conv1d(half * (3 * self.num_bins - 1), 1)

    def __call__(self, x, padding_mask, global_conditioning=None, reverse: bool = False):
        """x: (B, T, 2) -> (B, T, 2) and, forward only, log|det| (B,)."""
        half = self.channels // 2
        first, second = x[..., :half], x[..., half:]                           # (B, T, 1) each
        h = self.conv_pre(first)
        h = self.conv_dds(h, padding_mask, global_conditioning)
        h = self.conv_proj(h) * padding_mask                                   # (B, T, 3K-1)
        b, t, _ = first.shape
        h = h.reshape(b, t, half, 3 * self.num_bins - 1)                       # (B, T, 1, 3K-1)
        scale = math.sqrt(self.filter_channels)
        widths = h[..., :self.num_bins] / scale
        heights = h[..., self.num_bins:2 * self.num_bins] / scale
        derivatives = h[..., 2 * self.num_bins:]
        second, log_abs_det = unconstrained_rational_quadratic_spline(
            second, widths, heights, derivatives, reverse=reverse, tail_bound=self.tail_bound)
        out = jnp.concatenate([first, second], axis=-1) * padding_mask
        if reverse:
            return out, None
        return out, jnp.sum(log_abs_det * padding_mask, axis=(1, 2))


class VitsElementwiseAffine(nn.Module):
    channels: int

    def setup(self):
        self.translate = self.param("translate", nn.initializers.zeros, (self.channels,))
        self.log_scale = self.param("log_scale", nn.initializers.zeros, (self.channels,))

    def __call__(self, x, padding_mask, global_conditioning=None, reverse: bool = False):
        """x: (B, T, 2) -> (B, T, 2) and, forward only, log|det| (B,)."""
        if not reverse:
            out = (self.translate + jnp.exp(self.log_scale) * x) * padding_mask
            return out, jnp.sum(self.log_scale * padding_mask, axis=(1, 2))
        return (x - self.translate) * jnp.exp(-self.log_scale) * padding_mask, None


class VitsStochasticDurationPredictor(nn.Module):
    config: VitsConfig

    def setup(self):
        c = self.config
        channels = c.hidden_size
        self.conv_pre = conv1d(channels, 1)
        self.conv_proj = conv1d(channels, 1)
        self.conv_dds = VitsDilatedDepthSeparableConv(
            channels, c.duration_predictor_kernel_size, c.depth_separable_num_layers,
            c.duration_predictor_dropout)
        if c.speaker_embedding_size != 0:
            self.cond = conv1d(channels, 1)

        def flows():
            return [VitsElementwiseAffine(c.depth_separable_channels)] + [
                VitsConvFlow(channels, c.depth_separable_channels, c.duration_predictor_kernel_size,
                             c.depth_separable_num_layers, c.duration_predictor_flow_bins,
                             c.duration_predictor_tail_bound)
                for _ in range(c.duration_predictor_num_flows)]

        self.flows = flows()
        self.post_conv_pre = conv1d(channels, 1)
        self.post_conv_proj = conv1d(channels, 1)
        self.post_conv_dds = VitsDilatedDepthSeparableConv(
            channels, c.duration_predictor_kernel_size, c.depth_separable_num_layers,
            c.duration_predictor_dropout)
        self.post_flows = flows()

    def _condition(self, x, padding_mask, global_conditioning, deterministic):
        x = self.conv_pre(jax.lax.stop_gradient(x))
        if global_conditioning is not None:
            x = x + self.cond(jax.lax.stop_gradient(global_conditioning))
        x = self.conv_dds(x, padding_mask, deterministic=deterministic)
        return self.conv_proj(x) * padding_mask                                # (B, T, C)

    def log_durations(self, x, padding_mask, global_conditioning=None, *, noise, noise_scale=1.0):
        """Inference: x (B, T, C), noise (B, T, 2) -> log durations (B, T, 1)."""
        return self(x, padding_mask, global_conditioning, noise=noise, noise_scale=noise_scale, reverse=True)

    def nll(self, x, padding_mask, global_conditioning=None, *, durations, noise, deterministic: bool = True):
        """Training: durations (B, T, 1) frames, noise (B, T, 2) -> the bound per item (B,)."""
        return self(x, padding_mask, global_conditioning, noise=noise, durations=durations, reverse=False,
                    deterministic=deterministic)

    def __call__(self, x, padding_mask, global_conditioning=None, *, noise, noise_scale=1.0,
                 durations=None, reverse: bool = False, deterministic: bool = True):
        """x: (B, T, C) encoder states; noise: (B, T, 2) standard normal.

        reverse=False (training, the original VITS flow order): `durations` (B, T, 1) in frames; returns
        the negative log-likelihood bound per item (B,), with `noise` as the posterior's noise.
        reverse=True (inference): returns log durations (B, T, 1).
        """
        cond = self._condition(x, padding_mask, global_conditioning, deterministic)
        if reverse:
            # As transformers: flows reversed, with the unused first conv flow dropped.
            flows = list(reversed(self.flows))
            flows = flows[:-2] + [flows[-1]]
            latents = noise * noise_scale
            for flow in flows:
                latents = latents[..., ::-1]
                latents, _ = flow(latents, padding_mask, global_conditioning=cond, reverse=True)
            return latents[..., :1]

        h = self.post_conv_pre(durations)
        h = self.post_conv_dds(h, padding_mask, deterministic=deterministic)
        h = self.post_conv_proj(h) * padding_mask
        random_posterior = noise * padding_mask
        latents_posterior = random_posterior
        log_det_posterior = 0.0
        # The original code flips channels after every conv flow but not after the affine flow 0
        # (transformers flips after flow 0 too; its inference direction agrees with the original,
        # so weights trained by the original code need the original order here).
        for i, flow in enumerate(self.post_flows):
            latents_posterior, log_det = flow(latents_posterior, padding_mask, global_conditioning=cond + h)
            if i > 0:
                latents_posterior = latents_posterior[..., ::-1]
            log_det_posterior = log_det_posterior + log_det
        first, second = latents_posterior[..., :1], latents_posterior[..., 1:]
        log_det_posterior = log_det_posterior + jnp.sum(
            (jax.nn.log_sigmoid(first) + jax.nn.log_sigmoid(-first)) * padding_mask, axis=(1, 2))
        logq = jnp.sum(-0.5 * (math.log(2 * math.pi) + random_posterior ** 2) * padding_mask,
                       axis=(1, 2)) - log_det_posterior

        first = (durations - jax.nn.sigmoid(first)) * padding_mask
        first = jnp.log(jnp.maximum(first, 1e-5)) * padding_mask
        log_det_sum = jnp.sum(-first, axis=(1, 2))
        latents = jnp.concatenate([first, second], axis=-1)
        for i, flow in enumerate(self.flows):
            latents, log_det = flow(latents, padding_mask, global_conditioning=cond)
            if i > 0:
                latents = latents[..., ::-1]
            log_det_sum = log_det_sum + log_det
        nll = jnp.sum(0.5 * (math.log(2 * math.pi) + latents ** 2) * padding_mask, axis=(1, 2)) - log_det_sum
        return nll + logq


class VitsDurationPredictor(nn.Module):
    config: VitsConfig

    def setup(self):
        c = self.config
        k = c.duration_predictor_kernel_size
        filters = c.duration_predictor_filter_channels
        self.conv_1 = conv1d(filters, k, padding=k // 2)
        self.norm_1 = layer_norm(c.layer_norm_eps)
        self.conv_2 = conv1d(filters, k, padding=k // 2)
        self.norm_2 = layer_norm(c.layer_norm_eps)
        self.proj = conv1d(1, 1)
        if c.speaker_embedding_size != 0:
            self.cond = conv1d(c.hidden_size, 1)
        self.drop = nn.Dropout(c.duration_predictor_dropout)

    def log_durations(self, x, padding_mask, global_conditioning=None, *, noise=None, noise_scale=None):
        """Inference: x (B, T, C) -> log durations (B, T, 1); deterministic, so the noise is unused."""
        return self(x, padding_mask, global_conditioning)

    def nll(self, x, padding_mask, global_conditioning=None, *, durations, noise=None,
            deterministic: bool = True):
        """Training: durations (B, T, 1) frames -> per-item squared error of the log durations (B,)."""
        predicted = self(x, padding_mask, global_conditioning, deterministic=deterministic)
        target = jnp.log(durations + 1e-6) * padding_mask
        return jnp.sum((predicted - target) ** 2, axis=(1, 2))

    def __call__(self, x, padding_mask, global_conditioning=None, deterministic: bool = True):
        """x: (B, T, C) -> log durations (B, T, 1)."""
        x = jax.lax.stop_gradient(x)
        if global_conditioning is not None:
            x = x + self.cond(jax.lax.stop_gradient(global_conditioning))
        x = self.drop(self.norm_1(jax.nn.relu(self.conv_1(x * padding_mask))), deterministic=deterministic)
        x = self.drop(self.norm_2(jax.nn.relu(self.conv_2(x * padding_mask))), deterministic=deterministic)
        return self.proj(x * padding_mask) * padding_mask
