"""synthesize(): parity with transformers end to end, one program vs two, batch vs single,
compilation counts, truncation and every validation error.

Tolerances: the waveform passes through ~40 conv layers in float32, so parity with transformers is
2e-5 x the reference's peak (conftest.assert_waveform_close, as test_model.py); our own paths (batch
vs single, max_frames vs buckets) run the same computation on differently padded arrays, so they
agree to float32 round-off, 1e-5 / 1e-6.
"""

import dataclasses
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from conftest import NoiseRecorder, assert_close, assert_waveform_close, hf_model, small_config, state_dict_numpy

from convert import to_flax
from vits_jax import SynthesisOutput, VitsConfig, VitsParams, init_params, synthesize
from vits_jax.synth import synthesis
from vits_jax.synth.synthesis import MAX_TOKENS, bucket, frame_bucket, predict_durations

FRAMES_PER_TOKEN = 6
SPEAKERS = 3


def compilation_counts() -> dict[str, int]:
    """Programs compiled so far by each of synthesize's jitted core functions."""
    programs = {"encode": synthesis.encode_program, "render": synthesis.render_program,
                "fixed": synthesis.generate_program}
    return {name: fn._cache_size() for name, fn in programs.items()}


@pytest.fixture(scope="module")
def multi():
    """A random-init multi-speaker transformers model with a stochastic duration predictor."""
    hf = hf_model(0, **small_config(num_speakers=SPEAKERS, speaker_embedding_size=4))
    cfg = VitsConfig.from_dict(hf.config.to_dict())
    return hf, VitsParams(to_flax(state_dict_numpy(hf), cfg), cfg)


@pytest.fixture(scope="module")
def tiny():
    """The smallest model that runs every stage: for compile counts and cheap error paths."""
    hf = hf_model(1, **small_config(
        vocab_size=12, hidden_size=4, num_hidden_layers=1, ffn_dim=4, flow_size=2, spectrogram_bins=3,
        upsample_initial_channel=4, upsample_rates=[2], upsample_kernel_sizes=[4],
        resblock_kernel_sizes=[3], resblock_dilation_sizes=[[1]], prior_encoder_num_flows=1,
        prior_encoder_num_wavenet_layers=1, posterior_encoder_num_wavenet_layers=1,
        use_stochastic_duration_prediction=False))
    cfg = VitsConfig.from_dict(hf.config.to_dict())
    return VitsParams(to_flax(state_dict_numpy(hf), cfg), cfg)


def hf_forward(hf, ids, speaker_id, rate, mask=None):
    """transformers' forward; also returns its durations (B, T), recomputed from the duration
    predictor's output exactly as its forward does."""
    captured = []
    handle = hf.duration_predictor.register_forward_hook(lambda m, i, o: captured.append(o))
    try:
        with torch.no_grad():
            out = hf(torch.as_tensor(ids), attention_mask=None if mask is None else torch.as_tensor(mask),
                     speaker_id=speaker_id, speaking_rate=rate)
    finally:
        handle.remove()
    pmask = torch.ones(ids.shape) if mask is None else torch.as_tensor(mask, dtype=torch.float32)
    durations = torch.ceil(torch.exp(captured[0][:, 0]) * pmask * (1.0 / rate))
    return out, durations.numpy().astype(np.int32)


def realistic_rate(hf, ids, speaker_id, monkeypatch, seed):
    """Random-init durations are far from speech (0.1 to 100 frames per token); the speaking rate
    that brings them to ~6 frames per token, found with the same noise the measured run will use."""
    NoiseRecorder(monkeypatch, seed=seed)
    _, durations = hf_forward(hf, ids, speaker_id, 1.0)
    monkeypatch.undo()
    return float(durations.mean()) / FRAMES_PER_TOKEN


