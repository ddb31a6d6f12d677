"""Losses against the original VITS loss functions (Piper's copy of the original training code,
piper.train.vits.losses: kl_loss, feature_loss, discriminator_loss, generator_loss) on the same
inputs, channels-first on the torch side as there. The mel and duration terms are not functions in
the original: they are written inline in train.py (F.l1_loss) and SynthesizerTrn.forward (the
duration predictor's loss), copied here; test_training_reference compares the whole pass."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import torch
from conftest import assert_close

from vits_jax.training import losses

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from piper.train.vits import losses as vits_losses

RNG = np.random.default_rng(0)


def normal(*shape, scale=1.0):
    return (scale * RNG.normal(size=shape)).astype(np.float32)


def cf(x):
    """channels-last (B, T, C) -> torch (B, C, T)."""
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 2, 1)))


def frame_mask(lengths, f):
    return (np.arange(f)[None] < np.asarray(lengths)[:, None])[..., None].astype(np.float32)


def channels_first(x):
    """A feature map as the original holds it: (B, S, C) -> (B, C, S), (B, H, P, C) -> (B, C, H, P)."""
    axes = (0, 2, 1) if x.ndim == 3 else (0, 3, 1, 2)
    return torch.from_numpy(np.ascontiguousarray(x.transpose(axes)))


# --- tests -------------------------------------------------------------------------------------

def test_kl():
    shape = (3, 11, 4)
    z_p, logs_q, m_p = normal(*shape), normal(*shape, scale=0.3), normal(*shape)
    logs_p = normal(*shape, scale=0.3)
    mask = frame_mask([11, 7, 2], 11)
    ref = vits_losses.kl_loss(cf(z_p), cf(logs_q), cf(m_p), cf(logs_p), cf(mask)).item()
    assert_close(losses.kl_loss(z_p, logs_q, m_p, logs_p, mask), np.float32(ref), tol=1e-6, what="kl")


def test_mel():
    a, b = normal(2, 9, 80), normal(2, 9, 80)
    ref = torch.nn.functional.l1_loss(cf(a), cf(b)).item()
    assert_close(losses.mel_loss(a, b), np.float32(ref), tol=1e-6, what="mel")


def test_duration_losses():
    mask = frame_mask([6, 3], 6)                               # text mask (B, T, 1)
    nll = normal(2, scale=10)
    x_mask = cf(mask)
    # SynthesizerTrn.forward: l_length = dp(...) / sum(x_mask); train.py: loss_dur = sum(l_length)
    ref = torch.sum(torch.from_numpy(nll) / torch.sum(x_mask)).item()
    assert_close(losses.stochastic_duration_loss(nll, mask), np.float32(ref), tol=1e-6, what="sdp")

    w = (RNG.integers(1, 5, size=(2, 6, 1)) * mask).astype(np.float32)
    logw = normal(2, 6, 1) * mask
    logw_ = torch.log(cf(w) + 1e-6) * x_mask                    # VITS, use_sdp=False
    ref = torch.sum(torch.sum((cf(logw) - logw_) ** 2, [1, 2]) / torch.sum(x_mask)).item()
    assert_close(losses.deterministic_duration_loss(logw, w, mask), np.float32(ref), tol=1e-6, what="mse")


def test_adversarial_and_feature_matching():
    real = [normal(2, 7), normal(2, 12), normal(2, 5)]
    gen = [normal(2, 7), normal(2, 12), normal(2, 5)]
    fr = [[normal(2, 9, 4), normal(2, 3, 1)], [normal(2, 5, 2, 3), normal(2, 5, 2, 1)]]
    fg = [[normal(2, 9, 4), normal(2, 3, 1)], [normal(2, 5, 2, 3), normal(2, 5, 2, 1)]]
    t = lambda xs: [torch.from_numpy(x) for x in xs]

    total, r, g = losses.discriminator_loss(real, gen)
    ref_total, ref_r, ref_g = vits_losses.discriminator_loss(t(real), t(gen))
    assert_close(total, np.float32(ref_total.item()), tol=1e-6, what="d")
    assert_close(np.array(r), np.array(ref_r, np.float32), tol=1e-6, what="d real")
    assert_close(np.array(g), np.array(ref_g, np.float32), tol=1e-6, what="d generated")
    total, per = losses.generator_adversarial_loss(gen)
    ref_total, ref_per = vits_losses.generator_loss(t(gen))
    assert_close(total, np.float32(ref_total.item()), tol=1e-6, what="g")
    assert_close(np.array(per), np.array([x.item() for x in ref_per], np.float32), tol=1e-6, what="g per")
    ref = vits_losses.feature_loss([[channels_first(x) for x in d] for d in fr],
                                   [[channels_first(x) for x in d] for d in fg]).item()
    assert_close(losses.feature_matching_loss(fr, fg), np.float32(ref), tol=1e-6, what="fm")


def test_feature_matching_does_not_train_the_real_branch():
    r, g = jnp.asarray(normal(2, 5, 3)), jnp.asarray(normal(2, 5, 3))
    grad_r, grad_g = jax.grad(lambda a, b: losses.feature_matching_loss([[a]], [[b]]), argnums=(0, 1))(r, g)
    assert float(jnp.max(jnp.abs(grad_r))) == 0.0 and float(jnp.max(jnp.abs(grad_g))) > 0.0


def test_default_weights_are_vits():
    w = losses.LossWeights()
    assert (w.mel, w.kl, w.duration, w.adversarial, w.feature) == (45.0, 1.0, 1.0, 1.0, 1.0)
