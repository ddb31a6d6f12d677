"""Data-parallel synthesis over several (emulated) CPU devices, in a subprocess so the device
count can be set before JAX starts."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPT = r"""
import jax, numpy as np, jax.numpy as jnp
jax.config.update("jax_default_matmul_precision", "highest")
assert jax.local_device_count() == 4, jax.devices()
from vits_jax import VitsConfig, VitsParams, init_params, synthesize
from vits_jax import sharding, synthesis
from conftest import SMALL

cfg = VitsConfig.from_dict(dict(SMALL, num_speakers=3, speaker_embedding_size=4))
params = VitsParams(init_params(cfg, jax.random.key(0)), cfg)
rng = np.random.default_rng(0)
worst = 0.0
for batch in (5,):  # not a multiple of the 4 devices: padded, then trimmed
    lens = rng.integers(3, 30, batch)
    ids = np.zeros((batch, 30), np.int32); mask = np.zeros((batch, 30), np.int32)
    for i, n in enumerate(lens):
        ids[i, :n] = rng.integers(0, cfg.vocab_size, n); mask[i, :n] = 1
    kw = dict(attention_mask=mask, key=jax.random.key(batch), speaker_id=rng.integers(0, 3, batch),
              speaking_rate=0.05)
    one = synthesize(params, ids, devices=jax.devices()[:1], **kw)
    four = synthesize(params, ids, **kw)
    fixed = synthesize(params, ids, max_frames=one.waveform.shape[1] // cfg.hop_length + 8, **kw)
    assert np.array_equal(one.lengths, four.lengths) and np.array_equal(one.durations, four.durations)
    assert four.waveform.shape == one.waveform.shape
    worst = max(worst, float(np.abs(four.waveform - one.waveform).max()),
                float(np.abs(fixed.waveform - one.waveform).max()))
assert worst <= 1e-6, worst

# each device holds only its slice of the batch, and the stage keeps that layout
mesh = sharding.batch_mesh()
x = sharding.shard_batch(jnp.arange(6 * 16).reshape(6, 16), 6, mesh)
assert x.shape == (8, 16) and sorted(s.data.shape for s in x.addressable_shards) == [(2, 16)] * 4
assert {s.device for s in x.addressable_shards} == set(jax.devices())
config, t, stage1, _ = synthesis._prepare(params, ids, mask, None, 0, 0.05, None, None, None, None)
stage1 = {k: sharding.replicate(v, mesh) if k == "tree" else sharding.shard_batch(v, len(ids), mesh)
          for k, v in stage1.items()}
durations, means, _ = synthesis._encode_stage(**stage1, config=config)
for out in (durations, means):
    assert len(out.addressable_shards) == 4
    assert all(s.data.shape[0] == 2 for s in out.addressable_shards), [s.data.shape for s in out.addressable_shards]
print("max abs difference sharded vs one device:", worst)
"""


def test_sharded_equals_unsharded_and_splits_batch():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu",
               PYTHONPATH=os.path.join(ROOT, "tests") + os.pathsep + ROOT)
    proc = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert "max abs difference" in proc.stdout
