"""Shared set-up for the benchmarks: one random MMS-size model on both sides, realistic durations."""

from __future__ import annotations

import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

FRAMES_PER_TOKEN = 6.5  # MMS voices speak ~5-8 frames per token


def build(seed: int = 0, config_overrides: dict | None = None):
    """A random transformers VitsModel (MMS-eng architecture unless overridden) and its params."""
    import torch
    from transformers import VitsConfig as HFConfig, VitsModel as HFModel

    from convert import to_flax
    from vits_jax import VitsConfig, VitsParams

    torch.manual_seed(seed)
    hf = HFModel(HFConfig(**(config_overrides or {}))).eval()
    with torch.no_grad():  # keep tanh out of saturation, as a trained voice is
        hf.decoder.conv_post.weight.mul_(1e-3)
    hf.noise_scale = hf.noise_scale_duration = 0.0
    cfg = VitsConfig.from_dict(hf.config.to_dict())
    params = VitsParams(to_flax({k: v.detach().numpy() for k, v in hf.state_dict().items()}, cfg), cfg)
    return hf, params


def calibrated_rate(params, ids, mask) -> float:
    """Speaking rate that gives ~FRAMES_PER_TOKEN frames per token with noise off (random-init
    durations are ~0.1 frame per token); both frameworks then do the same work."""
    from vits_jax.synth.synthesis import predict_durations

    durations = np.asarray(predict_durations(params, ids, mask, speaking_rate=1.0, noise_scale_duration=0.0))
    return float(durations.sum() / mask.sum()) / FRAMES_PER_TOKEN


def decoder_flops_per_frame(cfg) -> float:
    """Multiply-adds x 2 of the HiFi-GAN decoder per latent frame (convs only)."""
    flops, c, hop = 0.0, cfg.upsample_initial_channel, 1
    flops += 2 * 7 * cfg.flow_size * c
    for rate, k in zip(cfg.upsample_rates, cfg.upsample_kernel_sizes):
        out = c // 2
        flops += 2 * k * c * out * hop          # transposed conv: k taps per input position
        hop *= rate
        convs_per_dilation = 2 if cfg.resblock == "1" else 1   # ResBlock1: convs1 + convs2
        for kr, dil in zip(cfg.resblock_kernel_sizes, cfg.resblock_dilation_sizes):
            flops += convs_per_dilation * len(dil) * 2 * kr * out * out * hop
        c = out
    flops += 2 * 7 * c * hop
    return flops


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def peak_rss_mb() -> float:
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
