"""Cold start: first-call latency of `vits-jax say` in a fresh process, without and with the
persistent compilation cache.

    python benchmarks/cold_start.py [--repeats 3] [--wait-quiet 600]

Saves a random MMS-size transformers model to a temp folder (with the MMS-eng tokenizer files),
then times three processes speaking one sentence: --no-cache, a first run filling an empty cache,
and a second run reading it. The three run --repeats times, interleaved (each repeat with its own
empty cache folder); the median wall time is reported with its min and max.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import ROOT, add_load_arguments, build, snapshot, start_load  # noqa: E402

TEXT = "The quick brown fox jumps over the lazy dog."


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="processes of each kind (default 3)")
    add_load_arguments(parser)
    args = parser.parse_args()
    load = start_load(args)

    hf, _ = build()
    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "model")
        hf.save_pretrained(model)
        fixtures = os.path.join(ROOT, "tests", "fixtures", "mms-tts-eng")
        for name in ("vocab.json", "tokenizer_config.json", "special_tokens_map.json"):
            shutil.copy(os.path.join(fixtures, name), model)
        labels = ("no cache", "first process, empty cache", "second process, warm cache")
        walls = {label: [] for label in labels}
        since = snapshot()
        for r in range(args.repeats):             # interleaved; a fresh cache folder per repeat
            cache = os.path.join(tmp, f"cache{r}")
            for label, extra in zip(labels, (["--no-cache"], ["--cache-dir", cache], ["--cache-dir", cache])):
                cmd = [sys.executable, "-m", "vits_jax.app.main", "say", TEXT, "-m", model, "-o",
                       os.path.join(tmp, "out.wav"), "--rate", "0.05", *extra]
                t = time.perf_counter()
                subprocess.run(cmd, check=True, cwd=ROOT, capture_output=True)
                walls[label].append(time.perf_counter() - t)
        for label in labels:
            w = walls[label]
            print(f"{label:>28}: {statistics.median(w):6.2f} s wall (min {min(w):.2f}, max {max(w):.2f}; "
                  f"{len(w)} processes; process start to WAV written)")
        print(f"{'':>28}  {load.note(since)} while timed")
    load.report()
    return 0


if __name__ == "__main__":
    sys.exit(main())
