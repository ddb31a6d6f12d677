"""Throughput: audio seconds generated per wall second at batch 1/8/32/64, split over all local
devices (one on a plain CPU; set XLA_FLAGS=--xla_force_host_platform_device_count=N to emulate N).

    python benchmarks/throughput.py [--tokens 100] [--batches 1,8,32,64] [--dtype bfloat16] [--wait-quiet 600]

Each row ends with the cores other processes used while it ran (NOT VALID above --max-other).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import add_load_arguments, build, calibrated_rate, snapshot, start_load  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokens", type=int, default=100)
    parser.add_argument("--batches", default="1,8,32,64")
    parser.add_argument("--dtype", default=None)
    parser.add_argument("--repeats", type=int, default=3)
    add_load_arguments(parser)
    args = parser.parse_args()
    load = start_load(args)

    import jax

    from vits_jax import synthesize

    _, params = build()
    print(f"devices: {jax.devices()}")
    rng = np.random.default_rng(0)
    for batch in map(int, args.batches.split(",")):
        ids = rng.integers(0, params.config.vocab_size, (batch, args.tokens)).astype(np.int32)
        mask = np.ones_like(ids)
        since = snapshot()
        rate = calibrated_rate(params, ids, mask)
        kw = dict(attention_mask=mask, speaking_rate=rate, noise_scale=0.0, noise_scale_duration=0.0,
                  dtype=args.dtype)
        out = synthesize(params, ids, **kw)  # compile
        times = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            synthesize(params, ids, **kw)
            times.append(time.perf_counter() - t)
        audio = out.lengths.sum() / params.config.sampling_rate
        print(f"batch {batch:3d}: {audio:7.1f} s of audio in {np.median(times):6.2f} s "
              f"-> {audio / np.median(times):6.1f} audio s per wall s ({load.note(since)})", flush=True)
    load.report()


if __name__ == "__main__":
    main()
