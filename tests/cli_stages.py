"""Runs `python -m vits_jax.app.main ...` so that a test can see, and stop it at, a named stage instead
of guessing with sleeps.

The command runs as `-m` would run it, under this file: a Python audit hook (sys.addaudithook)
watches the main thread and writes a line to a pipe the test reads

    stdin                      the command starts reading standard input
    paused                     it reached the `stop_at` stage and waits there (up to 5 minutes)
                               for the test's signal, which then lands inside that stage
    network <event> <address>  a socket operation (connect, name lookup)

`stop_at` names the stage:

    "import:jax"               the import of `jax` starts
    "open:FOLDER"              a file under FOLDER is opened
    "call:MODULE:FUNCTION"     the first audited operation while MODULE's FUNCTION is running
                               (e.g. "call:vits_jax.synth.speech:speak": synthesis has started)

The waiting is done inside the audited operation, so a SIGINT's KeyboardInterrupt comes out of
that operation as it would from any code there. Nothing of vits_jax is changed or imported early.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time

FD_ENV, STOP_ENV = "VITS_JAX_TEST_STAGE_FD", "VITS_JAX_TEST_STOP_AT"
HOLD_SECONDS = 300


class Staged:
    """A `python -m vits_jax.app.main ARGS` process (a subprocess.Popen as .proc) whose stage lines
    the test reads with wait_for / lines."""

    def __init__(self, args, *, stop_at=None, env=None, **popen):
        read, write = os.pipe()
        env = dict(os.environ if env is None else env)
        env[FD_ENV] = str(write)
        env.pop(STOP_ENV, None)
        if stop_at:
            env[STOP_ENV] = stop_at
        try:
            self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), *args], env=env,
                                         pass_fds=(write,), **popen)
        finally:
            os.close(write)
        self._read, self._buffer, self._lines = read, b"", []

    def _more(self, deadline) -> bool:
        """Reads what the process wrote; False at its end (or at the deadline)."""
        left = deadline - time.monotonic()
        if self._read is None or left <= 0 or not select.select([self._read], [], [], left)[0]:
            return False
        data = os.read(self._read, 65536)
        if not data:
            return False
        self._buffer += data
        *done, self._buffer = self._buffer.split(b"\n")
        self._lines += [line.decode() for line in done]
        return True

    def wait_for(self, line: str, timeout: float = 120.0) -> None:
        """Returns once the process has written `line`; AssertionError if it ends first or
        `timeout` seconds pass."""
        deadline = time.monotonic() + timeout
        while line not in self._lines:
            if not self._more(deadline):
                raise AssertionError(f"never reached {line!r} (exit status {self.proc.poll()}, stage lines "
                                     f"{self._lines})")

    def lines(self, timeout: float = 120.0) -> list[str]:
        """Every line, once the process has ended (closing its end of the pipe)."""
        deadline = time.monotonic() + timeout
        while self._more(deadline):
            pass
        return list(self._lines)

    def blocked(self, timeout: float = 10.0) -> None:
        """Where /proc exists: waits until the main thread sleeps in the kernel (blocked in a read,
        after `stdin`); elsewhere returns at once."""
        path = f"/proc/{self.proc.pid}/stat"
        deadline = time.monotonic() + timeout
        while os.path.exists(path) and time.monotonic() < deadline:
            with open(path) as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
            if state == "S":
                return
            time.sleep(0.001)
        assert not os.path.exists(path), f"process {self.proc.pid} not blocked after {timeout} s (state {state})"

    def close(self) -> None:
        """Kills the process if it still runs; keeps its stage lines (`lines` still answers)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self._read is not None:
            self.lines(timeout=10.0)
            os.close(self._read)
            self._read = None


# ------------------------------------------------------------------ inside the command's process
def _boot() -> None:
    import runpy
    import threading

    fd = int(os.environ.pop(FD_ENV))
    stop = os.environ.pop(STOP_ENV, "")
    kind, _, what = stop.partition(":")
    main = threading.main_thread()
    state = {"busy": False, "held": not stop, "stdin": False}

    def say(line: str) -> None:
        os.write(fd, (line + "\n").encode())

    def running(module: str, function: str) -> bool:
        frame = sys._getframe(2)
        while frame is not None:
            code = frame.f_code
            if getattr(code, "co_qualname", code.co_name) == function and \
                    frame.f_globals.get("__name__") == module:
                return True
            frame = frame.f_back
        return False

    def reached(event: str, args) -> bool:
        if kind == "import":
            return event == "import" and args[0] == what
        if kind == "open":
            return event == "open" and isinstance(args[0], str) and \
                os.path.abspath(args[0]).startswith(os.path.join(os.path.abspath(what), ""))
        if kind == "call":
            module, _, function = what.partition(":")
            return running(module, function)
        raise SystemExit(f"{STOP_ENV}: unknown stage {stop!r}")

    def hook(event: str, args) -> None:
        if event in ("socket.connect", "socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr"):
            say(f"network {event} {args[1] if event == 'socket.connect' else args[0]}")
        if state["busy"] or state["held"] or threading.current_thread() is not main:
            return
        state["busy"] = True   # sys._getframe and the like raise audit events of their own
        try:
            if reached(event, args):
                state["held"] = True
                say("paused")
                end = time.monotonic() + HOLD_SECONDS
                while time.monotonic() < end:     # the test's SIGINT raises out of this sleep
                    time.sleep(0.01)
        finally:
            state["busy"] = False

    class _Reads:
        """sys.stdin.buffer, saying `stdin` before its first read."""

        def __init__(self, raw):
            self._raw = raw

        def _first(self):
            if not state["stdin"]:
                state["stdin"] = True
                say("stdin")

        def read(self, *args):
            self._first()
            return self._raw.read(*args)

        def readline(self, *args):
            self._first()
            return self._raw.readline(*args)

        def __getattr__(self, name):
            return getattr(self._raw, name)

    class _Stdin:
        def __init__(self, stream):
            self._stream, self.buffer = stream, _Reads(stream.buffer)

        def __getattr__(self, name):
            return getattr(self._stream, name)

    if getattr(sys.stdin, "buffer", None) is not None:
        sys.stdin = _Stdin(sys.stdin)
    sys.path[0] = os.getcwd()                         # as `python -m` has it (not this folder)
    sys.addaudithook(hook)
    runpy.run_module("vits_jax.app.main", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    _boot()
