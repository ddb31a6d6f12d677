"""`vits-jax serve`: the engine (synth/engine.py) and the HTTP adapter (app/http.py) with real
clients — the `openai` package and urllib for Piper's API — against a real uvicorn server on a free
port, in this process; SIGTERM against a `vits-jax serve` subprocess.

The voice is a small random transformers model with MMS-eng's tokenizer files. Every audio
comparison is against `Voice.speak` of the same text and seed.
"""

import concurrent.futures
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from conftest import small_config

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from vits_jax.synth.engine import Engine, QueueFull  # noqa: E402
from vits_jax.synth.voice import Voice  # noqa: E402

TINY = small_config(vocab_size=38, num_hidden_layers=1, prior_encoder_num_flows=1,
                    duration_predictor_num_flows=1, resblock_kernel_sizes=[3],
                    resblock_dilation_sizes=[[1]], upsample_rates=[8], upsample_kernel_sizes=[16])
# Sentences of 25 to 31 token ids: one token bucket, so few programs to compile.
TEXTS = ["The fox jumps. Over the dog!", "Nobody knows.",
         "What happened? The cat sleeps. Nobody knows.", "Where is it now?"]
WARM = "Over the dog!"
TIMEOUT = 120            # seconds for any one client call or wait: a hang fails, never stalls


@pytest.fixture(scope="module")
def folder(model_folder):
    return model_folder(5, **TINY)


@pytest.fixture(scope="module")
def voice(folder):
    return Voice.load(folder, expand_numbers=True, fold_diacritics=True)


def speak(voice, text, **options):
    """The reference: `Voice.speak` one sentence at a time (the same audio as any batch size)."""
    return voice.speak(text, batch_size=1, **options)


def pcm16(waveform):
    return np.round(np.clip(waveform, -1, 1) * 32767).astype("<i2")


def same_pcm(data: bytes, waveform):
    got = np.frombuffer(data, "<i2").astype(np.int32)
    want = pcm16(waveform).astype(np.int32)
    assert got.shape == want.shape
    assert np.max(np.abs(got - want), initial=0) <= 1     # float32 round-off at a rounding edge


class Served:
    """An engine and a uvicorn server over it in a thread, on a free port of 127.0.0.1."""

    def __init__(self, voices, **engine_options):
        import uvicorn

        from vits_jax.app.http import create_app

        self.lines = []
        self.engine = Engine(voices, warm_text=WARM, **engine_options)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(create_app(self.engine, log=self.lines.append), log_level="warning",
                                access_log=False, lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def start(self, warm=True):
        self.thread.start()
        deadline = time.monotonic() + TIMEOUT
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.01)
        self.engine.start(warm=warm)
        return self

    def wait_ready(self):
        assert self.engine.ready.wait(TIMEOUT)
        return self

    def stop(self):
        self.server.should_exit = True
        self.thread.join(TIMEOUT)
        self.engine.close(TIMEOUT)
        self.sock.close()


@pytest.fixture(scope="module")
def served(voice):
    s = Served({"tiny": voice}, batch_size=4, max_queue=32, max_chars=200).start()
    s.wait_ready()
    yield s
    s.stop()


def post(url, payload, raw: bytes = None):
    data = raw if raw is not None else json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def wav_data(body: bytes, rate: int) -> bytes:
    assert body[:4] == b"RIFF" and body[8:16] == b"WAVEfmt " and body[36:40] == b"data"
    assert int.from_bytes(body[24:28], "little") == rate
    return body[44:]


