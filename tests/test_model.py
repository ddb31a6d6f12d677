"""End to end: transformers' VitsModel forward vs the Flax VitsModel, durations exactly,
waveforms within 2e-5 x the reference's peak (float32, highest precision; the waveform passes through
~40 conv layers and errs by ~1e-6 x peak; peaks 0.2-0.5, inside tanh's linear range: a 0.1% gain
error fails)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from conftest import NoiseRecorder, assert_waveform_close, hf_model, realistic_rate, small_config, state_dict_numpy

from convert import fold_weight_norm, to_flax
from vits_jax import VitsConfig, VitsModel
from vits_jax.nn.model import param_shapes

RATE = 1 / 20


def hf_run(hf, ids, mask=None, speaker_id=None, rate=RATE):
    with torch.no_grad():
        out = hf(torch.as_tensor(ids), attention_mask=None if mask is None else torch.as_tensor(mask),
                 speaker_id=speaker_id, speaking_rate=rate)
    return out


def flax_run(params, cfg, ids, mask=None, speaker_id=None, sdp_noise=None, prior_noise=None,
             noise_scale=0.0, noise_scale_duration=0.0, rate=RATE, num_frames=None):
    b, t = ids.shape
    pmask = np.ones((b, t, 1), np.float32) if mask is None else mask[..., None].astype(np.float32)
    sdp_noise = np.zeros((b, t, 2), np.float32) if sdp_noise is None else sdp_noise
    prior_noise = np.zeros((b, num_frames, cfg.flow_size), np.float32) if prior_noise is None else prior_noise
    speakers = None if speaker_id is None else jnp.full((b,), speaker_id)
    wav, lengths, durations, _ = _forward(params, jnp.asarray(ids), pmask, speakers, sdp_noise, prior_noise,
                                          noise_scale, noise_scale_duration, 1.0 / rate, cfg=cfg,
                                          num_frames=prior_noise.shape[1])
    return np.asarray(wav), np.asarray(lengths), np.asarray(durations)


@functools.partial(jax.jit, static_argnames=("cfg", "num_frames"))
def _forward(params, ids, pmask, speakers, sdp_noise, prior_noise, noise_scale, noise_scale_duration,
             length_scale, *, cfg, num_frames):
    """The Flax model, compiled once per config and shape: noise, scales and speakers are traced."""
    return VitsModel(cfg).apply({"params": params}, ids, pmask, speakers, sdp_noise=sdp_noise,
                                prior_noise=prior_noise, noise_scale=noise_scale,
                                noise_scale_duration=noise_scale_duration, length_scale=length_scale,
                                num_frames=num_frames)


def compare(hf, params, cfg, ids, noise, monkeypatch, speaker_id=None, what=""):
    """One unpadded item run through both models with the same noise (or none)."""
    sdp_noise = np.zeros((1, ids.shape[1], 2), np.float32)
    if noise:
        seed = int(ids.sum())
        if cfg.use_stochastic_duration_prediction:  # the recorder's first draw, made here first
            gen = torch.Generator().manual_seed(seed)
            sdp_noise = torch.randn(1, 2, ids.shape[1], generator=gen).numpy().transpose(0, 2, 1)
        rate = realistic_rate(params, cfg, ids, speaker_id, sdp_noise, cfg.noise_scale_duration)
        hf.noise_scale, hf.noise_scale_duration = cfg.noise_scale, cfg.noise_scale_duration
        recorder = NoiseRecorder(monkeypatch, seed=seed)
        ref = hf_run(hf, ids, speaker_id=speaker_id, rate=rate)
        monkeypatch.undo()
        if cfg.use_stochastic_duration_prediction:
            np.testing.assert_array_equal(recorder.draws[0].transpose(0, 2, 1), sdp_noise)
        kwargs = dict(sdp_noise=sdp_noise, prior_noise=recorder.draws[-1].transpose(0, 2, 1),
                      noise_scale=cfg.noise_scale, noise_scale_duration=cfg.noise_scale_duration, rate=rate)
    else:
        rate = realistic_rate(params, cfg, ids, speaker_id, sdp_noise, 0.0)
        hf.noise_scale = hf.noise_scale_duration = 0.0
        ref = hf_run(hf, ids, speaker_id=speaker_id, rate=rate)
        kwargs = dict(num_frames=int(ref.sequence_lengths[0]) // cfg.hop_length, rate=rate)
    wav, lengths, durations = flax_run(params, cfg, ids, speaker_id=speaker_id, **kwargs)
    np.testing.assert_array_equal(lengths * cfg.hop_length, ref.sequence_lengths.numpy(), err_msg=what)
    assert durations.sum() > 2 * ids.shape[1], "durations unrealistically short: test is too weak"
    assert np.abs(ref.waveform.numpy()).mean() < 0.9, "saturated waveform: test is too weak"
    assert_waveform_close(wav, ref.waveform.numpy(), what=what)
    print(f"{what}: noise={noise} frames={int(lengths[0])} max abs error {np.abs(wav - ref.waveform.numpy()).max():.2e}")
    return float(np.abs(wav - ref.waveform.numpy()).max())


def build(seed, **config):
    hf = hf_model(seed, **config)
    cfg = VitsConfig.from_dict(hf.config.to_dict())
    return hf, cfg, to_flax(state_dict_numpy(hf), cfg)


@pytest.mark.parametrize("noise", [False, True], ids=["noise0", "noise"])
def test_full_mms_size(noise, monkeypatch):
    hf, cfg, params = build(7)
    assert cfg == VitsConfig()  # the MMS-eng architecture
    n = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params))
    folded = fold_weight_norm(state_dict_numpy(hf))    # weight-norm pairs count as one weight
    assert n == sum(v.size for v in folded.values()) and 36_000_000 < n < 36_500_000
    ids = np.random.default_rng(0).integers(0, cfg.vocab_size, size=(1, 23))
    compare(hf, params, cfg, ids, noise, monkeypatch, what="MMS size")


@pytest.mark.parametrize("noise", [False, True], ids=["noise0", "noise"])
def test_small_deterministic_duration(noise, monkeypatch):
    hf, cfg, params = build(8, **small_config(use_stochastic_duration_prediction=False))
    # transformers initializes the predictor's output near zero; lift it to ~e^1 frames per token.
    ids = np.random.default_rng(1).integers(0, cfg.vocab_size, size=(1, 17))
    compare(hf, params, cfg, ids, noise, monkeypatch, what="deterministic predictor")


@pytest.mark.parametrize("noise", [False, True], ids=["noise0", "noise"])
def test_multi_speaker_every_id(noise, monkeypatch):
    hf, cfg, params = build(9, **small_config(num_speakers=4, speaker_embedding_size=5))
    ids = np.random.default_rng(2).integers(0, cfg.vocab_size, size=(1, 14))
    for speaker in range(cfg.num_speakers):
        compare(hf, params, cfg, ids, noise, monkeypatch, speaker_id=speaker, what=f"speaker {speaker}")
    # speakers must matter, or the test above proves little
    a = flax_run(params, cfg, ids, speaker_id=0, num_frames=64)[0]
    b = flax_run(params, cfg, ids, speaker_id=1, num_frames=64)[0]
    assert np.abs(a - b).max() > 0.01 * np.abs(a).max()


def test_padded_batch_equals_items_alone():
    hf, cfg, params = build(10, **small_config(num_speakers=2, speaker_embedding_size=3))
    hf.noise_scale = hf.noise_scale_duration = 0.0
    rng = np.random.default_rng(3)
    lens = [19, 7, 12]
    ids = np.zeros((3, 19), np.int64)
    mask = np.zeros((3, 19), np.int64)
    for i, n in enumerate(lens):
        ids[i, :n] = rng.integers(0, cfg.vocab_size, size=n)
        mask[i, :n] = 1
    refs = [hf_run(hf, ids[i:i + 1, :n], speaker_id=1) for i, n in enumerate(lens)]
    frames = max(int(r.sequence_lengths[0]) for r in refs) // cfg.hop_length + 5   # extra padding too
    wav, lengths, durations = flax_run(params, cfg, ids, mask, speaker_id=1, num_frames=frames)
    batched_hf = hf_run(hf, ids, mask, speaker_id=1)
    leak = 0.0
    for i, (n, ref) in enumerate(zip(lens, refs)):
        s = int(ref.sequence_lengths[0])
        assert lengths[i] * cfg.hop_length == s
        np.testing.assert_array_equal(durations[i, n:], 0)
        assert_waveform_close(wav[i, :s], ref.waveform[0].numpy(), what=f"item {i}")
        assert np.all(wav[i, s:] == 0)
        leak = max(leak, float(np.abs(batched_hf.waveform[i, :s].numpy() - ref.waveform[0].numpy()).max()))
    # transformers' own padded batch differs from its per-item runs (padding leaks into the decoder).
    assert leak > 1e-4


def test_eval_shape_full_config():
    shapes = param_shapes(VitsConfig())
    n = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(shapes))
    assert 36_000_000 < n < 36_500_000
    out = jax.eval_shape(lambda p: VitsModel(VitsConfig()).apply(
        {"params": p}, jnp.zeros((2, 50), jnp.int32), jnp.ones((2, 50, 1)), None,
        sdp_noise=jnp.zeros((2, 50, 2)), prior_noise=jnp.zeros((2, 300, 192)), noise_scale=0.667,
        noise_scale_duration=0.8, length_scale=1.0, num_frames=300), shapes)
    assert out[0].shape == (2, 300 * 256) and out[1].shape == (2,) and out[2].shape == (2, 50)
