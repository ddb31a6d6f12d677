"""Compiled programs kept per machine: a new process loads synthesize's stage programs instead of
tracing, lowering and compiling them again.

JAX's persistent compilation cache only skips XLA's compile: every new process still traces the
model through Flax and lowers it to StableHLO before it can look the program up (0.3-0.7 s per
program on a 2-core CPU, several programs per text). This store keeps the compiled executables
themselves (`jax.experimental.serialize_executable`), keyed by everything that shapes them, so a
hit costs one file read and a load (~0.06 s for a render program).

    enable(folder)       the CLI turns it on beside JAX's cache (its `programs/` subfolder)
    active()             the store synthesize uses, or None (off: the default for library calls)
    ProgramStore.find    synthesize's `programs=` protocol (synthesis.stage_program)

A stored program is the jitted program compiled for these exact arguments (the pytree, shapes,
dtypes, statics), on this backend and device kind, by this jax / jaxlib, under this matmul
precision, x64 setting and XLA_FLAGS: all of them are in the key, so a hit computes what the
jitted program computes. Unreadable or stale files are compiled again and replaced; a store that
cannot write warns once and keeps working in memory.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import tempfile
import threading
import warnings
from typing import Callable, Optional

import jax
import jax.numpy as jnp
from jax.sharding import SingleDeviceSharding

__all__ = ["ProgramStore", "enable", "disable", "active", "STORE_VERSION"]

STORE_VERSION = 1
SUBFOLDER = "programs"

_active: Optional["ProgramStore"] = None


def enable(cache_dir: str) -> "ProgramStore":
    """Turns the store on in `cache_dir`/programs for this process; returns it."""
    global _active
    _active = ProgramStore(os.path.join(cache_dir, SUBFOLDER))
    return _active


def disable() -> None:
    global _active
    _active = None


def active() -> Optional["ProgramStore"]:
    """The enabled store, or None."""
    return _active


# An executable loaded from JAX's persistent cache serializes into one that fails when run
# ("Function ... not found"), so the store compiles its programs under an option of its own (a
# cache key the jitted programs never use), keeps them out of JAX's cache (this thread's minimum
# compile time for a cache entry set to infinity while it compiles), and writes one only when the
# compile did not come from JAX's cache after all (its cache-hit event, counted per thread).
STORE_COMPILE_OPTIONS = {"xla_embed_ir_in_executable": False}


def _not_into_jax_cache():
    try:
        from jax._src import config as jax_config

        return jax_config.persistent_cache_min_compile_time_secs(float("inf"))   # thread-local
    except (ImportError, AttributeError, TypeError):
        return contextlib.nullcontext()
_counts = threading.local()


def _on_event(event: str, **_) -> None:
    if event == "/jax/compilation_cache/cache_hits":
        _counts.hits = getattr(_counts, "hits", 0) + 1


def _cache_hits() -> int:
    return getattr(_counts, "hits", 0)


jax.monitoring.register_event_listener(_on_event)


def _machine() -> tuple:
    """What, besides the program, changes the executable XLA builds."""
    import jaxlib

    device = jax.devices()[0]
    return (STORE_VERSION, jax.__version__, jaxlib.__version__, device.platform,
            getattr(device, "device_kind", ""), jax.device_count(), str(jax.config.jax_default_matmul_precision),
            bool(jax.config.jax_enable_x64), os.environ.get("XLA_FLAGS", ""))


def _static_key(static: dict) -> tuple:
    out = []
    for name, value in sorted(static.items()):
        if name == "dtype":
            value = jnp.dtype(value).name
        out.append((name, repr(value)))
    return tuple(out)


class ProgramStore:
    """Compiled stage programs under `folder`, one file per program (a pickled
    `serialize_executable` triple), loaded once per process."""

    def __init__(self, folder: str):
        self.folder = folder
        self.loaded = 0          # programs read from disk
        self.compiled = 0        # programs compiled here (then written)
        self._programs: dict[str, Callable] = {}
        self._lock = threading.Lock()
        self._warned = False

    def __repr__(self) -> str:
        return f"ProgramStore({self.folder!r})"

    def _key(self, stage: str, static: dict, args: tuple, kwargs: dict) -> Optional[str]:
        leaves, tree = jax.tree.flatten(args + (kwargs,))
        avals = []
        default = jax.devices()[0]
        for x in leaves:
            if isinstance(x, jax.Array) and not (isinstance(x.sharding, SingleDeviceSharding)
                                                 and x.sharding.device_set == {default}):
                return None      # placed elsewhere (a mesh, --devices): the jitted program runs
            avals.append((tuple(x.shape), str(x.dtype)))
        text = repr((_machine(), stage, _static_key(static), str(tree), avals))
        return hashlib.sha256(text.encode()).hexdigest()[:40]

    def find(self, stage: str, static: dict, params, *args, jitted: Callable, **kwargs) -> Optional[Callable]:
        """The compiled `jitted(params, *args, **kwargs, **static)` as a callable taking
        (params, *args, **kwargs): loaded from the folder, else compiled and written."""
        key = self._key(stage, static, (params,) + args, kwargs)
        if key is None:
            return None
        with self._lock:
            program = self._programs.get(key)
            if program is None:
                program = self._load(key)
                if program is None:
                    hits = _cache_hits()
                    with _not_into_jax_cache():
                        program = jitted.lower(params, *args, **kwargs, **static).compile(
                            compiler_options=STORE_COMPILE_OPTIONS)
                    self.compiled += 1
                    if _cache_hits() == hits:       # compiled here, not loaded: safe to serialize
                        self._write(key, program)
                self._programs[key] = program
        return program

    def _path(self, key: str) -> str:
        return os.path.join(self.folder, key + ".program")

    def _load(self, key: str) -> Optional[Callable]:
        from jax.experimental import serialize_executable

        try:
            with open(self._path(key), "rb") as f:
                payload, in_tree, out_tree = pickle.load(f)
            program = serialize_executable.deserialize_and_load(   # on the device it was built for
                payload, in_tree, out_tree, execution_devices=jax.devices()[:1])
        except FileNotFoundError:
            return None
        except Exception:          # a partial, foreign or stale file: compiled again and replaced
            return None
        self.loaded += 1
        return program

    def _write(self, key: str, program) -> None:
        from jax.experimental import serialize_executable

        try:
            data = pickle.dumps(serialize_executable.serialize(program), protocol=pickle.HIGHEST_PROTOCOL)
            os.makedirs(self.folder, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".", suffix=".partial", dir=self.folder)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                os.replace(tmp, self._path(key))      # readers see a whole file or none
            except BaseException:
                os.unlink(tmp)
                raise
        except Exception as e:
            if not self._warned:
                self._warned = True
                warnings.warn(f"compiled programs are not kept in {self.folder}: {e}", stacklevel=4)
