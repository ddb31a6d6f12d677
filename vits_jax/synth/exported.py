"""Exported programs: a voice's stage programs serialized with `jax.export`, loaded instead of traced.

`vits-jax export VOICE DIR` (`export_voice`) writes a converted folder (voice/checkpoint.py's
`convert_weights`: params/, config.json, tokenizer files) plus

    programs/manifest.json   what was exported: platforms, shapes, jax version, calling convention
    programs/*.jax           one serialized `jax.export.Exported` per stage program

`Voice.load(DIR)` recognises such a folder (voice/sources.py's EXPORTED kind) and passes
`load_programs(DIR)` to synthesize (`programs=`), whose `stage_program` asks `ExportedPrograms.find`
at each stage call: the exported program for exactly those arguments (shapes, dtypes, pytree) runs,
deserialized once and called under jit (compiled, never traced through the model); any other call
runs the jitted core as before. The programs are synthesize's own jitted `encode_program` and
`render_program`, lowered from the arguments synthesize builds (`synthesis.stage_arguments`), so a
hit computes what the jitted program computes: the same samples.

Shapes (`plan`): those `vits-jax say` compiles with its defaults (B batch, Tb token bucket, F frames).
  encode (B, Tb): every token bucket up to bucket(DEFAULT_MAX_TOKENS) (`buckets=` replaces them),
    B = 1 .. DEFAULT_BATCH_SIZE (speak's rows: the batch size, or as many as there are sentences);
  render (1, Tb, F): synthesize's per-item render (on a CPU every item renders alone; elsewhere a
    one-sentence text), F every frame bucket from the fewest frames the bucket's texts can take (one
    per token) to FRAMES_PER_TOKEN frames per token, at most RENDER_WINDOW_FRAMES;
  multi-speaker voices: each with and without a speaker id (two pytrees).
Other calls run the jitted programs: batched renders off a CPU, windowed renders (longer than
RENDER_WINDOW_FRAMES), streaming's windows, another decoder dtype, `max_frames`, a mesh.

Compatibility. The manifest records the jax version, the calling convention version and
jax_default_matmul_precision (baked into a program when it is lowered). A folder exported by another
jax version, for other platforms or under another matmul precision loads as a converted folder,
with one warning saying why, and runs the jitted programs.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import json
import os
import shutil
import tempfile
import threading
import warnings
from typing import Callable, Iterable, Optional, Sequence

import jax
import jax.numpy as jnp

from . import synthesis
from .progress import progress_bar
from .speech import DEFAULT_BATCH_SIZE
from ..tokenizer.sentences import DEFAULT_MAX_TOKENS
from ..voice.checkpoint import DestinationError, check_source_destination, convert_weights, load_local
from ..voice.hub import resolve
from ..voice.sources import PROGRAMS_DIR, PROGRAMS_MANIFEST, is_converted, programs_manifest

__all__ = ["export_voice", "load_programs", "ExportedPrograms", "ProgramCache", "ProgramShape", "plan", "token_buckets",
           "check_platforms", "check_buckets", "PLATFORMS", "FRAMES_PER_TOKEN"]

MANIFEST_FORMAT = "vits-jax exported programs"
MANIFEST_VERSION = 1
PLATFORMS = ("cpu", "cuda", "rocm", "tpu")     # jax.export's platform names
FRAMES_PER_TOKEN = 8       # the most frames per token render programs are exported for
DTYPE = "float32"          # the decoder dtype exported (a Voice's default)


@dataclasses.dataclass(frozen=True)
class ProgramShape:
    """One exported program: a stage at a batch size and token bucket (render: and frame count)."""

    stage: str                     # "encode" | "render"
    batch: int
    tokens: int
    frames: Optional[int] = None   # render only
    speaker: bool = False          # called with speaker ids (else speaker_id=None)

    @property
    def file(self) -> str:
        name = f"{self.stage}-b{self.batch}-t{self.tokens}"
        name += f"-f{self.frames}" if self.frames is not None else ""
        return name + ("-speaker" if self.speaker else "") + ".jax"

    def to_json(self) -> dict:
        entry = dict(stage=self.stage, batch=self.batch, tokens=self.tokens)
        if self.frames is not None:
            entry.update(frames=self.frames, dtype=DTYPE)
        return dict(entry, speaker=self.speaker, file=self.file)

    @classmethod
    def from_json(cls, entry: dict) -> "ProgramShape":
        frames = entry.get("frames")
        return cls(str(entry["stage"]), int(entry["batch"]), int(entry["tokens"]),
                   None if frames is None else int(frames), bool(entry.get("speaker", False)))


# ---------------------------------------------------------------------------------------------
# Which shapes

def token_buckets(max_tokens: int = DEFAULT_MAX_TOKENS) -> list[int]:
    """synthesize's token buckets of inputs of 1 .. max_tokens tokens."""
    out, size = [], synthesis.bucket(1, synthesis.MIN_TOKEN_BUCKET)
    while size <= synthesis.bucket(max_tokens, synthesis.MIN_TOKEN_BUCKET):
        out.append(size)
        size = synthesis.bucket(size + 1, synthesis.MIN_TOKEN_BUCKET)
    return out


