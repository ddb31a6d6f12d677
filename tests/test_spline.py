"""Rational-quadratic spline: against transformers, inverse, log-det, jit/vmap, gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from conftest import assert_close, to_torch
from transformers.models.vits.modeling_vits import _unconstrained_rational_quadratic_spline as hf_spline

from vits_jax.nn.spline import unconstrained_rational_quadratic_spline as spline

BINS = 10
TAIL = 5.0


def _inputs(seed, shape=(3, 1, 17)):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-7, 7, size=shape).astype(np.float32)       # some outside the tail bound
    x.flat[:3] = [-TAIL, TAIL, 0.0]                              # boundaries included
    w = rng.normal(size=shape + (BINS,)).astype(np.float32)
    h = rng.normal(size=shape + (BINS,)).astype(np.float32)
    d = rng.normal(size=shape + (BINS - 1,)).astype(np.float32)
    return x, w, h, d


@pytest.mark.parametrize("reverse", [False, True])
def test_matches_transformers(reverse):
    x, w, h, d = _inputs(0)
    with torch.no_grad():
        ref_y, ref_ld = hf_spline(to_torch(x), to_torch(w), to_torch(h), to_torch(d),
                                  reverse=reverse, tail_bound=TAIL)
    y, ld = spline(jnp.asarray(x), w, h, d, reverse=reverse, tail_bound=TAIL)
    assert_close(y, ref_y.numpy(), what="outputs")
    assert_close(ld, ref_ld.numpy(), what="log|det|")


def test_inverse_is_identity_and_logdets_cancel():
    x, w, h, d = _inputs(1)
    y, ld = spline(jnp.asarray(x), w, h, d, tail_bound=TAIL)
    x2, ld_inv = spline(y, w, h, d, reverse=True, tail_bound=TAIL)
    np.testing.assert_allclose(x2, x, atol=2e-5)
    np.testing.assert_allclose(ld + ld_inv, 0.0, atol=2e-5)


def test_log_det_equals_autodiff_derivative():
    x, w, h, d = _inputs(2, shape=(40,))
    f = lambda xi, wi, hi, di: spline(xi, wi, hi, di, tail_bound=TAIL)[0]
    slope = jax.vmap(jax.jacfwd(f))(jnp.asarray(x), w, h, d)
    _, ld = spline(jnp.asarray(x), w, h, d, tail_bound=TAIL)
    np.testing.assert_allclose(np.log(slope), ld, atol=1e-4)


def test_jit_vmap_against_float64_and_finite_gradients():
    x, w, h, d = _inputs(3)
    eager = spline(jnp.asarray(x), w, h, d, tail_bound=TAIL)
    jitted = jax.jit(lambda *a: spline(*a, tail_bound=TAIL))(x, w, h, d)
    vmapped = jax.vmap(lambda *a: spline(*a, tail_bound=TAIL))(x, w, h, d)
    with jax.enable_x64(True):
        exact = spline(*(jnp.asarray(a, jnp.float64) for a in (x, w, h, d)), tail_bound=TAIL)
        exact = [np.asarray(e) for e in exact]
    for name, (y, ld) in (("eager", eager), ("jit", jitted), ("vmap", vmapped)):
        assert_close(y, exact[0], what=f"{name} outputs vs float64")
        # log|det| = log(num) - 2 log(den) loses digits in steep bins near the tail bound:
        # eager float32 itself is 1.2e-4 from float64 at the worst point here, and jit (which
        # fuses and reorders) lands elsewhere within the same round-off.
        assert_close(ld, exact[1], tol=3e-5, what=f"{name} log-det vs float64")
    # Inputs outside the interval must not poison gradients through the discarded branch.
    loss = lambda *a: jnp.sum(spline(*a, tail_bound=TAIL)[0] ** 2 + spline(*a, tail_bound=TAIL)[1])
    grads = jax.grad(loss, argnums=(0, 1, 2, 3))(jnp.asarray(x), w, h, d)
    for g in grads:
        assert np.all(np.isfinite(np.asarray(g)))
