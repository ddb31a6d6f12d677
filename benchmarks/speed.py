"""vits-jax vs transformers' VitsModel on the same machine, same weights, same ids, one process.

    python benchmarks/speed.py [--repeats 5] [--cases 1x20,1x100,1x400,8x100] [--memory] [--no-profile]
        [--wait-quiet 600]

MMS-eng architecture (random weights, 36.3 M parameters), noise off on both sides and a speaking
rate that gives ~6.5 frames per token, so both do the same work. Runs are interleaved
(torch, jax, torch, jax, ...) and medians reported. For batches, PyTorch is timed both as a padded
batch and as a loop over items, and the ratio uses the better of the two. Runs unchanged on a GPU.
`--memory` measures peak RSS of batch 8 x 400 tokens for each framework in its own subprocess.
Each row ends with the cores other processes used while it was measured; its ratio is labelled
NOT VALID above --max-other cores. Then a per-stage profile of 1 x 100 ids (benchmarks/stages.py).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (add_load_arguments, build, calibrated_rate, conv_peak_gflops,  # noqa: E402
                    decoder_flops_per_frame, median_time, peak_rss_mb, snapshot, start_load)
from stages import print_profile, profile  # noqa: E402


def make_batch(cfg, batch, tokens, seed):
    rng = np.random.default_rng(seed)
    lengths = np.full(batch, tokens) if batch == 1 else rng.integers(int(tokens * 0.8), tokens + 1, batch)
    lengths[0] = tokens
    ids = np.zeros((batch, tokens), np.int32)
    mask = np.zeros((batch, tokens), np.int32)
    for i, n in enumerate(lengths):
        ids[i, :n] = rng.integers(0, cfg.vocab_size, n)
        mask[i, :n] = 1
    return ids, mask


def run_case(hf, params, batch, tokens, repeats, device):
    import jax
    import torch

    from vits_jax import synthesize

    cfg = params.config
    ids, mask = make_batch(cfg, batch, tokens, seed=batch * 1000 + tokens)
    rate = calibrated_rate(params, ids, mask)
    kwargs = dict(attention_mask=mask, speaking_rate=rate, noise_scale=0.0, noise_scale_duration=0.0,
                  key=jax.random.key(0))

    def run_jax():
        return synthesize(params, ids, **kwargs)

    t = time.perf_counter()
    out = run_jax()
    first_call = time.perf_counter() - t
    audio_s = float(out.lengths.sum()) / cfg.sampling_rate
    frames = int(out.lengths.sum()) // cfg.hop_length

    tids, tmask = torch.as_tensor(ids, dtype=torch.long, device=device), torch.as_tensor(mask, device=device)

    def sync():
        if device != "cpu":
            torch.cuda.synchronize()

    def run_torch_batch():
        with torch.inference_mode():
            hf(tids, attention_mask=tmask, speaking_rate=rate)
        sync()

    def run_torch_loop():
        with torch.inference_mode():
            for i in range(batch):
                n = int(mask[i].sum())
                hf(tids[i:i + 1, :n], speaking_rate=rate)
        sync()

    with torch.inference_mode():  # same lengths on both sides, or the comparison is void
        ref = hf(tids, attention_mask=tmask, speaking_rate=rate)
    assert np.array_equal(ref.sequence_lengths.cpu().numpy(), out.lengths), "durations differ"
    run_torch_batch()  # warm-up
    jax_times, torch_times, loop_times = [], [], []
    for _ in range(repeats):
        torch_times.append(median_time(run_torch_batch, 1))
        jax_times.append(median_time(run_jax, 1))
        if batch > 1:
            loop_times.append(median_time(run_torch_loop, 1))
    t_jax, t_torch = float(np.median(jax_times)), float(np.median(torch_times))
    t_loop = float(np.median(loop_times)) if loop_times else float("inf")
    best_torch = min(t_torch, t_loop)
    gflop = decoder_flops_per_frame(cfg) * frames / 1e9
    return dict(case=f"{batch}x{tokens}", audio_s=audio_s, torch_s=t_torch,
                torch_loop_s=None if batch == 1 else t_loop, jax_s=t_jax,
                rtf_torch=best_torch / audio_s, rtf_jax=t_jax / audio_s,
                gflops_torch=gflop / best_torch, gflops_jax=gflop / t_jax,
                ratio=best_torch / t_jax, jax_first_call_s=first_call)


def memory_child(framework):
    """Run batch 8 x 400 once in this process and print its peak RSS (MB) as JSON."""
    import torch

    hf, params = build()
    ids, mask = make_batch(params.config, 8, 400, seed=8400)
    rate = calibrated_rate(params, ids, mask)
    base = peak_rss_mb()
    if framework == "torch":
        del params
        with torch.inference_mode():
            hf(torch.as_tensor(ids, dtype=torch.long), attention_mask=torch.as_tensor(mask), speaking_rate=rate)
    else:
        from vits_jax import synthesize
        del hf
        synthesize(params, ids, attention_mask=mask, speaking_rate=rate, noise_scale=0.0,
                   noise_scale_duration=0.0)
    print(json.dumps({"framework": framework, "peak_rss_mb": peak_rss_mb(), "before_mb": base}))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cases", default="1x20,1x100,1x400,8x100")
    parser.add_argument("--memory", action="store_true", help="peak RSS of 8x400 per framework")
    parser.add_argument("--no-profile", action="store_true", help="skip the per-stage profile")
    parser.add_argument("--memory-child", choices=["torch", "jax"], help=argparse.SUPPRESS)
    add_load_arguments(parser)
    args = parser.parse_args()
    if args.memory_child:
        return memory_child(args.memory_child)
    load = start_load(args)

    import jax
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    hf, params = build()
    hf.to(device)
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}, torch {torch.__version__} on {device}, "
          f"threads: torch {torch.get_num_threads()}")
    rows = []
    for case in args.cases.split(","):
        batch, tokens = map(int, case.split("x"))
        since = snapshot()
        rows.append(run_case(hf, params, batch, tokens, args.repeats, device))
        r = rows[-1]
        _, label = load.check(since)
        loop = f" (loop {r['torch_loop_s']:.3f})" if r["torch_loop_s"] else ""
        print(f"{r['case']:>7}  audio {r['audio_s']:6.2f}s  torch {r['torch_s']:.3f}s{loop}  jax {r['jax_s']:.3f}s  "
              f"RTF torch {r['rtf_torch']:.3f} jax {r['rtf_jax']:.3f}  GFLOP/s torch {r['gflops_torch']:.0f} "
              f"jax {r['gflops_jax']:.0f}  torch/jax {r['ratio']:.2f}x{label}  "
              f"(jax first call {r['jax_first_call_s']:.1f}s; {load.note(since)})", flush=True)
    since = snapshot()
    peak = conv_peak_gflops()
    print(f"conv peak (jax, 3x256x256 conv): {peak:.0f} GFLOP/s; decoder-dominated jax throughput at "
          f"{max(r['gflops_jax'] for r in rows) / peak:.0%} of it ({load.note(since)})")
    if not args.no_profile:
        since = snapshot()
        tokens = 100
        ids, mask = make_batch(params.config, 1, tokens, seed=0)
        rate = calibrated_rate(params, ids, mask)
        rows_, facts = profile(params, np.asarray(ids)[0], args.repeats, peak, rate)
        print_profile(f"MMS-eng size, 1 x {tokens} ids", rows_, facts, load.note(since))
    if args.memory:
        for fw in ("torch", "jax"):
            out = subprocess.run([sys.executable, __file__, "--memory-child", fw], capture_output=True, text=True)
            line = out.stdout.strip().splitlines()[-1] if out.returncode == 0 else out.stderr[-500:]
            print(f"8x400 peak RSS {fw}: {line}")
    load.report()


if __name__ == "__main__":
    main()
