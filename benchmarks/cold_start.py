"""Cold start: first-call latency of `vits-jax say` in a fresh process, without and with the
persistent compilation cache.

    python benchmarks/cold_start.py

Saves a random MMS-size transformers model to a temp folder (with the MMS-eng tokenizer files),
then times three processes speaking one sentence: --no-cache, a first run filling an empty cache,
and a second run reading it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import ROOT, build  # noqa: E402

TEXT = "The quick brown fox jumps over the lazy dog."


def main():
    hf, _ = build()
    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "model")
        hf.save_pretrained(model)
        fixtures = os.path.join(ROOT, "tests", "fixtures", "mms-tts-eng")
        for name in ("vocab.json", "tokenizer_config.json", "special_tokens_map.json"):
            shutil.copy(os.path.join(fixtures, name), model)
        cache = os.path.join(tmp, "cache")
        runs = [("no cache", ["--no-cache"]), ("first process, empty cache", ["--cache-dir", cache]),
                ("second process, warm cache", ["--cache-dir", cache])]
        for label, extra in runs:
            cmd = [sys.executable, "-m", "vits_jax.app.main", "say", TEXT, "-m", model, "-o",
                   os.path.join(tmp, "out.wav"), "--rate", "0.05", *extra]
            t = time.perf_counter()
            subprocess.run(cmd, check=True, cwd=ROOT, capture_output=True)
            print(f"{label:>28}: {time.perf_counter() - t:6.2f} s wall (process start to WAV written)")


if __name__ == "__main__":
    main()
