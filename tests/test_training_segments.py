"""Random segments: ranges, alignment of latents and audio, jit."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vits_jax.training.segments import random_segments, random_starts, slice_audio, slice_segments


def test_starts_cover_the_valid_range_only():
    lengths = jnp.array([10, 4, 3, 2])
    starts = jax.vmap(lambda k: random_starts(k, lengths, 4))(jax.random.split(jax.random.key(0), 2000))
    starts = np.asarray(starts)
    assert starts.dtype == np.int32
    # lengths - L + 1 choices: [0..6] for 10, {0} for 4, and 0 for items shorter than L.
    assert set(np.unique(starts[:, 0])) == set(range(7))
    assert np.all(starts[:, 1:] == 0)


def test_slices_match_numpy_and_audio_lines_up():
    hop, seg = 4, 3
    x = np.arange(2 * 8 * 2, dtype=np.float32).reshape(2, 8, 2)
    audio = np.repeat(x[..., 0], hop, axis=1)                        # sample n belongs to frame n // hop
    lengths = jnp.array([8, 5])

    @jax.jit
    def run(key):
        segments, starts = random_segments(key, x, lengths, seg)
        return segments, starts, slice_audio(audio, starts, seg, hop)

    for i in range(5):
        segments, starts, wav = map(np.asarray, run(jax.random.key(i)))
        for b in range(2):
            s = starts[b]
            assert 0 <= s <= int(lengths[b]) - seg
            np.testing.assert_array_equal(segments[b], x[b, s:s + seg])
            np.testing.assert_array_equal(wav[b], np.repeat(segments[b, :, 0], hop))


def test_segment_longer_than_input_raises():
    with pytest.raises(ValueError, match="longer"):
        slice_segments(jnp.zeros((1, 3, 1)), jnp.zeros((1,), jnp.int32), 4)
