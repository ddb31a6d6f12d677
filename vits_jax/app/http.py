"""The HTTP adapter of `vits-jax serve`: OpenAI's and Piper's APIs over one engine (Starlette).

    POST /v1/audio/speech   OpenAI: model, input, voice, response_format (wav|pcm|flac|mp3), speed
                            (0.25-4.0, times the voice's rate), stream_format; vits-jax's seed
    GET  /v1/models  /v1/audio/voices
    POST /synthesize  and  POST /   Piper (piper-tts 1.8 http_server): text, voice, speaker /
                            speaker_id, length_scale, noise_scale, noise_w_scale (+ seed) -> WAV
    GET  /voices  /info  /health   (health: 200 when the engine is ready, 503 before)
    GET  /                  page.html: a page to try the voices (text, voice, speaker, rate)
    POST /api/speak         the page's: /v1/audio/speech's fields -> NDJSON lines sent as the
                            sentences are done: {"voice", "sample_rate", "hop_length", "pieces"};
                            per sentence synth/timings.piece_timings' entry (text, start, end,
                            tokens, words; seconds) + "index" + "audio" (base64 16-bit pcm: the
                            pause before it and the sentence); {"done", "samples", "seconds"}.
                            The audio is /v1/audio/speech's pcm for the same request, byte for byte.

Errors are JSON {"error": {"message": ...}}: malformed JSON or wrong field types 400, unknown
voice or speaker 404, input over --max-chars 413, queue full 503 with Retry-After. Only parsing,
validation and encoding live here; the queue and batching are synth/engine.py's. Imported only by
`vits-jax serve` (it needs the `serve` extra).
"""

from __future__ import annotations

import base64
import json
import math
import sys
import time
from importlib import resources
from typing import Any, Optional

import numpy as np
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ..synth import audio
from ..synth.engine import Engine, EngineClosed, QueueFull, UnknownVoice
from ..synth.speech import NothingToSayError
from ..synth.timings import piece_timings
from ..synth.voice import SpeakerError

__all__ = ["create_app", "HttpError", "wav_header"]

FORMATS = {"wav": "audio/wav", "pcm": "audio/pcm", "flac": "audio/flac", "mp3": "audio/mpeg"}
WHOLE = {"flac": ".flac", "mp3": ".mp3"}     # encoded once the audio is complete (synth/audio.py)
MIN_SPEED, MAX_SPEED = 0.25, 4.0


class HttpError(Exception):
    def __init__(self, status: int, message: str, headers: Optional[dict] = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


def error_response(status: int, message: str, headers: Optional[dict] = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "code": status}}, status_code=status,
                        headers=headers)


def wav_header(sampling_rate: int, samples: Optional[int] = None) -> bytes:
    """A 16-bit mono PCM WAV header; samples=None: a streaming header whose sizes are 0xFFFFFFFF,
    as OpenAI's streamed WAV (readers take the data as running to the end)."""
    data = 0xFFFFFFFF if samples is None else 2 * samples
    riff = 0xFFFFFFFF if samples is None else 36 + data
    return (b"RIFF" + riff.to_bytes(4, "little") + b"WAVEfmt " + (16).to_bytes(4, "little")
            + (1).to_bytes(2, "little") + (1).to_bytes(2, "little")
            + int(sampling_rate).to_bytes(4, "little") + (2 * int(sampling_rate)).to_bytes(4, "little")
            + (2).to_bytes(2, "little") + (16).to_bytes(2, "little") + b"data" + data.to_bytes(4, "little"))


