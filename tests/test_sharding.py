"""Data-parallel synthesis over several (emulated) CPU devices, in a subprocess so the device
count can be set before JAX starts: synthesize with devices= and mesh=, and the pure core
(vits_jax.generate) on batch-sharded inputs, all equal to one device."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPT = r"""
import functools
import jax, numpy as np, jax.numpy as jnp
from jax.sharding import NamedSharding, PartitionSpec as P
jax.config.update("jax_default_matmul_precision", "highest")
assert jax.local_device_count() == 4, jax.devices()
from vits_jax import VitsConfig, VitsParams, generate, init_params, synthesize
from vits_jax.core import sharding
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

# mesh= (a Mesh, or a batch NamedSharding) is the same as devices=
mesh = sharding.batch_mesh()
split = NamedSharding(mesh, P("batch"))
for placement in (mesh, split):
    out = synthesize(params, ids, mesh=placement, **kw)
    assert np.array_equal(out.durations, one.durations)
    worst = max(worst, float(np.abs(out.waveform - one.waveform).max()))

# each device holds only its slice of the batch
x = sharding.shard_batch(jnp.arange(6 * 16).reshape(6, 16), 6, split)
assert x.shape == (8, 16) and sorted(s.data.shape for s in x.addressable_shards) == [(2, 16)] * 4
assert {s.device for s in x.addressable_shards} == set(jax.devices())

# the pure core on batch-sharded inputs (params replicated): equal to synthesize, and its outputs
# keep the batch split over the four devices
frames = one.waveform.shape[1] // cfg.hop_length + 8
ids8, mask8 = np.concatenate([ids, ids[:3]]), np.concatenate([mask, mask[:3]])
speakers8 = np.concatenate([kw["speaker_id"], kw["speaker_id"][:3]]).astype(np.int32)
key = jax.random.key(21)
placed = [jax.device_put(a, split) for a in (ids8, mask8, speakers8)]
gen = jax.jit(functools.partial(generate, num_frames=frames))
out = gen(jax.device_put(params, NamedSharding(mesh, P())), placed[0], placed[1], key, speaker_id=placed[2],
          speaking_rate=0.05)
for leaf in (out.waveform, out.durations, out.lengths):
    assert len(leaf.addressable_shards) == 4 and all(s.data.shape[0] == 2 for s in leaf.addressable_shards), \
        [s.data.shape for s in leaf.addressable_shards]
ref = synthesize(params, ids8, mask8, key=key, speaker_id=speakers8, speaking_rate=0.05, max_frames=frames,
                 devices=jax.devices()[:1])
assert np.array_equal(np.asarray(out.durations), ref.durations) and np.array_equal(np.asarray(out.lengths), ref.lengths)
worst = max(worst, float(np.abs(np.asarray(out.waveform)[:, :ref.waveform.shape[1]] - ref.waveform).max()))
assert worst <= 1e-6, worst
print("max abs difference sharded vs one device:", worst)
"""


def test_sharded_equals_unsharded_and_splits_batch():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu",
               PYTHONPATH=os.path.join(ROOT, "tests") + os.pathsep + ROOT)
    proc = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=480)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert "max abs difference" in proc.stdout
