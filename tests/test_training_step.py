"""The train step: optimiser semantics against torch's AdamW + ExponentialLR, clipping, error
paths, and a tiny model overfitting three utterances spoken by espeak-ng."""

import dataclasses
import functools
import os
import shutil
import subprocess

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
from conftest import TRAIN_TINY

from vits_jax import Tokenizer, VitsConfig
from vits_jax.nn.model import param_shapes
from vits_jax.training.data import Batches, load_dataset
from vits_jax.training.discriminators import DiscriminatorConfig, discriminator_shapes
from vits_jax.training.spectrogram import SpectrogramConfig
from vits_jax.training.step import (Batch, TrainConfig, TrainState, init_state, learning_rate,
                                    make_optimizer, make_train_step, train_step)


def test_optimizer_matches_torch_adamw_with_exponential_decay():
    train = TrainConfig(decay_every=2, lr_decay=0.5, learning_rate=1e-2)
    rng = np.random.default_rng(0)
    p0 = rng.normal(size=(5,)).astype(np.float32)
    grads = rng.normal(size=(6, 5)).astype(np.float32)

    param = torch.nn.Parameter(torch.from_numpy(p0.copy()))
    opt = torch.optim.AdamW([param], lr=1e-2, betas=(0.8, 0.99), eps=1e-9)   # weight_decay 0.01 default
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.5)
    tx = make_optimizer(train)
    p, state = jnp.asarray(p0), tx.init(jnp.asarray(p0))
    for i, g in enumerate(grads):
        param.grad = torch.from_numpy(g.copy())
        opt.step()
        if i % 2 == 1:  # one "epoch" = decay_every = 2 steps
            sched.step()
        updates, state = tx.update(jnp.asarray(g), state, p)
        p = optax.apply_updates(p, updates)
        np.testing.assert_allclose(np.asarray(p), param.detach().numpy(), rtol=1e-5, atol=1e-7)
    assert float(learning_rate(train, 5)) == pytest.approx(1e-2 * 0.5 ** 2)


def test_clipping_clips_each_gradient_to_the_global_norm():
    g = {"a": jnp.full((4,), 30.0), "b": jnp.full((2, 2), 40.0)}
    p = jax.tree.map(jnp.zeros_like, g)
    clipped_tx, plain_tx = make_optimizer(TrainConfig(max_grad_norm=1.0)), make_optimizer(TrainConfig())
    clipped, _ = clipped_tx.update(g, clipped_tx.init(p), p)
    scaled = jax.tree.map(lambda x: x / optax.tree.norm(g), g)
    expected, _ = plain_tx.update(scaled, plain_tx.init(p), p)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), clipped, expected)


# --- a tiny model on synthetic speech-like data ---------------------------------------------------

HOP = 64
CONFIG = VitsConfig(**TRAIN_TINY)
FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "mms-tts-eng")
SPEC = SpectrogramConfig(n_fft=256, hop_length=HOP, win_length=256, n_mels=40)


def synthetic_batch(seed=0):
    """Two utterances whose tokens are tones (200 + 60 x id Hz) held for 4-8 frames each:
    what the model must learn is which tone each token makes and how long it lasts."""
    rng = np.random.default_rng(seed)
    text_lengths = np.array([10, 7])
    ids = np.zeros((2, 10), np.int32)
    wav = np.zeros((2, 80 * HOP), np.float32)
    audio_lengths = np.zeros(2, np.int32)
    for i, n in enumerate(text_lengths):
        tokens = rng.integers(1, CONFIG.vocab_size, n)
        frequency = np.repeat(200.0 + 60.0 * tokens, rng.integers(4, 9, n) * HOP)
        w = 0.5 * np.sin(2 * np.pi * np.cumsum(frequency) / CONFIG.sampling_rate)
        ids[i, :n], wav[i, :len(w)], audio_lengths[i] = tokens, w, len(w)
    return Batch(jnp.asarray(ids), jnp.asarray(text_lengths), jnp.asarray(wav), jnp.asarray(audio_lengths))


def test_step_validates_inputs():
    with pytest.raises(ValueError, match="spectrogram_bins"):
        make_train_step(CONFIG, TrainConfig(spectrogram=SpectrogramConfig()))
    train = TrainConfig(spectrogram=SPEC, discriminator=DiscriminatorConfig().scaled(16))
    batch = synthetic_batch()
    bad = batch._replace(waveform=batch.waveform[:, :-1])
    with pytest.raises(ValueError, match="multiple of the hop"):
        state = jax.eval_shape(lambda g, d: TrainState.create(g, d, train), param_shapes(CONFIG),
                               discriminator_shapes(train.discriminator))
        step = functools.partial(train_step, config=CONFIG, train=train)
        jax.eval_shape(step, state, bad, jax.random.key(0))


ESPEAK_TEXTS = ["hello there", "a short test", "good morning"]


