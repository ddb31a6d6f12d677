"""What every `vits-jax` command shares: the error convention, Ctrl-C, the compilation cache.

User errors (unknown model, empty text, bad speaker id, unusable output path, ...) print
`error: ...` to stderr and exit with status 1 (set VITS_JAX_DEBUG=1 to get the traceback instead),
before any synthesis where they can be known before it. `run_command` applies it to every command
(and to `python -m convert`).

Ctrl-C at any moment exits with status 130 and leaves the output as it was: SIGINT is handled from
the first line of `main` (the app modules and `vits_jax/__init__.py` import nothing heavy before
it), outputs are only created by a rename at the very end, and an interrupt that some library
swallowed is still noticed at that commit point (`INTERRUPT.commit`).

JAX's persistent compilation cache (`setup_compilation_cache`) is on by default for every
command that compiles, so a second run with the same shapes skips compilation.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
import tempfile
import threading
from typing import Callable, Optional

from ..voice.hub import ModelNotFoundError

__all__ = ["CliError", "USER_ERRORS", "run_command", "setup_compilation_cache", "keep_programs", "kept_voices", "default_cache_dir",
           "Parser", "INTERRUPT", "Interrupt", "check_output", "check_audio_extension", "finite", "read_text", "decode_stdin",
           "Warnings", "add_cache_options", "write_output", "VOICE_HELP", "CONFIG_HELP"]


class CliError(Exception):
    """A user error: printed as `error: <message>`, exit status 1, no traceback."""


# Exceptions that come from what the user passed (paths, text, options, files), not from bugs.
USER_ERRORS = (CliError, ModelNotFoundError, FileNotFoundError, NotADirectoryError,
               IsADirectoryError, PermissionError, ValueError, ImportError, OSError)

VOICE_HELP = ("a voice: a Piper .onnx (or a folder holding one), a converted folder, a transformers "
              "VITS folder, an original VITS G_*.pth / Piper .ckpt checkpoint (its config.json "
              "beside it, or --config), a hub id or a Piper voice name such as en_US-lessac-medium")
CONFIG_HELP = ("the training config.json of an original VITS / Piper checkpoint whose config is "
               "not beside it")


# ------------------------------------------------------------------ compilation cache
CACHE_ENV = "VITS_JAX_CACHE_DIR"


def default_cache_dir() -> str:
    """$VITS_JAX_CACHE_DIR, else $XDG_CACHE_HOME/vits-jax/jax, else ~/.cache/vits-jax/jax."""
    if os.environ.get(CACHE_ENV):
        return os.path.expanduser(os.environ[CACHE_ENV])
    from ..voice.shapes import cache_home

    return os.path.join(cache_home(), "jax")


def setup_compilation_cache(cache_dir: Optional[str] = None) -> Optional[str]:
    """Turns on JAX's persistent compilation cache in `cache_dir` (default: default_cache_dir()).

    Every compiled program is written (no minimum compile time or size), so the next process
    with the same shapes loads it instead of compiling (`keep_programs` keeps the stage programs
    beside it, so that process does not trace them either). Returns the folder, or None (with a
    warning) if it cannot be created. Call before the first compilation.
    """
    import jax

    folder = os.path.abspath(os.path.expanduser(cache_dir or default_cache_dir()))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        print(f"warning: compilation cache disabled, cannot create {folder}: {e.strerror or e}",
              file=sys.stderr)
        return None
    jax.config.update("jax_compilation_cache_dir", folder)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)  # -1: cache every size
    return folder


PROGRAMS_SUBFOLDER = "programs"
VOICES_SUBFOLDER = "voices"


def kept_voices(cache_folder: Optional[str]) -> Optional[str]:
    """Where `Voice.load(keep_in=...)` keeps converted voices: `voices/` in the compilation cache
    folder (None with --no-cache)."""
    return None if cache_folder is None else os.path.join(cache_folder, VOICES_SUBFOLDER)


def keep_programs(voice, cache_folder: Optional[str]):
    """`voice` with its stage programs kept in the compilation cache folder (`programs/` in it;
    synth/exported.ProgramCache): exported on first use, so a later process deserializes them
    instead of tracing the model. A voice that brings programs (an exported folder), or no
    cache folder (--no-cache), leaves `voice` as it is."""
    if cache_folder is None or getattr(voice, "programs", None) is not None:
        return voice
    import dataclasses

    from ..synth.exported import ProgramCache

    return dataclasses.replace(voice, programs=ProgramCache(os.path.join(cache_folder, PROGRAMS_SUBFOLDER)))


def add_device_options(parser, what: str = "synthesize") -> None:
    """--devices N | --dtype float32|bfloat16, for every command that renders audio."""
    parser.add_argument("--devices", type=int, default=None, metavar="N",
                        help=f"{what} on the first N local devices, the batch split over them "
                             "(default: all)")
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32",
                        help="the decoder's compute dtype (bfloat16 for accelerators; default: float32)")


def local_devices(count: Optional[int]):
    """--devices N -> the first N local devices (None: None, i.e. all). CliError out of range."""
    if count is None:
        return None
    import jax

    local = jax.local_devices()
    if not 1 <= count <= len(local):
        raise CliError(f"--devices must be in [1, {len(local)}] (the local devices), got {count}")
    return local[:count]


def add_cache_options(parser) -> None:
    """--cache-dir DIR | --no-cache, for every command that compiles."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--cache-dir", default=None, metavar="DIR",
                       help=f"JAX compilation cache folder (default: ${CACHE_ENV}, else "
                            "~/.cache/vits-jax/jax)")
    group.add_argument("--no-cache", action="store_true",
                       help="do not read or write the compilation cache")


