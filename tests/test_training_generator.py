"""The generator's training pass: alignment validity (against the original's alignment search),
prior expansion, where gradients flow. test_training_reference compares the whole pass, its losses
and gradients with the original training code."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from conftest import small_config
from test_training_reference import maximum_path_each

from vits_jax import VitsConfig, VitsModel, init_params
from vits_jax.nn import alignment as alignment_lib
from vits_jax.training.generator import generator_forward

# Compile at low XLA optimisation: these programs run a handful of times, and on CPU compiling
# them at the default level takes most of this file's time.
FAST = dict(compiler_options={"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True})

B, T, F, SEG = 2, 5, 24, 8
TEXT_LENGTHS, FRAME_LENGTHS = np.array([5, 3]), np.array([24, 13])


def inputs(cfg, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, cfg.vocab_size, size=(B, T)).astype(np.int32)
    tm = (np.arange(T)[None] < TEXT_LENGTHS[:, None])[..., None].astype(np.float32)
    fm = (np.arange(F)[None] < FRAME_LENGTHS[:, None])[..., None].astype(np.float32)
    spec = np.abs(rng.normal(size=(B, F, cfg.spectrogram_bins))).astype(np.float32) * fm
    return ids * tm[..., 0].astype(np.int32), tm, spec, fm


def init(cfg, seed):
    return jax.jit(init_params, static_argnums=0, **FAST)(cfg, jax.random.key(seed))


@pytest.fixture(scope="module")
def setup():
    """One compiled program: the pass's outputs and the Jacobian of three scalar terms, so the
    tests below share a single compilation."""
    cfg = VitsConfig(**small_config())
    params = init(cfg, 0)
    ids, tm, spec, fm = inputs(cfg)

    def forward(p, key):
        return generator_forward(p, cfg, ids, tm, spec, fm, key=key, segment_frames=SEG, deterministic=True)

    def terms(p, key):
        out, _ = forward(p, key)
        return jnp.stack([out.duration_loss, jnp.sum(out.z_p ** 2 - out.m_p * out.z_p - out.logs_p),
                          jnp.sum(out.waveform)])

    run = jax.jit(lambda p, key: (forward(p, key), jax.jacrev(terms)(p, key)), **FAST)
    return cfg, params, (ids, tm, spec, fm), run


def test_outputs_and_alignment(setup):
    cfg, params, (ids, tm, spec, fm), run = setup
    (out, aux), _ = run(params, jax.random.key(1))
    assert out.waveform.shape == (B, SEG * cfg.hop_length)
    for x in (out.z_p, out.logs_q, out.m_p, out.logs_p):
        assert x.shape == (B, F, cfg.flow_size)
    assert out.duration_loss.shape == () and np.isfinite(out.duration_loss)
    a = np.asarray(aux.alignment)
    np.testing.assert_array_equal(a.sum(1), fm[..., 0])                     # one token per valid frame
    np.testing.assert_array_equal(np.asarray(aux.durations).sum(1), FRAME_LENGTHS)
    assert np.all(np.asarray(aux.durations)[tm[..., 0] > 0] >= 1)
    assert np.all((0 <= aux.starts) & (aux.starts <= np.maximum(FRAME_LENGTHS - SEG, 0)))

    # The alignment is the original's: its negative cross-entropy of the flowed posterior under the
    # token priors (SynthesizerTrn.forward, torch, channels-first) through the original
    # maximum_path (core.pyx, ported in test_training_reference). The priors expanded through it
    # equal the duration-based expansion used at inference.
    encode = jax.jit(lambda p: VitsModel(cfg).apply({"params": p}, ids, tm, method=VitsModel.encode_text), **FAST)
    _, m_tok, logs_tok = encode(params)
    z_p, m_p, logs_p = (torch.from_numpy(np.array(x).transpose(0, 2, 1)) for x in (out.z_p, m_tok, logs_tok))
    s_p_sq_r = torch.exp(-2 * logs_p)                                          # (B, Z, T)
    neg_cent = (torch.sum(-0.5 * math.log(2 * math.pi) - logs_p, [1], keepdim=True)
                + torch.matmul(-0.5 * (z_p ** 2).transpose(1, 2), s_p_sq_r)
                + torch.matmul(z_p.transpose(1, 2), m_p * s_p_sq_r)
                + torch.sum(-0.5 * (m_p ** 2) * s_p_sq_r, [1], keepdim=True))  # (B, F, T)
    reference = [maximum_path_each(neg_cent[i].numpy().copy(), FRAME_LENGTHS[i], TEXT_LENGTHS[i]).T
                 for i in range(B)]
    np.testing.assert_array_equal(a, np.stack(reference))
    expanded = jax.jit(alignment_lib.expand, static_argnums=2, **FAST)(m_tok, aux.durations, F)
    np.testing.assert_allclose(np.asarray(out.m_p), np.asarray(expanded), atol=1e-6)

    # The key drives the noise and the segments; the same key reproduces the pass.
    (again, _), _ = run(params, jax.random.key(1))
    np.testing.assert_array_equal(np.asarray(again.waveform), np.asarray(out.waveform))
    starts = {tuple(np.asarray(run(params, jax.random.key(k))[0][1].starts)) for k in range(2, 8)}
    assert len(starts) > 1


def test_gradients_flow_as_in_vits(setup):
    cfg, params, _, run = setup
    _, grads = run(params, jax.random.key(3))                    # leaves (3, ...): one row per term
    norm = lambda tree, row: float(sum(jnp.sum(jnp.abs(g[row])) for g in jax.tree.leaves(tree)))
    dur, prior, wav = 0, 1, 2
    # Duration loss: trains the duration predictor only (its input is detached, as in VITS).
    assert norm(grads["duration_predictor"], dur) > 0
    for name in ("text_encoder", "posterior_encoder", "flow", "decoder"):
        assert norm(grads[name], dur) == 0, name
    # KL-like term: text encoder (priors), flow and posterior; not the decoder or duration predictor.
    for name in ("text_encoder", "flow", "posterior_encoder"):
        assert norm(grads[name], prior) > 0, name
    assert norm(grads["decoder"], prior) == 0 and norm(grads["duration_predictor"], prior) == 0
    # Waveform: decoder and posterior encoder; the text encoder only reaches it through the KL.
    assert norm(grads["decoder"], wav) > 0 and norm(grads["posterior_encoder"], wav) > 0
    assert norm(grads["text_encoder"], wav) == 0 and norm(grads["flow"], wav) == 0


def test_deterministic_predictor_and_speakers():
    cfg = VitsConfig(**small_config(use_stochastic_duration_prediction=False, num_speakers=3,
                                    speaker_embedding_size=4))
    params = init(cfg, 2)
    ids, tm, spec, fm = inputs(cfg, seed=2)
    run = jax.jit(lambda p, s: generator_forward(p, cfg, ids, tm, spec, fm, s, key=jax.random.key(0),
                                                 segment_frames=SEG, deterministic=True), **FAST)
    out, aux = run(params, jnp.array([0, 2]))
    other, _ = run(params, jnp.array([1, 2]))
    assert np.isfinite(out.duration_loss) and out.duration_loss > 0
    # Speaker 0 -> 1 changes item 0 only.
    assert not np.allclose(out.waveform[0], other.waveform[0])
    np.testing.assert_array_equal(np.asarray(out.waveform[1]), np.asarray(other.waveform[1]))
