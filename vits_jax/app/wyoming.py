"""The Wyoming adapter of `vits-jax serve`: Home Assistant's protocol over the one engine.

    describe                                  -> info: a TtsProgram listing every loaded voice
    synthesize (text, voice name / speaker)   -> audio-start, audio-chunk ..., audio-stop
    synthesize-start, synthesize-chunk ..., synthesize-stop
        -> for each sentence as soon as it is complete: audio-start, audio-chunk ..., audio-stop;
           then synthesize-stopped

Audio is 16-bit mono PCM at the voice's rate, the same samples as the HTTP API's `pcm` for the
same text, voice and seed (vits-jax reads an optional integer `seed` beside the events' own
fields; default 0). A stream's sentences are numbered on from one another and each after the
first starts with the pause, so a stream's audio is the whole text's. Text that starts with
`<speak` (or `text_format: ssml`) is SSML. A request that cannot be spoken (unknown voice or
speaker, nothing to say, bad SSML, a full queue) gets an `error` event whose code is the error's
class name (as wyoming-piper's), and the connection stays open for the next one. Only parsing,
validation and encoding live here; the queue and batching are synth/engine.py's. Imported only by
`vits-jax serve --wyoming` (it needs the `wyoming` package).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sys
import time
from typing import Optional

import numpy as np
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Attribution, Describe, Info, TtsProgram, TtsVoice, TtsVoiceSpeaker
from wyoming.server import AsyncEventHandler
from wyoming.tts import (Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop, SynthesizeStopped,
                         SynthesizeTextFormat)

from .. import __version__
from ..synth import audio
from ..synth.engine import Cancelled, Engine, EngineClosed, QueueFull, UnknownVoice
from ..synth.speech import NothingToSayError
from ..tokenizer.sentences import ends_sentence

__all__ = ["WyomingHandler", "describe", "serve"]

SAMPLES_PER_CHUNK = 1024      # per audio-chunk event: wyoming-piper's default, small for satellites
ATTRIBUTION = Attribution(name="vits-jax", url="https://github.com/vits-jax/vits-jax")
# what engine.submit refuses because of the request, not because of a bug
REFUSED = (LookupError, ValueError, QueueFull, EngineClosed)


def describe(engine: Engine) -> Info:
    """The `info` answer: one TTS program holding every loaded voice (default first)."""
    voices = []
    for name, v in engine.voices.items():
        speakers = [TtsVoiceSpeaker(name=s) for s in sorted(v.speakers, key=v.speakers.get)]
        voices.append(TtsVoice(name=name, description=f"{name} ({v.kind})", attribution=ATTRIBUTION,
                               installed=True, version=__version__,
                               languages=[v.language] if v.language else [], speakers=speakers or None))
    program = TtsProgram(name="vits-jax", description="VITS text-to-speech in JAX",
                         attribution=ATTRIBUTION, installed=True, version=__version__, voices=voices,
                         supports_synthesize_streaming=True)
    return Info(tts=[program])


class WyomingHandler(AsyncEventHandler):
    """One client connection. Requests are submitted to the engine as they are read; their audio
    goes out in order through one sender task, so reading a stream's text never waits for its
    audio (the engine can batch a stream's sentences with each other and with other requests)."""

    def __init__(self, engine: Engine, info: Event, reader, writer, *, log=None):
        super().__init__(reader, writer)
        self.engine, self.info = engine, info
        self.log = log or (lambda line: print(line, file=sys.stderr, flush=True))
        peer = writer.get_extra_info("peername")
        self.client = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "-"
        self._out: asyncio.Queue = asyncio.Queue()   # events and (job, per sentence, started) to send
        self._sender: Optional[asyncio.Task] = None
        self._closing = False
        self._stream: Optional[dict] = None           # the open synthesize-start: its options
        self._text = ""                               # the stream's text not yet spoken
        self._said = 0                                # the stream's pieces submitted so far

    async def run(self) -> None:
        self._sender = asyncio.ensure_future(self._send())
        await super().run()

    # ------------------------------------------------------------------ events in
    async def handle_event(self, event: Event) -> bool:
        try:
            if Describe.is_type(event.type):
                await self._out.put(self.info)
            elif Synthesize.is_type(event.type):
                # Home Assistant sends the whole text again as `synthesize` inside its stream, for
                # servers that do not stream: it is said by the stream already
                if self._stream is None:
                    request = Synthesize.from_event(event)
                    options = self._options(request.voice, request.text_format, request.text, event.data)
                    await self._speak(request.text, options, per_sentence=False)
            elif SynthesizeStart.is_type(event.type):
                await self._start(event)
            elif SynthesizeChunk.is_type(event.type):
                await self._chunk(SynthesizeChunk.from_event(event).text)
            elif SynthesizeStop.is_type(event.type):
                await self._stop()
        except REFUSED as e:
            await self._refuse(e, event.type)
        except Exception as e:                       # noqa: BLE001  (a bug: reported, the connection lives)
            self.log(f"{self.client} wyoming {event.type} error={type(e).__name__}: {e}")
            await self._out.put(Error(text=f"internal error: {type(e).__name__}: {e}",
                                      code=type(e).__name__).event())
        return True

    def _options(self, voice, text_format, text: str, data: dict) -> dict:
        """engine.submit's options of a request; raises what the engine would, before any text."""
        if self._closing:
            raise EngineClosed("the server is shutting down")
        name, speaker = (voice.name, voice.speaker) if voice is not None else (None, None)
        if name is None and voice is not None and voice.language:
            # Home Assistant names voices; a language alone picks the first voice speaking it
            wanted = voice.language.replace("-", "_").lower()
            name = next((n for n, v in self.engine.voices.items()
                         if (v.language or "").replace("-", "_").lower() == wanted), None)
        name, v = self.engine.voice(name)
        v.speaker_id(speaker)
        seed = data.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2 ** 32:
            raise ValueError(f"seed must be an integer in [0, 2**32), got {seed!r}")
        ssml = text_format == SynthesizeTextFormat.SSML or (text or "").lstrip().startswith("<speak")
        return dict(voice=name, speaker=speaker, seed=seed, ssml=ssml)

    async def _start(self, event: Event) -> None:
        if self._stream is not None:
            raise ValueError("synthesize-start inside an open stream: send synthesize-stop first")
        start = SynthesizeStart.from_event(event)
        self._stream, self._text, self._said = {}, "", 0
        # a refused start leaves the stream open but empty: its chunks are dropped until its stop
        self._stream = self._options(start.voice, start.text_format, "", event.data)

    async def _chunk(self, text: str) -> None:
        if self._stream is None:
            raise ValueError("synthesize-chunk outside a stream: send synthesize-start first")
        if not self._stream:
            return
        self._text += text
        if self.engine.max_chars is not None and len(self._text) > self.engine.max_chars:
            self._stream, self._text = {}, ""
            raise ValueError(f"a stream sentence of over {self.engine.max_chars} characters is longer "
                             "than this server accepts (--max-chars)")
        if self._stream["ssml"] or self._text.lstrip().startswith("<speak"):
            self._stream["ssml"] = True               # SSML is said whole, at the stop
            return
        loop = asyncio.get_running_loop()
        done, self._text = await loop.run_in_executor(None, self._complete, self._text)
        if done:
            await self._speak(done, self._stream, per_sentence=True)

    async def _stop(self) -> None:
        if self._stream is None:
            raise ValueError("synthesize-stop outside a stream: send synthesize-start first")
        stream, text, said = self._stream, self._text, self._said
        self._stream, self._text = None, ""
        try:
            if stream and (text.strip() or not said):
                await self._speak(text, stream, per_sentence=True, last=True)
        except REFUSED as e:                          # its error comes before the stream's end
            await self._refuse(e, "synthesize-stop")
        await self._out.put(SynthesizeStopped().event())

    def _complete(self, text: str) -> tuple[str, str]:
        """A stream's text -> (its complete sentences, the rest). A sentence is complete once the
        voice's splitter puts more text after it: "Dr." or "3." may go on with the next chunk."""
        tokenizer = self.engine.voices[self._stream["voice"]].tokenizer
        pieces = tokenizer.split_sentences(text, self.engine.max_tokens)
        ends = [i + 1 for i, piece in enumerate(pieces[:-1]) if ends_sentence(piece)]
        if not ends:
            return "", text
        # the splitter only normalizes white space: the complete pieces end after as many
        # non-space characters of `text`; if it changed more, all is said at the stop instead
        done = "".join("".join(piece.split()) for piece in pieces[:ends[-1]])
        seen = 0
        for offset, c in enumerate(text):
            if c.isspace():
                continue
            if seen == len(done):
                return text[:offset], text[offset:]
            if c != done[seen]:
                break
            seen += 1
        return "", text

    async def _speak(self, text: str, options: dict, *, per_sentence: bool, last: bool = False) -> None:
        """Submits text (in a thread: tokenizing may take a while) and queues its audio."""
        loop = asyncio.get_running_loop()
        first = self._said if per_sentence else 0
        submit = functools.partial(self.engine.submit, text, voice=options["voice"], seed=options["seed"],
                                   speaker=options["speaker"], ssml=options["ssml"], first_piece=first)
        try:
            job = await loop.run_in_executor(None, submit)
        except NothingToSayError:
            # as `speak`, a stream's sentence with nothing to say is skipped; a whole text is refused
            if per_sentence and not (last and self._said == 0):
                return
            raise
        if per_sentence:
            self._said += len(job.pieces)
        await self._out.put((job, per_sentence, time.monotonic()))

    async def _refuse(self, error: BaseException, kind: str) -> None:
        self.log(f"{self.client} wyoming {kind} refused error={str(error)!r}")
        await self._out.put(Error(text=str(error), code=type(error).__name__).event())

    # ------------------------------------------------------------------ audio out
    async def _send(self) -> None:
        """Writes the queued events and jobs' audio in order; a failed job gets an error event.
        A client that cannot be written to is gone: the connection is closed (`disconnect`)."""
        try:
            while True:
                item = await self._out.get()
                try:
                    if isinstance(item, Event):
                        await self.write_event(item)
                    else:
                        await self._send_job(*item)
                finally:
                    self._out.task_done()
        except ConnectionError:
            await self.stop()

    async def _send_job(self, job, per_sentence: bool, started: float) -> None:
        rate = job.sampling_rate
        form = dict(rate=rate, width=2, channels=1)
        open_audio, status = False, "cancelled"
        try:
            async with contextlib.aclosing(job.apieces()) as pieces:
                async for chunks in pieces:
                    if not open_audio:
                        await self.write_event(AudioStart(**form).event())
                        open_audio = True
                    pcm = audio.to_pcm16(np.concatenate(chunks)).tobytes()
                    step = 2 * SAMPLES_PER_CHUNK
                    for at in range(0, len(pcm), step):
                        await self.write_event(AudioChunk(audio=pcm[at:at + step], **form).event())
                    if per_sentence:                  # one audio per sentence, as wyoming-piper
                        await self.write_event(AudioStop().event())
                        open_audio = False
            if open_audio:
                await self.write_event(AudioStop().event())
            status = "ok"
        except Cancelled:                             # the connection is closing: nothing to send
            pass
        except ConnectionError:
            raise
        except Exception as e:                        # noqa: BLE001  (the engine failed this job)
            status = f"error={type(e).__name__}"
            await self.write_event(Error(text=f"synthesis failed: {e}", code=type(e).__name__).event())
            if open_audio:
                await self.write_event(AudioStop().event())
        finally:
            samples = sum(len(w) for w in job.waves if w is not None)
            self.log(f"{self.client} wyoming {'stream' if per_sentence else 'synthesize'} {status} "
                     f"voice={job.voice_name} chars={len(job.text)} pieces={len(job.pieces)} "
                     f"audio={samples / rate:.2f}s time={time.monotonic() - started:.3f}s")

    # ------------------------------------------------------------------ the connection's end
    async def disconnect(self) -> None:
        """The client went away (or the server closed it): drop the work not yet synthesized."""
        if self._sender is not None:
            self._sender.cancel()                     # its job's pieces not yet done are cancelled
            await asyncio.wait([self._sender])
        while not self._out.empty():
            item = self._out.get_nowait()
            if not isinstance(item, Event):
                item[0].cancel()

    async def finish(self) -> None:
        """Graceful shutdown: refuse new requests, send what was accepted, then close."""
        self._closing = True
        if self._sender is not None:
            joined = asyncio.ensure_future(self._out.join())
            await asyncio.wait([joined, self._sender], return_when=asyncio.FIRST_COMPLETED)
            joined.cancel()
        await self.stop()


async def serve(engine: Engine, sock, *, log=None):
    """Accepts Wyoming connections on the listening socket `sock` (in the running event loop) ->
    an async `stop()`: stop accepting, let each connection send the audio it accepted, close."""
    info = describe(engine).event()
    handlers: dict[WyomingHandler, asyncio.Task] = {}   # the loop keeps only weak task references

    def connected(reader, writer):
        handler = WyomingHandler(engine, info, reader, writer, log=log)
        handlers[handler] = asyncio.ensure_future(handler.run())
        handlers[handler].add_done_callback(lambda _: handlers.pop(handler, None))

    server = await asyncio.start_server(connected, sock=sock)

    async def stop():
        server.close()
        await asyncio.gather(*(h.finish() for h in list(handlers)))
    return stop
