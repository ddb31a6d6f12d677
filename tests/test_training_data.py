"""Training data (training/data.py): manifests, audio reading and resampling, bad rows, buckets."""

import json
import os
import wave

import numpy as np
import pytest

from vits_jax.tokenizer import Tokenizer
from vits_jax.training.data import Batches, load_dataset, read_audio, read_manifest, resample

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "mms-tts-eng")
RATE, HOP = 16000, 64


def write_wav(path, x, rate, channels=1, width=2):
    x = np.asarray(x, np.float64).reshape(-1, channels)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        if width == 2:
            w.writeframes(np.round(np.clip(x, -1, 1) * 32767).astype("<i2").tobytes())
        else:  # 8-bit unsigned
            w.writeframes(np.round(np.clip(x, -1, 1) * 127 + 128).astype(np.uint8).tobytes())


def tone(seconds, rate, frequency=220.0):
    t = np.arange(int(seconds * rate)) / rate
    return 0.5 * np.sin(2 * np.pi * frequency * t)


@pytest.fixture(scope="module")
def tok():
    return Tokenizer.load(FIXTURES)


@pytest.fixture
def corpus(tmp_path):
    """A CSV manifest with three good rows (one stereo at 22.05 kHz, one 8-bit) and one of each
    kind of bad row."""
    (tmp_path / "wavs").mkdir()
    write_wav(tmp_path / "wavs" / "a.wav", tone(0.5, RATE), RATE)
    stereo = np.stack([tone(0.3, 22050), tone(0.3, 22050, 330.0)], axis=1)
    write_wav(tmp_path / "wavs" / "b.wav", stereo, 22050, channels=2)
    write_wav(tmp_path / "wavs" / "c.wav", tone(0.8, RATE), RATE, width=1)
    write_wav(tmp_path / "wavs" / "long.wav", tone(3.0, RATE), RATE)
    write_wav(tmp_path / "wavs" / "tiny.wav", tone(0.001, RATE), RATE)
    (tmp_path / "wavs" / "junk.wav").write_bytes(b"this is not a wav file at all")
    rows = [("wavs/a.wav", "hello there"),            # 1 good
            ("wavs/b.wav", '"quoted, with comma"'),   # 2 good (CSV quoting)
            ("wavs/missing.wav", "where is it"),       # 3 missing file
            ("wavs/junk.wav", "junk audio"),           # 4 unreadable
            ("wavs/a.wav", "   "),                    # 5 empty text
            ("wavs/a.wav", "!!! ???"),                # 6 nothing to say
            ("wavs/long.wav", "too long"),            # 7 audio too long
            ("wavs/tiny.wav", "tiny"),                # 8 audio too short
            ("wavs/c.wav", "the last one")]           # 9 good (8-bit)
    with open(tmp_path / "train.csv", "w", encoding="utf-8") as f:
        f.write("audio,text\n")
        for audio, text in rows:
            f.write(f"{audio},{text}\n")
    return tmp_path


def test_manifest_csv_and_jsonl(corpus):
    rows = read_manifest(corpus / "train.csv")
    assert len(rows) == 9 and rows[0][0] == 1
    assert rows[0][1]["audio"] == str(corpus / "wavs" / "a.wav")
    assert rows[1][1]["text"] == "quoted, with comma"
    lines = [json.dumps({"audio": "wavs/a.wav", "text": "hi", "speaker": 1}), "{not json",
             json.dumps(["a list"]), json.dumps({"text": "no audio"})]
    (corpus / "train.jsonl").write_text("\n".join(lines) + "\n")
    rows = read_manifest(corpus / "train.jsonl")
    assert rows[0][1]["speaker"] == "1"
    assert [r.get("error", "")[:12] for _, r in rows[1:]] == ["invalid JSON", "not a JSON o", "no audio pat"]
    (corpus / "bad.csv").write_text("file,words\nx.wav,hi\n")
    with pytest.raises(ValueError, match="audio,text"):
        read_manifest(corpus / "bad.csv")