# Noise through the key path (scaled to 0) with a speaker; transformers' noise injected with no
# speaker, which on a multi-speaker model means no conditioning (as transformers).
@pytest.mark.parametrize("noise,speaker", [(False, 1), (True, None)], ids=["noise0", "noise-no-speaker"])
def test_parity_with_transformers(multi, noise, speaker, monkeypatch):
    hf, params = multi
    cfg = params.config
    ids = np.random.default_rng(1).integers(0, cfg.vocab_size, size=(1, 17))
    if noise:
        hf.noise_scale, hf.noise_scale_duration = cfg.noise_scale, cfg.noise_scale_duration
    else:
        hf.noise_scale = hf.noise_scale_duration = 0.0
    rate = realistic_rate(hf, ids, speaker, monkeypatch, seed=5)
    recorder = NoiseRecorder(monkeypatch, seed=5)
    ref, ref_durations = hf_forward(hf, ids, speaker, rate)
    monkeypatch.undo()
    kwargs = dict(noise_scale=hf.noise_scale, noise_scale_duration=hf.noise_scale_duration)
    if noise:  # transformers' draws, (B, C, T) -> (B, T, C)
        kwargs["sdp_noise"] = recorder.draws[0].transpose(0, 2, 1)
        kwargs["prior_noise"] = recorder.draws[-1].transpose(0, 2, 1)
    out = synthesize(params, ids, speaker_id=speaker, speaking_rate=rate, **kwargs)
    assert isinstance(out, SynthesisOutput)
    np.testing.assert_array_equal(out.durations, ref_durations)
    np.testing.assert_array_equal(out.lengths, ref.sequence_lengths.numpy())
    assert not out.truncated.any()
    assert out.durations.sum() > 2 * ids.shape[1], "durations unrealistically short: test is too weak"
    assert np.abs(ref.waveform.numpy()).mean() < 0.9, "saturated waveform: test is too weak"
    assert_waveform_close(out.waveform, ref.waveform.numpy(), what=f"noise={noise} speaker={speaker}")


@pytest.fixture(scope="module")
def batch(multi):
    """A padded batch of three items, one speaker each, with per-item keys; its rate is that
    which gives ~6 frames per token without noise."""
    hf, params = multi
    rng = np.random.default_rng(2)
    lens = [20, 9, 13]               # token bucket 24 for the batch, 24 / 16 / 16 alone
    ids = np.zeros((3, max(lens)), np.int64)
    mask = np.zeros_like(ids)
    for i, n in enumerate(lens):
        ids[i, :n] = rng.integers(0, params.config.vocab_size, size=n)
        mask[i, :n] = 1
    hf.noise_scale = hf.noise_scale_duration = 0.0
    _, durations = hf_forward(hf, ids, None, 1.0, mask=mask)
    rate = float(durations.sum() / mask.sum()) / FRAMES_PER_TOKEN
    keys = jax.random.split(jax.random.key(42), 3)
    speakers = np.array([0, 2, 1])
    out = synthesize(params, ids, mask, key=keys, speaker_id=speakers, speaking_rate=rate)
    max_frames = int(out.lengths.max()) // params.config.hop_length + 7   # not a bucket size
    return dict(ids=ids, mask=mask, lens=lens, speakers=speakers, rate=rate, keys=keys, out=out,
                max_frames=max_frames)