# ------------------------------------------------------------------ helpers
def decode_stdin(data) -> str:
    """Bytes (or text) read from standard input -> text; not UTF-8 is a user error."""
    if isinstance(data, bytes):
        try:
            return data.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise CliError(f"standard input is not UTF-8 text ({e})") from None
    return data


def read_text(text: str) -> str:
    if text != "-":
        return text
    return decode_stdin(sys.stdin.buffer.read() if hasattr(sys.stdin, "buffer") else sys.stdin.read())


def check_output(path: str, option: str = "-o", example: str = "FILE.wav") -> None:
    """Refuses, before any synthesis, every output path the final write would fail on."""
    if path == "-" and option == "-o":
        if sys.stdout.isatty():
            raise CliError("refusing to write WAV data to a terminal: redirect standard output "
                           "(-o - > out.wav, or into a player) or pass -o FILE.wav")
        return
    if not path.strip():
        what = "output" if option == "-o" else option
        raise CliError(f"the {what} file name is empty: pass {option} {example}"
                       + (" (or -o - for standard output)" if option == "-o" else ""))
    if "\0" in path:
        raise CliError(f"{option} {path!r} contains a NUL character")
    if os.path.isdir(path) or path.endswith((os.sep, "/")) or os.path.basename(path) in (".", ".."):
        raise CliError(f"output {path} is a folder; pass a file name such as "
                       f"{os.path.join(path, 'out' + os.path.splitext(example)[1])}")
    if os.path.lexists(path) and not os.path.isfile(path):
        raise CliError(f"cannot write {path}: it exists and is not a regular file")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise CliError(f"cannot write {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise CliError(f"cannot write {path}: folder {folder} is not writable")
    # The write goes through a temporary file beside the output (audio.write_atomic): create and
    # remove one now, so a read-only file system, a too-long name or the like fails here.
    from ..synth.audio import temporary_name

    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=temporary_name(path), suffix=".tmp")
    except OSError as e:
        raise CliError(f"cannot write {path}: {e.strerror or e}") from None
    os.close(fd)
    os.unlink(probe)


def write_output(path: str, waveform, sampling_rate: int, write) -> None:
    """A command's audio output at its commit point (`INTERRUPT.commit`): `-` -> WAV on standard
    output; else `write(path, waveform, rate, before_replace=...)` (an atomic writer of synth/audio.py),
    so a Ctrl-C before the rename leaves an existing file as it was."""
    from ..synth import audio

    if path == "-":
        data = audio.wav_bytes(waveform, sampling_rate)
        INTERRUPT.commit()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        write(path, waveform, sampling_rate, before_replace=INTERRUPT.commit)


def check_audio_extension(path: str, option: str = "-o") -> None:
    """Refuses, before any synthesis, an audio output whose extension is not one this
    installation writes (synth/audio.py `writable_extensions`); "-" is WAV on standard output."""
    if path == "-":
        return
    from ..synth.audio import FORMATS, writable_extensions

    ext = os.path.splitext(path)[1].lower()
    supported = writable_extensions()
    if ext in supported:
        return
    what = f"{ext} files" if ext else "a file name without an extension"
    hint = ""
    if ext in FORMATS:                       # a known format this installation cannot write
        try:
            import soundfile  # noqa: F401
            hint = f" (the installed libsndfile cannot write {ext})"
        except ImportError:
            hint = f" (install the soundfile package to write {ext})"
    raise CliError(f"{option} {path}: cannot write {what}; the supported extensions are "
                   f"{', '.join(supported)}{hint}, or {option} - for WAV on standard output")


