"""The serving engine: one worker that batches the sentences of concurrent requests (host API).

    engine = Engine({"joe": Voice.load("en_US-joe-medium.onnx")}, batch_size=8, max_queue=64)
    engine.start()                      # a thread: warms each voice's programs, then serves
    job = engine.submit("Hello there. How are you?", voice="joe", seed=3)
    waveform = job.result()             # == Voice.speak(text, seed=3).waveform (float32 round-off)
    for chunk in job.chunks(): ...      # the same, piece by piece as they are done (async: achunks)
    speech = job.speech()               # == Voice.speak's Speech: durations for synth/timings.py
    job = engine.submit("<speak>Hi. <break time='1s'/> Bye.</speak>", ssml=True)   # as Voice.speak
    engine.close()                      # stops accepting, finishes what it accepted

Every protocol adapter (app/http.py, app/wyoming.py) only parses and validates; the queue, the
batching and the fairness are here. A request is split into pieces exactly as `speak` splits it
(`prepare_pieces`; SSML as `speak_ssml` plans it), and each piece is one unit of work with its own
key, fold_in(key(seed), piece index), and its own options (speaker, rate, noise scales: per-row
arrays of one `synthesize` call). A text that continues an earlier request's (`first_piece`: a
Wyoming stream, sentence by sentence) numbers its pieces on from there and starts with the pause,
so the parts' audio concatenates to the whole text's. The worker takes the piece that is earliest
in its text (then oldest) and fills the batch with pending pieces of the same voice whose token
counts are closest to it, from any request. Since synthesis makes an item's audio independent of
its batch, a request's audio is `speak`'s whatever else is in flight; and since pieces are taken
by position in their text, a short request's first sentence runs before a long request's later
ones.

Batches hold a power of two rows (at most batch_size; filled up with repeats of the shortest
piece), so few programs serve every batch; `warm` compiles them before the engine reports ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import threading
import time
import warnings
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence

import numpy as np

from . import audio
from .speech import DEFAULT_BATCH_SIZE, Speech, prepare_pieces
from ..tokenizer.base import pad_ids
from ..tokenizer.sentences import DEFAULT_MAX_TOKENS

__all__ = ["Engine", "Job", "QueueFull", "UnknownVoice", "EngineClosed", "Cancelled"]


class QueueFull(RuntimeError):
    """The engine holds `max_queue` unfinished requests: try again after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: int = 1):
        super().__init__(message)
        self.retry_after = retry_after


class UnknownVoice(LookupError):
    """A voice name the engine did not load."""


class EngineClosed(RuntimeError):
    """The engine is shutting down and accepts no new request."""


class Cancelled(RuntimeError):
    """The request was cancelled (its client went away)."""


