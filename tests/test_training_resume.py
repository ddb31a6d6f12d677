"""Training checkpoints (training/checkpoints.py): save every N / keep K, and exact resume:
k steps + save + restore + k steps gives bitwise the same state as 2k steps straight."""

import dataclasses
import functools
import os

import jax
import numpy as np
import pytest
from conftest import TRAIN_TINY

from vits_jax import VitsConfig
from vits_jax.training.checkpoints import TrainCheckpoints, abstract_state
from vits_jax.training.data import Batches, Dataset, Example
from vits_jax.training.discriminators import DiscriminatorConfig
from vits_jax.training.spectrogram import SpectrogramConfig
from vits_jax.training.step import TrainConfig, init_state, train_step

# The tiny model of test_training_step, compiled at low XLA optimisation (compile time dominates).
HOP = 64
CONFIG = VitsConfig(**TRAIN_TINY)
SPEC = SpectrogramConfig(n_fft=256, hop_length=HOP, win_length=256, n_mels=40)
TRAIN = TrainConfig(learning_rate=2e-3, segment_frames=16, spectrogram=SPEC, max_grad_norm=1e3,
                    discriminator=dataclasses.replace(DiscriminatorConfig().scaled(16), periods=(2, 3)))
FAST = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}
K = 2


def dataset():
    rng = np.random.default_rng(0)
    examples = []
    for i, (n, frames) in enumerate([(9, 40), (7, 36), (10, 44), (8, 30)]):
        ids = rng.integers(1, CONFIG.vocab_size, n).astype(np.int32)
        t = np.arange(frames * HOP) / CONFIG.sampling_rate
        wav = (0.5 * np.sin(2 * np.pi * (200 + 40 * i) * t)).astype(np.float32)
        examples.append(Example(i + 1, f"{i}.wav", "x", ids, wav))
    return Dataset(examples, [], CONFIG.sampling_rate)


@pytest.fixture(scope="module")
def setup():
    batches = Batches(dataset(), 2, hop_length=HOP, seed=0, min_frames=TRAIN.segment_frames)
    step = jax.jit(functools.partial(train_step, config=CONFIG, train=TRAIN), compiler_options=FAST)
    base = jax.random.key(7)
    state0 = init_state(CONFIG, TRAIN, jax.random.key(0))
    return batches, step, base, state0


def run(step, batches, base, state, start, stop):
    for i in range(start, stop):
        state, _ = step(state, batches.batch_at(i), jax.random.fold_in(base, i))
    return state


def assert_same(a, b):
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    assert jax.tree.structure(a) == jax.tree.structure(b) and len(la) == len(lb)
    for x, y in zip(la, lb):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_resume_is_exact(setup, tmp_path):
    batches, step, base, state0 = setup
    straight = run(step, batches, base, state0, 0, 2 * K)

    half = run(step, batches, base, state0, 0, K)
    with TrainCheckpoints(tmp_path / "ckpt", save_every=K) as ckpt:
        assert ckpt.maybe_save(K, half, base, {"seed": 0, "note": "half"})
    del half
    with TrainCheckpoints(tmp_path / "ckpt", save_every=K) as ckpt:   # a new process would do this
        restored = ckpt.restore_latest(abstract_state(state0), jax.random.key(0))
    assert restored.step == K == int(restored.state.step)
    assert restored.meta == {"seed": 0, "note": "half"}
    np.testing.assert_array_equal(jax.random.key_data(restored.key), jax.random.key_data(base))
    resumed = run(step, batches, restored.key, restored.state, K, 2 * K)
    assert int(resumed.step) == 2 * K
    assert_same(resumed, straight)                   # bitwise, params and optimiser states
    assert not np.array_equal(np.asarray(jax.tree.leaves(straight.generator)[0]),
                              np.asarray(jax.tree.leaves(state0.generator)[0]))


def test_save_every_and_keep(setup, tmp_path):
    _, _, base, state0 = setup
    with TrainCheckpoints(tmp_path / "ckpt", save_every=2, keep=2) as ckpt:
        assert ckpt.latest_step() is None
        assert ckpt.restore_latest(state0, base) is None
        saved = [s for s in range(1, 8) if ckpt.maybe_save(s, state0, base)]
        assert saved == [2, 4, 6]
        assert ckpt.steps == [4, 6]                                  # keep the newest 2
    names = sorted(os.listdir(tmp_path / "ckpt"))
    assert names == ["4", "6"]                                       # no temporary folders left
    with pytest.raises(ValueError, match="save_every"):
        TrainCheckpoints(tmp_path / "other", save_every=0)
