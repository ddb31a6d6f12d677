"""Exact chunked rendering (vits_jax/streaming.py, vits_jax/windows.py): the receptive field
computed from the config is exactly the networks' (gradient support), chunks concatenate to
synthesize's waveform (ResBlock1 and 2, odd upsampling), a margin one frame short breaks that,
windowed rendering of a batch equals the one-program rendering, the number of programs does not
grow with the length, and bad arguments raise synthesize's errors.

Tolerance: chunks run the same float32 computation as the full rendering on shorter arrays, so
they agree to round-off, 1e-6 (the issue's bound); a margin one frame short errs by >1e-4.
"""

import types
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import small_config

import vits_jax
from vits_jax import VitsConfig, VitsModel, VitsParams, core, synthesize
from vits_jax.nn import hifigan
from vits_jax.synth import streaming
from vits_jax.core import windows
from vits_jax.nn.model import param_shapes
from vits_jax.synth.synthesis import encode_checked, predict_durations

FRAMES_PER_TOKEN = 6
TOL = 1e-6

# Dilated WaveNet, stride-3 upsampling with a kernel that is not 2x the rate, uneven resblocks.
WIDE = dict(wavenet_dilation_rate=2, wavenet_kernel_size=5, upsample_rates=[3, 2],
            upsample_kernel_sizes=[7, 4], resblock_kernel_sizes=[3, 7],
            resblock_dilation_sizes=[[1, 3, 5], [1, 2]])
# HiFi-GAN V2 residual blocks and odd (kernel - rate) stages (one sample more per stage).
ODD = dict(resblock="2", upsample_rates=[3, 2], upsample_kernel_sizes=[6, 5], resblock_kernel_sizes=[3, 5],
           resblock_dilation_sizes=[[1, 2], [2, 3]])
CONFIGS = {
    "sdp": small_config(),
    "deterministic-multispeaker": small_config(use_stochastic_duration_prediction=False,
                                               num_speakers=3, speaker_embedding_size=4),
    "wide": small_config(**WIDE),
    "odd-resblock2": small_config(**ODD),
}


def random_params(config: VitsConfig, seed: int) -> VitsParams:
    """Random weights scaled by 1/sqrt(fan-in) (numpy draws: no program compiled per leaf)."""
    rng = np.random.default_rng(seed)
    leaves, treedef = jax.tree.flatten(param_shapes(config))
    tree = [rng.standard_normal(s.shape).astype(np.float32) / np.sqrt(max(np.prod(s.shape[:-1]), 1))
            for s in leaves]
    return VitsParams(jax.device_put(jax.tree.unflatten(treedef, tree)), config)


OUTPUT_PEAK = 0.35     # as conftest.hf_model: inside tanh's linear range, so round-off shows


def audible(params: VitsParams) -> VitsParams:
    """Random weights drive the decoder's tanh into saturation (most samples near +-1), where the
    chunked-vs-whole comparison compares squashed values; scale conv_post so the waveform of a
    60-token utterance peaks near OUTPUT_PEAK. Two steps: a small scale puts tanh in its linear
    range, where the peak measured there sets the final scale."""
    ids = np.random.default_rng(0).integers(0, params.config.vocab_size, 60)

    def scaled(factor):
        tree = jax.tree.map(lambda x: x, params.tree)
        tree["decoder"] = dict(tree["decoder"], conv_post=dict(tree["decoder"]["conv_post"]))
        tree["decoder"]["conv_post"]["kernel"] = params.tree["decoder"]["conv_post"]["kernel"] * factor
        return VitsParams(tree, params.config)

    small = 0.01
    peak = float(np.max(np.abs(reference(scaled(small), ids, key=jax.random.key(0),
                                         speaking_rate=rate_for(params, ids)))))
    return scaled(small * OUTPUT_PEAK / max(peak, 1e-6))


@pytest.fixture(scope="module")
def voices():
    return {name: audible(random_params(VitsConfig(**cfg), i)) for i, (name, cfg) in enumerate(CONFIGS.items())}