def check_buckets(buckets: Iterable[int]) -> list[int]:
    """Token buckets given by the user -> sorted, unique; ValueError naming one synthesize never
    pads to (it would never be used)."""
    valid = token_buckets(synthesis.MAX_TOKENS)
    out = sorted({int(b) for b in buckets})
    if not out:
        raise ValueError("no token buckets given")
    wrong = [b for b in out if b not in valid]
    if wrong:
        raise ValueError(f"token buckets {wrong} are not sizes synthesize pads to; the buckets are "
                         f"{', '.join(map(str, valid))}")
    return out


def check_platforms(platforms: Optional[Sequence[str]]) -> tuple[str, ...]:
    """Platform names (None: this machine's) -> a tuple; ValueError naming an unknown one."""
    if platforms is None:
        return (jax.export.default_export_platform(),)
    out = tuple(dict.fromkeys(p.strip().lower() for p in platforms))
    wrong = [p for p in out if p not in PLATFORMS]
    if wrong or not out:
        raise ValueError(f"unknown platform{'s' if len(wrong) > 1 else ''} {', '.join(wrong) or '(none)'}: "
                         f"the platforms are {', '.join(PLATFORMS)}")
    return out


def _frame_buckets(tokens: int) -> list[int]:
    """The frame buckets a render of a text in token bucket `tokens` may take: from one frame per
    token of the bucket's shortest text to FRAMES_PER_TOKEN per token of its longest."""
    below = max([b for b in token_buckets(tokens) if b < tokens], default=0)
    size = synthesis.frame_bucket(below + 1)
    top = min(synthesis.frame_bucket(FRAMES_PER_TOKEN * tokens), synthesis.RENDER_WINDOW_FRAMES)
    out = []
    while size <= top:
        out.append(size)
        size = synthesis.frame_bucket(size + 1)
    return out


def plan(buckets: Sequence[int], batch_sizes: Sequence[int], speakers: bool) -> list[ProgramShape]:
    """The programs to export (see the module docstring)."""
    shapes = []
    for speaker in (False, True) if speakers else (False,):
        for tokens in buckets:
            shapes += [ProgramShape("encode", b, tokens, speaker=speaker) for b in batch_sizes]
            shapes += [ProgramShape("render", 1, tokens, f, speaker) for f in _frame_buckets(tokens)]
    return shapes


# ---------------------------------------------------------------------------------------------
# Writing

def _spec(tree):
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), tree)


def export_programs(params, folder: str, shapes: Sequence[ProgramShape], platforms: Sequence[str],
                    progress: bool = False) -> int:
    """Lowers each program of `shapes` for `platforms` and writes it to `folder`/its file; returns
    the calling convention version (the serialization version) of the programs."""
    version = None
    bar = progress_bar(len(shapes), progress, unit="program", every=10.0)
    arguments = {}
    try:
        for shape in shapes:
            key = (shape.batch, shape.tokens, shape.speaker)
            if key not in arguments:
                p, encode_args, options = synthesis.stage_arguments(params, shape.batch, shape.tokens,
                                                                    0 if shape.speaker else None)
                arguments[key] = _spec(p), encode_args, options
            p, encode_args, options = arguments[key]
            if shape.stage == "encode":
                exported = jax.export.export(synthesis.encode_program, platforms=platforms)(p, **encode_args)
            else:
                encoded = jax.eval_shape(lambda q, a: synthesis.encode_program(q, **a), p, encode_args)
                exported = jax.export.export(synthesis.render_program, platforms=platforms)(
                    p, encoded, encode_args["key"], **options, num_frames=shape.frames, dtype=jnp.dtype(DTYPE))
            with open(os.path.join(folder, shape.file), "wb") as f:
                f.write(exported.serialize())
            version = exported.calling_convention_version
            bar.update(1)
    finally:
        bar.close()
    return int(version)