def test_folder_of_pairs_or_with_metadata(corpus, tok):
    wavs = corpus / "wavs"
    (wavs / "a.txt").write_text("Hello\n  there.\n")      # whitespace folded into one line
    (wavs / "c.txt").write_text("the last one")
    rows = read_manifest(wavs)     # a b c junk long tiny, in name order; b, long, tiny have no .txt
    assert [r[0] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert rows[0][1] == {"audio": str(wavs / "a.wav"), "text": "Hello there.", "speaker": None}
    assert rows[1][1]["error"] == "b.wav: no transcript b.txt"
    with pytest.warns(UserWarning, match="skipped 4 of 6 rows"):
        ds = load_dataset(wavs, tok, sampling_rate=RATE, hop_length=HOP, max_seconds=2.0)
    assert [os.path.basename(e.audio_path) for e in ds.examples] == ["a.wav", "c.wav"]
    # a metadata.csv inside the folder takes precedence over the pairs
    (corpus / "metadata.csv").write_text("audio,text\nwavs/c.wav,only this one\n")
    assert [(r["audio"], r["text"]) for _, r in read_manifest(corpus)] == [(str(wavs / "c.wav"), "only this one")]
    empty = corpus / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no metadata.csv / metadata.jsonl and no audio files"):
        read_manifest(empty)


def test_load_dataset_skips_each_kind_of_bad_row(corpus, tok):
    with pytest.warns(UserWarning, match="skipped 6 of 9 rows"):
        ds = load_dataset(corpus / "train.csv", tok, sampling_rate=RATE, hop_length=HOP, max_seconds=2.0)
    assert [e.row for e in ds.examples] == [1, 2, 9]
    reasons = dict(ds.skipped)
    assert sorted(reasons) == [3, 4, 5, 6, 7, 8]
    assert "not found" in reasons[3]
    assert "unreadable" in reasons[4]
    assert reasons[5] == "empty text"
    assert "tokenize" in reasons[6]
    assert "too long" in reasons[7]
    assert "too short" in reasons[8]
    for e in ds.examples:
        assert e.waveform.dtype == np.float32 and e.waveform.ndim == 1 and len(e.waveform) % HOP == 0
        assert list(e.ids) == tok.encode(e.text)
    # the stereo 22.05 kHz clip: resampled to 16 kHz (0.3 s -> 4800 samples, cut to whole hops)
    assert len(ds.examples[1].waveform) == 4800 // HOP * HOP
    # the 8-bit clip reads as the same tone as 16-bit, to 8-bit precision
    np.testing.assert_allclose(ds.examples[2].waveform, tone(0.8, RATE)[:len(ds.examples[2].waveform)],
                               atol=1.5 / 128)
    # multi-speaker: a row without a speaker id is skipped, not fatal
    with pytest.warns(UserWarning, match="skipped 9 of 9"):
        ds = load_dataset(corpus / "train.csv", tok, sampling_rate=RATE, hop_length=HOP, num_speakers=2,
                          max_seconds=2.0)
    assert not ds.examples and "no speaker id" in dict(ds.skipped)[1]


def test_readers_and_resampling_agree(corpus):
    x_sf, r_sf = read_audio(str(corpus / "wavs" / "b.wav"), use_soundfile=None)
    x_wave, r_wave = read_audio(str(corpus / "wavs" / "b.wav"), use_soundfile=False)
    assert r_sf == r_wave == 22050
    np.testing.assert_allclose(x_sf, x_wave, atol=1e-6)    # mono mix of both channels
    np.testing.assert_allclose(x_wave, 0.5 * (tone(0.3, 22050) + tone(0.3, 22050, 330.0)), atol=1e-4)
    # a 220 Hz tone resampled 22050 -> 16000 is the 220 Hz tone at 16 kHz (away from the edges)
    y = resample(tone(0.3, 22050), 22050, 16000)
    assert len(y) == 4800
    np.testing.assert_allclose(y[200:-200], tone(0.3, 16000)[200:-200], atol=2e-3)
    assert resample(x_wave, 22050, 22050) is not None


def test_one_wav_reader_with_soundfiles_scale(tmp_path):
    """audio.read_wav is the one reader (training's read_audio falls back to it): 16-bit PCM
    divided by 32768 exactly as soundfile/libsndfile does, so both give identical samples; what
    audio.write_wav writes reads back within 1/32768."""
    import soundfile

    from vits_jax.synth import audio
    from vits_jax.training import data

    assert data.read_audio is audio.read_audio and data.resample is audio.resample
    path = tmp_path / "full_scale.wav"
    pcm = np.array([0, 1, -1, 16384, -16384, 32767, -32768], "<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(RATE)
        w.writeframes(pcm.tobytes())
    x, rate = audio.read_wav(path)
    reference, reference_rate = soundfile.read(str(path), dtype="float32")
    assert rate == reference_rate == RATE and x.dtype == np.float32
    np.testing.assert_array_equal(x, reference)                       # bit-identical
    np.testing.assert_array_equal(x, pcm / np.float32(32768))
    assert x.min() == -1.0 and x.max() < 1.0
    y = np.array([0.0, 0.25, -0.5, 1.0, -1.0], np.float32)
    audio.write_wav(tmp_path / "round.wav", y, RATE)
    assert np.max(np.abs(audio.read_wav(tmp_path / "round.wav")[0] - y)) <= 1 / 32768


def test_batches_are_bucketed_padded_and_deterministic(corpus, tok):
    with pytest.warns(UserWarning):
        ds = load_dataset(corpus / "train.csv", tok, sampling_rate=RATE, hop_length=HOP, max_seconds=2.0)
    batches = Batches(ds, 2, hop_length=HOP, seed=3, token_multiple=16, frame_multiple=32,
                      min_frames=64, padding_id=tok.padding_id)
    assert len(batches) == 2                                   # 3 examples: 2 + (1 filled up to 2)
    for step in range(4):
        b = batches.batch_at(step)
        assert b.input_ids.shape[0] == 2 and b.input_ids.shape[1] % 16 == 0
        s = b.waveform.shape[1]
        assert s % (32 * HOP) == 0 and s >= 64 * HOP
        for r in range(2):
            n, m = int(b.text_lengths[r]), int(b.audio_lengths[r])
            assert np.all(b.input_ids[r, n:] == tok.padding_id) and np.all(b.waveform[r, m:] == 0)
        assert b.speaker_ids is None
    # sorted by length: the two shortest share a batch; the longest is alone, repeated
    groups = sorted(batches.groups)
    assert {tuple(sorted(g)) for g in groups} == {(0, 1), (2, 2)}
    # same (seed, step) -> same batch; every epoch visits every batch once
    again = Batches(ds, 2, hop_length=HOP, seed=3, min_frames=64, padding_id=tok.padding_id)
    for step in range(6):
        np.testing.assert_array_equal(batches.batch_at(step).waveform, again.batch_at(step).waveform)
    assert sorted(batches.order(5)) == [0, 1]
    with pytest.raises(ValueError, match="no usable examples"):
        Batches(type(ds)([], [], RATE), 2, hop_length=HOP)
