"""bfloat16 decoder vs float32: speed and deviation (max abs error, SNR in dB) on a sentence set.

    python benchmarks/precision.py [--dtype bfloat16] [--sentences 8] [--repeats 3] [--wait-quiet 600]

The speed ratio is labelled NOT VALID when other processes used more than --max-other cores.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import add_load_arguments, build, calibrated_rate, median_time, start_load  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--sentences", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    add_load_arguments(parser)
    args = parser.parse_args()
    load = start_load(args)

    from vits_jax import synthesize

    _, params = build()
    rng = np.random.default_rng(0)
    errors, snrs, t32, tlow = [], [], [], []
    for i in range(args.sentences):
        n = int(rng.integers(20, 120))
        ids = rng.integers(0, params.config.vocab_size, (1, n)).astype(np.int32)
        mask = np.ones_like(ids)
        kw = dict(attention_mask=mask, speaking_rate=calibrated_rate(params, ids, mask))
        ref = synthesize(params, ids, **kw)
        low = synthesize(params, ids, dtype=args.dtype, **kw)
        assert np.array_equal(ref.lengths, low.lengths)
        diff = low.waveform - ref.waveform
        errors.append(float(np.abs(diff).max()))
        snrs.append(10 * np.log10(np.sum(ref.waveform ** 2) / max(np.sum(diff ** 2), 1e-30)))
        t32.append(median_time(lambda: synthesize(params, ids, **kw), args.repeats))
        tlow.append(median_time(lambda: synthesize(params, ids, dtype=args.dtype, **kw), args.repeats))
    print(f"{args.sentences} sentences: {args.dtype} vs float32: max abs error {max(errors):.2e}, "
          f"SNR min {min(snrs):.1f} dB / median {np.median(snrs):.1f} dB; "
          f"time float32 {sum(t32):.2f} s, {args.dtype} {sum(tlow):.2f} s "
          f"({sum(t32) / sum(tlow):.2f}x{load.check()[1]})")
    load.report()


if __name__ == "__main__":
    main()
