"""VitsModel: the VITS blocks composed as in transformers, one method per inference stage.

Shapes: B batch, T tokens, F frames, S samples, C hidden_size, Z flow_size, E speaker embedding.
Masks are (B, T, 1) / (B, F, 1) floats. All noise is passed in, standard normal, so callers
control randomness (see core.py) and parity tests can inject transformers' own draws.

decoder_dtype: the decoder's compute dtype (e.g. bfloat16); params stay float32 and are cast
inside its convs. Durations, alignment and the flow always run in float32, so lengths never
change with it.
"""

from __future__ import annotations

from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from . import alignment
from ..config import VitsConfig
from .duration import VitsDurationPredictor, VitsStochasticDurationPredictor
from .flow import VitsResidualCouplingBlock
from .hifigan import VitsHifiGan
from .posterior import VitsPosteriorEncoder
from .text_encoder import VitsTextEncoder


class VitsModel(nn.Module):
    config: VitsConfig
    decoder_dtype: Any = jnp.float32

    def setup(self):
        c = self.config
        self.text_encoder = VitsTextEncoder(c)
        self.flow = VitsResidualCouplingBlock(c)
        self.decoder = VitsHifiGan(c, dtype=self.decoder_dtype)
        predictor = (VitsStochasticDurationPredictor if c.use_stochastic_duration_prediction
                     else VitsDurationPredictor)
        self.duration_predictor = predictor(c)   # one interface: log_durations / nll
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
        return self.duration_predictor.log_durations(hidden, padding_mask, speaker, noise=noise,
                                                     noise_scale=noise_scale_duration)

    def durations(self, input_ids, padding_mask, speaker_ids, noise, noise_scale_duration, length_scale):
        """Stage 1: ids (B, T) -> frames per token (B, T) float, and the encoder outputs."""
        speaker = self.speaker_conditioning(speaker_ids)
        hidden, means, log_variances = self.encode_text(input_ids, padding_mask)
        log_durations = self.predict_log_durations(hidden, padding_mask, speaker, noise,
                                                   noise_scale_duration)
        durations = alignment.durations_from_log(log_durations, padding_mask, length_scale)
        return durations, means, log_variances

    def render(self, means, log_variances, durations, speaker_ids, noise, noise_scale, num_frames: int,
               start_frame=0):
        """Stage 2: token priors (B, T, Z) and durations (B, T) -> waveform (B, F*hop) float32,
        spectrogram (B, F, Z), frame lengths (B,) within the frames rendered.

        noise: (B, F, Z) standard normal for the prior sample. start_frame (may be traced): render
        frames start_frame .. start_frame+F-1 of the utterance, as if it began and ended at that
        window's edges (exact chunking crops the edges; see streaming).
        """
        speaker = self.speaker_conditioning(speaker_ids)
        lengths = alignment.output_lengths(durations) - start_frame             # (B,) from the window's start
        mask = alignment.frame_mask(lengths, num_frames, means.dtype)          # (B, F, 1)
        means = alignment.expand(means, durations, num_frames, start_frame)    # (B, F, Z)
        log_variances = alignment.expand(log_variances, durations, num_frames, start_frame)
        prior = means + noise * jnp.exp(log_variances) * noise_scale
        latents = self.flow(prior, mask, speaker, reverse=True)
        spectrogram = latents * mask
        waveform = self.decode(spectrogram, speaker, lengths)                 # (B, S)
        return waveform, spectrogram, lengths

    def render_window(self, means, log_variances, durations, speakers, prior_noise, noise_scale, limit, start,
                      chunk: int, margins):
        """Stage 2 over a window: output frames [start, start + chunk) of `render` over the first
        `limit` frames, exact when `margins` (`core.windows.ReceptiveField`: flow_left/right,
        decoder_left/right frames) covers the flow's and decoder's receptive fields.

        means, log_variances (B, T, Z); durations (B, T) float; start, limit () int32 traced;
        prior_noise (B, Wf, Z) standard normal, rows [flow_start, flow_start + Wf).
        Returns the waveform (B, chunk * H): zero past each item's end.
        """
        hop = self.config.hop_length
        lengths = jnp.minimum(alignment.output_lengths(durations), limit)              # (B,) frames
        w_dec = chunk + margins.decoder_left + margins.decoder_right
        w_flow = w_dec + margins.flow_left + margins.flow_right
        dec_start = jnp.maximum(start - margins.decoder_left, 0)
        flow_start = jnp.maximum(dec_start - margins.flow_left, 0)
        speaker = self.speaker_conditioning(speakers)

        # Flow over frames [flow_start, flow_start + Wf), as VitsModel.render does over its frames.
        mask = alignment.frame_mask(lengths - flow_start, w_flow, means.dtype)          # (B, Wf, 1)
        means = alignment.expand(means, durations, w_flow, flow_start)                  # (B, Wf, Z)
        log_variances = alignment.expand(log_variances, durations, w_flow, flow_start)
        prior = means + prior_noise * jnp.exp(log_variances) * noise_scale[:, None, None]
        latents = self.flow(prior, mask, speaker, reverse=True) * mask               # (B, Wf, Z)

        # Decoder over frames [dec_start, dec_start + Wd), its length mask at the utterance's end.
        latents = jax.lax.dynamic_slice_in_dim(latents, dec_start - flow_start, w_dec, axis=1)
        waveform = self.decode(latents, speaker, lengths - dec_start)                # (B, >=Wd*H)
        return jax.lax.dynamic_slice_in_dim(waveform, (start - dec_start) * hop, chunk * hop, axis=1)

    def decode(self, spectrogram, speaker, lengths=None):
        """HiFi-GAN in `decoder_dtype`: latents (B, F, Z), speaker (B, 1, E) or None -> waveform
        (B, F*hop) float32."""
        return self.decoder(spectrogram, speaker, lengths=lengths)

    # ------------------------------------------------------------------ the posterior path
    def encode_spectrogram(self, spectrogram, padding_mask, speaker_ids, noise, noise_scale):
        """Posterior encoder: linear spectrogram (B, F, K), padding_mask (B, F, 1), speaker_ids (B,)
        or None, noise (B, F, Z) standard normal, noise_scale (B, 1, 1) -> latents, means, log
        standard deviations (B, F, Z), latents = (means + noise * noise_scale * exp(log_stds)) * mask."""
        speaker = self.speaker_conditioning(speaker_ids)
        return self.posterior_encoder(spectrogram, padding_mask, speaker, noise=noise * noise_scale)

    def run_flow(self, latents, padding_mask, speaker_ids, reverse: bool = False):
        """The coupling flow, latents (B, F, Z) -> (B, F, Z): forward maps posterior latents into
        the prior's space, reverse maps back (as `render` does before the decoder)."""
        return self.flow(latents, padding_mask, self.speaker_conditioning(speaker_ids), reverse=reverse)

    def decode_latents(self, latents, speaker_ids, lengths):
        """HiFi-GAN on latents (B, F, Z) with speaker ids (B,) or None, lengths (B,) frames ->
        waveform (B, F*hop) float32, zero-padded frames past each item's end not leaking in."""
        return self.decode(latents, self.speaker_conditioning(speaker_ids), lengths)

    def convert_voice(self, spectrogram, lengths, source_ids, target_ids, noise, noise_scale):
        """Voice conversion (VITS' SynthesizerTrn.voice_conversion): spectrogram (B, F, K) ->
        posterior latents with the source speaker -> flow forward with the source speaker -> flow
        reverse with the target speaker -> decoder with the target speaker: waveform (B, F*hop)."""
        mask = alignment.frame_mask(lengths, spectrogram.shape[1], spectrogram.dtype)   # (B, F, 1)
        latents, _, _ = self.encode_spectrogram(spectrogram, mask, source_ids, noise, noise_scale)
        prior = self.run_flow(latents, mask, source_ids)
        latents = self.run_flow(prior, mask, target_ids, reverse=True) * mask
        return self.decode_latents(latents, target_ids, lengths)

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
        hidden, _, _ = self.encode_text(input_ids, padding_mask)
        self.duration_predictor.nll(hidden, padding_mask, speaker, noise=jnp.zeros((b, t, 2)),
                                    durations=jnp.ones((b, t, 1)))
        return out


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
