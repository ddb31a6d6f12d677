"""The speaking host API (vits_jax/speech.py): sentence planning, batching by length, joining,
Piper-style output levels; and the shared progress bar (vits_jax/progress.py).

The model is a small random transformers model with the real MMS-eng tokenizer files beside it.
"""

import io
import os
import sys

import jax
import numpy as np
import pytest

import vits_jax
from vits_jax.synth import audio, speech
from vits_jax.synth import voice as voicemod
from vits_jax.synth.progress import progress_bar
from vits_jax.synth.synthesis import synthesize
from vits_jax.tokenizer import Tokenizer

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "mms-tts-eng")
# Three sentences of 39 to 47 token ids: one token bucket, so few programs to compile.
THREE = "The brown fox jumps. Over the lazy dog, twice! And then what happened?"


@pytest.fixture(scope="module")
def model(eng_single):
    """(params, tokenizer) of a single-speaker transformers folder with tokenizer files."""
    return voicemod.load_model(eng_single)


class PiperLike:
    """The MMS tokenizer dressed as a Piper voice's: same ids, `kind == "piper"` (duck typing)."""

    kind = "piper"

    def __init__(self, tokenizer):
        self._tokenizer = tokenizer

    def __getattr__(self, name):
        return getattr(self._tokenizer, name)


def test_public_exports():
    assert vits_jax.speak is speech.speak and vits_jax.Speech is speech.Speech


def test_prepare_pieces_drops_silent_pieces_and_rejects_empty_text():
    tok = Tokenizer.load(FIXTURES)
    pieces, ids = speech.prepare_pieces(tok, "Hello there. ... !!! How are you?")
    assert pieces == ["Hello there.", "How are you?"]
    assert ids == [tok.encode(p) for p in pieces]
    for bad, message in (("", "empty text"), ("  \n", "empty text"), ("?!... ;", "nothing this model")):
        with pytest.raises(speech.NothingToSayError, match=message):
            speech.prepare_pieces(tok, bad)
    with pytest.raises(ValueError, match="batch size must be >= 1"):
        speech.speak(None, tok, "Hi.", batch_size=0)


def test_progress_bar_only_on_a_terminal(monkeypatch):
    class Stderr(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stderr", Stderr())
    bar = progress_bar(5, enabled=True)
    assert type(bar).__name__ == "tqdm"
    bar.update(5)
    bar.close()
    assert "0/5" in sys.stderr.getvalue()
    resumed = progress_bar(10, True, unit="step", initial=4)          # the training loop's use
    resumed.close()
    assert "4/10" in sys.stderr.getvalue()
    for total, enabled in ((5, False), (1, True)):          # off, or a single item
        assert type(progress_bar(total, enabled)).__name__ == "_Null"
    monkeypatch.setattr(sys, "stderr", io.StringIO())        # not a terminal
    null = progress_bar(5, enabled=True)
    assert type(null).__name__ == "_Null"
    null.update(1), null.set_postfix(loss=1.0), null.close()  # the same calls as tqdm's, no output
    assert sys.stderr.getvalue() == ""


def test_speak_joins_sentences_in_order_independent_of_batching(model):
    params, tok = model
    said = speech.speak(params, tok, THREE, seed=5, batch_size=2, pause=0.25)
    assert said.pieces == ["The brown fox jumps.", "Over the lazy dog, twice!", "And then what happened?"]
    assert said.pause_samples == 4000 and said.sampling_rate == 16000
    assert len(said.waveform) == sum(said.lengths) + 2 * 4000
    # each piece, in reading order, is what synthesize makes of it alone with the key
    # fold_in(key(seed), index); so sorting, batching and the padding row change nothing
    start = 0
    for i, piece in enumerate(said.pieces):
        ids, mask = tok(piece)
        alone = synthesize(params, ids, attention_mask=mask,
                           key=jax.random.fold_in(jax.random.key(5), i)[None])
        n = int(alone.lengths[0])
        assert said.lengths[i] == n > 0
        np.testing.assert_allclose(said.waveform[start:start + n], alone.waveform[0, :n], atol=1e-6)
        start += n
        if i < 2:
            assert not np.any(said.waveform[start:start + 4000])   # the pause is silence
            start += 4000


def _pieces(said):
    """Speech -> its pieces' waveforms, cut at the recorded lengths and pauses."""
    out, start = [], 0
    for n in said.lengths:
        out.append(said.waveform[start:start + n])
        start += n + said.pause_samples
    return out


def test_normalize_scales_each_sentence_peak_as_piper(model):
    params, tok = model
    plain = speech.speak(params, tok, THREE, seed=1, batch_size=2)
    assert speech.speak(params, tok, THREE, seed=1, batch_size=2, normalize=False).waveform.tobytes() \
        == plain.waveform.tobytes()                                  # off by default for MMS voices
    loud = speech.speak(params, tok, THREE, seed=1, batch_size=2, normalize=True)
    assert loud.lengths == plain.lengths and len(loud.waveform) == len(plain.waveform)
    # piper-tts 1.8 PiperVoice.synthesize, per sentence: audio / max(|audio|) (zeros below 1e-8)
    for raw, scaled in zip(_pieces(plain), _pieces(loud)):
        peak = np.max(np.abs(raw))
        assert 1e-8 < peak < 0.99                                    # really rescaled
        np.testing.assert_allclose(scaled, raw / peak, rtol=1e-6, atol=1e-7)
        assert np.max(np.abs(scaled)) == pytest.approx(1.0, abs=1e-6)
    # a Piper voice (its tokenizer says kind == "piper") is normalized unless told otherwise
    piper = PiperLike(tok)
    assert speech.is_piper_voice(piper) and not speech.is_piper_voice(tok)
    assert speech.speak(params, piper, THREE, seed=1, batch_size=2).waveform.tobytes() == loud.waveform.tobytes()
    assert speech.speak(params, piper, THREE, seed=1, batch_size=2, normalize=False).waveform.tobytes() \
        == plain.waveform.tobytes()
    np.testing.assert_array_equal(audio.peak_normalize(np.full(4, 1e-9, np.float32)), np.zeros(4))