def test_overfits_three_espeak_utterances(tmp_path):
    """Three clips spoken by espeak-ng, read through the manifest loader (22.05 kHz resampled to the
    model's 16 kHz), one batch, 600 steps at the default XLA optimisation (compiling takes ~35 s,
    the steps ~40/s). lr 2e-3 (10x VITS') so that the trend shows within the steps; VITS' loss
    weights and betas. Two period discriminators instead of five keep the compile time down (the
    full structure is traced in test_full_mms_size_step_traces and checked against the original
    in test_training_discriminators). Segments are drawn at random, so single-step mel losses
    swing (speech vs silence); the test compares means over windows."""
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is needed to make the training clips (Debian/Ubuntu: apt install espeak-ng)")
    with open(tmp_path / "train.csv", "w") as f:
        f.write("audio,text\n")
        for i, text in enumerate(ESPEAK_TEXTS):
            subprocess.run(["espeak-ng", "-w", str(tmp_path / f"{i}.wav"), text], check=True, capture_output=True,
                           timeout=60)
            f.write(f"{i}.wav,{text}\n")
    tokenizer = Tokenizer.load(FIXTURES)
    dataset = load_dataset(tmp_path / "train.csv", tokenizer, sampling_rate=CONFIG.sampling_rate,
                           hop_length=HOP)
    assert len(dataset) == 3 and not dataset.skipped
    batch = Batches(dataset, 3, hop_length=HOP, min_frames=16, padding_id=tokenizer.padding_id).batch_at(0)

    disc = dataclasses.replace(DiscriminatorConfig().scaled(16), periods=(2, 3))
    train = TrainConfig(learning_rate=2e-3, segment_frames=16, spectrogram=SPEC, discriminator=disc,
                        max_grad_norm=1e3)
    state = init_state(CONFIG, train, jax.random.key(0))
    step = make_train_step(CONFIG, train)
    history = []
    for i in range(600):
        state, metrics = step(state, batch, jax.random.key(i + 1))
        history.append(jax.device_get(metrics))
    assert int(state.step) == 600
    curves = {k: np.array([float(m[k]) for m in history]) for k in history[0]}
    for name, curve in curves.items():
        assert np.all(np.isfinite(curve)), name
    start = {k: v[:5].mean() for k, v in curves.items()}
    end = {k: v[-100:].mean() for k, v in curves.items()}
    summary = ", ".join(f"{k} {start[k]:.3g} -> {end[k]:.3g}" for k in ("mel", "kl", "duration"))
    print("first 5 steps -> last 100 steps:", summary)
    # Measured: mel 2.19 -> 0.76, kl 4.1 -> 0.75, duration 18 -> 2.8.
    assert end["mel"] < start["mel"] / 2.0, summary
    assert end["kl"] < start["kl"] / 2.0, summary
    assert end["duration"] < start["duration"] / 3.0, summary
    assert np.all(curves["frames_per_token"] == curves["frames_per_token"][0])  # durations cover the frames


def test_bfloat16_compute_keeps_float32_state_and_close_losses():
    # The first step from one state in float32 and with the decoder and discriminator in bfloat16.
    fast = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}
    disc = dataclasses.replace(DiscriminatorConfig().scaled(16), periods=(2, 3))
    f32 = TrainConfig(segment_frames=16, spectrogram=SPEC, discriminator=disc)
    bf16 = dataclasses.replace(f32, compute_dtype="bfloat16")
    state = init_state(CONFIG, f32, jax.random.key(0))
    batch, key = synthetic_batch(), jax.random.key(1)
    new32, m32 = make_train_step(CONFIG, f32, compiler_options=fast)(state, batch, key)
    new16, m16 = make_train_step(CONFIG, bf16, compiler_options=fast)(state, batch, key)
    for leaf in jax.tree.leaves((new16.generator, new16.discriminator, new16.generator_opt)):
        if jnp.issubdtype(leaf.dtype, jnp.floating):
            assert leaf.dtype == jnp.float32
    for name in ("mel", "kl", "duration", "generator", "discriminator"):
        a, b = float(m32[name]), float(m16[name])
        assert np.isfinite(b), name
        # bfloat16 keeps 8 bits of mantissa, but the losses are means over many samples: measured
        # 1.2e-4 relative (mel 3.5585 vs 3.5581); kl and duration do not touch the decoder or
        # discriminator at all.
        assert b == pytest.approx(a, rel=2e-3), (name, a, b)
    assert float(m16["kl"]) == float(m32["kl"]) and float(m16["duration"]) == float(m32["duration"])
    moved = [np.abs(np.asarray(a) - np.asarray(b)).max() for a, b in
             zip(jax.tree.leaves(state.generator["decoder"]), jax.tree.leaves(new16.generator["decoder"]))]
    assert min(moved) > 0   # every decoder weight received a gradient through the casts


def test_full_mms_size_step_traces():
    # The MMS architecture with VITS' full discriminator, traced only (nothing compiled or allocated).
    cfg, train = VitsConfig(), TrainConfig()
    state = jax.eval_shape(lambda g, d: TrainState.create(g, d, train), param_shapes(cfg),
                           discriminator_shapes(train.discriminator))
    s = jax.ShapeDtypeStruct
    batch = Batch(s((2, 40), jnp.int32), s((2,), jnp.int32), s((2, 256 * 120), jnp.float32),
                  s((2,), jnp.int32))
    new_state, metrics = jax.eval_shape(functools.partial(train_step, config=cfg, train=train), state, batch,
                                        jax.random.key(0))
    assert jax.tree.structure(new_state) == jax.tree.structure(state)
    same = lambda a, b: np.testing.assert_equal((a.shape, a.dtype), (b.shape, b.dtype))
    jax.tree.map(same, new_state, state)
    assert all(m.shape == () for m in metrics.values())
