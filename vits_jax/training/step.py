"""One training step: discriminator then generator update with optax (VITS' train_and_evaluate).

Shapes: B batch, T tokens, S samples (a multiple of hop), F = S / hop frames, L segment frames.

Order as the original: the discriminator is updated on (real segment, detached generated segment),
then the generator's losses use the updated discriminator:
  mel L1 x 45 + KL + duration + least-squares adversarial + 2 x feature matching.
The generator runs forward once: `jax.vjp` keeps its pullback while the discriminator steps, and the
generator loss's gradient with respect to the generator's outputs is pulled back through it.

Optimisers: AdamW(lr 2e-4, b1 0.8, b2 0.99, eps 1e-9, weight decay 0.01 as torch's AdamW default),
learning rate x 0.999875 every `decay_every` steps (VITS decays once per epoch), optional gradient
clipping by global norm (VITS computes the norm but does not clip).

Options: `compute_dtype="bfloat16"` runs the decoder and the discriminator in bf16 (params,
optimiser state, losses and gradients stay float32); `make_train_step(..., devices=...)` trains
data-parallel over a device mesh (batch split, state replicated), as synthesis does.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple, Optional, Sequence

import flax
import jax
import jax.numpy as jnp
import optax
from jax.sharding import NamedSharding, PartitionSpec as P

from ..nn import alignment
from ..config import VitsConfig
from ..nn.model import init_params
from ..core.sharding import BATCH_AXIS, batch_mesh
from ..voice.mapper import check_trainable
from . import losses
from .discriminators import DiscriminatorConfig, MultiPeriodDiscriminator, init_discriminator
from .generator import generator_forward
from .segments import slice_audio, slice_segments
from .spectrogram import SpectrogramConfig, linear_spectrogram, linear_to_mel, mel_spectrogram


# XLA at low optimisation: programs compile several times faster and run slower (for programs run
# once, such as init, and for quick starts).
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters (VITS' defaults). Frozen and hashable: a static argument of the step."""

    learning_rate: float = 2e-4
    b1: float = 0.8
    b2: float = 0.99
    eps: float = 1e-9
    weight_decay: float = 0.01
    lr_decay: float = 0.999875
    decay_every: int = 1                     # steps per decay: set to the steps in an epoch
    max_grad_norm: Optional[float] = None    # clip each network's gradient to this global norm
    segment_frames: int = 32                 # VITS: segment_size 8192 samples / hop 256
    deterministic: bool = False              # True switches dropout off
    compute_dtype: Optional[str] = None      # e.g. "bfloat16": decoder and discriminator compute in it;
                                             # params, optimiser state and losses stay float32
    weights: losses.LossWeights = losses.LossWeights()
    spectrogram: Optional[SpectrogramConfig] = None   # None: SpectrogramConfig.from_vits(config)
    discriminator: DiscriminatorConfig = DiscriminatorConfig()

    def spectrogram_for(self, config: VitsConfig) -> SpectrogramConfig:
        spec = self.spectrogram or SpectrogramConfig.from_vits(config)
        if spec.hop_length != config.hop_length or spec.bins != config.spectrogram_bins:
            raise ValueError(f"spectrogram hop {spec.hop_length} / bins {spec.bins} must equal the model's "
                             f"hop {config.hop_length} / spectrogram_bins {config.spectrogram_bins}")
        return spec


def lr_schedule(train: TrainConfig) -> optax.Schedule:
    """learning_rate x lr_decay every `decay_every` steps."""
    return optax.exponential_decay(train.learning_rate, transition_steps=train.decay_every,
                                   decay_rate=train.lr_decay, staircase=True)


def make_optimizer(train: TrainConfig) -> optax.GradientTransformation:
    adamw = optax.adamw(lr_schedule(train), b1=train.b1, b2=train.b2, eps=train.eps,
                        weight_decay=train.weight_decay)
    if train.max_grad_norm is None:
        return adamw
    return optax.chain(optax.clip_by_global_norm(train.max_grad_norm), adamw)


def global_norm(tree) -> jax.Array:
    """sqrt(sum of squares) over all leaves (optax.tree.norm, which older optax lacks)."""
    return jnp.sqrt(sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(tree)))


