"""The generator's training forward pass (VITS' SynthesizerTrn.forward) on a VitsModel.

Shapes: B batch, T tokens, F frames, K spectrogram bins, Z flow_size, C hidden_size,
L segment frames, hop samples per frame (prod(upsample_rates)).

  text encoder           ids (B, T) -> hidden (B, T, C), prior m_p, logs_p (B, T, Z)
  posterior encoder      linear spectrogram (B, F, K) -> z, m_q, logs_q (B, F, Z)
  flow (forward)         z -> z_p (B, F, Z)
  alignment search       log N(z_p[f] | m_p[t], exp(logs_p[t])) -> hard alignment (B, T, F),
                         without gradient (as the original's torch.no_grad block)
  duration loss          the predictor's `nll` of the aligned durations per item (stochastic:
                         its forward direction's bound; deterministic: squared error on log
                         durations), summed and divided by the number of tokens
  prior expansion        m_p, logs_p (B, T, Z) -> (B, F, Z) through the alignment
  random segment         L frames of z per item -> decoder -> waveform (B, L * hop)

`training_forward` is a function of the bound model, for `VitsModel.apply(..., method=...)`;
`generator_forward` wraps that call. Dropout draws from the "dropout" rng when
deterministic=False. Transformers names the prior's log standard deviation
`prior_log_variances`; it is VITS' `logs_p` and is used as such.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp

from ..config import VitsConfig
from ..nn.model import VitsModel
from . import losses
from .mas import gaussian_log_likelihood, maximum_path
from .segments import random_starts, slice_segments


class GeneratorOutput(NamedTuple):
    """Differentiable outputs of the generator's training pass (the inputs of the losses)."""

    waveform: jax.Array        # (B, L * hop) decoded segment
    z_p: jax.Array             # (B, F, Z) posterior sample mapped by the flow
    logs_q: jax.Array          # (B, F, Z) posterior log std
    m_p: jax.Array             # (B, F, Z) prior means, expanded to frames by the alignment
    logs_p: jax.Array          # (B, F, Z) prior log stds, expanded
    duration_loss: jax.Array   # () normalised by the number of tokens


class GeneratorAux(NamedTuple):
    """Non-differentiable by-products."""

    starts: jax.Array          # (B,) int32, first frame of each item's segment
    alignment: jax.Array       # (B, T, F) 0/1
    durations: jax.Array       # (B, T) frames per token from the alignment


def training_forward(module: VitsModel, input_ids, text_mask, spectrogram, frame_mask, speaker_ids=None, *,
                     key: jax.Array, segment_frames: int, deterministic: bool = False):
    """input_ids (B, T), text_mask (B, T, 1), spectrogram (B, F, K), frame_mask (B, F, 1),
    speaker_ids (B,) or None; `key` draws the posterior and duration noise and the segments.
    The decoder computes in the module's `decoder_dtype`; the waveform comes back float32.

    Returns (GeneratorOutput, GeneratorAux).
    """
    config = module.config
    b, t = input_ids.shape
    f = spectrogram.shape[1]
    k_posterior, k_duration, k_segment = jax.random.split(key, 3)

    speaker = module.speaker_conditioning(speaker_ids)                         # (B, 1, E) or None
    hidden, m_p, logs_p = module.encode_text(input_ids, text_mask, deterministic=deterministic)
    z, m_q, logs_q = module.posterior_encoder(
        spectrogram, frame_mask, speaker, noise=jax.random.normal(k_posterior, (b, f, config.flow_size)),
        deterministic=deterministic)                                          # (B, F, Z) each
    z_p = module.flow(z, frame_mask, speaker, deterministic=deterministic)    # (B, F, Z)

    log_likelihood = gaussian_log_likelihood(*jax.lax.stop_gradient((z_p, m_p, logs_p)))  # (B, T, F)
    alignment = jax.lax.stop_gradient(maximum_path(log_likelihood, text_mask, frame_mask))
    durations = jnp.sum(alignment, axis=-1)                                    # (B, T)

    nll = module.duration_predictor.nll(
        hidden, text_mask, speaker, noise=jax.random.normal(k_duration, (b, t, 2)),
        durations=durations[..., None], deterministic=deterministic)          # (B,)
    duration_loss = losses.stochastic_duration_loss(nll, text_mask)            # sum(nll) / tokens

    m_p = jnp.einsum("btf,btz->bfz", alignment, m_p)                           # (B, F, Z)
    logs_p = jnp.einsum("btf,btz->bfz", alignment, logs_p)

    frame_lengths = jnp.sum(frame_mask[..., 0], axis=-1).astype(jnp.int32)     # (B,)
    starts = random_starts(k_segment, frame_lengths, segment_frames)
    waveform = module.decode(slice_segments(z, starts, segment_frames), speaker)  # (B, L * hop)

    return (GeneratorOutput(waveform, z_p, logs_q, m_p, logs_p, duration_loss),
            GeneratorAux(starts, alignment, durations))


def generator_forward(params, config: VitsConfig, input_ids, text_mask, spectrogram, frame_mask,
                      speaker_ids: Optional[jax.Array] = None, *, key: jax.Array, segment_frames: int,
                      deterministic: bool = False, decoder_dtype=jnp.float32):
    """`training_forward` on the param tree `params` (a dict, or VitsParams' `.tree`).
    decoder_dtype (e.g. jnp.bfloat16): the decoder computes in it; params stay float32 (cast
    inside its convs, so their gradients are float32)."""
    k_forward, k_dropout = jax.random.split(key)
    model = VitsModel(config, decoder_dtype=decoder_dtype)
    return model.apply(
        {"params": params}, input_ids, text_mask, spectrogram, frame_mask, speaker_ids,
        key=k_forward, segment_frames=segment_frames, deterministic=deterministic,
        rngs={"dropout": k_dropout}, method=training_forward)
