"""Monotonic alignment search against a direct numpy port of VITS' Cython maximum_path."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import assert_close

from vits_jax.training.mas import gaussian_log_likelihood, maximum_path


def reference_path_each(value, t_y, t_x, max_neg_val=np.float32(-1e9)):
    """VITS monotonic_align/core.pyx maximum_path_each, line for line. value (t_y frames, t_x tokens)."""
    value = value.astype(np.float32).copy()
    path = np.zeros(value.shape, np.int32)
    index = t_x - 1
    for y in range(t_y):
        for x in range(max(0, t_x + y - t_y), min(t_x, y + 1)):
            v_cur = max_neg_val if x == y else value[y - 1, x]
            if x == 0:
                v_prev = np.float32(0.0) if y == 0 else max_neg_val
            else:
                v_prev = value[y - 1, x - 1]
            value[y, x] = np.float32(value[y, x] + max(v_prev, v_cur))
    for y in range(t_y - 1, -1, -1):
        path[y, index] = 1
        if index != 0 and (index == y or value[y - 1, index] < value[y - 1, index - 1]):
            index = index - 1
    return path


def reference(ll, text_lengths, frame_lengths):
    """ll (B, T, F) -> (B, T, F), as VITS' maximum_path on neg_cent (B, F, T)."""
    out = np.zeros(ll.shape, np.int32)
    for i, (tx, ty) in enumerate(zip(text_lengths, frame_lengths)):
        out[i] = reference_path_each(ll[i].T, ty, tx).T
    return out


def masks(text_lengths, frame_lengths, t, f):
    tm = (np.arange(t)[None] < np.asarray(text_lengths)[:, None])[..., None].astype(np.float32)
    fm = (np.arange(f)[None] < np.asarray(frame_lengths)[:, None])[..., None].astype(np.float32)
    return tm, fm


@pytest.mark.parametrize("t,f,integer", [(1, 1, False), (1, 7, True), (5, 5, True), (6, 20, False),
                                         (6, 20, True), (13, 40, True), (13, 40, False)])
def test_matches_reference(t, f, integer):
    rng = np.random.default_rng(t * 100 + f)
    b = 4
    if integer:  # few distinct values: many ties, on the path and in the DP
        ll = rng.integers(-3, 1, size=(b, t, f)).astype(np.float32)
    else:
        ll = rng.normal(scale=10, size=(b, t, f)).astype(np.float32)
    # Item 0 unpadded; the others padded in text, frames or both (always t_x <= t_y).
    text_lengths = [t] + [int(rng.integers(1, t + 1)) for _ in range(b - 1)]
    frame_lengths = [f] + [int(rng.integers(tx, f + 1)) for tx in text_lengths[1:]]
    tm, fm = masks(text_lengths, frame_lengths, t, f)
    ours = np.asarray(maximum_path(ll, tm, fm))
    ref = reference(ll, text_lengths, frame_lengths)
    np.testing.assert_array_equal(ours, ref)
    # A valid alignment: each valid frame has exactly one token, each valid token >= 1 frame.
    np.testing.assert_array_equal(ours.sum(1), fm[..., 0])
    assert np.all(ours.sum(2)[tm[..., 0] > 0] >= 1)


def test_all_ties_stay_on_the_token_longest():
    # With every cell equal the backtrack keeps the last token as long as it can: the original's
    # strict `<` comparison.
    ll = np.zeros((1, 3, 6), np.float32)
    tm, fm = masks([3], [6], 3, 6)
    path = np.asarray(maximum_path(ll, tm, fm))[0]
    np.testing.assert_array_equal(path, reference(ll, [3], [6])[0])
    np.testing.assert_array_equal(path.sum(1), [1, 1, 4])


def test_padding_does_not_change_an_item():
    rng = np.random.default_rng(5)
    ll = rng.normal(size=(1, 4, 9)).astype(np.float32)
    tm, fm = masks([4], [9], 4, 9)
    alone = np.asarray(maximum_path(ll, tm, fm))
    big = np.pad(ll, ((0, 0), (0, 3), (0, 5)), constant_values=7.0)
    tm2, fm2 = masks([4], [9], 7, 14)
    padded = np.asarray(maximum_path(big, tm2, fm2))
    np.testing.assert_array_equal(padded[:, :4, :9], alone)
    assert padded[:, 4:].sum() == 0 and padded[:, :, 9:].sum() == 0


def test_jit_equals_eager_and_no_recompile():
    rng = np.random.default_rng(1)
    ll = rng.normal(size=(2, 5, 12)).astype(np.float32)
    tm, fm = masks([5, 3], [12, 8], 5, 12)
    with jax.disable_jit():
        eager = np.asarray(maximum_path(ll, tm, fm))
    np.testing.assert_array_equal(np.asarray(maximum_path(ll, tm, fm)), eager)
    before = maximum_path._cache_size()
    maximum_path(ll + 1, masks([4, 2], [10, 5], 5, 12)[0], masks([4, 2], [10, 5], 5, 12)[1])
    assert maximum_path._cache_size() == before  # lengths are traced values


def test_gaussian_log_likelihood_matches_vits_neg_cent():
    rng = np.random.default_rng(3)
    z = rng.normal(size=(2, 7, 4)).astype(np.float32)        # (B, F, Z)
    m = rng.normal(size=(2, 3, 4)).astype(np.float32)        # (B, T, Z)
    logs = 0.3 * rng.normal(size=(2, 3, 4)).astype(np.float32)
    # Direct: sum over channels of log N(z[f] | m[t], exp(logs[t])).
    d = z[:, None, :, :] - m[:, :, None, :]                  # (B, T, F, Z)
    s = logs[:, :, None, :]
    direct = np.sum(-0.5 * math.log(2 * math.pi) - s - 0.5 * d ** 2 * np.exp(-2 * s), axis=-1)
    assert_close(gaussian_log_likelihood(jnp.asarray(z), m, logs), direct, tol=1e-5, what="neg_cent")