def rate_for(params, ids, **kwargs):
    """Random-init durations are far from speech; the speaking rate giving ~6 frames per token."""
    rate = 1.0
    for _ in range(3):   # durations are rounded up: a few fixed-point steps
        durations = predict_durations(params, ids[None], speaking_rate=rate, **kwargs)
        rate *= float(durations.mean()) / FRAMES_PER_TOKEN
    return rate


def reference(params, ids, **kwargs):
    out = synthesize(params, ids[None], **kwargs)
    return out.waveform[0, :out.lengths[0]]


# ---------------------------------------------------------------------------------------------
# The receptive field

def support(fn, x, out_slice):
    """(first, last) input frame that fn(x)[out_slice] depends on (nonzero gradient)."""
    weights = jax.random.normal(jax.random.key(2), fn(x)[out_slice].shape)
    grads = jax.grad(lambda z: jnp.sum(fn(z)[out_slice] * weights))(x)
    frames = np.flatnonzero(np.any(np.asarray(grads)[0] != 0, axis=-1))
    return frames.min(), frames.max()


@pytest.mark.parametrize("name", ["wide", "odd-resblock2"])
def test_receptive_field_is_the_networks(voices, name):
    """Output frame a depends on exactly frames [a - left, a + right] (gradient support)."""
    params = voices[name]
    cfg, hop, f, a = params.config, params.config.hop_length, 80, 40
    field = windows.receptive_field(cfg)
    model = VitsModel(cfg)
    x = jax.random.normal(jax.random.key(1), (1, f, cfg.flow_size))
    mask = jnp.ones((1, f, 1))
    flow = lambda z: model.apply({"params": params.tree}, z,
                                 method=lambda m, z: m.flow(z, mask, None, reverse=True))
    lo, hi = support(flow, x, (0, a))
    assert (a - lo, hi - a) == (field.flow_left, field.flow_right)
    decode = lambda z: model.apply({"params": params.tree}, z, None, method=VitsModel.decode)
    lo, hi = support(decode, x, (0, slice(a * hop, (a + 1) * hop)))
    assert (a - lo, hi - a) == (field.decoder_left, field.decoder_right)


# ---------------------------------------------------------------------------------------------
# stream() == synthesize()

@pytest.mark.parametrize("name,tokens,chunk_frames", [
    ("sdp", 60, 1), ("sdp", 1, None), ("sdp", 400, None), ("deterministic-multispeaker", 50, None),
    ("wide", 45, 3), ("odd-resblock2", 40, 5)])