# ------------------------------------------------------------------ the engine alone
def test_engine_batches_concurrent_requests_as_speak_does(voice):
    engine = Engine({"tiny": voice}, batch_size=4, max_queue=8)
    jobs = [engine.submit(text, seed=seed, speaking_rate=rate)
            for text, seed, rate in zip(TEXTS, (0, 1, 2, 3), (1.0, 1.3, None, 0.8))]
    engine.start(warm=False)              # everything is queued: batches mix the requests
    try:
        for job, text, seed, rate in zip(jobs, TEXTS, (0, 1, 2, 3), (1.0, 1.3, None, 0.8)):
            want = speak(voice, text, seed=seed, speaking_rate=rate).waveform
            np.testing.assert_allclose(job.result(TIMEOUT), want, atol=1e-5)
        assert engine.rows == sum(len(j.pieces) for j in jobs) and engine.batches < engine.rows
        np.testing.assert_allclose(jobs[2].result(0), voice.speak(TEXTS[2], seed=2).waveform, atol=1e-5)
    finally:
        engine.close(TIMEOUT)


def test_engine_delivers_each_sentence_as_it_is_rendered(voice, monkeypatch):
    """A three-sentence request in one batch: its first sentence reaches the job before the batch's
    synthesize returns (on a CPU rows render one by one), and the pieces arrive in reading order;
    batches run on the engine's devices."""
    import jax

    from vits_jax.synth import engine as engine_module, synthesis

    want = speak(voice, TEXTS[2], seed=3).waveform
    events = []
    real_synthesize, real_deliver = synthesis.synthesize, engine_module.Job._deliver

    def synthesize(*args, **kwargs):
        assert kwargs["devices"] == jax.local_devices()[:1]      # the engine's devices= (serve --devices)
        out = real_synthesize(*args, **kwargs)
        events.append("returned")
        return out

    def deliver(job, index, *args, **kwargs):
        events.append(index)
        return real_deliver(job, index, *args, **kwargs)

    monkeypatch.setattr(synthesis, "synthesize", synthesize)
    monkeypatch.setattr(engine_module.Job, "_deliver", deliver)
    engine = Engine({"tiny": voice}, batch_size=4, max_queue=8, devices=jax.local_devices()[:1])
    job = engine.submit(TEXTS[2], seed=3)
    assert len(job.pieces) == 3
    engine.start(warm=False)
    try:
        np.testing.assert_allclose(job.result(TIMEOUT), want, atol=1e-5)
    finally:
        engine.close(TIMEOUT)
    assert engine.batches == 1
    assert events == [0, 1, 2, "returned"]


def test_engine_queue_is_bounded_and_close_finishes_accepted_work(voice):
    engine = Engine({"tiny": voice}, batch_size=2, max_queue=2)
    first, second = engine.submit(TEXTS[0]), engine.submit(TEXTS[1], seed=4)
    with pytest.raises(QueueFull):
        engine.submit(TEXTS[2])
    engine.start(warm=False)
    engine.close(TIMEOUT)                 # accepted before the close: both finish
    assert first.done and second.done and first.error is None and second.error is None
    np.testing.assert_allclose(second.result(0), speak(voice, TEXTS[1], seed=4).waveform, atol=1e-5)


# ------------------------------------------------------------------ HTTP
def test_health_is_503_until_ready(voice):
    s = Served({"tiny": voice}, batch_size=1)
    s.thread.start()
    try:
        deadline = time.monotonic() + TIMEOUT
        while not s.server.started:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        status, body = get(s.url + "/health")     # the engine is not started: not ready
        assert status == 503 and body["status"] == "starting"
        s.engine.start(warm=False)
        s.wait_ready()
        assert get(s.url + "/health")[0] == 200
    finally:
        s.stop()


def test_openai_client_speech_wav_pcm_and_speed(served, voice):
    from openai import OpenAI

    client = OpenAI(base_url=served.url + "/v1", api_key="none", timeout=TIMEOUT, max_retries=0)
    text = TEXTS[0]
    response = client.audio.speech.create(model="vits-jax", voice="tiny", input=text,
                                          response_format="wav")
    same_pcm(wav_data(response.content, voice.sampling_rate), speak(voice, text, seed=0).waveform)
    response = client.audio.speech.create(model="vits-jax", voice="tiny", input=text,
                                          response_format="pcm", speed=1.5, extra_body={"seed": 7})
    same_pcm(response.content, speak(voice, text, seed=7, speaking_rate=1.5 * voice.speaking_rate).waveform)
    models = client.models.list()
    assert [m.id for m in models.data] == ["tiny"]
    assert any(line.split()[1:4] == ["POST", "/v1/audio/speech", "200"] for line in served.lines)


