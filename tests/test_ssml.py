"""SSML: the parser (vits_jax/tokenizer/ssml.py) element by element and error by error, and
speaking it (vits_jax/synth/ssml.py): breaks are silence of their length where they stand, rates
change durations, timings stay on the audio, `say --ssml`."""

import os
import wave

import numpy as np
import pytest
from conftest import small_config

import vits_jax
from vits_jax.app import main as cli
from vits_jax.synth import timings
from vits_jax.tokenizer.ssml import BREAK_STRENGTHS, PARAGRAPH_BREAK, Break, Run, SsmlError, parse_ssml



# ------------------------------------------------------------------ the parser
def test_breaks_by_time_and_strength():
    segs = parse_ssml('<speak>A <break time="300ms"/>B<break time="1.5s"/>C<break strength="weak"/>D'
                      '<break/>E</speak>')
    assert [s.seconds for s in segs if isinstance(s, Break)] == [0.3, 1.5, BREAK_STRENGTHS["weak"],
                                                                 BREAK_STRENGTHS["medium"]]
    assert [s.text.strip() for s in segs if isinstance(s, Run)] == ["A", "B", "C", "D", "E"]


@pytest.mark.parametrize("rate, expected", [("50%", 0.5), ("+20%", 1.2), ("-25%", 0.75), ("x-slow", 0.6),
                                            ("fast", 1.25), ("1.5", 1.5), ("default", 1.0)])
def test_prosody_rates(rate, expected):
    (run,) = parse_ssml(f'<speak><prosody rate="{rate}">words</prosody></speak>')
    assert run.rate == pytest.approx(expected)


def test_nested_rates_multiply_and_sentences_end():
    segs = parse_ssml('<speak><p><s>One.</s><s><prosody rate="slow">Two <prosody rate="50%">three'
                      '</prosody></prosody></s></p>Four</speak>')
    runs = [s for s in segs if isinstance(s, Run)]
    assert [(r.text.strip(), r.rate, r.sentence_end) for r in runs] == [
        ("One.", 1.0, True), ("Two", 0.8, False), ("three", pytest.approx(0.4), True), ("Four", 1.0, False)]
    assert Break(PARAGRAPH_BREAK) in segs


def test_say_as_sub_voice_phoneme():
    segs = parse_ssml('<speak><say-as interpret-as="characters">abc</say-as> '
                      '<say-as interpret-as="cardinal">42</say-as> <say-as interpret-as="ordinal">3</say-as> '
                      '<say-as interpret-as="date">2026-12-03</say-as> '
                      '<say-as interpret-as="telephone">555-0142</say-as> <sub alias="World Wide Web">WWW</sub> '
                      '<voice name="ann">hey</voice> <phoneme alphabet="ipa" ph="həˈloʊ">hello</phoneme></speak>')
    text = " ".join(s.text for s in segs if isinstance(s, Run) and not s.phonemes and s.voice is None)
    for said in ("a b c", "forty-two", "third", "December third, twenty twenty-six", "5 5 5 0 1 4 2",
                 "World Wide Web"):
        assert said in text, (said, text)
    assert "WWW" not in text and "abc" not in text
    assert any(s.voice == "ann" and s.text == "hey" for s in segs if isinstance(s, Run))
    assert any(s.phonemes and s.text == "həˈloʊ" for s in segs if isinstance(s, Run))


@pytest.mark.parametrize("ssml, message", [
    ("<speak>Hi <foo>x</foo></speak>", r"line 1, column 11: unknown SSML element <foo>"),
    ("<speak>\n  Hi <break time='3x'/></speak>", r"line 2, column 6: break time '3x'"),
    ("<speak>\n  <prosody rate='fastest'>x</prosody></speak>", r"line 2, column 3: prosody rate 'fastest'"),
    ("<speak><break strength='huge'/></speak>", "break strength 'huge'"),
    ("<speak>\n<prosody>x</speak>", r"malformed SSML at line 2, column \d+: mismatched tag"),
    ("<speak><say-as interpret-as='shout'>x</say-as></speak>", "interpret-as='shout'"),
    ("<speak><say-as interpret-as='date'>tomorrow</say-as></speak>", "not YYYY-MM-DD"),
    ("<speak><sub>x</sub></speak>", "needs an alias"),
    ("<speak><voice>x</voice></speak>", "needs a name"),
    ("<speak><phoneme>x</phoneme></speak>", "needs a ph"),
    ("<speak><break time='90s'/></speak>", "longer than 60 s"),
    ("   ", "empty SSML"),
])
def test_errors_name_the_place(ssml, message):
    with pytest.raises(SsmlError, match=message):
        parse_ssml(ssml)


