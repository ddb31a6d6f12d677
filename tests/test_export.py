"""Portable programs: `jax.export` of the core (generate, encode + render, the streaming window),
called with params exactly as `vits_jax.load` returns them, lowers for cpu, cuda and tpu on this
CPU machine, serializes, and a deserialized program run here equals the jitted one bit for bit.
Lowering for an accelerator needs no device, so this runs in CI."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import hf_model, small_config, state_dict_numpy

import vits_jax
from vits_jax import VitsConfig
from vits_jax.core import windows
from vits_jax.voice import TRANSFORMERS, map_weights
from vits_jax.nn.model import param_shapes

PLATFORMS = ("cpu", "cuda", "tpu")


@pytest.fixture(scope="module")
def params():
    """A converted multi-speaker model, as the loader hands it out (VitsParams on the device)."""
    kwargs = small_config(num_speakers=2, speaker_embedding_size=4)
    model = hf_model(11, **kwargs)
    config = VitsConfig(**kwargs)
    tree = map_weights(state_dict_numpy(model), TRANSFORMERS, param_shapes(config)).tree
    return vits_jax.VitsParams(jax.device_put(tree), config)


def _roundtrip(fn, *args):
    """export for every platform -> bytes -> a program; returns (deserialized, jitted)."""
    exported = jax.export.export(jax.jit(fn), platforms=PLATFORMS)(*args)
    assert exported.platforms == PLATFORMS
    blob = exported.serialize()
    assert isinstance(blob, (bytes, bytearray)) and len(blob) > 1000
    return jax.export.deserialize(blob), jax.jit(fn)


def _ids():
    ids = np.array([[3, 5, 7, 9, 2, 4, 6, 8, 1, 3, 0, 0], [2, 2, 4, 6, 8, 1, 3, 5, 7, 9, 11, 13]], np.int32)
    mask = (np.arange(12)[None] < np.array([[10], [12]])).astype(np.int32)
    return ids, mask


def test_generate_exports_for_every_platform(params):
    ids, mask = _ids()
    fn = lambda p, i, m, k, rate, spk: vits_jax.generate(p, i, m, k, num_frames=96, speaking_rate=rate,
                                                          speaker_id=spk)
    key, rate, speakers = jax.random.key(4), np.float32(1.3), np.array([1, 0], np.int32)
    program, jitted = _roundtrip(fn, params, ids, mask, key, rate, speakers)
    out = program.call(params, ids, mask, key, rate, speakers)
    ref = jitted(params, ids, mask, key, rate, speakers)
    assert isinstance(out, vits_jax.GenerateOutput)
    for name in ("waveform", "lengths", "durations", "truncated"):
        np.testing.assert_array_equal(np.asarray(getattr(out, name)), np.asarray(getattr(ref, name)))
    assert float(np.max(np.abs(np.asarray(out.waveform)))) > 0
    # traced options stay arguments of the one program: another rate, no re-export
    slow = program.call(params, ids, mask, key, np.float32(0.7), speakers)
    assert int(np.asarray(slow.durations).sum()) > int(np.asarray(out.durations).sum())


def test_encode_and_render_export_separately(params):
    ids, mask = _ids()
    key = jax.random.key(1)
    encode, encode_jit = _roundtrip(lambda p, i, m, k: vits_jax.encode(p, i, m, k), params, ids, mask, key)
    encoded = encode.call(params, ids, mask, key)
    assert isinstance(encoded, vits_jax.Encoded)
    ref = encode_jit(params, ids, mask, key)
    np.testing.assert_array_equal(np.asarray(encoded.durations), np.asarray(ref.durations))
    render, render_jit = _roundtrip(lambda p, e, k: vits_jax.render(p, e, k, num_frames=64), params, encoded, key)
    np.testing.assert_array_equal(np.asarray(render.call(params, encoded, key)),
                                  np.asarray(render_jit(params, encoded, key)))


def test_streaming_window_exports(params):
    ids, mask = _ids()
    key = jax.random.key(2)
    encoded = vits_jax.encode(params, ids, mask, key)
    margins = windows.receptive_field(params.config)
    fn = functools.partial(windows.render_window, num_frames=16, margins=margins, dtype=jnp.float32)
    window, jitted = _roundtrip(lambda p, e, k, s: fn(p, e, k, start_frame=s), params, encoded, key, np.int32(8))
    for start in (0, 8, 24):        # the start frame is traced: one program for every window
        np.testing.assert_array_equal(np.asarray(window.call(params, encoded, key, np.int32(start))),
                                      np.asarray(jitted(params, encoded, key, np.int32(start))))
