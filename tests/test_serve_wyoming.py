"""`vits-jax serve --wyoming`: the Wyoming adapter (app/wyoming.py) with the `wyoming` package's own
client (`AsyncTcpClient`, as Home Assistant uses it) against one `vits-jax serve` subprocess that
also serves HTTP. Every audio comparison is against `Voice.speak` of the same text and seed.

The voice is test_serve.py's small random transformers model with MMS-eng's tokenizer files.
"""

import asyncio
import dataclasses
import os
import signal
import socket
import subprocess
import sys
import threading

import numpy as np
import pytest
from test_serve import TEXTS, TIMEOUT, folder, pcm16, speak, voice  # noqa: F401  (fixtures)

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
pytest.importorskip("wyoming")

from wyoming.audio import AudioChunk, AudioStart, AudioStop  # noqa: E402
from wyoming.client import AsyncTcpClient  # noqa: E402
from wyoming.error import Error  # noqa: E402
from wyoming.event import Event  # noqa: E402
from wyoming.info import Describe, Info  # noqa: E402
from wyoming.tts import (Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop,  # noqa: E402
                         SynthesizeStopped, SynthesizeVoice)


TINY_VOICE = SynthesizeVoice(name="tiny")


@pytest.fixture(scope="module")
def server(folder, tmp_path_factory):
    """One `vits-jax serve --wyoming tcp://127.0.0.1:0` for the module: (wyoming port, stderr
    lines so far). At the end: SIGTERM, and the process must exit 0."""
    env = dict(os.environ, VITS_JAX_CACHE_DIR=str(tmp_path_factory.mktemp("cache")))
    process = subprocess.Popen(
        [sys.executable, "-m", "vits_jax", "serve", "-m", f"tiny={folder}", "--port", "0",
         "--wyoming", "tcp://127.0.0.1:0", "--batch-size", "2"],
        stderr=subprocess.PIPE, text=True, env=env)
    timer = threading.Timer(600, process.kill)    # a hang fails the tests, never stalls them
    timer.start()
    lines, ready = [], threading.Event()

    def read():                                   # drains stderr, so request logs never block it
        for line in process.stderr:
            lines.append(line)
            if line.startswith("ready: "):
                ready.set()
        ready.set()
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert ready.wait(TIMEOUT * 3) and lines and lines[-1].startswith("ready: "), "".join(lines)
        words = lines[-1].split()
        assert words[1].startswith("http://") and words[2] == "wyoming", lines[-1]
        host, port = words[3].removeprefix("tcp://").rsplit(":", 1)
        assert host == "127.0.0.1" and int(port) > 0
        yield int(port), lines
        process.send_signal(signal.SIGTERM)
        assert process.wait(TIMEOUT) == 0, "".join(lines)
        reader.join(TIMEOUT)
        assert lines[-1].strip() == "stopped", "".join(lines)
    finally:
        timer.cancel()
        if process.poll() is None:
            process.kill()
            process.wait(TIMEOUT)


# ------------------------------------------------------------------ the client side
def talk(port, *steps):
    """Runs steps on one connection: each step is (events to send, a predicate on an event read
    that ends the step). Returns the events read per step."""
    async def go():
        out = []
        async with AsyncTcpClient("127.0.0.1", port) as client:
            for events, last in steps:
                for event in events:
                    await client.write_event(event)
                got = []
                while not got or not last(got[-1]):
                    event = await asyncio.wait_for(client.read_event(), TIMEOUT)
                    assert event is not None, f"the server closed the connection after {got}"
                    got.append(event)
                out.append(got)
        return out
    return asyncio.run(go())


def is_(kind):
    return lambda event: kind.is_type(event.type)


def ends_request(event):
    return AudioStop.is_type(event.type) or Error.is_type(event.type)


def audios(events, rate):
    """The audio streams in `events`: a list of int16 arrays, one per audio-start..audio-stop."""
    out, current = [], None
    for event in events:
        if AudioStart.is_type(event.type):
            assert current is None
            start = AudioStart.from_event(event)
            assert (start.rate, start.width, start.channels) == (rate, 2, 1)
            current = []
        elif AudioChunk.is_type(event.type):
            chunk = AudioChunk.from_event(event)
            assert current is not None and (chunk.rate, chunk.width, chunk.channels) == (rate, 2, 1)
            current.append(chunk.audio)
        elif AudioStop.is_type(event.type):
            out.append(np.frombuffer(b"".join(current), "<i2"))
            current = None
    assert current is None, "an audio-start without its audio-stop"
    return out


def same(got, waveform):
    want = pcm16(waveform).astype(np.int32)
    assert got.shape == want.shape
    assert np.max(np.abs(got.astype(np.int32) - want), initial=0) <= 1   # float32 round-off at an edge


def error(event):
    assert Error.is_type(event.type), event
    return Error.from_event(event)