def test_openai_client_streams_chunks(served, voice):
    from openai import OpenAI

    client = OpenAI(base_url=served.url + "/v1", api_key="none", timeout=TIMEOUT, max_retries=0)
    text = TEXTS[2]                       # three sentences: three pieces, sent as they are done
    with client.audio.speech.with_streaming_response.create(
            model="vits-jax", voice="tiny", input=text, response_format="wav") as response:
        assert response.headers["content-type"] == "audio/wav"
        chunks = list(response.iter_bytes())
    body = b"".join(chunks)
    assert body[4:8] == b"\xff\xff\xff\xff" and body[40:44] == b"\xff\xff\xff\xff"   # streaming header
    same_pcm(wav_data(body, voice.sampling_rate), speak(voice, text, seed=0).waveform)


def test_first_bytes_leave_before_synthesis(voice):
    """The WAV header (and each sentence as it is done) is sent at once: with the engine not yet
    started, a streaming client already reads the header; the audio follows once it runs."""
    from openai import OpenAI

    s = Served({"tiny": voice}, batch_size=2)
    s.thread.start()
    try:
        deadline = time.monotonic() + TIMEOUT
        while not s.server.started:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        client = OpenAI(base_url=s.url + "/v1", api_key="none", timeout=TIMEOUT, max_retries=0)
        with client.audio.speech.with_streaming_response.create(
                model="vits-jax", voice="tiny", input=TEXTS[0], response_format="wav",
                extra_body={"seed": 5}) as response:
            chunks = response.iter_bytes(44)
            header = next(chunks)
            assert header[:4] == b"RIFF" and len(header) == 44 and s.engine.rows == 0
            s.engine.start(warm=False)
            body = header + b"".join(chunks)
        same_pcm(wav_data(body, voice.sampling_rate), speak(voice, TEXTS[0], seed=5).waveform)
    finally:
        s.stop()


def test_client_disconnect_cancels_its_remaining_work(voice):
    from openai import OpenAI

    s = Served({"tiny": voice}, batch_size=1)
    s.thread.start()
    try:
        deadline = time.monotonic() + TIMEOUT
        while not s.server.started:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        client = OpenAI(base_url=s.url + "/v1", api_key="none", timeout=TIMEOUT, max_retries=0)
        with client.audio.speech.with_streaming_response.create(
                model="vits-jax", voice="tiny", input=TEXTS[2], response_format="wav") as response:
            chunks = response.iter_bytes(44)
            assert next(chunks)[:4] == b"RIFF"
            assert s.engine.queued == 1
            chunks.close()
        while s.engine.queued:                # the server noticed the client leave: cancelled
            assert time.monotonic() < deadline, "the request was not cancelled"
            time.sleep(0.01)
        s.engine.start(warm=False)
        s.engine.close(TIMEOUT)
        assert s.engine.rows == 0             # none of its sentences was synthesized
    finally:
        s.stop()


def test_flac(served, voice):
    soundfile = pytest.importorskip("soundfile")
    import io

    status, headers, body = post(served.url + "/v1/audio/speech",
                                 {"input": TEXTS[1], "response_format": "flac", "seed": 2})
    assert status == 200 and headers["content-type"] == "audio/flac"
    data, rate = soundfile.read(io.BytesIO(body), dtype="int16")
    assert rate == voice.sampling_rate
    same_pcm(data.tobytes(), speak(voice, TEXTS[1], seed=2).waveform)


