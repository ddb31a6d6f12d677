"""VITS' training losses (losses.py and the loss terms of train.py), channels-last.

Shapes: B batch, T tokens, F frames, Z flow_size, M mel bands. Masks are (B, T, 1) / (B, F, 1).
Discriminator outputs are lists with one entry per sub-discriminator (see discriminators.py).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class LossWeights:
    """VITS' c_mel = 45, c_kl = 1; the duration, adversarial and feature terms enter with 1
    (the feature term carries its own factor 2, as in the original `feature_loss`)."""

    mel: float = 45.0
    kl: float = 1.0
    duration: float = 1.0
    adversarial: float = 1.0
    feature: float = 1.0


def mel_loss(mel_real: jax.Array, mel_generated: jax.Array) -> jax.Array:
    """L1 between log mels (B, F, M), mean over every element (F.l1_loss). Unweighted."""
    return jnp.mean(jnp.abs(mel_real - mel_generated))


def kl_loss(z_p, logs_q, m_p, logs_p, z_mask) -> jax.Array:
    """KL between the posterior sample flowed into the prior space and the aligned prior.

    z_p, logs_q (B, F, Z): flowed posterior sample and posterior log std; m_p, logs_p (B, F, Z):
    prior means and log stds expanded to frames; z_mask (B, F, 1). Sum over valid entries divided
    by the number of valid frames (not frames x channels), as the original.
    """
    kl = logs_p - logs_q - 0.5 + 0.5 * (z_p - m_p) ** 2 * jnp.exp(-2.0 * logs_p)
    return jnp.sum(kl * z_mask) / jnp.sum(z_mask)


def stochastic_duration_loss(nll: jax.Array, text_mask: jax.Array) -> jax.Array:
    """Per-item SDP negative log-likelihood (B,) -> sum(nll) / sum(text_mask) (VITS' l_length summed)."""
    return jnp.sum(nll) / jnp.sum(text_mask)


def deterministic_duration_loss(log_durations_predicted, durations, text_mask) -> jax.Array:
    """Squared error on log durations: predicted (B, T, 1), durations in frames (B, T, 1)."""
    target = jnp.log(durations + 1e-6) * text_mask
    return jnp.sum((log_durations_predicted - target) ** 2) / jnp.sum(text_mask)


def discriminator_loss(real_logits: Sequence[jax.Array], generated_logits: Sequence[jax.Array]):
    """Least squares: sum over discriminators of mean((1 - D(y))^2) + mean(D(G(x))^2).

    Returns (total, per-discriminator real losses, per-discriminator generated losses).
    """
    real = [jnp.mean((1.0 - r) ** 2) for r in real_logits]
    generated = [jnp.mean(g ** 2) for g in generated_logits]
    return sum(real) + sum(generated), real, generated


def generator_adversarial_loss(generated_logits: Sequence[jax.Array]):
    """Least squares: sum over discriminators of mean((1 - D(G(x)))^2). Returns (total, per-disc)."""
    losses = [jnp.mean((1.0 - g) ** 2) for g in generated_logits]
    return sum(losses), losses


def feature_matching_loss(real_fmaps, generated_fmaps) -> jax.Array:
    """2 x sum over discriminators and layers of mean |fmap_real - fmap_generated|, with the real
    feature maps detached (VITS' feature_loss)."""
    loss = 0.0
    for real_layers, generated_layers in zip(real_fmaps, generated_fmaps):
        for r, g in zip(real_layers, generated_layers):
            loss = loss + jnp.mean(jnp.abs(jax.lax.stop_gradient(r) - g))
    return 2.0 * loss