def _is_empty_folder(path: str) -> bool:
    return os.path.isdir(path) and not os.path.islink(path) and not os.listdir(path)


def _check_destination(path: str, overwrite: bool) -> None:
    """An absent path or an empty folder is fine; anything else needs overwrite, and then must be
    a vits-jax folder (converted or exported): nothing else is ever replaced."""
    if not os.path.lexists(path) or _is_empty_folder(path):
        return
    if not overwrite:
        raise DestinationError(f"{path} exists and is not empty; pass --overwrite (overwrite=True) to "
                               "replace it")
    if not (os.path.isdir(path) and not os.path.islink(path) and is_converted(path)):
        raise DestinationError(f"{path} exists and is not a vits-jax voice folder; refusing to replace "
                               "it even with --overwrite")


def export_voice(src, dst, *, platforms: Optional[Sequence[str]] = None,
                 buckets: Optional[Sequence[int]] = None, overwrite: bool = False,
                 config: Optional[str] = None, progress: bool = False,
                 before_replace: Optional[Callable[[], None]] = None) -> dict:
    """Any voice `Voice.load` reads -> `dst`: its converted folder plus the programs `say` runs,
    exported for `platforms` (None: this machine's), at `buckets` (None: every token bucket up to
    DEFAULT_MAX_TOKENS). Returns the manifest.

    `dst` may be absent or an empty folder; anything else needs overwrite=True and must be a
    vits-jax folder. The folder is assembled beside `dst` and renamed into place at the end
    (`before_replace()` runs just before: the CLI's Ctrl-C commit point), so a failure or an
    interrupt leaves `dst` as it was.
    """
    platforms = check_platforms(platforms)
    buckets = token_buckets() if buckets is None else check_buckets(buckets)
    local = resolve(os.fspath(src))
    dst = os.path.abspath(os.fspath(dst))
    check_source_destination(local, dst)
    _check_destination(dst, overwrite)
    parent = os.path.dirname(dst)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(dst)}.", suffix=".partial", dir=parent)
    try:
        folder = os.path.join(tmp, "voice")
        convert_weights(local, folder, config=config)               # the one converted-folder writer
        params, _ = load_local(folder)     # as Voice.load(dst) will read it: the programs' pytree
        shapes = plan(buckets, range(1, DEFAULT_BATCH_SIZE + 1), params.config.num_speakers > 1)
        os.mkdir(os.path.join(folder, PROGRAMS_DIR))
        version = export_programs(params, os.path.join(folder, PROGRAMS_DIR), shapes, platforms, progress)
        manifest = dict(
            format=MANIFEST_FORMAT, version=MANIFEST_VERSION, jax=jax.__version__,
            calling_convention_version=version, platforms=list(platforms),
            matmul_precision=_precision(), token_buckets=list(buckets),
            batch_sizes=list(range(1, DEFAULT_BATCH_SIZE + 1)), frames_per_token=[1, FRAMES_PER_TOKEN],
            dtype=DTYPE, programs=[s.to_json() for s in shapes])
        with open(os.path.join(folder, PROGRAMS_DIR, PROGRAMS_MANIFEST), "w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=1)
            f.write("\n")
        _check_destination(dst, overwrite)                         # nothing appeared meanwhile
        if before_replace is not None:
            before_replace()
        if os.path.lexists(dst) and not _is_empty_folder(dst):
            os.replace(dst, os.path.join(tmp, "old"))              # removed with tmp below
        os.replace(folder, dst)                                    # onto a free name or an empty folder
    finally:
        shutil.rmtree(tmp, ignore_errors=True)                     # only the folder this call made
    return manifest


def _precision() -> Optional[str]:
    value = jax.config.jax_default_matmul_precision
    return None if value is None else str(value)


# ---------------------------------------------------------------------------------------------
# Reading

def _incompatible(manifest) -> Optional[str]:
    """Why a manifest's programs cannot run in this process, or None."""
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        return "its programs/manifest.json is not a vits-jax manifest"
    if manifest.get("version") != MANIFEST_VERSION:
        return f"its programs' manifest has version {manifest.get('version')!r}, this vits-jax reads {MANIFEST_VERSION}"
    if manifest.get("jax") != jax.__version__:
        return f"its programs were exported with jax {manifest.get('jax')}, this is jax {jax.__version__}"
    version = manifest.get("calling_convention_version")
    if not (isinstance(version, int) and jax.export.minimum_supported_calling_convention_version
            <= version <= jax.export.maximum_supported_calling_convention_version):
        return f"its programs' calling convention version {version!r} is not supported by this jax"
    platform = jax.export.default_export_platform()
    if platform not in (manifest.get("platforms") or ()):
        return f"its programs were exported for {', '.join(manifest.get('platforms') or ())}, not {platform}"
    if manifest.get("matmul_precision") != _precision():
        return (f"its programs were exported under jax_default_matmul_precision="
                f"{manifest.get('matmul_precision')}, this process runs {_precision()}")
    return None


def load_programs(folder: str) -> Optional["ExportedPrograms"]:
    """An exported folder -> its ExportedPrograms, or None (with one warning saying why) when they
    cannot run here: then the voice runs the jitted programs."""
    path = programs_manifest(folder)
    try:
        with open(path, encoding="utf-8") as f:
            manifest = json.load(f)
        reason = _incompatible(manifest)
        shapes = None if reason else [ProgramShape.from_json(e) for e in manifest["programs"]]
    except (OSError, ValueError, KeyError, TypeError) as e:
        reason = f"its programs/manifest.json cannot be read ({e})"
    if reason:
        warnings.warn(f"{folder}: {reason}; running the jitted programs instead", stacklevel=2)
        return None
    return ExportedPrograms(folder, manifest, shapes)


def _call_shape(stage: str, static: dict, args: tuple, kwargs: dict) -> Optional[ProgramShape]:
    """The ProgramShape a synthesize stage call asks for, or None when no export covers it."""
    if stage == "encode" and kwargs.get("sdp_noise") is None and kwargs.get("ids") is not None:
        b, t = kwargs["ids"].shape
        return ProgramShape("encode", b, t, speaker=kwargs.get("speaker_id") is not None)
    if stage == "render" and args and kwargs.get("prior_noise") is None \
            and jnp.dtype(static.get("dtype")).name == DTYPE:
        b, t = args[0].durations.shape
        return ProgramShape("render", b, t, int(static["num_frames"]), kwargs.get("speaker_id") is not None)
    return None


@functools.lru_cache(maxsize=512)
def _read_program(path: str, stamp: tuple) -> tuple:
    """A program file -> (Exported, its call under jit), once per process for each file version
    (`stamp`: its size and mtime), so voices loaded again share the compiled programs."""
    with open(path, "rb") as f:
        exported = jax.export.deserialize(bytearray(f.read()))
    return exported, jax.jit(exported.call)


class ExportedPrograms:
    """A folder's exported programs, as synthesize's `programs=`: `find` returns the program for a
    stage call it covers (deserialized on first use), else None. `calls` counts the calls served
    by stage, `deserialized` the programs this voice has read."""

    def __init__(self, folder: str, manifest: dict, shapes: Sequence[ProgramShape]):
        self.folder = folder
        self.manifest = manifest
        self.platforms = tuple(manifest["platforms"])
        self.shapes = frozenset(shapes)
        self.calls: collections.Counter = collections.Counter()
        self.deserialized = 0
        self._programs: dict[ProgramShape, Optional[tuple]] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (f"ExportedPrograms({self.folder!r}, {len(self.shapes)} programs for "
                f"{', '.join(self.platforms)})")

    def _load(self, shape: ProgramShape) -> Optional[tuple]:
        with self._lock:
            if shape not in self._programs:
                path = os.path.abspath(os.path.join(self.folder, PROGRAMS_DIR, shape.file))
                try:
                    stat = os.stat(path)
                    self._programs[shape] = _read_program(path, (stat.st_size, stat.st_mtime_ns))
                    self.deserialized += 1
                except (OSError, ValueError) as e:
                    warnings.warn(f"{path}: cannot be read ({e}); running the jitted program instead",
                                  stacklevel=3)
                    self._programs[shape] = None
            return self._programs[shape]

    def find(self, stage: str, static: dict, params, *args, **kwargs) -> Optional[Callable]:
        """The exported program for `stage` called as `jitted(params, *args, **kwargs, **static)`,
        taking (params, *args, **kwargs); None when none matches these arguments exactly."""
        shape = _call_shape(stage, static, args, kwargs)
        if shape is None or shape not in self.shapes:
            return None
        program = self._load(shape)
        if program is None:
            return None
        exported, call = program
        if not _takes(exported, params, args, kwargs):
            return None
        self.calls[stage] += 1
        return call


def _takes(exported, params, args: tuple, kwargs: dict) -> bool:
    """Whether `exported` takes exactly these arguments (pytree, shapes, dtypes)."""
    leaves, tree = jax.tree.flatten(((params, *args), kwargs))
    return tree == exported.in_tree and all(
        tuple(x.shape) == a.shape and x.dtype == a.dtype for x, a in zip(leaves, exported.in_avals))


# ---------------------------------------------------------------------------------------------
# Kept per machine

CACHE_VERSION = 1
_JITTED = {"encode": synthesis.encode_program, "render": synthesis.render_program}   # what they export


class ProgramCache:
    """Stage programs exported on first use and kept in `folder`, as synthesize's `programs=`.

    The CLI's commands use one beside JAX's persistent compilation cache (`programs/` in it): a
    program is exported (`jax.export`, traced and lowered once) the first time a call needs it and
    written to a file named by everything that shapes it (the stage, its statics, the arguments'
    pytree with the voice's config, shapes and dtypes; jax's version, the platform, the matmul
    precision); a later process deserializes that file and calls it under jit, so it never traces
    the model, and XLA's compile of it comes from JAX's cache. The programs take the params as
    arguments, so voices of one architecture share them. It covers the calls an exported folder
    covers (`_call_shape`) on one device; any other call (a mesh, `--devices`) runs the jitted
    programs. An unreadable file is exported again and replaced; a folder that cannot be written
    warns once and keeps the programs in memory. `exported` / `deserialized` count both ways in.
    """

    def __init__(self, folder: str):
        self.folder = os.path.abspath(folder)
        self.exported = 0
        self.deserialized = 0
        self._programs: dict[str, tuple] = {}
        self._lock = threading.Lock()
        self._warned = False

    def __repr__(self) -> str:
        return f"ProgramCache({self.folder!r})"

    @staticmethod
    def _key(stage: str, static: dict, leaves, tree) -> str:
        import hashlib
        import jaxlib

        statics = sorted((k, jnp.dtype(v).name if k == "dtype" else repr(v)) for k, v in static.items())
        text = repr((CACHE_VERSION, jax.__version__, jaxlib.__version__, jax.export.default_export_platform(),
                     _precision(), bool(jax.config.jax_enable_x64), stage, statics, str(tree),
                     [(tuple(x.shape), str(x.dtype)) for x in leaves]))
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def find(self, stage: str, static: dict, params, *args, **kwargs) -> Optional[Callable]:
        """The program for `stage` called as `jitted(params, *args, **kwargs, **static)`, taking
        (params, *args, **kwargs): read from the folder, else exported now; None for calls it
        does not cover."""
        if _call_shape(stage, static, args, kwargs) is None or jax.device_count() > 1:
            return None
        leaves, tree = jax.tree.flatten(((params, *args), kwargs))
        if any(isinstance(x, jax.Array) and len(x.sharding.device_set) > 1 for x in leaves):
            return None
        key = self._key(stage, static, leaves, tree)
        with self._lock:
            if key not in self._programs:
                self._programs[key] = self._read(key) or self._export(key, stage, static, params, args, kwargs)
            exported, call = self._programs[key]
        return call if _takes(exported, params, args, kwargs) else None

    def _path(self, key: str) -> str:
        return os.path.join(self.folder, key + ".jax")

    def _read(self, key: str) -> Optional[tuple]:
        path = self._path(key)
        try:
            stat = os.stat(path)
            program = _read_program(path, (stat.st_size, stat.st_mtime_ns))
        except Exception:     # absent, partial or foreign: exported again (and replaced) below
            return None
        self.deserialized += 1
        return program

    def _export(self, key: str, stage: str, static: dict, params, args: tuple, kwargs: dict) -> tuple:
        spec = _spec((params, args, kwargs))
        exported = jax.export.export(_JITTED[stage], platforms=(jax.export.default_export_platform(),))(
            spec[0], *spec[1], **spec[2], **static)
        self.exported += 1
        try:
            os.makedirs(self.folder, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".", suffix=".partial", dir=self.folder)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(exported.serialize())
                os.replace(tmp, self._path(key))          # readers see a whole file or none
            except BaseException:
                os.unlink(tmp)
                raise
        except OSError as e:
            if not self._warned:
                self._warned = True
                warnings.warn(f"exported programs are not kept in {self.folder}: {e.strerror or e}",
                              stacklevel=4)
        return exported, jax.jit(exported.call)
