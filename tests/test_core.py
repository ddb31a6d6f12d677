"""The pure core (vits_jax.generate / encode / render): under jit, vmap and a user's own jitted
function, each equal to synthesize for the same key, and no recompilation for traced options.
(Sharded inputs are tested in test_sharding.py, which needs several emulated devices.)

Tolerances: synthesize pads the tokens to a bucket, so it runs the same computation on a
differently padded array: equal durations, waveforms to float32 round-off (1e-5 as batch vs
single in test_synthesis.py).
"""

import functools
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import assert_close, hf_model, small_config, state_dict_numpy

from convert import to_flax
from vits_jax import Encoded, GenerateOutput, VitsConfig, VitsParams, encode, generate, render, synthesize
from vits_jax.core.stages import PRIOR_STREAM, positional_normal
from vits_jax.synth.synthesis import predict_durations

FRAMES = 160
RATE = None          # set by the fixture: the rate giving ~6 frames per token (random init: ~0.1)


@pytest.fixture(scope="module")
def setup():
    global RATE
    hf = hf_model(0, **small_config(num_speakers=3, speaker_embedding_size=4))
    cfg = VitsConfig.from_dict(hf.config.to_dict())
    params = jax.device_put(VitsParams(to_flax(state_dict_numpy(hf), cfg), cfg))
    rng = np.random.default_rng(0)
    lens = [13, 7]
    ids = np.zeros((2, 13), np.int32)
    mask = np.zeros((2, 13), np.int32)
    for i, n in enumerate(lens):
        ids[i, :n] = rng.integers(0, cfg.vocab_size, n)
        mask[i, :n] = 1
    durations = predict_durations(params, ids, mask, speaking_rate=1.0, noise_scale_duration=0.0)
    RATE = float(durations.sum() / mask.sum()) / 6
    return params, ids, mask


def reference(params, ids, mask, key, **kwargs):
    """synthesize's host output at FRAMES frames; an item it cuts there is compared through
    `truncated` (check_equal), so its warning is not this test's concern."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "items .* need .* frames", UserWarning)
        return synthesize(params, ids, mask, key=key, speaking_rate=RATE, max_frames=FRAMES, **kwargs)


def check_equal(out: GenerateOutput, ref, what: str):
    """A GenerateOutput (device, padded to FRAMES) against synthesize's host output."""
    np.testing.assert_array_equal(np.asarray(out.durations), ref.durations)
    np.testing.assert_array_equal(np.asarray(out.lengths), ref.lengths)
    np.testing.assert_array_equal(np.asarray(out.truncated), ref.truncated)
    assert out.waveform.shape == (len(ref.lengths), FRAMES * 8)       # hop 8 in SMALL
    wave = np.asarray(out.waveform)
    assert_close(wave[:, :ref.waveform.shape[1]], ref.waveform, tol=1e-5, what=what)
    assert np.all(wave[:, ref.waveform.shape[1]:] == 0)


def test_jit_equals_synthesize_and_traced_options_do_not_recompile(setup):
    params, ids, mask = setup
    fn = jax.jit(functools.partial(generate, num_frames=FRAMES))
    per_item = lambda *v: jnp.asarray(v, jnp.float32)
    key = jax.random.key(7)
    out = fn(params, ids, mask, key, speaker_id=jnp.array([0, 2]), speaking_rate=per_item(RATE, RATE),
             noise_scale=per_item(0.667, 0.667), noise_scale_duration=per_item(0.8, 0.8))
    assert isinstance(out, GenerateOutput) and len(jax.tree.leaves(out)) == 4
    ref = reference(params, ids, mask, key, speaker_id=[0, 2])
    assert not ref.truncated.any() and ref.durations.sum() > 3 * mask.sum(), "durations too short"
    check_equal(out, ref, "jit(generate)")
    variants = [dict(key=jax.random.key(1)), dict(speaker_id=jnp.array([1, 1])),
                dict(speaking_rate=per_item(RATE * 1.5, RATE)), dict(noise_scale=per_item(0.1, 0.0)),
                dict(noise_scale_duration=per_item(0.3, 0.0))]
    waves = [out.waveform]
    for v in variants:
        args = dict(key=key, speaker_id=jnp.array([0, 2]), speaking_rate=per_item(RATE, RATE),
                    noise_scale=per_item(0.667, 0.667), noise_scale_duration=per_item(0.8, 0.8))
        args = {**args, **v}
        waves.append(fn(params, ids, mask, args.pop("key"), **args).waveform)
    assert fn._cache_size() == 1, "changing keys, rates, noise scales or speakers recompiled"
    assert all(not np.array_equal(waves[0], w) for w in waves[1:]), "a variant changed nothing"


def test_vmap_over_keys(setup):
    params, ids, mask = setup
    keys = jax.random.split(jax.random.key(3), 3)
    outs = jax.jit(jax.vmap(lambda k: generate(params, ids, mask, k, num_frames=FRAMES, speaker_id=1,
                                               speaking_rate=RATE)))(keys)
    assert outs.waveform.shape == (3, 2, FRAMES * 8)
    for i in (0, 2):
        check_equal(jax.tree.map(lambda x: x[i], outs), reference(params, ids, mask, keys[i], speaker_id=1),
                    f"vmap key {i}")


def test_inside_a_users_jitted_function(setup):
    """The stages composed in a user's own program: encode, render and a loss-like reduction."""
    params, ids, mask = setup

    @jax.jit
    def user(params, ids, mask, key, rate):
        encoded = encode(params, ids, mask, key, speaker_id=2, speaking_rate=rate)
        assert isinstance(encoded, Encoded)
        waveform = render(params, encoded, key, num_frames=FRAMES, speaker_id=2)
        return waveform, encoded.lengths, jnp.sum(waveform ** 2)

    key = jax.random.key(11)
    waveform, lengths, energy = user(params, ids, mask, key, RATE)
    ref = reference(params, ids, mask, key, speaker_id=2)
    np.testing.assert_array_equal(np.asarray(lengths) * 8, ref.lengths)
    assert_close(np.asarray(waveform)[:, :ref.waveform.shape[1]], ref.waveform, tol=1e-5, what="user jit")
    assert_close(energy, np.sum(ref.waveform.astype(np.float64) ** 2), tol=1e-4, what="energy")


def test_positional_noise_windows():
    """Any window of positions draws exactly the rows the whole utterance would."""
    keys = jax.random.split(jax.random.key(0), 2)
    whole = positional_normal(keys, PRIOR_STREAM, 0, 40, 3)
    window = jax.jit(positional_normal, static_argnums=(1, 3, 4))(keys, PRIOR_STREAM, jnp.int32(17), 9, 3)
    np.testing.assert_array_equal(window, whole[:, 17:26])
    assert not np.array_equal(whole[0], whole[1])