# ------------------------------------------------------------------ tests
def test_describe_lists_every_voice_with_its_speakers(voice, server):
    from vits_jax.app.wyoming import describe
    from vits_jax.synth.engine import Engine

    named = dataclasses.replace(voice, speakers={"bob": 1, "alice": 0})
    info = describe(Engine({"tiny": voice, "duo": named}))   # never started: describe reads names
    [program] = info.tts
    assert program.supports_synthesize_streaming and program.installed and program.version
    assert [v.name for v in program.voices] == ["tiny", "duo"]
    tiny, duo = program.voices
    assert tiny.speakers is None and [s.name for s in duo.speakers] == ["alice", "bob"]
    assert tiny.languages == [voice.language] and tiny.installed and tiny.attribution.url

    port, _ = server
    [[event]] = talk(port, ([Describe().event()], is_(Info)))
    served = Info.from_event(event).tts[0]
    assert served.supports_synthesize_streaming and [v.name for v in served.voices] == ["tiny"]
    assert served.voices[0].languages == [voice.language] and served.voices[0].description


def test_synthesize_equals_offline_speech(voice, server):
    port, lines = server
    text = TEXTS[2]                               # three sentences: one audio, pauses inside
    seeded = Event(type="synthesize", data={"text": TEXTS[0], "voice": {"name": "tiny"}, "seed": 7})
    plain, with_seed = talk(port, ([Synthesize(text=text, voice=TINY_VOICE).event()], ends_request),
                            ([seeded], ends_request))
    [got] = audios(plain, voice.sampling_rate)
    same(got, speak(voice, text, seed=0).waveform)
    [got] = audios(with_seed, voice.sampling_rate)
    same(got, speak(voice, TEXTS[0], seed=7).waveform)
    assert any(" wyoming synthesize ok voice=tiny " in line for line in lines)


def test_ssml_is_spoken_as_ssml(voice, server):
    port, _ = server
    ssml = '<speak>The fox jumps. <break time="300ms"/> <prosody rate="slow">Nobody knows.</prosody></speak>'
    [events] = talk(port, ([Synthesize(text=ssml).event()], ends_request))
    [got] = audios(events, voice.sampling_rate)
    same(got, voice.speak(ssml, ssml=True, batch_size=1).waveform)


def test_streaming_says_each_sentence_once_it_is_complete(voice, server):
    """Text split mid-sentence: each sentence's audio comes as soon as the sentence is complete
    (the first before any more text is sent), one audio per sentence; together they are the
    offline speech of the whole text, and Home Assistant's trailing `synthesize` adds nothing."""
    port, _ = server
    parts = ["The fox jum", "ps. Over the", " dog! Nobody", " knows."]
    whole = "".join(parts)
    first, rest = talk(
        port,
        ([SynthesizeStart(voice=TINY_VOICE).event(), SynthesizeChunk(text=parts[0]).event(),
          SynthesizeChunk(text=parts[1]).event()], is_(AudioStop)),
        ([SynthesizeChunk(text=p).event() for p in parts[2:]]
         + [Synthesize(text=whole, voice=TINY_VOICE).event(), SynthesizeStop().event()],
         is_(SynthesizeStopped)))
    said = speak(voice, whole, seed=0)
    assert said.pieces == ["The fox jumps.", "Over the dog!", "Nobody knows."]
    got = audios(first, voice.sampling_rate) + audios(rest, voice.sampling_rate)
    assert len(got) == 3
    start = 0
    for k, (audio, n) in enumerate(zip(got, said.lengths)):   # sentence k: the pause, then it
        begin = start - said.pause_samples if k else 0
        same(audio, said.waveform[begin:start + n])
        start += n + said.pause_samples
    same(np.concatenate(got), said.waveform)


def test_unspeakable_text_is_an_error_and_the_connection_goes_on(voice, server):
    port, _ = server
    nothing, empty, ok = talk(port, ([Synthesize(text="你好").event()], ends_request),
                              ([Synthesize(text="").event()], ends_request),
                              ([Synthesize(text=TEXTS[1]).event()], ends_request))
    assert error(nothing[-1]).code == "NothingToSayError" and "pronounce" in error(nothing[-1]).text
    assert len(nothing) == 1 and error(empty[-1]).code == "NothingToSayError"
    [got] = audios(ok, voice.sampling_rate)
    same(got, speak(voice, TEXTS[1], seed=0).waveform)


def test_unknown_voice_or_speaker_is_an_error(voice, server):
    port, _ = server
    nobody = SynthesizeVoice(name="nobody")
    once, speaker, stream, after = talk(
        port,
        ([Synthesize(text="Hi.", voice=nobody).event()], ends_request),
        ([Synthesize(text="Hi.", voice=SynthesizeVoice(name="tiny", speaker="bob")).event()], ends_request),
        ([SynthesizeStart(voice=nobody).event(), SynthesizeChunk(text="Hi. There.").event(),
          SynthesizeStop().event()], is_(SynthesizeStopped)),
        ([Synthesize(text=TEXTS[3], voice=TINY_VOICE).event()], ends_request))
    assert error(once[0]).code == "UnknownVoice" and "'nobody'" in error(once[0]).text
    assert error(speaker[0]).code == "SpeakerError"
    assert [e.type for e in stream] == ["error", "synthesize-stopped"]   # no audio, the stream ended
    [got] = audios(after, voice.sampling_rate)
    same(got, speak(voice, TEXTS[3], seed=0).waveform)


