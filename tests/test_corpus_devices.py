"""Corpus synthesis over 4 emulated CPU devices (batched, sharded rendering) against one device
(unit by unit): the same rows, lengths and settings, audio equal up to float round-off. In a
subprocess, so the device count can be set before JAX starts."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPT = r"""
import json, os, sys, tempfile
import jax, numpy as np
jax.config.update("jax_default_matmul_precision", "highest")
assert jax.local_device_count() == 4, jax.devices()
from vits_jax import Tokenizer, VitsConfig, VitsParams, audio, init_params
from vits_jax.corpus import synthesize_corpus
from conftest import SMALL

cfg = VitsConfig.from_dict(dict(SMALL, vocab_size=38, num_speakers=3, speaker_embedding_size=4))
params = VitsParams(init_params(cfg, jax.random.key(0)), cfg)
tokenizer = Tokenizer.load(os.path.join(sys.argv[1], "tests", "fixtures", "mms-tts-eng"))
words = ["hi", "go on", "yes", "no way", "a cat", "the sun", "we ran"]
rows = [{"id": f"r{i}", "text": words[i % len(words)]} for i in range(9)]
kw = dict(seed=4, speakers="random", rate_range=(0.6, 0.7), noise_duration_range=(0.0, 0.2),
          mix_range=(0.0, 0.6), progress=False)
root = tempfile.mkdtemp()
runs = {"one": dict(devices=jax.devices()[:1], batch_size=4),     # unit by unit
        "four": dict(batch_size=4),                               # batches of 4 over 4 devices
        "four_b3": dict(batch_size=3)}                            # padded to 4, other batches
worst = 0
for name, extra in runs.items():
    summary = synthesize_corpus(params, tokenizer, rows, os.path.join(root, name), **kw, **extra)
    assert summary.written == 9, summary
    if name != "one":
        assert summary.batches >= 2, summary
manifests = {n: [json.loads(l) for l in open(os.path.join(root, n, "manifest.jsonl"))] for n in runs}
assert manifests["one"] == manifests["four"] == manifests["four_b3"]   # lengths, settings, speakers
for r in manifests["one"]:
    one = audio.read_wav(os.path.join(root, "one", r["path"]))[0]
    for other in ("four", "four_b3"):
        wave = audio.read_wav(os.path.join(root, other, r["path"]))[0]
        assert wave.shape == one.shape
        worst = max(worst, float(np.abs(wave - one).max()) * 32767)
assert worst <= 1.0 + 1e-3, worst       # at most one step of the 16-bit PCM (float round-off)
print("max PCM difference, 4 devices vs 1:", round(worst))
"""


def test_corpus_on_four_devices_equals_one_device():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu",
               PYTHONPATH=os.path.join(ROOT, "tests") + os.pathsep + ROOT)
    proc = subprocess.run([sys.executable, "-c", SCRIPT, ROOT], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert "max PCM difference" in proc.stdout