@dataclasses.dataclass(eq=False)
class Job:
    """One accepted request: its pieces, their results as the worker delivers them."""

    seq: int
    voice_name: str
    voice: Any
    text: str
    pieces: list[str]
    ids: list[list[int]]
    keys: Any                     # (n,) typed keys: fold_in(key(seed), first_piece + i)
    options: list                 # per piece: synthesize options (speaker_id, rates, noise)
    normalize: bool
    gaps: list                    # per piece: samples of silence after it (the last: trailing)
    lead: int = 0                 # samples of silence before the first piece
    pause_samples: int = 0        # the usual pause between sentences (gaps differ at SSML breaks)
    submitted: float = dataclasses.field(default_factory=time.monotonic)
    finished: Optional[float] = None
    waves: list = dataclasses.field(default_factory=list)
    durations: list = dataclasses.field(default_factory=list)
    truncated: list = dataclasses.field(default_factory=list)
    error: Optional[BaseException] = None
    cancelled: bool = False
    _cond: threading.Condition = dataclasses.field(default_factory=threading.Condition)
    _listeners: list = dataclasses.field(default_factory=list)
    _on_done: Optional[Callable[["Job"], None]] = None

    def __post_init__(self):
        self.waves = [None] * len(self.pieces)
        self.durations = [None] * len(self.pieces)
        self.truncated = [False] * len(self.pieces)

    # ------------------------------------------------------------------ state
    @property
    def sampling_rate(self) -> int:
        return self.voice.sampling_rate

    @property
    def hop_length(self) -> int:
        return int(self.voice.config.hop_length)

    @property
    def lengths(self) -> list[int]:
        """Samples of each piece; 0 for a piece not done yet. With `pieces`, `ids`, `durations`,
        `truncated`, `pause_samples`, `hop_length` and `sampling_rate` a job reads as a `Speech` to
        synth/timings.py's per-piece functions, for piece i as soon as pieces 0..i are done."""
        return [0 if w is None else len(w) for w in self.waves]

    @property
    def done(self) -> bool:
        return self.error is not None or self.cancelled or all(w is not None for w in self.waves)

    def _notify(self) -> None:
        for wake in list(self._listeners):
            wake()

    def _deliver(self, index: int, wave: np.ndarray, durations: np.ndarray,
                 truncated: bool = False) -> None:
        with self._cond:
            self.waves[index] = wave
            self.durations[index] = durations
            self.truncated[index] = truncated
            finished = self.done
            if finished:
                self.finished = time.monotonic()
            self._cond.notify_all()
        self._notify()
        if finished and self._on_done:
            self._on_done(self)

    def _fail(self, error: BaseException) -> None:
        with self._cond:
            first = not self.done
            self.error = self.error or error
            self.finished = self.finished or time.monotonic()
            self._cond.notify_all()
        self._notify()
        if first and self._on_done:
            self._on_done(self)

    def cancel(self) -> None:
        """Drops the pieces not yet synthesized (a client that went away)."""
        with self._cond:
            first = not self.done
            self.cancelled = True
            self.finished = self.finished or time.monotonic()
            self._cond.notify_all()
        self._notify()
        if first and self._on_done:
            self._on_done(self)

    def _piece(self, index: int) -> Optional[np.ndarray]:
        if self.waves[index] is not None:
            return self.waves[index]
        if self.error is not None:
            raise self.error
        if self.cancelled:
            raise Cancelled("the request was cancelled")
        return None

    def _with_silence(self, i: int, wave: np.ndarray) -> list[np.ndarray]:
        """Piece i's audio: the silence before it, its waveform, and after the last piece the
        trailing silence (an SSML <break>); the pieces' lists concatenate to `result()`."""
        before = self.lead if i == 0 else self.gaps[i - 1]
        after = self.gaps[-1] if i == len(self.pieces) - 1 else 0
        return ([np.zeros(before, np.float32)] if before else []) + [wave] + \
            ([np.zeros(after, np.float32)] if after else [])

    # ------------------------------------------------------------------ results
    def chunks(self, timeout: Optional[float] = None) -> Iterator[np.ndarray]:
        """float32 waveform chunks in reading order (pauses included) as pieces are done; their
        concatenation is `result()`. Blocks the calling thread."""
        for i in range(len(self.pieces)):
            with self._cond:
                if not self._cond.wait_for(lambda: self._piece(i) is not None, timeout):
                    raise TimeoutError(f"piece {i} not done after {timeout} s")
                wave = self.waves[i]
            yield from self._with_silence(i, wave)

    async def achunks(self):
        """`chunks` for an asyncio event loop: waits without blocking the loop. Leaving the loop
        early (a client that disconnected) cancels the pieces not yet synthesized."""
        async with contextlib.aclosing(self.apieces()) as pieces:   # closed here, not when collected
            async for piece in pieces:
                for chunk in piece:
                    yield chunk

    async def apieces(self):
        """Each piece's audio as it is done, in reading order: a list of float32 chunks (silence
        before it, its waveform; `_with_silence`). Waits without blocking the event loop; leaving
        early cancels the pieces not yet synthesized."""
        loop = asyncio.get_running_loop()
        event = asyncio.Event()

        def wake():
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:     # the loop is closed: nobody waits any more
                pass

        with self._cond:
            self._listeners.append(wake)
        complete = False
        try:
            for i in range(len(self.pieces)):
                while True:
                    event.clear()
                    with self._cond:
                        wave = self._piece(i)
                    if wave is not None:
                        break
                    await event.wait()
                yield self._with_silence(i, wave)
            complete = True
        finally:
            with self._cond:
                self._listeners.remove(wake)
            if not complete:
                self.cancel()

    def result(self, timeout: Optional[float] = None) -> np.ndarray:
        """The whole waveform (S,) float32: `Voice.speak(text, seed=...).waveform`."""
        return np.concatenate([np.zeros(0, np.float32), *self.chunks(timeout)])

    def speech(self, timeout: Optional[float] = None):
        """The whole result as `Voice.speak`'s `Speech` (waits as `result`; a continued text's
        leading pause is left out, so its pieces start at 0 as a Speech's do)."""
        waveform = self.result(timeout)[self.lead:]
        return Speech(waveform=waveform, sampling_rate=self.sampling_rate, pieces=list(self.pieces),
                      lengths=self.lengths, truncated=list(self.truncated),
                      pause_samples=self.pause_samples, ids=list(self.ids),
                      durations=list(self.durations), hop_length=self.hop_length, gaps=list(self.gaps))