# ------------------------------------------------------------------ request fields
async def _json(request: Request) -> dict:
    body = await request.body()
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise HttpError(400, f"the request body is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise HttpError(400, "the request body must be a JSON object")
    return data


def _field(data: dict, name: str, kinds, default=None, required: bool = False):
    if name not in data or data[name] is None:
        if required:
            raise HttpError(400, f"field {name!r} is required")
        return default
    value = data[name]
    if isinstance(value, bool) or not isinstance(value, kinds):
        names = {str: "a string", int: "an integer", float: "a number"}
        want = " or ".join(names.get(k, k.__name__) for k in (kinds if isinstance(kinds, tuple) else (kinds,)))
        raise HttpError(400, f"field {name!r} must be {want}, got {json.dumps(value)[:40]}")
    return value


def _number(data: dict, name: str, *, positive: bool = False) -> Optional[float]:
    value = _field(data, name, (int, float))
    if value is None:
        return None
    value = float(value)
    if not math.isfinite(value) or (value <= 0 if positive else value < 0):
        raise HttpError(400, f"field {name!r} must be {'> 0' if positive else '>= 0'}, got {value}")
    return value


def _seed(data: dict) -> int:
    seed = _field(data, "seed", int, 0)
    if not 0 <= seed < 2 ** 32:
        raise HttpError(400, f"field 'seed' must be in [0, 2**32), got {seed}")
    return seed


def _pcm(chunk: np.ndarray) -> bytes:
    return audio.to_pcm16(chunk).tobytes()


def _line(value: dict) -> bytes:
    """One NDJSON line."""
    return (json.dumps(value, separators=(",", ":")) + "\n").encode()


# ------------------------------------------------------------------ the app
def create_app(engine: Engine, *, log=None) -> Starlette:
    """The Starlette app over `engine` (started by the caller). log: a function of one line
    (default: stderr), called once per request."""
    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    last: dict[str, Any] = {}

    def describe(name: str) -> dict:
        v = engine.voices[name]
        return {"name": name, "language": v.language, "num_speakers": v.num_speakers,
                "speakers": dict(v.speakers), "sample_rate": v.sampling_rate, "kind": v.kind}

    def log_line(request: Request, status: int, started: float, job=None, note: str = "") -> None:
        client = f"{request.client.host}:{request.client.port}" if request.client else "-"
        parts = [client, request.method, request.url.path, str(status)]
        if job is not None:
            samples = sum(len(w) for w in job.waves if w is not None)
            parts += [f"voice={job.voice_name}", f"chars={len(job.text)}", f"pieces={len(job.pieces)}",
                      f"audio={samples / job.sampling_rate:.2f}s"]
        parts.append(f"time={time.monotonic() - started:.3f}s")
        if note:
            parts.append(note)
        log(" ".join(parts))

    async def submit(text: str, **options):
        if engine.max_chars is not None and len(text) > engine.max_chars:
            raise HttpError(413, f"input of {len(text)} characters is longer than the "
                                 f"{engine.max_chars} this server accepts (--max-chars)")
        try:
            return await run_in_threadpool(lambda: engine.submit(text, **options))
        except UnknownVoice as e:
            raise HttpError(404, str(e)) from None
        except SpeakerError as e:
            raise HttpError(404, str(e)) from None
        except QueueFull as e:
            raise HttpError(503, str(e), {"Retry-After": str(e.retry_after)}) from None
        except EngineClosed as e:
            raise HttpError(503, str(e), {"Retry-After": "5"}) from None
        except (NothingToSayError, ValueError) as e:
            raise HttpError(400, str(e)) from None

    def speaker_of(data: dict):
        speaker_id = _field(data, "speaker_id", (int, str))
        speaker = _field(data, "speaker", (str, int))
        return speaker_id if speaker_id is not None else speaker

    def handler(func):
        async def endpoint(request: Request):
            started = time.monotonic()
            try:
                return await func(request, started)
            except HttpError as e:
                log_line(request, e.status, started, note=f"error={e.message!r}")
                return error_response(e.status, e.message, e.headers)
        return endpoint

    def streamed(request: Request, started: float, job, body, media_type: str, headers=None):
        async def logged():
            status = 200
            try:
                async for data in body:
                    yield data
            except BaseException as e:     # a failed or cancelled job: the stream is cut short
                status = 499 if type(e).__name__ in ("Cancelled", "CancelledError") else 500
                raise
            finally:
                log_line(request, status, started, job)
        return StreamingResponse(logged(), media_type=media_type, headers=headers)

    async def openai_job(data: dict):
        """OpenAI's speech fields (input, model, voice, speed; vits-jax's seed, speaker /
        speaker_id) -> the submitted job: /v1/audio/speech and /api/speak read them alike."""
        text = _field(data, "input", str, required=True)
        _field(data, "model", str)
        name = _field(data, "voice", str)
        if isinstance(data.get("voice"), dict):   # OpenAI's {"id": ...} form
            name = data["voice"].get("id")
        speed = _number(data, "speed", positive=True)
        if speed is not None and not MIN_SPEED <= speed <= MAX_SPEED:
            raise HttpError(400, f"field 'speed' must be in [{MIN_SPEED}, {MAX_SPEED}], got {speed}")
        try:
            _, voice = engine.voice(name)
        except UnknownVoice as e:
            raise HttpError(404, str(e)) from None
        return await submit(text, voice=name, seed=_seed(data), speaker=speaker_of(data),
                            speaking_rate=None if speed is None else voice.speaking_rate * speed)

    async def openai_speech(request: Request, started: float):
        data = await _json(request)
        fmt = _field(data, "response_format", str, "wav")
        if fmt not in FORMATS:
            raise HttpError(400, f"response_format {fmt!r} is not supported (supported: "
                                 f"{', '.join(FORMATS)})")
        stream_format = _field(data, "stream_format", str, "audio")
        if stream_format not in ("audio",):
            raise HttpError(400, f"stream_format {stream_format!r} is not supported (only 'audio')")
        job = await openai_job(data)
        rate = job.sampling_rate
        if fmt in WHOLE:
            if WHOLE[fmt] not in audio.writable_extensions():
                job.cancel()
                raise HttpError(400, f"response_format {fmt!r} is not written by this installation "
                                     "(it needs the soundfile package and a libsndfile that encodes it)")

            async def whole():
                waves = [chunk async for chunk in job.achunks()]
                yield audio.audio_bytes(np.concatenate([np.zeros(0, np.float32), *waves]), rate, WHOLE[fmt])
            return streamed(request, started, job, whole(), FORMATS[fmt])

        async def pcm(header: bool):
            if header:
                yield wav_header(rate)
            async for chunk in job.achunks():
                yield _pcm(chunk)
        return streamed(request, started, job, pcm(fmt == "wav"), FORMATS[fmt],
                        {"X-Sample-Rate": str(rate)})

    async def timed_speech(request: Request, started: float):
        """/api/speak: the audio of /v1/audio/speech's pcm with each sentence's timings, as
        NDJSON lines sent as the sentences are done (the page's word highlighting)."""
        job = await openai_job(await _json(request))
        tokenizer = job.voice.tokenizer

        async def lines():
            yield _line({"voice": job.voice_name, "sample_rate": job.sampling_rate,
                         "hop_length": job.hop_length, "pieces": len(job.pieces)})
            samples, k, pending = 0, 0, b""
            async for chunk in job.achunks():    # piece 0, [gap, piece 1], [gap, piece 2], ...
                pending += _pcm(chunk)
                samples += len(chunk)
                if chunk is job.waves[k]:        # (a gap is a fresh array of zeros)
                    entry = await run_in_threadpool(piece_timings, job, tokenizer, k)  # tokenizes
                    yield _line(dict(entry, index=k, audio=base64.b64encode(pending).decode("ascii")))
                    k, pending = k + 1, b""
            yield _line({"done": True, "samples": samples, "seconds": samples / job.sampling_rate})
        return streamed(request, started, job, lines(), "application/x-ndjson",
                        {"X-Sample-Rate": str(job.sampling_rate)})

    async def piper_synthesize(request: Request, started: float):
        data = await _json(request)
        text = _field(data, "text", str, "").strip()
        if not text:
            raise HttpError(400, "No text provided")
        name = _field(data, "voice", str)
        length_scale = _number(data, "length_scale", positive=True)
        job = await submit(text, voice=name, seed=_seed(data), speaker=speaker_of(data),
                           speaking_rate=None if length_scale is None else 1.0 / length_scale,
                           noise_scale=_number(data, "noise_scale"),
                           noise_scale_duration=_number(data, "noise_w_scale"))
        try:
            waves = [chunk async for chunk in job.achunks()]
        except BaseException:
            log_line(request, 500, started, job)
            raise
        waveform = np.concatenate([np.zeros(0, np.float32), *waves])
        seconds = time.monotonic() - started
        hop, rate = int(job.voice.config.hop_length), job.sampling_rate
        last.clear()
        last.update(text=text, synthesize_seconds=seconds,
                    phonemes=[int(i) for ids in job.ids for i in ids],
                    alignments=[{"phoneme": int(i), "seconds": float(d) * hop / rate}
                                for ids, frames in zip(job.ids, job.durations)
                                for i, d in zip(ids, frames)])
        log_line(request, 200, started, job)
        return Response(audio.wav_bytes(waveform, rate), media_type="audio/wav")

    async def page(request: Request, started: float):
        return HTMLResponse(page_html)

    async def models(request: Request, started: float):
        return JSONResponse({"object": "list", "data": [
            {"id": name, "object": "model", "created": 0, "owned_by": "vits-jax"} for name in engine.voices]})

    async def openai_voices(request: Request, started: float):
        return JSONResponse({"voices": [dict(describe(name), id=name) for name in engine.voices]})

    async def piper_voices(request: Request, started: float):
        out = {}
        for name, v in engine.voices.items():
            config = getattr(v.tokenizer, "config", None)
            out[name] = config if isinstance(config, dict) and config else describe(name)
        return JSONResponse(out)

    async def info(request: Request, started: float):
        v = describe(engine.default_voice)
        return JSONResponse({"voice": {"name": v["name"], "language": v["language"],
                                       "num_speakers": v["num_speakers"]},
                             "voices": [describe(name) for name in engine.voices],
                             "last": dict(last) or None})

    async def health(request: Request, started: float):
        if engine.ready.is_set():
            return JSONResponse({"status": "ready", "voices": list(engine.voices), "queued": engine.queued})
        return JSONResponse({"status": "starting"}, status_code=503, headers={"Retry-After": "1"})

    page_html = resources.files(__package__).joinpath("page.html").read_text(encoding="utf-8")
    routes = [
        Route("/", handler(page), methods=["GET"]),
        Route("/api/speak", handler(timed_speech), methods=["POST"]),
        Route("/v1/audio/speech", handler(openai_speech), methods=["POST"]),
        Route("/v1/models", handler(models), methods=["GET"]),
        Route("/v1/audio/voices", handler(openai_voices), methods=["GET"]),
        Route("/synthesize", handler(piper_synthesize), methods=["POST"]),
        Route("/", handler(piper_synthesize), methods=["POST"]),
        Route("/voices", handler(piper_voices), methods=["GET"]),
        Route("/info", handler(info), methods=["GET"]),
        Route("/health", handler(health), methods=["GET"]),
    ]

    async def not_found(request, exc):
        status = getattr(exc, "status_code", 404)
        return error_response(status, f"{request.method} {request.url.path}: "
                                      f"{getattr(exc, 'detail', 'not found')}")
    async def failed(request, exc):        # a bug, not the client's: still JSON, and logged
        log(f"{request.method} {request.url.path} 500 error={type(exc).__name__}: {exc}")
        return error_response(500, f"internal error: {type(exc).__name__}: {exc}")
    return Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found,
                                                       Exception: failed})
