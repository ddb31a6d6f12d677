"""VitsModel: the VITS blocks composed as in transformers, one method per inference stage.

Shapes: B batch, T tokens, F frames, S samples, C hidden_size, Z flow_size, E speaker embedding.
Masks are (B, T, 1) / (B, F, 1) floats. All noise is passed in, standard normal, so callers
control randomness (see synthesis.py) and parity tests can inject transformers' own draws.
"""

from __future__ import annotations

from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from . import alignment
from .config import VitsConfig
from .duration import VitsDurationPredictor, VitsStochasticDurationPredictor
from .flow import VitsResidualCouplingBlock
from .hifigan import VitsHifiGan
from .posterior import VitsPosteriorEncoder
from .text_encoder import VitsTextEncoder


class VitsModel(nn.Module):
    config: VitsConfig

    def setup(self):
        c = self.config
        self.text_encoder = VitsTextEncoder(c)
        self.flow = VitsResidualCouplingBlock(c)
        self.decoder = VitsHifiGan(c)
        if c.use_stochastic_duration_prediction:
            self.duration_predictor = VitsStochasticDurationPredictor(c)
        else:
            self.duration_predictor = VitsDurationPredictor(c)
        if c.num_speakers > 1:
            self.embed_speaker = nn.Embed(c.num_speakers, c.speaker_embedding_size)
        self.posterior_encoder = VitsPosteriorEncoder(c)

    def speaker_conditioning(self, speaker_ids: Optional[jax.Array]):
        """speaker_ids (B,) int or None -> (B, 1, E) or None (single speaker or no id, as transformers)."""
        if self.config.num_speakers <= 1 or speaker_ids is None:
            return None
        return self.embed_speaker(speaker_ids)[:, None, :]

    def encode_text(self, input_ids, padding_mask, deterministic: bool = True):
        """input_ids (B, T), padding_mask (B, T, 1) -> hidden (B, T, C), means, log_variances (B, T, Z)."""
        return self.text_encoder(input_ids, padding_mask, deterministic=deterministic)

    def predict_log_durations(self, hidden, padding_mask, speaker, noise, noise_scale_duration):
        """hidden (B, T, C), noise (B, T, 2) -> log durations (B, T, 1)."""
        if self.config.use_stochastic_duration_prediction:
            return self.duration_predictor(hidden, padding_mask, speaker, noise=noise,
                                           noise_scale=noise_scale_duration, reverse=True)
        return self.duration_predictor(hidden, padding_mask, speaker)

    def durations(self, input_ids, padding_mask, speaker_ids, noise, noise_scale_duration, length_scale):
        """Stage 1: ids (B, T) -> frames per token (B, T) float, and the encoder outputs."""
        speaker = self.speaker_conditioning(speaker_ids)
        hidden, means, log_variances = self.encode_text(input_ids, padding_mask)
        log_durations = self.predict_log_durations(hidden, padding_mask, speaker, noise,
                                                   noise_scale_duration)
        durations = alignment.durations_from_log(log_durations, padding_mask, length_scale)
        return durations, means, log_variances

    def render(self, means, log_variances, durations, speaker_ids, noise, noise_scale, num_frames: int,
               decoder_dtype=None):
        """Stage 2: token priors (B, T, Z) and durations (B, T) -> waveform (B, F*hop), spectrogram.

        noise: (B, F, Z) standard normal for the prior sample. decoder_dtype: compute dtype of the
        decoder's activations (its params must be cast by the caller); the waveform is float32.
        """
        speaker = self.speaker_conditioning(speaker_ids)
        lengths = alignment.output_lengths(durations)                          # (B,)
        mask = alignment.frame_mask(lengths, num_frames, means.dtype)          # (B, F, 1)
        means = alignment.expand(means, durations, num_frames)                 # (B, F, Z)
        log_variances = alignment.expand(log_variances, durations, num_frames)
        prior = means + noise * jnp.exp(log_variances) * noise_scale
        latents = self.flow(prior, mask, speaker, reverse=True)
        spectrogram = latents * mask
        waveform = self.decode(spectrogram, speaker, lengths, decoder_dtype)    # (B, S)
        return waveform, spectrogram, lengths

    def decode(self, spectrogram, speaker, lengths=None, dtype=None):
        """HiFi-GAN: latents (B, F, Z), speaker (B, 1, E) or None -> waveform (B, F*hop) float32.

        dtype: compute dtype of the decoder's activations (its params must already be of it, see
        `cast_decoder`); None computes in the latents' dtype.
        """
        if dtype is None:
            return self.decoder(spectrogram, speaker, lengths=lengths)
        return self.decoder(spectrogram.astype(dtype), None if speaker is None else speaker.astype(dtype),
                            lengths=lengths).astype(jnp.float32)

    def __call__(self, input_ids, padding_mask, speaker_ids=None, *, sdp_noise, prior_noise,
                 noise_scale, noise_scale_duration, length_scale, num_frames: int):
        """Full inference, ids (B, T) -> waveform (B, F*hop), frame lengths (B,), durations (B, T)."""
        durations, means, log_variances = self.durations(
            input_ids, padding_mask, speaker_ids, sdp_noise, noise_scale_duration, length_scale)
        waveform, spectrogram, lengths = self.render(
            means, log_variances, durations, speaker_ids, prior_noise, noise_scale, num_frames)
        return waveform, lengths, durations, spectrogram

    def init_all(self, input_ids, padding_mask, speaker_ids, spectrogram):
        """Touches every block (the posterior encoder and the training direction of the duration
        predictor included) so that `init` creates the full parameter tree."""
        b, t = input_ids.shape
        f = spectrogram.shape[1]
        out = self(input_ids, padding_mask, speaker_ids, sdp_noise=jnp.zeros((b, t, 2)),
                   prior_noise=jnp.zeros((b, f, self.config.flow_size)), noise_scale=1.0,
                   noise_scale_duration=1.0, length_scale=1.0, num_frames=f)
        speaker = self.speaker_conditioning(speaker_ids)
        frame_mask = jnp.ones((b, f, 1))
        z, _, _ = self.posterior_encoder(spectrogram, frame_mask, speaker,
                                         noise=jnp.zeros((b, f, self.config.flow_size)))
        self.flow(z, frame_mask, speaker)
        if self.config.use_stochastic_duration_prediction:
            hidden, _, _ = self.encode_text(input_ids, padding_mask)
            self.duration_predictor(hidden, padding_mask, speaker, noise=jnp.zeros((b, t, 2)),
                                    durations=jnp.ones((b, t, 1)), reverse=False)
        return out


def cast_decoder(tree: dict, dtype) -> dict:
    """The param tree with the decoder's leaves cast to `dtype` (None: unchanged). Casting inside
    a differentiated function keeps the gradients of the float32 params float32."""
    if dtype is None:
        return tree
    return {**tree, "decoder": jax.tree.map(lambda x: x.astype(dtype), tree["decoder"])}


def init_params(config: VitsConfig, key: jax.Array):
    """Random parameters for `config` (flax default initializers; the tree the converter fills)."""
    model = VitsModel(config)
    ids = jnp.zeros((1, 4), jnp.int32)
    speakers = jnp.zeros((1,), jnp.int32) if config.num_speakers > 1 else None
    return model.init(key, ids, jnp.ones((1, 4, 1)), speakers,
                      jnp.zeros((1, 4, config.spectrogram_bins)), method=VitsModel.init_all)["params"]


def param_shapes(config: VitsConfig):
    """The parameter tree of `config` as ShapeDtypeStructs, without allocating anything."""
    return jax.eval_shape(lambda k: init_params(config, k), jax.random.key(0))