def test_stream_equals_synthesize(voices, name, tokens, chunk_frames):
    params = voices[name]
    ids = np.random.default_rng(tokens).integers(0, params.config.vocab_size, tokens)
    kwargs = dict(key=jax.random.key(tokens), noise_scale=0.8, noise_scale_duration=0.7,
                  speaker_id=2 if params.config.num_speakers > 1 else None)
    kwargs["speaking_rate"] = rate_for(params, ids, **{k: kwargs[k] for k in
                                                       ("key", "speaker_id", "noise_scale_duration")})
    want = reference(params, ids, **kwargs)
    chunks = list(streaming.stream(params, ids, chunk_frames=chunk_frames, **kwargs))
    assert all(c.dtype == np.float32 and c.ndim == 1 for c in chunks)
    got = np.concatenate(chunks)
    assert got.shape == want.shape
    # the bound means something only on an audible, unsaturated reference: at a peak >= 0.05 a
    # 0.1% gain error (>= 5e-5) is 50x TOL
    assert 0.05 <= np.max(np.abs(want)) <= 0.9, "the bound needs an audible, unsaturated reference"
    assert np.max(np.abs(got - want)) <= TOL
    hop = params.config.hop_length
    sizes = [size for _, size in streaming.chunk_schedule(len(want) // hop, chunk_frames, 16)]
    assert len(chunks) == len(sizes) and all(len(c) <= s * hop for c, s in zip(chunks, sizes))
    if chunk_frames is None and len(sizes) > 1:   # a small first chunk, then larger ones
        assert len(chunks[0]) == streaming.FIRST_CHUNK_FRAMES * hop < max(map(len, chunks))
    if tokens == 1:   # (T,) and (1, T) are the same utterance (once: the same programs)
        again = np.concatenate(list(streaming.stream(params, ids[None], chunk_frames=chunk_frames, **kwargs)))
        np.testing.assert_array_equal(again, got)


# ---------------------------------------------------------------------------------------------
# render_chunked: the bounded-memory stage 2 for synthesize

def stage_one(params, ids, mask, key, rate, **kwargs):
    """synthesize's checks and stage 1 -> render_chunked's arguments."""
    stage1 = encode_checked(params, ids, mask, key=key, speaking_rate=rate, **kwargs)
    return dict(params=stage1.params, encoded=stage1.encoded, key=stage1.key,
                speaker_id=stage1.speaker_id, noise_scale=stage1.noise_scale)


@pytest.fixture(scope="module")
def long_batch(voices):
    """Two items of the wide voice (90 and 300 tokens)."""
    params = voices["wide"]
    rng = np.random.default_rng(5)
    ids = rng.integers(0, params.config.vocab_size, (2, 300))
    mask = np.ones((2, 300))
    mask[0, 90:] = 0
    return params, ids, mask, rate_for(params, ids[1])


def test_render_chunked_equals_one_program(long_batch):
    """Both items, the longer one cut at max_frames, with the key's noise and with injected noise
    (synthesize's parity-test path): the same samples as synthesize(max_frames) in one program."""
    params, ids, mask, rate = long_batch
    frames = 1000
    rng = np.random.default_rng(2)
    sdp = rng.standard_normal((2, 300, 2))
    prior = rng.standard_normal((2, frames, params.config.flow_size))
    durations = []
    for noise in ({}, dict(sdp_noise=sdp, prior_noise=prior)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # the truncation warning: expected here
            want = synthesize(params, ids, mask, key=jax.random.key(9), speaking_rate=rate, max_frames=frames,
                              **noise)
        assert want.truncated.tolist() == [False, True]      # on both passes: one item whole, one cut
        durations.append(want.durations)
        stage2 = stage_one(params, ids, mask, jax.random.key(9), rate, **{k: v for k, v in noise.items()
                                                                         if k == "sdp_noise"})
        got = windows.render_chunked(**stage2, num_frames=frames, window_frames=96,
                                     prior_noise=noise.get("prior_noise"))
        assert got.shape == want.waveform.shape == (2, frames * params.config.hop_length)
        assert np.max(np.abs(got - want.waveform)) <= TOL
        assert np.all(got[0, want.lengths[0]:] == 0)
    assert not np.array_equal(*durations), "the injected noise changed nothing: that pass tests the key's again"


def test_one_frame_less_margin_is_not_exact(voices, monkeypatch):
    """Each of the four margins is needed to its last frame: one less and the chunks differ.

    In float64: at the receptive field's edge the dependence is weak (the extreme taps of every
    conv in a chain; a flow frame short changes float32 samples by less than their round-off), so
    float64 shows it: the computed margins agree to 1e-13, each margin one frame short errs >1e-12.
    """
    params = voices["wide"]
    ids = np.random.default_rng(5).integers(0, params.config.vocab_size, (1, 60))
    stage2 = stage_one(params, ids, None, jax.random.key(9), rate_for(params, ids[0]))
    frames, window = 200, 40
    field = windows.receptive_field(params.config)
    # The decoder casts its waveform to float32 (hifigan.py, `.astype(jnp.float32)`), which would
    # round the float64 differences away: for this test's float64 programs only, that name
    # resolves to float64 inside hifigan.
    float64_out = {name: getattr(jnp, name) for name in dir(jnp) if not name.startswith("__")}
    monkeypatch.setattr(hifigan, "jnp", types.SimpleNamespace(**{**float64_out, "float32": jnp.float64}))
    with jax.enable_x64(True):
        as64 = lambda x: jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), x)
        p = stage2["params"]
        stage2 = {**stage2, "params": VitsParams(as64(p.tree), p.config),
                  "noise_scale": as64(stage2["noise_scale"]),
                  "encoded": stage2["encoded"].replace(**{k: as64(getattr(stage2["encoded"], k))
                                                          for k in ("durations", "means", "log_variances")})}
        render = lambda margins, window: windows.render_chunked(
            **stage2, num_frames=frames, window_frames=window, margins=margins, dtype=jnp.float64)
        full = render(None, frames)
        assert full.dtype == np.float64 and np.max(np.abs(full)) > 0.1
        assert np.max(np.abs(render(None, window) - full)) <= 1e-13
        for part in field._fields:
            short = field._replace(**{part: getattr(field, part) - 1})
            assert np.max(np.abs(render(short, window) - full)) > 1e-12, part


# ---------------------------------------------------------------------------------------------
# Programs, arguments

def test_programs_do_not_grow_with_length(voices):
    """Window programs depend on the chunk sizes only: not on the text's length or token bucket."""
    params = voices["deterministic-multispeaker"]
    vocab = params.config.vocab_size
    rng = np.random.default_rng(0)
    run = lambda t, c: list(streaming.stream(params, rng.integers(0, vocab, t), speaking_rate=1.0,
                                             chunk_frames=c))
    run(30, 8)
    before = windows.compilation_count()
    for t in (20, 45, 130):   # 3 token buckets, 50 to 400 frames
        run(t, 8)
    assert windows.compilation_count() == before
    for t in (20, 130):
        run(t, None)
    assert windows.compilation_count() - before <= len(streaming._chunk_sizes()) + 1


@pytest.mark.parametrize("kwargs,match", [
    (dict(chunk_frames=0), "chunk_frames must be a positive int"),
    (dict(chunk_frames=2.5), "chunk_frames must be a positive int"),
    (dict(chunk_frames=True), "chunk_frames must be a positive int"),
    (dict(ids=np.ones((2, 5), int)), r"one utterance: ids must have shape \(T,\) or \(1, T\)"),
    (dict(ids=np.array([], int)), "empty input"),
    (dict(ids=np.array([1, 99])), "ids must lie in"),
    (dict(speaking_rate=0), "speaking_rate must be > 0"),
    (dict(noise_scale=-1), "noise_scale must be >= 0"),
    (dict(speaker_id=1), "speaker_id given to a single-speaker model"),
])
def test_bad_arguments_raise_at_the_call(voices, kwargs, match):
    kwargs = {"ids": np.array([1, 2, 3]), **kwargs}
    ids = kwargs.pop("ids")
    with pytest.raises(ValueError, match=match):
        streaming.stream(voices["sdp"], ids, **kwargs)   # no iteration needed


def test_positional_noise_of_a_window_is_the_utterances():
    """Windows draw the core's noise (core.positional_normal): a window's rows are the utterance's."""
    keys = jax.random.split(jax.random.key(4), 2)
    full = core.positional_normal(keys, core.PRIOR_STREAM, 0, 50, 3)
    np.testing.assert_array_equal(core.positional_normal(keys, core.PRIOR_STREAM, jnp.int32(17), 20, 3),
                                  full[:, 17:37])
    assert vits_jax.stream is streaming.stream


# ---------------------------------------------------------------------------------------------
# MMS-eng size

def test_mms_size_stream_equals_synthesize():
    """The MMS-eng architecture (random weights of a plausible scale) at one chunk size."""
    cfg = VitsConfig()
    params = random_params(cfg, 0)
    ids = np.random.default_rng(0).integers(0, cfg.vocab_size, 12)
    kwargs = dict(key=jax.random.key(1), speaking_rate=rate_for(params, ids))
    want = reference(params, ids, **kwargs)
    got = np.concatenate(list(streaming.stream(params, ids, chunk_frames=24, **kwargs)))
    assert got.shape == want.shape and np.max(np.abs(want)) > 1e-3
    assert np.max(np.abs(got - want)) <= TOL