def learning_rate(train: TrainConfig, step) -> jax.Array:
    return lr_schedule(train)(step)


@flax.struct.dataclass
class TrainState:
    step: jax.Array
    generator: Any                 # VitsModel param tree (plain dict)
    discriminator: Any             # MultiPeriodDiscriminator param tree
    generator_opt: Any
    discriminator_opt: Any

    @classmethod
    def create(cls, generator_params, discriminator_params, train: TrainConfig) -> "TrainState":
        generator_params = getattr(generator_params, "tree", generator_params)  # VitsParams -> dict
        check_trainable(generator_params)   # an inference-only voice (Piper .onnx) cannot train
        tx = make_optimizer(train)
        return cls(step=jnp.zeros((), jnp.int32), generator=generator_params,
                   discriminator=discriminator_params, generator_opt=tx.init(generator_params),
                   discriminator_opt=tx.init(discriminator_params))


def init_generator(config: VitsConfig, key: jax.Array):
    """`init_params` as one compiled program. Run op by op, flax's init compiles a small program
    per operation and shape (tens of seconds on CPU); on CPU this single program is compiled at
    low XLA optimisation, since it runs once."""
    options = FAST_COMPILE if jax.default_backend() == "cpu" else None
    return jax.jit(init_params, static_argnums=0, compiler_options=options)(config, key)


def init_state(config: VitsConfig, train: TrainConfig, key: jax.Array) -> TrainState:
    """Random generator and discriminator (from scratch; to fine-tune, pass loaded generator
    params and a fresh discriminator to TrainState.create)."""
    k_g, k_d = jax.random.split(key)
    return TrainState.create(init_generator(config, k_g), init_discriminator(train.discriminator, k_d), train)


class Batch(NamedTuple):
    input_ids: jax.Array                     # (B, T) int
    text_lengths: jax.Array                  # (B,) tokens
    waveform: jax.Array                      # (B, S) float, zero past each item's end
    audio_lengths: jax.Array                 # (B,) samples
    speaker_ids: Optional[jax.Array] = None  # (B,) int, multi-speaker models only


def _split(outputs, b):
    return [o[:b] for o in outputs], [o[b:] for o in outputs]