class Engine:
    """Loaded voices, one bounded queue of requests, one worker thread that batches their pieces.

    voices: {name: Voice}; the first is the default. batch_size: most rows per synthesize call.
    max_queue: most unfinished requests; one more raises QueueFull. max_chars: longest text.
    warm_text: the sentence `warm` synthesizes (its token bucket is the one compiled first).
    devices: where batches run (synthesize's `devices=`; None: all local devices, each batch
    split over them).
    """

    def __init__(self, voices: Mapping[str, Any], *, batch_size: int = DEFAULT_BATCH_SIZE,
                 max_queue: int = 64, max_chars: Optional[int] = None,
                 max_tokens: int = DEFAULT_MAX_TOKENS, warm_text: str = "Hello there.",
                 devices: Optional[Sequence[Any]] = None):
        if not voices:
            raise ValueError("an engine needs at least one voice")
        if batch_size < 1:
            raise ValueError(f"batch size must be >= 1, got {batch_size}")
        if max_queue < 1:
            raise ValueError(f"max queue must be >= 1, got {max_queue}")
        self.voices = dict(voices)
        self.default_voice = next(iter(self.voices))
        self.batch_size = int(batch_size)
        self.max_queue = int(max_queue)
        self.max_chars = max_chars
        self.max_tokens = max_tokens
        self.warm_text = warm_text
        self.devices = None if devices is None else list(devices)
        self.ready = threading.Event()
        self.batches = 0                      # synthesize calls made (for tests and logs)
        self.rows = 0                         # pieces synthesized
        self._cond = threading.Condition()
        self._pending: list[tuple[Job, int]] = []
        self._active: set[Job] = set()
        self._seq = itertools.count()
        self._closing = False
        self._thread: Optional[threading.Thread] = None
        self._worker_error: Optional[BaseException] = None

    # ------------------------------------------------------------------ requests
    def voice(self, name: Optional[str]):
        name = self.default_voice if name is None else name
        if name not in self.voices:
            raise UnknownVoice(f"voice {name!r} is not loaded (loaded: {', '.join(self.voices)})")
        return name, self.voices[name]

    def submit(self, text: str, *, voice: Optional[str] = None, seed: int = 0, speaker=None,
               speaking_rate: Optional[float] = None, noise_scale: Optional[float] = None,
               noise_scale_duration: Optional[float] = None, normalize: Optional[bool] = None,
               pause: Optional[float] = None, ssml: bool = False, first_piece: int = 0) -> Job:
        """Accepts a request (tokenized here, in the caller's thread) -> its Job. Raises
        UnknownVoice, the voice's SpeakerError, NothingToSayError / ValueError (SsmlError) for
        the text, QueueFull, EngineClosed; options default to the voice's, as `Voice.speak`.
        ssml=True: `text` is SSML, planned as `Voice.speak(text, ssml=True)` plans it.
        first_piece: the pieces of earlier parts of the same text (same seed): this text's
        piece i draws from fold_in(key(seed), first_piece + i), and the pause comes first."""
        import jax
        import jax.numpy as jnp

        name, v = self.voice(voice)
        if self.max_chars is not None and len(text) > self.max_chars:
            raise ValueError(f"input of {len(text)} characters is longer than the "
                             f"{self.max_chars} this server accepts")   # the adapters check first
        if not 0 <= int(seed) < 2 ** 32:
            raise ValueError(f"seed must be in [0, 2**32), got {seed}")
        options = v._options(dict(speaker_id=speaker, speaking_rate=speaking_rate,
                                  noise_scale=noise_scale, noise_scale_duration=noise_scale_duration))
        if first_piece < 0:
            raise ValueError(f"first_piece must be >= 0, got {first_piece}")
        with self._cond:                      # refuse before tokenizing when it is refused anyway
            self._check_room()
        pause = v.pause if pause is None else pause
        pause_samples = int(round(pause * v.sampling_rate))
        if ssml:
            from .ssml import plan_ssml

            plan = plan_ssml(v.tokenizer, text, sampling_rate=v.sampling_rate, pause=pause,
                             max_tokens=self.max_tokens, speaker_id=options.get("speaker_id"),
                             speaker_for=v.speaker_id)
            pieces, ids, per_piece = [], [], []
            for part in plan.parts:
                pieces += part.pieces
                ids += part.ids
                per_piece += [dict(options, speaker_id=part.speaker_id,
                                   speaking_rate=options["speaking_rate"] * part.rate)] * len(part.pieces)
            gaps = plan.gaps
        else:
            pieces, ids = prepare_pieces(v.tokenizer, text, self.max_tokens)
            per_piece = [options] * len(pieces)
            gaps = [pause_samples] * (len(pieces) - 1) + [0]
        base = jax.random.key(int(seed))
        keys = jax.vmap(lambda i: jax.random.fold_in(base, i))(
            jnp.arange(first_piece, first_piece + len(pieces), dtype=jnp.uint32))
        job = Job(seq=next(self._seq), voice_name=name, voice=v, text=text, pieces=pieces, ids=ids,
                  keys=keys, options=per_piece, normalize=v.normalize if normalize is None else normalize,
                  gaps=gaps, lead=pause_samples if first_piece else 0, pause_samples=pause_samples,
                  _on_done=self._finished)
        with self._cond:
            self._check_room()
            self._active.add(job)
            self._pending.extend((job, i) for i in range(len(pieces)))
            self._cond.notify_all()
        return job

    def _check_room(self) -> None:
        if self._closing:
            raise EngineClosed("the server is shutting down")
        if len(self._active) >= self.max_queue:
            raise QueueFull(f"the queue is full ({self.max_queue} requests in progress); retry later")

    def _finished(self, job: Job) -> None:
        with self._cond:
            self._active.discard(job)
            self._cond.notify_all()

    @property
    def queued(self) -> int:
        """Unfinished requests."""
        with self._cond:
            return len(self._active)

    # ------------------------------------------------------------------ the worker
    def start(self, warm: bool = True) -> None:
        """Starts the worker thread; it warms every voice's programs (unless warm=False), sets
        `ready`, then serves the queue."""
        if self._thread is not None:
            raise RuntimeError("the engine is already started")
        self._thread = threading.Thread(target=self._run, args=(warm,), name="vits-jax-engine",
                                        daemon=True)
        self._thread.start()

    def close(self, timeout: Optional[float] = None) -> None:
        """Stops accepting; the worker finishes every accepted request, then ends."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def warm(self) -> None:
        """Compiles the programs a short sentence needs, for every row count batches use."""
        counts = sorted({min(self.batch_size, 1 << k) for k in range(self.batch_size.bit_length() + 1)})
        for name, v in self.voices.items():
            _, ids = prepare_pieces(v.tokenizer, self.warm_text, self.max_tokens)
            job = Job(seq=-1, voice_name=name, voice=v, text="", pieces=[""] * max(counts),
                      ids=[ids[0]] * max(counts), keys=None, options=[v._options({})] * max(counts),
                      normalize=False, gaps=[0] * max(counts))
            import jax

            job.keys = jax.random.split(jax.random.key(0), max(counts))
            for rows in counts:
                self._synthesize([(job, i) for i in range(rows)])

    def _run(self, warm: bool) -> None:
        try:
            if warm:
                self.warm()
        except BaseException as e:            # noqa: BLE001  (reported to every request)
            self._worker_error = e
        self.ready.set()
        while True:
            with self._cond:
                while not self._pending and not self._closing:
                    self._cond.wait()
                if not self._pending:
                    return
                batch = self._take()
            if not batch:
                continue
            if self._worker_error is not None:
                for job in {job for job, _ in batch}:
                    job._fail(self._worker_error)
                continue
            try:
                self._synthesize(batch)
            except Exception as e:            # noqa: BLE001  (the batch's requests fail, not the server)
                for job in {job for job, _ in batch}:
                    job._fail(e)

    def _take(self) -> list[tuple[Job, int]]:
        """Under the lock: the next batch, removed from the pending list. First the piece earliest
        in its text (then the oldest request); then the pieces of the same voice and speaker
        kind with the closest token counts."""
        self._pending = [(j, i) for j, i in self._pending if not (j.cancelled or j.error)]
        if not self._pending:
            return []
        first = min(self._pending, key=lambda p: (p[1], p[0].seq))
        job0, i0 = first
        length = len(job0.ids[i0])
        conditioned = job0.options[i0].get("speaker_id") is not None

        def fits(p):
            job, i = p
            return job.voice_name == job0.voice_name and \
                (job.options[i].get("speaker_id") is not None) == conditioned
        others = sorted((p for p in self._pending if p is not first and fits(p)),
                        key=lambda p: (abs(len(p[0].ids[p[1]]) - length), p[1], p[0].seq))
        batch = [first] + others[:self.batch_size - 1]
        taken = {(id(j), i) for j, i in batch}
        self._pending = [p for p in self._pending if (id(p[0]), p[1]) not in taken]
        return batch

    def _synthesize(self, batch: list[tuple[Job, int]]) -> None:
        """One synthesize call over the batch's pieces; each result delivered to its job."""
        import jax.numpy as jnp

        from .synthesis import synthesize

        voice = batch[0][0].voice
        # Rows in reading order (earliest piece of its text first): on a CPU they render one by one
        # in this order and each is delivered as it is done, so every request's first sentence
        # leaves first. The batch is filled up with repeats of its shortest piece, never rendered
        # twice (synthesize renders equal rows once).
        batch = sorted(batch, key=lambda p: (p[1], p[0].seq))
        rows = min(self.batch_size, 1 << (len(batch) - 1).bit_length())
        shortest = min(batch, key=lambda p: len(p[0].ids[p[1]]))
        padded = batch + [shortest] * (rows - len(batch))
        ids, mask = pad_ids([job.ids[i] for job, i in padded], voice.tokenizer.padding_id)
        keys = jnp.stack([job.keys[i] for job, i in padded])

        def column(name):
            values = [job.options[i].get(name) for job, i in padded]
            return None if values[0] is None else np.asarray(values)
        def deliver(r: int, one) -> None:     # each piece as soon as it is rendered (synthesize's on_item)
            if r >= len(batch):
                return                        # a repeat filling the batch up
            job, i = batch[r]
            piece = np.asarray(one.waveform[0], np.float32)
            job._deliver(i, audio.peak_normalize(piece) if job.normalize else piece,
                         np.asarray(one.durations[0, :len(job.ids[i])], np.int64), bool(one.truncated[0]))
        with warnings.catch_warnings():   # truncation: as in speak, not reported per request
            warnings.simplefilter("ignore")
            synthesize(voice.params, ids, attention_mask=mask, key=keys,
                       speaker_id=column("speaker_id"), speaking_rate=column("speaking_rate"),
                       noise_scale=column("noise_scale"), noise_scale_duration=column("noise_scale_duration"),
                       dtype=voice.dtype, programs=getattr(voice, "programs", None), devices=self.devices,
                       on_item=deliver)
        self.batches += 1
        self.rows += len(batch)