def test_lenient_speaks_unknown_elements_with_a_warning():
    with pytest.warns(UserWarning, match="unknown element <foo>"):
        (run,) = parse_ssml("<speak>Hi <foo>there</foo></speak>", lenient=True)
    assert run.text == "Hi there"


def test_phonemes_need_a_phoneme_voice():
    with pytest.raises(SsmlError, match="reads characters"):
        parse_ssml('<speak><phoneme ph="a">a</phoneme></speak>', phonemes_allowed=False)


# ------------------------------------------------------------------ speaking it
@pytest.fixture(scope="module")
def voice(model_folder):
    return vits_jax.Voice.load(model_folder(6, **small_config(vocab_size=38, num_speakers=2,
                                                              speaker_embedding_size=4)))


def test_breaks_are_silence_where_they_stand(voice):
    rate = voice.sampling_rate
    said = voice.speak('<speak>The brown fox. <break time="700ms"/> Jumps high.</speak>', ssml=True, seed=1)
    plain = voice.speak("The brown fox. Jumps high.", seed=1)
    assert said.pieces == plain.pieces and said.gaps[0] == int(round(0.7 * rate))
    first, second = said.lengths
    silence = said.waveform[first:first + said.gaps[0]]
    assert silence.size == said.gaps[0] and not np.any(silence)
    # each piece is the same audio as without SSML (same piece index, same noise; batched
    # differently, so equal to float round-off)
    np.testing.assert_allclose(said.waveform[:first], plain.waveform[:first], atol=1e-6)
    np.testing.assert_allclose(said.waveform[first + said.gaps[0]:first + said.gaps[0] + second],
                               plain.waveform[first + plain.pause_samples:first + plain.pause_samples + second],
                               atol=1e-6)
    starts = timings.piece_starts(said)
    assert starts == [0, first + said.gaps[0]]
    assert len(said.waveform) == sum(said.lengths) + sum(said.gaps)


def test_prosody_rate_changes_durations_and_timings_follow(voice):
    fast = voice.speak('<speak><prosody rate="200%">The brown fox jumps.</prosody></speak>', ssml=True)
    slow = voice.speak('<speak><prosody rate="50%">The brown fox jumps.</prosody></speak>', ssml=True)
    assert slow.seconds > 2.5 * fast.seconds
    times = timings.token_times(slow, 0)
    assert times[-1, 1] == pytest.approx(slow.lengths[0] / slow.sampling_rate, abs=1 / slow.sampling_rate)


def test_voice_names_pick_speakers(voice):
    import dataclasses

    named = dataclasses.replace(voice, speakers={"ann": 0, "bob": 1})
    a = named.speak('<speak><voice name="bob">Hello there.</voice></speak>', ssml=True, seed=3)
    b = named.speak("Hello there.", speaker_id=1, seed=3)
    np.testing.assert_allclose(a.waveform[:a.lengths[0]], b.waveform[:b.lengths[0]], atol=1e-6)
    with pytest.raises(ValueError, match="no speaker of that name"):
        named.speak('<speak><voice name="carl">Hi.</voice></speak>', ssml=True)


def test_say_ssml_on_the_command_line(voice, tmp_path, capsys):
    out = tmp_path / "ssml.wav"
    ssml = '<speak><s>Hello there.</s><break time="500ms"/><s>How are you?</s></speak>'
    assert cli.main(["say", ssml, "--ssml", "-m", voice.source, "-o", str(out), "--no-cache"]) == 0
    with wave.open(str(out)) as w:
        frames = w.getnframes()
    said = voice.speak(ssml, ssml=True)
    assert frames == len(said.waveform)
    code = cli.main(["say", "<speak>\n<foo/></speak>", "--ssml", "-m", voice.source, "-o", str(tmp_path / "x.wav")])
    err = capsys.readouterr().err
    assert code == 1 and "error: line 2, column 1: unknown SSML element <foo>" in err
    assert not os.path.exists(tmp_path / "x.wav")
    code = cli.main(["say", '<speak><phoneme ph="a">a</phoneme></speak>', "--ssml", "-m", voice.source,
                     "-o", str(tmp_path / "x.wav")])
    assert code == 1 and "reads characters" in capsys.readouterr().err