def train_step(state: TrainState, batch: Batch, key: jax.Array, *, config: VitsConfig, train: TrainConfig):
    """(state, batch, key) -> (new state, metrics). Jit with config and train static (see make_train_step)."""
    spec_config = train.spectrogram_for(config)
    hop, segment = config.hop_length, train.segment_frames
    b, s = batch.waveform.shape
    if s % hop:
        raise ValueError(f"pad the waveforms to a multiple of the hop ({hop}); got {s} samples")
    f = s // hop
    text_mask = alignment.frame_mask(batch.text_lengths, batch.input_ids.shape[1])     # (B, T, 1)
    frame_lengths = batch.audio_lengths // hop                                # (B,)
    frame_mask = alignment.frame_mask(frame_lengths, f)                               # (B, F, 1)
    spectrogram = linear_spectrogram(batch.waveform, spec_config)             # (B, F, K)
    mel_real_full = linear_to_mel(spectrogram, spec_config)                   # (B, F, M)
    discriminator = MultiPeriodDiscriminator(train.discriminator)
    tx = make_optimizer(train)
    dtype = jnp.dtype(train.compute_dtype or jnp.float32)

    def discriminate(params, waveforms):      # (2B, L * hop) -> float32 logits, feature maps
        # the convs cast their float32 weights to the input's dtype
        out = discriminator.apply({"params": params}, waveforms.astype(dtype))
        return jax.tree.map(lambda x: x.astype(jnp.float32), out)

    def generator(params):                                     # -> (GeneratorOutput, GeneratorAux)
        return generator_forward(params, config, batch.input_ids, text_mask, spectrogram * frame_mask,
                                 frame_mask, batch.speaker_ids, key=key, segment_frames=segment,
                                 deterministic=train.deterministic, decoder_dtype=dtype)

    out, pullback, aux = jax.vjp(generator, state.generator, has_aux=True)
    real = slice_audio(batch.waveform, aux.starts, segment, hop)              # (B, L * hop)

    # Discriminator step on real and detached generated segments.
    def discriminator_loss(params):
        logits, _ = discriminate(params, jnp.concatenate([real, jax.lax.stop_gradient(out.waveform)]))
        total, _, _ = losses.discriminator_loss(*_split(logits, b))
        return total

    d_loss, d_grads = jax.value_and_grad(discriminator_loss)(state.discriminator)
    d_updates, d_opt = tx.update(d_grads, state.discriminator_opt, state.discriminator)
    d_params = optax.apply_updates(state.discriminator, d_updates)

    # Generator losses, as a function of the generator's outputs, against the updated discriminator.
    mel_real = slice_segments(mel_real_full, aux.starts, segment)             # (B, L, M)
    w = train.weights

    def generator_loss(o):
        mel = losses.mel_loss(mel_real, mel_spectrogram(o.waveform, spec_config))
        kl = losses.kl_loss(o.z_p, o.logs_q, o.m_p, o.logs_p, frame_mask)
        logits, fmaps = discriminate(d_params, jnp.concatenate([real, o.waveform]))
        _, generated_logits = _split(logits, b)
        real_fmaps = [[x[:b] for x in layers] for layers in fmaps]
        generated_fmaps = [[x[b:] for x in layers] for layers in fmaps]
        adversarial, _ = losses.generator_adversarial_loss(generated_logits)
        feature = losses.feature_matching_loss(real_fmaps, generated_fmaps)
        total = (w.mel * mel + w.kl * kl + w.duration * o.duration_loss + w.adversarial * adversarial
                 + w.feature * feature)
        return total, dict(mel=mel, kl=kl, duration=o.duration_loss, adversarial=adversarial, feature=feature)

    (g_loss, parts), out_grads = jax.value_and_grad(generator_loss, has_aux=True)(out)
    (g_grads,) = pullback(out_grads)
    g_updates, g_opt = tx.update(g_grads, state.generator_opt, state.generator)
    g_params = optax.apply_updates(state.generator, g_updates)

    metrics = dict(parts, generator=g_loss, discriminator=d_loss,
                   generator_grad_norm=global_norm(g_grads),
                   discriminator_grad_norm=global_norm(d_grads),
                   learning_rate=learning_rate(train, state.step),
                   frames_per_token=jnp.sum(aux.durations) / jnp.sum(text_mask))
    new_state = state.replace(step=state.step + 1, generator=g_params, discriminator=d_params,
                              generator_opt=g_opt, discriminator_opt=d_opt)
    return new_state, metrics


def make_train_step(config: VitsConfig, train: TrainConfig = TrainConfig(), donate: bool = False,
                    devices: Optional[Sequence[jax.Device]] = None, compiler_options: Optional[dict] = None):
    """The jitted step `(state, batch, key) -> (state, metrics)` for fixed configs.

    Recompiles only for new batch shapes (pad token counts and samples to buckets).
    devices: None runs on the default device. Several devices train data-parallel: each holds
    1/len(devices) of the batch (B must be a multiple of it) and a full copy of the state. The
    losses are means over the whole batch, so XLA all-reduces the gradients and the step computes
    the same function as on one device (equal to float32 round-off; random draws do not depend on
    the layout). The returned function places its inputs itself; state and metrics come back
    replicated.
    """
    train.spectrogram_for(config)  # validate early
    step = functools.partial(train_step, config=config, train=train)
    options = dict(donate_argnums=(0,) if donate else (), compiler_options=compiler_options)
    mesh = batch_mesh(devices) if devices is not None else None
    if mesh is None:
        return jax.jit(step, **options)
    replicated, split = NamedSharding(mesh, P()), NamedSharding(mesh, P(BATCH_AXIS))
    jitted = jax.jit(step, in_shardings=(replicated, split, replicated), out_shardings=replicated, **options)

    def data_parallel_step(state: TrainState, batch: Batch, key: jax.Array):
        if batch.input_ids.shape[0] % mesh.size:
            raise ValueError(f"the batch ({batch.input_ids.shape[0]}) must be a multiple of the number "
                             f"of devices ({mesh.size}) for data-parallel training")
        return jitted(jax.device_put(state, replicated), jax.device_put(batch, split),
                      jax.device_put(key, replicated))

    data_parallel_step.mesh = mesh
    return data_parallel_step