def test_mp3(served, voice):
    """OpenAI's mp3: a lossy copy of the same speech — as long (within the encoder's padding) and
    close to it (SNR of the aligned decode, relative to the speech's own energy)."""
    import io

    import soundfile
    from vits_jax.synth import audio

    assert ".mp3" in audio.writable_extensions()       # this installation's libsndfile encodes MP3
    status, headers, body = post(served.url + "/v1/audio/speech",
                                 {"input": TEXTS[0], "response_format": "mp3", "seed": 3})
    assert status == 200 and headers["content-type"] == "audio/mpeg"
    decoded, rate = soundfile.read(io.BytesIO(body), dtype="float32")
    want = np.round(np.clip(speak(voice, TEXTS[0], seed=3).waveform, -1, 1) * 32767) / 32768
    assert rate == voice.sampling_rate and abs(len(decoded) - len(want)) <= 2 * 1152
    best = max(range(0, 2 * 1152), key=lambda lag: float(np.dot(decoded[lag:lag + len(want) // 2],
                                                                  want[:len(want) // 2])))
    got = decoded[best:best + len(want)]
    n = min(len(got), len(want))
    snr = 10 * np.log10(np.sum(want[:n] ** 2) / np.sum((got[:n] - want[:n]) ** 2))
    assert np.abs(want).max() > 0.1 and snr > 10, snr


def test_concurrent_requests_share_batches_and_equal_speak(served, voice):
    from openai import OpenAI

    client = OpenAI(base_url=served.url + "/v1", api_key="none", timeout=TIMEOUT, max_retries=0)
    jobs = [(TEXTS[i % len(TEXTS)], i) for i in range(12)]

    def one(job):
        text, seed = job
        if seed % 2:
            return post(served.url + "/synthesize", {"text": text, "seed": seed})[2]
        return client.audio.speech.create(model="x", voice="tiny", input=text, response_format="wav",
                                          extra_body={"seed": seed}).content
    batches = served.engine.batches
    with concurrent.futures.ThreadPoolExecutor(len(jobs)) as pool:
        bodies = list(pool.map(one, jobs))
    for (text, seed), body in zip(jobs, bodies):
        same_pcm(wav_data(body, voice.sampling_rate), speak(voice, text, seed=seed).waveform)
    pieces = sum(len(voice.tokenizer.encode_pieces(t, 400)) for t, _ in jobs)
    assert served.engine.batches - batches < pieces          # some batches held several requests


def test_piper_api(served, voice):
    text = TEXTS[0]
    status, headers, body = post(served.url + "/synthesize",
                                 {"text": text, "length_scale": 1.25, "noise_scale": 0.5,
                                  "noise_w_scale": 0.6, "speaker_id": 0})
    assert status == 200 and headers["content-type"] == "audio/wav"
    want = speak(voice, text, seed=0, speaking_rate=0.8, noise_scale=0.5, noise_scale_duration=0.6)
    data = wav_data(body, voice.sampling_rate)
    assert int.from_bytes(body[40:44], "little") == len(data)          # a whole file
    same_pcm(data, want.waveform)
    status, _, body = post(served.url + "/", {"text": TEXTS[1], "voice": "tiny"})
    assert status == 200
    same_pcm(wav_data(body, voice.sampling_rate), speak(voice, TEXTS[1], seed=0).waveform)
    status, info = get(served.url + "/info")
    assert status == 200 and info["voice"]["name"] == "tiny" and info["last"]["text"] == TEXTS[1]
    assert len(info["last"]["alignments"]) == len(info["last"]["phonemes"]) > 0
    status, voices = get(served.url + "/voices")
    assert status == 200 and list(voices) == ["tiny"]
    status, voices = get(served.url + "/v1/audio/voices")
    assert status == 200 and voices["voices"][0]["id"] == "tiny"
    assert get(served.url + "/health")[0] == 200


def speak_lines(url, payload):
    """POST /api/speak -> its NDJSON lines (status 200 asserted)."""
    status, headers, body = post(url + "/api/speak", payload)
    assert status == 200 and headers["content-type"] == "application/x-ndjson", body
    assert body.endswith(b"\n")
    return [json.loads(line) for line in body.decode().splitlines()]


def test_timed_speech_is_openai_audio_with_speak_timings(served, voice):
    """/api/speak: the bytes of /v1/audio/speech's pcm for the same request, and each sentence's
    entry of `timings` of `Voice.speak` with the same options."""
    import base64

    from vits_jax.synth.timings import timings

    text = TEXTS[2]                                  # three sentences: three lines of audio
    request = {"input": text, "voice": "tiny", "speed": 1.25, "seed": 3}
    lines = speak_lines(served.url, request)
    speech = speak(voice, text, seed=3, speaking_rate=1.25 * voice.speaking_rate)
    want = timings(speech, voice.tokenizer)
    head, *pieces, done = lines
    assert head == {"voice": "tiny", "sample_rate": voice.sampling_rate,
                    "hop_length": voice.config.hop_length, "pieces": 3}
    assert [p["index"] for p in pieces] == [0, 1, 2]
    audio = b"".join(base64.b64decode(p.pop("audio")) for p in pieces)
    for got, expected in zip(pieces, want["pieces"]):
        got.pop("index")
        assert [t["id"] for t in got["tokens"]] == [t["id"] for t in expected["tokens"]]
        assert _approx_equal(got, expected), (got, expected)
    assert done == {"done": True, "samples": len(audio) // 2, "seconds": pytest.approx(want["seconds"])}
    status, _, pcm = post(served.url + "/v1/audio/speech", dict(request, response_format="pcm"))
    assert status == 200 and audio == pcm                                   # byte for byte
    same_pcm(audio, speech.waveform)


def _approx_equal(got, want) -> bool:
    """Equal JSON values, floats to 1e-9 s."""
    if isinstance(want, float):
        return abs(got - want) <= 1e-9
    if isinstance(want, dict):
        return got.keys() == want.keys() and all(_approx_equal(got[k], want[k]) for k in want)
    if isinstance(want, list):
        return len(got) == len(want) and all(_approx_equal(a, b) for a, b in zip(got, want))
    return got == want


def test_engine_job_reads_as_speak_speech(voice):
    from vits_jax.synth.timings import timings

    engine = Engine({"tiny": voice}, batch_size=2)
    job = engine.submit(TEXTS[0], seed=1)
    engine.start(warm=False)
    try:
        got, want = job.speech(TIMEOUT), speak(voice, TEXTS[0], seed=1)
        assert got.lengths == want.lengths and got.truncated == want.truncated
        assert _approx_equal(timings(got, voice.tokenizer), timings(want, voice.tokenizer))
    finally:
        engine.close(TIMEOUT)


def test_page_is_served(served):
    with urllib.request.urlopen(served.url + "/", timeout=TIMEOUT) as r:
        assert r.status == 200 and r.headers["content-type"].startswith("text/html")
        html = r.read().decode()
    assert '<canvas id="wave"' in html and "api/speak" in html and "v1/audio/voices" in html
    assert "http://" not in html and "https://" not in html        # nothing from elsewhere


@pytest.mark.parametrize("path, payload, raw, status", [
    ("/v1/audio/speech", None, b"{not json", 400),
    ("/v1/audio/speech", {"input": 3}, None, 400),
    ("/v1/audio/speech", {"input": "Hi.", "speed": 9}, None, 400),
    ("/v1/audio/speech", {"input": "Hi.", "response_format": "opus"}, None, 400),
    ("/v1/audio/speech", {"input": "Hi.", "voice": "nobody"}, None, 404),
    ("/v1/audio/speech", {"input": "x" * 201}, None, 413),
    ("/api/speak", {"input": "Hi.", "voice": "nobody"}, None, 404),
    ("/api/speak", {"input": "Hi.", "speed": 0.1}, None, 400),
    ("/api/speak", {"text": "Hi."}, None, 400),
    ("/api/speak", {"input": "x" * 201}, None, 413),
    ("/synthesize", {"text": "Hi.", "speaker": "nobody"}, None, 404),
    ("/synthesize", {"text": "Hi.", "speaker_id": 3}, None, 404),
    ("/synthesize", {"text": ""}, None, 400),
    ("/synthesize", {"text": "Hi.", "length_scale": "slow"}, None, 400),
    ("/synthesize", [1, 2], None, 400),
])
def test_errors_are_json(served, path, payload, raw, status):
    got, headers, body = post(served.url + path, payload, raw)
    assert got == status, body
    assert headers["content-type"] == "application/json" and json.loads(body)["error"]["message"]


def test_queue_full_is_503_with_retry_after(voice):
    s = Served({"tiny": voice}, batch_size=1, max_queue=1)
    s.thread.start()
    try:
        deadline = time.monotonic() + TIMEOUT
        while not s.server.started:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        held = s.engine.submit(TEXTS[0])        # the engine is not started: it stays queued
        status, headers, body = post(s.url + "/synthesize", {"text": "Hi."})
        assert status == 503 and int(headers["retry-after"]) >= 1 and json.loads(body)["error"]
        s.engine.start(warm=False)
        assert held.result(TIMEOUT).size
    finally:
        s.stop()


def test_serve_imports_nothing_for_say():
    code = ("import sys; from vits_jax.app import main; main.build_parser(); "
            "bad = [m for m in ('starlette', 'uvicorn', 'wyoming', 'jax', 'vits_jax.app.http') "
            "if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=TIMEOUT)


def test_sigterm_finishes_requests_in_flight(folder, voice, tmp_path):
    """A `vits-jax serve` process: ready line with its port, requests in flight, SIGTERM: every
    accepted request completes with the right audio, and the process exits 0."""
    env = dict(os.environ, VITS_JAX_CACHE_DIR=str(tmp_path / "cache"))
    process = subprocess.Popen(
        [sys.executable, "-m", "vits_jax", "serve", "-m", f"tiny={folder}", "--port", "0",
         "--batch-size", "1", "--devices", "1"], stderr=subprocess.PIPE, text=True, env=env)
    try:
        lines = []
        timer = threading.Timer(300, process.kill)    # a hang fails the test, never stalls it
        timer.start()
        for line in process.stderr:
            lines.append(line)
            if line.startswith("ready: "):
                break
        assert lines and lines[-1].startswith("ready: "), "".join(lines)
        url = lines[-1].split()[1]
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(post, url + "/synthesize", {"text": TEXTS[i], "seed": i})
                       for i in range(4)]
            deadline = time.monotonic() + TIMEOUT    # all four accepted before the signal
            while get(url + "/health")[1]["queued"] + sum(f.done() for f in futures) < 4:
                assert time.monotonic() < deadline
                time.sleep(0.01)
            process.send_signal(signal.SIGTERM)
            results = [f.result(TIMEOUT) for f in futures]
        rest = process.stderr.read()
        assert process.wait(TIMEOUT) == 0, rest
        timer.cancel()
        for i, (status, _, body) in enumerate(results):
            assert status == 200, body
            same_pcm(wav_data(body, voice.sampling_rate), speak(voice, TEXTS[i], seed=i).waveform)
        assert "stopped" in rest
        assert sum(" POST /synthesize 200 voice=tiny " in line for line in rest.splitlines()) == 4, rest
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(TIMEOUT)


@pytest.mark.parametrize("argv, message", [
    (["--max-queue", "0"], "--max-queue must be >= 1"),
    (["--batch-size", "0"], "--batch-size must be >= 1"),
    (["--port", "70000"], "--port must be in"),
    (["-m", "=x"], "NAME=SOURCE"),
    (["--devices", "0"], "--devices must be in [1, "),
    (["--dtype", "float16"], "invalid choice: 'float16'"),
])
def test_cli_refuses_bad_options(argv, message):
    run = subprocess.run([sys.executable, "-m", "vits_jax", "serve", *argv], capture_output=True,
                         text=True, timeout=TIMEOUT)
    assert run.returncode == 1 and "error: " in run.stderr and message in run.stderr, run.stderr
