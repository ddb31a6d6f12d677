"""Losses against the original VITS formulas (losses.py, models.py, train.py), written in torch
on channels-first tensors as there."""

import jax
import jax.numpy as jnp
import numpy as np
import torch
from conftest import assert_close

from vits_jax.training import losses

RNG = np.random.default_rng(0)


def normal(*shape, scale=1.0):
    return (scale * RNG.normal(size=shape)).astype(np.float32)


def cf(x):
    """channels-last (B, T, C) -> torch (B, C, T)."""
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 2, 1)))


def frame_mask(lengths, f):
    return (np.arange(f)[None] < np.asarray(lengths)[:, None])[..., None].astype(np.float32)


# --- the original formulas ---------------------------------------------------------------------

def torch_kl_loss(z_p, logs_q, m_p, logs_p, z_mask):
    kl = logs_p - logs_q - 0.5
    kl += 0.5 * ((z_p - m_p) ** 2) * torch.exp(-2.0 * logs_p)
    kl = torch.sum(kl * z_mask)
    return kl / torch.sum(z_mask)


def torch_feature_loss(fmap_r, fmap_g):
    loss = 0
    for dr, dg in zip(fmap_r, fmap_g):
        for rl, gl in zip(dr, dg):
            loss += torch.mean(torch.abs(rl.float().detach() - gl.float()))
    return loss * 2


def torch_discriminator_loss(disc_real_outputs, disc_generated_outputs):
    loss = 0
    for dr, dg in zip(disc_real_outputs, disc_generated_outputs):
        loss += torch.mean((1 - dr) ** 2) + torch.mean(dg ** 2)
    return loss


def torch_generator_loss(disc_outputs):
    loss = 0
    for dg in disc_outputs:
        loss += torch.mean((1 - dg) ** 2)
    return loss


# --- tests -------------------------------------------------------------------------------------

def test_kl():
    shape = (3, 11, 4)
    z_p, logs_q, m_p = normal(*shape), normal(*shape, scale=0.3), normal(*shape)
    logs_p = normal(*shape, scale=0.3)
    mask = frame_mask([11, 7, 2], 11)
    ref = torch_kl_loss(cf(z_p), cf(logs_q), cf(m_p), cf(logs_p), cf(mask)).item()
    assert_close(losses.kl_loss(z_p, logs_q, m_p, logs_p, mask), np.float32(ref), tol=1e-6, what="kl")


def test_mel():
    a, b = normal(2, 9, 80), normal(2, 9, 80)
    ref = torch.nn.functional.l1_loss(cf(a), cf(b)).item()
    assert_close(losses.mel_loss(a, b), np.float32(ref), tol=1e-6, what="mel")


def test_duration_losses():
    mask = frame_mask([6, 3], 6)                               # text mask (B, T, 1)
    nll = normal(2, scale=10)
    x_mask = cf(mask)
    ref = torch.sum(torch.from_numpy(nll) / torch.sum(x_mask)).item()  # l_length / sum(x_mask), summed
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
    assert_close(total, np.float32(torch_discriminator_loss(t(real), t(gen)).item()), tol=1e-6, what="d")
    assert len(r) == len(g) == 3
    total, per = losses.generator_adversarial_loss(gen)
    assert_close(total, np.float32(torch_generator_loss(t(gen)).item()), tol=1e-6, what="g")
    ref = torch_feature_loss([t(x) for x in fr], [t(x) for x in fg]).item()
    assert_close(losses.feature_matching_loss(fr, fg), np.float32(ref), tol=1e-6, what="fm")


def test_feature_matching_does_not_train_the_real_branch():
    r, g = jnp.asarray(normal(2, 5, 3)), jnp.asarray(normal(2, 5, 3))
    grad_r, grad_g = jax.grad(lambda a, b: losses.feature_matching_loss([[a]], [[b]]), argnums=(0, 1))(r, g)
    assert float(jnp.max(jnp.abs(grad_r))) == 0.0 and float(jnp.max(jnp.abs(grad_g))) > 0.0


def test_default_weights_are_vits():
    w = losses.LossWeights()
    assert (w.mel, w.kl, w.duration, w.adversarial, w.feature) == (45.0, 1.0, 1.0, 1.0, 1.0)