def test_batch_equals_single(multi, batch):
    _, params = multi
    hop = params.config.hop_length
    out = batch["out"]
    frames = out.lengths // hop
    assert out.durations.sum() > 2 * sum(batch["lens"]), "durations unrealistically short"
    worst, buckets = 0.0, set()
    for i, n in enumerate(batch["lens"]):
        one = synthesize(params, batch["ids"][i:i + 1, :n], key=batch["keys"][i:i + 1],
                         speaker_id=batch["speakers"][i:i + 1], speaking_rate=batch["rate"])
        buckets.add((bucket(n, 16), frame_bucket(int(one.lengths[0]) // hop)))
        np.testing.assert_array_equal(one.durations[0], out.durations[i, :n])
        np.testing.assert_array_equal(out.durations[i, n:], 0)
        s = int(one.lengths[0])
        assert out.lengths[i] == s and one.waveform.shape == (1, s)
        worst = max(worst, assert_close(out.waveform[i, :s], one.waveform[0], tol=1e-5, what=f"item {i}"))
        assert np.all(out.waveform[i, s:] == 0)
    batch_buckets = (bucket(batch["ids"].shape[1], 16), frame_bucket(int(frames.max())))
    assert any(b != batch_buckets for b in buckets), "no item ran at other buckets: test is too weak"
    print(f"batch vs single: max abs error {worst:.2e}")


def test_max_frames_equals_buckets(multi, batch):
    _, params = multi
    kwargs = dict(key=batch["keys"], speaker_id=batch["speakers"], speaking_rate=batch["rate"])
    two = batch["out"]
    one = synthesize(params, batch["ids"], batch["mask"], max_frames=batch["max_frames"], **kwargs)
    np.testing.assert_array_equal(one.durations, two.durations)
    np.testing.assert_array_equal(one.lengths, two.lengths)
    assert not one.truncated.any() and one.waveform.shape == two.waveform.shape
    assert_close(one.waveform, two.waveform, tol=1e-6, what="max_frames vs buckets")


def test_traced_arguments_do_not_recompile(multi, batch):
    _, params = multi
    hop = params.config.hop_length
    args = (params, batch["ids"], batch["mask"])
    base = dict(key=batch["keys"], speaker_id=batch["speakers"], speaking_rate=batch["rate"],
                max_frames=batch["max_frames"])
    variants = [dict(), dict(speaking_rate=batch["rate"] * 1.3), dict(speaking_rate=[1.0, 2.0, 3.0]),
                dict(noise_scale=0.1), dict(noise_scale_duration=0.0), dict(speaker_id=2),
                dict(speaker_id=[1, 1, 0]), dict(key=jax.random.key(3)), dict(key=jax.random.PRNGKey(4))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                      # some variants may be truncated
        synthesize(*args, **base)
        before = compilation_counts()
        waves = [synthesize(*args, **{**base, **v}).waveform for v in variants]
    assert compilation_counts() == before, "the one-program path recompiled"
    assert all(not np.array_equal(waves[0], w) for w in waves[1:]), "a variant changed nothing"
    # two stages: stage 1 never recompiles; stage 2 compiles once per new frame bucket at most
    frame_buckets = set()
    for v in variants[3:]:
        out = synthesize(*args, **{**base, "max_frames": None, **v})
        frame_buckets.add(frame_bucket(int(out.lengths.max()) // hop))
    after = compilation_counts()
    assert after["encode"] == before["encode"], "stage 1 recompiled"
    assert after["render"] - before["render"] <= len(frame_buckets)


def test_few_programs_for_many_lengths(tiny):
    """200 sentences of 1 to 400 tokens through stage 1 (the program that sees the token length;
    predict_durations runs it alone): one program per token bucket, 11 buckets in all."""
    rng = np.random.default_rng(3)
    lengths = rng.integers(1, 401, size=200)
    before = compilation_counts()["encode"]
    for n in lengths:
        ids = rng.integers(0, tiny.config.vocab_size, size=n)
        durations = predict_durations(tiny, ids, speaking_rate=rng.uniform(0.5, 2.0),
                                      key=jax.random.key(int(n)))
        assert durations.shape == (1, n) and np.all(durations >= 1)
    compiled = compilation_counts()["encode"] - before
    buckets = {bucket(n, 16) for n in lengths}
    print(f"200 lengths: {len(buckets)} token buckets, {compiled} stage-1 programs compiled")
    assert len(buckets) == 11 and compiled <= len(buckets)


def test_predict_durations_is_stage_one(multi, batch):
    _, params = multi
    kwargs = dict(key=batch["keys"], speaker_id=batch["speakers"], speaking_rate=batch["rate"])
    before = compilation_counts()["encode"]
    durations = predict_durations(params, batch["ids"], batch["mask"], **kwargs)
    assert compilation_counts()["encode"] == before
    out = synthesize(params, batch["ids"], batch["mask"], **kwargs)
    np.testing.assert_array_equal(durations, out.durations)


def test_bucket_sizes():
    assert [bucket(n, 16) for n in (1, 16, 17, 24, 25, 33, 48, 49, 400)] == \
        [16, 16, 24, 24, 32, 48, 48, 64, 512]
    sizes = [bucket(n) for n in range(1, 5000)]
    assert all(n <= s <= 1.5 * n or s <= 4 for n, s in zip(range(1, 5000), sizes))


def test_truncation_flag_and_warning(tiny):
    ids = np.array([[1, 2, 3, 4, 5, 6, 7, 8], [1, 2, 0, 0, 0, 0, 0, 0]])
    mask = (np.arange(8)[None] < np.array([[8], [2]])).astype(np.int32)
    hop = tiny.config.hop_length
    durations = predict_durations(tiny, ids, mask, speaking_rate=0.5)
    frames = durations.sum(axis=1)
    assert frames[0] > frames[1] + 1
    limit = int(frames[1]) + 1                                  # cuts item 0 only
    with pytest.warns(UserWarning, match=r"items \[0\] need .* frames, more than the .* rendered"):
        out = synthesize(tiny, ids, mask, speaking_rate=0.5, max_frames=limit)
    np.testing.assert_array_equal(out.truncated, [True, False])
    np.testing.assert_array_equal(out.lengths, [limit * hop, frames[1] * hop])
    np.testing.assert_array_equal(out.durations, durations)   # as predicted, before the cut
    assert out.waveform.shape == (2, limit * hop) and np.all(out.waveform[1, frames[1] * hop:] == 0)


def test_inputs_and_outputs(tiny):
    a = synthesize(tiny, [3, 4, 5])                                      # a list, one item
    b = synthesize(tiny.tree, jnp.asarray([[3, 4, 5]]), config=tiny.config, key=jax.random.key(0))
    for out in (a, b):
        assert all(isinstance(x, np.ndarray) for x in dataclasses.astuple(out))
    assert a.waveform.dtype == np.float32 and a.waveform.shape == (1, int(a.lengths[0]))
    assert a.durations.shape == (1, 3) and a.truncated.dtype == bool
    np.testing.assert_array_equal(a.waveform, b.waveform)               # default key is key(0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.lengths = None


def test_masked_positions_are_ignored(tiny):
    """Masked ids may hold anything (even out of range): they never reach the model."""
    ids = np.array([[1, 2, 3, 4, 5, 6, 7, 8], [1, 2, 0, 0, 0, 0, 0, 0]])
    mask = (np.arange(8)[None] < np.array([[8], [2]])).astype(np.int32)
    garbage = np.where(mask == 1, ids, 99)
    np.testing.assert_array_equal(predict_durations(tiny, garbage, mask, speaking_rate=0.5),
                                  predict_durations(tiny, ids, mask, speaking_rate=0.5))


@pytest.mark.parametrize("kwargs,match", [
    (dict(ids=[[1, 12]]), r"ids must lie in \[0, vocab_size=12\)"),
    (dict(ids=[[-1, 2]]), r"ids must lie in \[0, vocab_size=12\)"),
    (dict(ids=[[1.5, 2]]), "ids must be integers"),
    (dict(ids=np.zeros((0, 4), int)), "empty input"),
    (dict(ids=np.zeros((2, 0), int)), "empty input"),
    (dict(ids=np.zeros((1, 2, 3), int)), r"ids must have shape \(batch, tokens\)"),
    (dict(ids=np.zeros((1, MAX_TOKENS + 1), int)), "input too long"),
    (dict(attention_mask=[[1, 1]]), "attention_mask shape .* does not match"),
    (dict(attention_mask=[[1, 1, 1], [0, 0, 0]]), r"attention_mask rows \[1\] are all zero"),
    (dict(attention_mask=[[1, 2, 1], [1, 1, 0]]), "only 0 and 1"),
    (dict(speaker_id=0), "speaker_id given to a single-speaker model"),
    (dict(speaking_rate=0.0), "speaking_rate must be > 0"),
    (dict(speaking_rate=-1.0), "speaking_rate must be > 0"),
    (dict(speaking_rate=float("nan")), "speaking_rate must be finite"),
    (dict(speaking_rate=float("inf")), "speaking_rate must be finite"),
    (dict(speaking_rate=1e-40), "speaking_rate too small"),
    (dict(speaking_rate="fast"), "speaking_rate must be a number"),
    (dict(speaking_rate=[1.0, 2.0, 3.0]), r"speaking_rate must be a number or one per batch item \(2,\)"),
    (dict(noise_scale=-0.1), "noise_scale must be >= 0"),
    (dict(noise_scale=float("nan")), "noise_scale must be finite"),
    (dict(noise_scale_duration=-1.0), "noise_scale_duration must be >= 0"),
    (dict(noise_scale_duration=float("inf")), "noise_scale_duration must be finite"),
    (dict(max_frames=0), "max_frames must be a positive int"),
    (dict(max_frames=10.5), "max_frames must be a positive int"),
    (dict(key=jax.random.split(jax.random.key(0), 3)), r"one per batch item \(2,\)"),
    (dict(key=np.zeros(3, np.float32)), "key must be a jax.random.key"),
    (dict(config=VitsConfig()), "config= disagrees"),
    (dict(sdp_noise=np.zeros((2, 3, 3))), r"sdp_noise must have shape \(2, length, 2\)"),
    (dict(sdp_noise=np.zeros((1, 3, 2))), r"sdp_noise must have shape \(2, length, 2\)"),
    (dict(sdp_noise=np.zeros((2, 2, 2))), "sdp_noise covers 2 tokens, the input has 3"),
    (dict(sdp_noise=np.full((2, 3, 2), np.nan)), "sdp_noise must be finite"),
    (dict(prior_noise=np.zeros((2, 40, 3))), r"prior_noise must have shape \(2, length, 2\)"),
    (dict(prior_noise=np.zeros((2, 1, 2))), "prior_noise covers 1 frames, .* are rendered"),
    (dict(mesh="batch"), "mesh must be a jax.sharding.Mesh or a NamedSharding"),
])
def test_validation_errors(tiny, kwargs, match):
    call = {"ids": [[1, 2, 3], [4, 5, 6]], **kwargs}
    with pytest.raises(ValueError, match=match):
        synthesize(tiny, call.pop("ids"), **call)


@pytest.mark.parametrize("speaker_id,match", [
    (3, r"speaker_id must lie in \[0, 3\)"), (-1, r"speaker_id must lie in \[0, 3\)"),
    ([0, 1, 2], r"one id per batch item \(2,\)"), (1.0, "speaker_id must be integers"),
])
def test_speaker_errors(multi, speaker_id, match):
    with pytest.raises(ValueError, match=match):
        synthesize(multi[1], [[1, 2], [3, 4]], speaker_id=speaker_id)


def test_plain_dict_needs_config(tiny):
    with pytest.raises(ValueError, match="plain param dicts need config="):
        synthesize(tiny.tree, [1, 2])


def test_frame_bucket_grid():
    sizes = [frame_bucket(n) for n in range(1, 5000)]
    assert frame_bucket(1) == 32 and frame_bucket(33) == 36 and frame_bucket(130) == 144
    assert all(b >= n for n, b in zip(range(1, 5000), sizes))
    assert max(b / n for n, b in zip(range(32, 5000), sizes[31:])) <= 1.125
    assert len(set(sizes)) <= 8 * 8   # eight per octave from 32 to 4096


def test_odd_kernel_minus_rate_batch_equals_single():
    """A decoder stage with odd (kernel - rate) renders extra samples past frames * hop (as
    transformers'); the batch path cuts them like the single path, and items equal themselves alone."""
    cfg = VitsConfig.from_dict(small_config(upsample_rates=[5, 4, 3], upsample_kernel_sizes=[10, 8, 6]))
    params = VitsParams(jax.device_put(init_params(cfg, jax.random.key(0))), cfg)
    ids = np.array([[1, 2, 3, 4, 5, 6], [1, 2, 3, 0, 0, 0]])
    mask = np.array([[1] * 6, [1, 1, 1, 0, 0, 0]])
    out = synthesize(params, ids, attention_mask=mask, key=jax.random.key(1))
    assert out.waveform.shape == (2, int(out.lengths.max()))
    for i in range(2):
        alone = synthesize(params, ids[i:i + 1, :int(mask[i].sum())],
                           key=jax.random.fold_in(jax.random.key(1), i)[None])
        assert int(alone.lengths[0]) == int(out.lengths[i])
        assert_close(out.waveform[i, :out.lengths[i]], alone.waveform[0], what=f"item {i}")


# ---------------------------------------------------------------------------------------------
# Long renders: exact windows in bounded memory, or refused before rendering

def test_long_items_render_in_exact_windows(tiny, monkeypatch):
    """Past RENDER_WINDOW_FRAMES (set small here) items render in windows: the same samples as one
    program, per item (the CPU batch path) and with max_frames (cut items, a huge max_frames)."""
    from vits_jax.core import windows

    ids = np.array([[1, 2, 3, 4, 5, 6, 7, 8], [1, 2, 3, 0, 0, 0, 0, 0]])
    mask = (ids > 0).astype(np.int32)
    rate = 0.01   # random-init durations are ~0.03 frames per token
    calls = dict(batch=dict(ids=ids, attention_mask=mask), cut=dict(ids=ids[:1], max_frames=200),
                 huge=dict(ids=ids[:1], max_frames=1_000_000), alone=dict(ids=ids[:1]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # the cut item's truncation warning
        want = {name: synthesize(tiny, **kw, speaking_rate=rate, key=jax.random.key(3))
                for name, kw in calls.items() if name != "huge"}
        assert want["alone"].lengths[0] > 2 * 64 * tiny.config.hop_length and want["cut"].truncated[0]
        monkeypatch.setattr(synthesis, "RENDER_WINDOW_FRAMES", 64)
        before = windows.compilation_count()
        got = {name: synthesize(tiny, **kw, speaking_rate=rate, key=jax.random.key(3))
               for name, kw in calls.items()}
    assert windows.compilation_count() > before                   # windows did render
    want["huge"] = want["alone"]                                   # any max_frames that holds it
    for name, out in got.items():
        np.testing.assert_array_equal(out.lengths, want[name].lengths)
        np.testing.assert_array_equal(out.truncated, want[name].truncated)
        assert out.waveform.shape == want[name].waveform.shape, name
        assert np.max(np.abs(out.waveform - want[name].waveform)) <= 1e-6, name


def test_too_large_output_is_refused_before_rendering(tiny, monkeypatch):
    monkeypatch.setattr(synthesis, "MAX_OUTPUT_BYTES", 10_000)
    before = compilation_counts()
    with pytest.raises(ValueError,
                       match=r"output too large: .* > MAX_OUTPUT_BYTES=10000 \(max_frames=1000000"):
        synthesize(tiny, np.array([1, 2, 3]), speaking_rate=1e-4, max_frames=1_000_000)
    with pytest.raises(ValueError, match=r"MAX_OUTPUT_BYTES=10000 \(the predicted durations ask for"):
        synthesize(tiny, np.array([1, 2, 3]), speaking_rate=1e-4)
    assert compilation_counts()["render"] == before["render"]    # refused before any rendering


def test_repeated_rows_are_rendered_once_with_the_same_samples(eng_single, monkeypatch):
    """speak fills its last batch up with repeats: a row equal to an earlier one is copied, not
    rendered, and every row still equals what it gives alone."""
    import vits_jax
    from vits_jax.tokenizer.base import pad_ids

    voice = vits_jax.Voice.load(eng_single)
    ids = [voice.tokenizer.encode(t) for t in ("Hello there.", "A longer sentence, spoken slowly.")]
    batch, mask = pad_ids([ids[0], ids[1], ids[1], ids[0]], voice.tokenizer.padding_id)
    keys = jax.random.split(jax.random.key(3), 2)[np.array([0, 1, 1, 0])]
    rendered = []
    real = synthesis.render_item
    monkeypatch.setattr(synthesis, "render_item", lambda *a, **k: rendered.append(1) or real(*a, **k))
    out = synthesize(voice.params, batch, attention_mask=mask, key=keys)
    assert len(rendered) == 2
    assert np.array_equal(out.waveform[0], out.waveform[3]) and np.array_equal(out.waveform[1], out.waveform[2])
    alone = synthesize(voice.params, ids[1], key=keys[1:2])
    diff = out.waveform[1, :alone.waveform.shape[1]] - alone.waveform[0]     # batch vs alone: round-off
    assert np.abs(alone.waveform).max() > 0.05
    assert np.abs(diff).max() <= 1e-5 * np.abs(alone.waveform).max()
    # the same ids under other keys are other rows
    synthesize(voice.params, batch[:2], attention_mask=mask[:2], key=jax.random.key(3))
    assert len(rendered) == 4


def test_on_item_reports_each_row_as_returned(multi, batch):
    """on_item gets every item once, cut to its length, equal to its row of the returned batch."""
    _, params = multi
    seen = {}
    out = synthesize(params, batch["ids"], batch["mask"], key=batch["keys"], speaker_id=batch["speakers"],
                     speaking_rate=batch["rate"], on_item=lambda i, one: seen.setdefault(i, []).append(one))
    assert sorted(seen) == [0, 1, 2] and all(len(v) == 1 for v in seen.values())
    assert np.abs(out.waveform).max() > 0.05
    for i, (one,) in seen.items():
        n = int(out.lengths[i])
        assert one.waveform.shape == (1, n) and int(one.lengths[0]) == n
        np.testing.assert_array_equal(one.waveform[0], out.waveform[i, :n])
        np.testing.assert_array_equal(one.durations[0], out.durations[i])
        assert bool(one.truncated[0]) == bool(out.truncated[i])
