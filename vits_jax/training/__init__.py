"""Training VITS in JAX: alignment search, spectrograms, discriminators, losses, the train step.

Modules, in the order a training step uses them:
  manifest.py        CSV / JSONL / folder manifests -> numbered rows
  dataset.py         rows -> tokenized, resampled examples (bad rows recorded, not fatal)
  batches.py         deterministic, length-bucketed batches (data.py: one import path for the three)
  spectrogram.py     waveform -> linear / mel spectrogram (VITS' STFT settings)
  mas.py             monotonic alignment search (jitted, batched, masked)
  segments.py        random latent segments and their matching audio
  generator.py       the generator's training forward pass on a VitsModel
  discriminators.py  multi-period + scale discriminator
  losses.py          mel L1, KL, duration, least-squares adversarial and feature matching losses
  step.py            TrainState and the jitted generator + discriminator update
  loop.py            `vits-jax train`: data, steps, samples (vits_jax.speak), checkpoints, logs
"""

from .discriminators import (DiscriminatorConfig, MultiPeriodDiscriminator, from_torch_state_dict,
                             init_discriminator, load_discriminator)
from .generator import GeneratorAux, GeneratorOutput, generator_forward, training_forward
from .losses import LossWeights
from .mas import maximum_path
from .spectrogram import SpectrogramConfig, linear_spectrogram, mel_spectrogram
from .step import Batch, TrainConfig, TrainState, init_state, make_train_step, train_step

__all__ = ["Batch", "DiscriminatorConfig", "GeneratorAux", "GeneratorOutput", "LossWeights",
           "MultiPeriodDiscriminator", "SpectrogramConfig", "TrainConfig", "TrainState",
           "from_torch_state_dict", "generator_forward", "init_discriminator", "init_state",
           "linear_spectrogram", "load_discriminator", "make_train_step", "maximum_path",
           "mel_spectrogram", "train_step", "training_forward"]
