"""The generator's training pass: alignment validity, prior expansion, where gradients flow."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import small_config

from vits_jax import VitsConfig, VitsModel, init_params
from vits_jax.nn import alignment as alignment_lib
from vits_jax.training.generator import generator_forward
from vits_jax.training.mas import gaussian_log_likelihood, maximum_path

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

    # The alignment is the maximum path of the flowed posterior under the token priors, and the
    # priors expanded through it equal the duration-based expansion used at inference.
    _, m_tok, logs_tok = VitsModel(cfg).apply({"params": params}, ids, tm, method=VitsModel.encode_text)
    ll = gaussian_log_likelihood(out.z_p, m_tok, logs_tok)
    np.testing.assert_array_equal(np.asarray(maximum_path(ll, tm, fm)), a)
    expanded = alignment_lib.expand(m_tok, aux.durations, F)
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