def test_disconnect_cancels_and_stop_finishes_what_was_accepted(voice):
    """In this process, with the engine not started, so nothing is done before the test says: a
    client that leaves has its request cancelled (none of its sentences is synthesized); `stop()`
    refuses new connections, finishes the accepted request on its open connection, closes it."""
    from vits_jax.app.wyoming import serve
    from vits_jax.synth.engine import Engine

    async def until(condition, what):
        deadline = asyncio.get_running_loop().time() + TIMEOUT
        while not condition():
            assert asyncio.get_running_loop().time() < deadline, what
            await asyncio.sleep(0.01)

    async def go():
        engine = Engine({"tiny": voice}, batch_size=1, max_queue=4)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        port, lines = sock.getsockname()[1], []
        stop = await serve(engine, sock, log=lines.append)
        try:
            async with AsyncTcpClient("127.0.0.1", port) as leaving:
                await leaving.write_event(Synthesize(text=TEXTS[2]).event())
                await until(lambda: engine.queued == 1, "the request was not accepted")
            await until(lambda: engine.queued == 0, "the request of a client that left was not cancelled")
            async with AsyncTcpClient("127.0.0.1", port) as staying:
                await staying.write_event(Synthesize(text=TEXTS[0], voice=TINY_VOICE).event())
                await until(lambda: engine.queued == 1, "the request was not accepted")
                stopping = asyncio.ensure_future(stop())
                engine.start(warm=False)
                events = []
                while (event := await asyncio.wait_for(staying.read_event(), TIMEOUT)) is not None:
                    events.append(event)           # to the end: the server closes the connection
                await asyncio.wait_for(stopping, TIMEOUT)
            with pytest.raises(OSError):           # no longer accepting
                await AsyncTcpClient("127.0.0.1", port).connect()
        finally:
            engine.close(TIMEOUT)
            sock.close()
        return engine, events, lines

    engine, events, lines = asyncio.run(go())
    [got] = audios(events, voice.sampling_rate)
    same(got, speak(voice, TEXTS[0], seed=0).waveform)
    assert engine.rows == len(voice.tokenizer.encode_pieces(TEXTS[0]))   # the cancelled one: none
    assert [line.split()[3] for line in lines] == ["cancelled", "ok"], lines


def test_wyoming_is_imported_only_with_the_option():
    code = ("import sys; import vits_jax.app.serve, vits_jax.app.http; "
            "assert 'wyoming' not in sys.modules and 'vits_jax.app.wyoming' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=TIMEOUT)


@pytest.mark.parametrize("uri", ["10200", "unix:///tmp/x", "tcp://127.0.0.1", "tcp://127.0.0.1:70000"])
def test_cli_refuses_bad_wyoming_uris(uri):
    run = subprocess.run([sys.executable, "-m", "vits_jax", "serve", "--wyoming", uri],
                         capture_output=True, text=True, timeout=TIMEOUT)
    assert run.returncode == 1 and "error: --wyoming" in run.stderr and "tcp://HOST:PORT" in run.stderr, \
        run.stderr


def test_32_concurrent_requests_across_the_three_protocols(voice, server):
    """OpenAI (the openai package), Piper's HTTP API (urllib) and Wyoming (its client) at once,
    against one process and one engine: every request completes with its own audio, the same as
    offline speech with its seed, whatever else was in flight."""
    import concurrent.futures
    import json
    import urllib.request

    from openai import OpenAI

    port, lines = server
    url = next(line for line in lines if line.startswith("ready: ")).split()[1]
    client = OpenAI(base_url=url + "/v1", api_key="none", timeout=TIMEOUT, max_retries=0)
    jobs = [(("openai", "piper", "wyoming")[i % 3], TEXTS[i % len(TEXTS)], 100 + i) for i in range(32)]

    def one(job):
        protocol, text, seed = job
        if protocol == "openai":
            body = client.audio.speech.create(model="x", voice="tiny", input=text, response_format="pcm",
                                              extra_body={"seed": seed}).content
            return np.frombuffer(body, "<i2")
        if protocol == "piper":
            request = urllib.request.Request(url + "/synthesize", headers={"Content-Type": "application/json"},
                                             data=json.dumps({"text": text, "seed": seed}).encode())
            with urllib.request.urlopen(request, timeout=TIMEOUT) as r:
                body = r.read()
            assert body[:4] == b"RIFF" and body[36:40] == b"data"
            return np.frombuffer(body[44:], "<i2")
        event = Event(type="synthesize", data={"text": text, "voice": {"name": "tiny"}, "seed": seed})
        [events] = talk(port, ([event], ends_request))
        [audio] = audios(events, voice.sampling_rate)
        return audio

    with concurrent.futures.ThreadPoolExecutor(len(jobs)) as pool:
        got = list(pool.map(one, jobs))
    for (protocol, text, seed), audio in zip(jobs, got):
        same(audio, speak(voice, text, seed=seed).waveform)