class Warnings:
    """Collects the library's warnings (dropped or replaced characters, ...) and prints each
    message once as a `warning: ...` line on stderr; the Python API keeps `warnings.warn`."""

    def __init__(self):
        self.shown: set[str] = set()

    def __call__(self):
        import contextlib
        import warnings

        from ..synth.speech import NothingToSayError

        @contextlib.contextmanager
        def scope():
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    yield
                except NothingToSayError:
                    caught.clear()   # the error names what could not be said; no warning beside it
                    raise
                finally:
                    for w in caught:
                        message = " ".join(str(w.message).split())
                        if message not in self.shown:
                            self.shown.add(message)
                            print(f"warning: {message}", file=sys.stderr)
        return scope()


def finite(name: str, value: Optional[float], *, positive: bool = False) -> None:
    if value is None:
        return
    if not math.isfinite(value) or (value <= 0 if positive else value < 0):
        need = "a positive number" if positive else "a number >= 0"
        raise CliError(f"{name} must be {need}, got {value}")


class Parser(argparse.ArgumentParser):
    """argparse with the command's error convention: a bad option is an `error: ...` line and
    exit status 1, like every other user error (argparse itself exits 2). Subcommand parsers
    inherit the class."""

    def error(self, message):
        self.print_usage(sys.stderr)
        self.exit(1, f"error: {message} (`{self.prog} -h` lists the options)\n")


class Interrupt:
    """Ctrl-C handling of one `main` call.

    SIGINT raises KeyboardInterrupt, as Python's own handler does, and is remembered. Python drops
    an exception raised inside a garbage-collector or finalizer callback (JAX registers one) and
    prints it as "Exception ignored": such a KeyboardInterrupt is silenced and the signal sent
    again a moment later, until it lands in ordinary code and reaches `main`. An interrupt that a
    library swallowed outright is still noticed by `check` / `commit`, so the output is never
    written after a Ctrl-C.
    """

    def __init__(self):
        self.received = False      # a SIGINT arrived
        self.delivered = False     # main caught it, or the output is committed: later ones are ignored
        self.previous = None
        self.previous_hook = None

    def _handler(self, signum, frame):
        if not self.delivered:
            self.received = True
            raise KeyboardInterrupt

    def _redeliver(self) -> None:
        if not self.delivered:
            os.kill(os.getpid(), signal.SIGINT)

    def _unraisable(self, unraisable) -> None:
        if issubclass(unraisable.exc_type, KeyboardInterrupt) and self.previous is not None:
            if not self.delivered:   # raised where Python ignores exceptions: deliver it again
                threading.Timer(0.01, self._redeliver).start()
            return
        self.previous_hook(unraisable)

    def install(self) -> None:
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handler)
            self.previous_hook, sys.unraisablehook = sys.unraisablehook, self._unraisable

    def restore(self) -> None:
        self.delivered = True
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
            sys.unraisablehook = self.previous_hook
            self.previous = None

    def check(self) -> None:
        """Raises KeyboardInterrupt if a Ctrl-C arrived, even one that was swallowed."""
        if self.received:
            raise KeyboardInterrupt

    def commit(self) -> None:
        """The point of no return (just before the output is renamed into place or written to
        stdout): a Ctrl-C that arrived before it aborts; one that arrives after it is ignored, as
        if it had come after the command ended."""
        self.check()
        self.delivered = True


INTERRUPT = Interrupt()     # the running command's; `main` installs a fresh one per call


def run_command(func: Callable[[], int], interrupted: str = "interrupted") -> int:
    """Runs a command body under the error convention: user errors -> `error: ...`, status 1;
    a closed stdout -> status 1 quietly; Ctrl-C -> the `interrupted` line, status 130."""
    global INTERRUPT
    INTERRUPT = interrupt = Interrupt()
    interrupt.install()      # first: a Ctrl-C during the imports below must not be lost
    try:
        status = int(func() or 0)
        interrupt.check()
        return status
    except KeyboardInterrupt:
        interrupt.delivered = True   # a second Ctrl-C must not interrupt the clean-up
        print(interrupted, file=sys.stderr)
        return 130
    except BrokenPipeError:  # `vits-jax info | head`: the reader left; say nothing more
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except USER_ERRORS as e:
        if os.environ.get("VITS_JAX_DEBUG"):
            raise
        message = str(e) or type(e).__name__
        if isinstance(e, OSError) and e.filename and e.strerror:
            message = f"{e.filename}: {e.strerror}"
        print(f"error: {message}", file=sys.stderr)
        return 1
    finally:
        interrupt.restore()
