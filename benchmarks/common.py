"""Shared set-up for the benchmarks: one random MMS-size model on both sides, realistic durations,
and the machine-load monitor every benchmark reports beside its figures (`Load`, `add_load_arguments`).

A speed ratio means something only when nothing else ran: each benchmark prints how many cores
OTHER processes used while it measured (total busy CPU time from /proc/stat minus the CPU time of
the benchmark's own process tree, per wall second) and labels its ratios NOT VALID above
`--max-other` cores (default 0.15). `--wait-quiet S` waits up to S seconds for a quiet machine
first, as ../shared/bin/quiet does.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from typing import NamedTuple

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
    import numpy as np

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
    return statistics.median(times)


def conv_peak_gflops(repeats=5):
    """Measured float32 peak of a large conv on this machine (JAX), the decoder's yardstick."""
    import jax
    import jax.numpy as jnp

    x = jnp.ones((1, 16384, 256), jnp.float32)
    w = jnp.ones((3, 256, 256), jnp.float32) * 1e-3
    f = jax.jit(lambda x, w: jax.lax.conv_general_dilated(x, w, (1,), [(1, 1)],
                                                          dimension_numbers=("NWC", "WIO", "NWC")))
    f(x, w).block_until_ready()
    t = median_time(lambda: f(x, w).block_until_ready(), repeats)
    return 2 * 3 * 256 * 256 * 16384 / t / 1e9


def peak_rss_mb() -> float:
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---------------------------------------------------------------------------------------------
# Machine load: how many cores other processes used while a benchmark ran (Linux /proc only).

MAX_OTHER = 0.15          # cores other processes may use before a figure is not a result
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _busy_seconds() -> float:
    """CPU seconds the whole machine spent busy since boot (user, nice, system, irq, softirq, steal:
    everything in /proc/stat's cpu line except idle, iowait and the guest times counted in user)."""
    with open("/proc/stat") as f:
        vals = [int(v) for v in f.readline().split()[1:]]
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
    return (sum(vals[:8]) - idle) / _TICK


def _own_seconds() -> float:
    """CPU seconds of this process and of every live descendant (all threads), plus the children
    already waited for (cutime/cstime, which the kernel accumulates down the whole tree)."""
    times, children = {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:               # the process ended meanwhile
            continue
        pid = int(entry)
        children.setdefault(int(fields[1]), []).append(pid)
        times[pid] = sum(int(v) for v in fields[11:15])          # utime stime cutime cstime
    total, todo = 0, [os.getpid()]
    while todo:
        pid = todo.pop()
        total += times.get(pid, 0)
        todo.extend(children.get(pid, ()))
    return total / _TICK


class Snapshot(NamedTuple):
    wall: float
    busy: float
    own: float


class Usage(NamedTuple):
    wall: float      # seconds
    others: float    # mean cores used by other processes
    own: float       # mean cores used by this benchmark's process tree
    busy: float      # mean busy cores, all processes


def snapshot() -> Snapshot:
    return Snapshot(time.monotonic(), _busy_seconds(), _own_seconds())


def usage(start: Snapshot, end: Snapshot | None = None) -> Usage:
    end = end or snapshot()
    wall = max(end.wall - start.wall, 1e-9)
    busy, own = (end.busy - start.busy) / wall, (end.own - start.own) / wall
    return Usage(wall, max(0.0, busy - own), own, busy)


class Load:
    """Started with the benchmark; `check(since)` / `note(since)` judge one row, `line()` the run.

    Resolution: /proc counts in clock ticks (10 ms), so an interval of a few seconds reads others'
    load to within ~0.02 cores; per-row figures cover the row's whole measurement (warm-up included).
    """

    def __init__(self, max_other: float = MAX_OTHER):
        self.max_other = max_other
        self.start = snapshot()

    def check(self, since: Snapshot | None = None) -> tuple[float, str]:
        """(mean cores others used since `since`, default the start; '' or ' NOT VALID')."""
        others = usage(since or self.start).others
        return others, "" if others <= self.max_other else " NOT VALID"

    def note(self, since: Snapshot | None = None) -> str:
        """'others 0.02 cores' or 'others 1.05 cores NOT VALID', for the end of a row."""
        others, label = self.check(since)
        return f"others {others:.2f} cores{label}"

    def line(self) -> str:
        u = usage(self.start)
        verdict = (f"ratios valid (others <= {self.max_other:g} cores)" if u.others <= self.max_other else
                   f"ratios NOT VALID (others > {self.max_other:g} cores): rerun on a quiet machine")
        return (f"machine load: {u.wall:.1f} s wall; other processes used {u.others:.2f} cores on average, "
                f"this benchmark {u.own:.2f} (of {os.cpu_count()} CPUs) -> {verdict}")

    def report(self, file=None) -> None:
        print(self.line(), file=file or sys.stdout, flush=True)


def wait_quiet(timeout: float, max_other: float = MAX_OTHER, window: float = 5.0) -> float:
    """Waits until other processes used <= max_other cores over `window` seconds; returns that
    load. Exits with status 3 (like ../shared/bin/quiet) if the machine stays busy past `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        start = snapshot()
        time.sleep(window)
        others = usage(start).others
        if others <= max_other:
            print(f"machine quiet ({others:.2f} cores used by others over {window:g} s); starting",
                  file=sys.stderr, flush=True)
            return others
        if time.monotonic() > deadline:
            print(f"the machine stayed busy ({others:.2f} cores used by others); not running",
                  file=sys.stderr, flush=True)
            sys.exit(3)


def add_load_arguments(parser) -> None:
    parser.add_argument("--wait-quiet", type=float, default=0.0, metavar="S",
                        help="first wait up to S seconds for a quiet machine (others under --max-other "
                             "cores for 5 s); exit 3 if it never comes (default 0: start at once)")
    parser.add_argument("--max-other", type=float, default=MAX_OTHER, metavar="CORES",
                        help=f"others' mean core usage above which ratios are NOT VALID (default {MAX_OTHER})")


def start_load(args) -> Load:
    """Waits for a quiet machine if asked (--wait-quiet), then starts the monitor."""
    if args.wait_quiet > 0:
        wait_quiet(args.wait_quiet, args.max_other)
    return Load(args.max_other)


def thread_cpu() -> dict[int, tuple[str, float]]:
    """This process's threads: {tid: (name, CPU seconds so far)}, from /proc/self/task."""
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/comm") as f:
                name = f.read().strip()
            with open(f"/proc/self/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:               # the thread ended meanwhile
            continue
        out[int(tid)] = (name, (int(fields[11]) + int(fields[12])) / _TICK)
    return out

