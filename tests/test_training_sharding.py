"""Data-parallel training over 4 emulated CPU devices (in a subprocess, so the device count is set
before JAX starts): the sharded step computes what the one-device step computes, keeps the state
replicated, holds a slice of the batch per device, and refuses a batch that does not split evenly."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPT = r"""
import dataclasses
import jax, jax.numpy as jnp, numpy as np
jax.config.update("jax_default_matmul_precision", "highest")
assert jax.local_device_count() == 4, jax.devices()
from test_training_step import CONFIG, SPEC, synthetic_batch
# The deterministic duration predictor: the stochastic one's spline flows have parameter gradients
# that jump where an input crosses a bin knot, so a 1-ulp difference between two valid programs
# (one device vs four fuse differently) moves one element's share of a gradient to the next bin:
# measured 5e-5 of the largest step in its post flows, against 3e-7 everywhere with this predictor.
# The sharding is the same for both; the spline's own gradients are checked against the original
# VITS code in test_training_reference.py.
CONFIG = dataclasses.replace(CONFIG, use_stochastic_duration_prediction=False)
from vits_jax.training import DiscriminatorConfig, TrainConfig, init_state, make_train_step
from vits_jax.training.step import Batch

FAST = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}
disc = dataclasses.replace(DiscriminatorConfig().scaled(16), periods=(2, 3))
# AdamW's first step moves every weight by +-lr whatever the size of its gradient, so a gradient
# that is round-off noise on both sides could flip sign and the parameters would differ by 2 lr.
# With b1 = b2 = 0, eps = lr = 1e6 and no decay the update is g / (1 + |g| / 1e6) ~ g: one step
# of plain gradient descent, whose parameters then compare the gradients themselves.
train = TrainConfig(segment_frames=16, spectrogram=SPEC, discriminator=disc, learning_rate=1e6, b1=0.0,
                    b2=0.0, eps=1e6, weight_decay=0.0)
two = synthetic_batch(0)
batch = Batch(*(jnp.concatenate([a, b]) for a, b in zip(two[:4], synthetic_batch(1)[:4])))  # B = 4

one = make_train_step(CONFIG, train, compiler_options=FAST)
four = make_train_step(CONFIG, train, devices=jax.devices(), compiler_options=FAST)
assert four.mesh.size == 4
s0 = init_state(CONFIG, train, jax.random.key(0))
s1, m1 = one(s0, batch, jax.random.key(1))
s4, m4 = four(s0, batch, jax.random.key(1))
worst_metric = max(abs(float(m1[k]) - float(m4[k])) / max(1.0, abs(float(m1[k]))) for k in m1)
for leaf in jax.tree.leaves(s4):
    assert leaf.sharding.is_fully_replicated and len(leaf.sharding.device_set) == 4, leaf.sharding
worst, largest = 0.0, 0.0
for net in ("generator", "discriminator"):
    for a, b, c in zip(*(jax.tree.leaves(getattr(s, net)) for s in (s0, s1, jax.device_get(s4)))):
        largest = max(largest, float(jnp.abs(b - a).max()))
        worst = max(worst, float(jnp.abs(b - c).max()))
print(f"metrics: worst relative difference {worst_metric:.3g}; gradient step: largest {largest:.3g}, "
      f"worst difference one vs four devices {worst:.3g}")
assert worst_metric < 1e-5, worst_metric
assert worst < 1e-5 * max(1.0, largest), (worst, largest)
s4, _ = four(s4, batch, jax.random.key(2))   # the replicated state goes straight back in
assert int(s4.step) == 2

# the batch split: the device_put the step does gives each device 1 of the 4 rows
from jax.sharding import NamedSharding, PartitionSpec as P
placed = jax.device_put(batch.waveform, NamedSharding(four.mesh, P("batch")))
assert sorted(s.data.shape[0] for s in placed.addressable_shards) == [1, 1, 1, 1]

try:
    four(s4, Batch(*(x[:3] for x in batch[:4])), jax.random.key(9))
except ValueError as e:
    assert "multiple of the number of devices (4)" in str(e), e
else:
    raise AssertionError("a batch of 3 over 4 devices was accepted")
from vits_jax.training.loop import RunConfig, _devices
assert len(_devices(RunConfig("m", "d", "o", batch_size=8))) == 4          # default: all local devices
assert len(_devices(RunConfig("m", "d", "o", batch_size=6, devices=2))) == 2
try:
    _devices(RunConfig("m", "d", "o", batch_size=6))
except ValueError as e:
    assert "batch size (6) must be a multiple of the number of devices (4)" in str(e), e
else:
    raise AssertionError("batch 6 over 4 devices was accepted")
print("ok")
"""


def test_data_parallel_step_equals_one_device_step():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu",
               PYTHONPATH=os.path.join(ROOT, "tests") + os.pathsep + ROOT)
    proc = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=480)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert proc.stdout.rstrip().endswith("ok"), proc.stdout
    print(proc.stdout)
