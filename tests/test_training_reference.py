"""Training against the original VITS training code (Piper's copy of it, piper.train.vits), on
small models built here from the original's classes with a fixed torch seed and converted through
vits-jax's original-checkpoint path (G_*.pth + VITS' config.json):

- `generator_pass` (stochastic duration predictor): `generator_forward` vs
  `SynthesizerTrn.forward`: the alignment (exactly), the KL terms, the decoded segment, the
  duration loss and its gradient;
- `step` (deterministic duration predictor, whose train step compiles several times faster):
  vits-jax's real `train_step` vs VITS' train step (train.py) written with the original modules,
  loss functions and mel_processing: every loss term, and the generator's and the
  discriminator's gradients (the discriminator: the original's, narrowed).

Both sides get the same inputs:
- the same noise: torch.randn / randn_like are recorded (conftest.NoiseRecorder) and handed to
  vits-jax in place of its jax.random.normal draws (matched by shape);
- the same segments: both sides' segment starts are replaced by fixed ones
  (`test_random_starts_match_rand_slice_segments` checks the draw itself against the original's);
- the original's monotonic_align is a Cython extension that Piper's wheel ships neither compiled
  nor as source (`core.pyx` is absent), so the reference alignment search is the original
  `maximum_path_each` (jaywalnut310/vits monotonic_align/core.pyx), line for line, in numpy.

Gradients: after one step from zero moments, AdamW's first moment is (1 - b1) x the gradient, so
the step's optimiser state gives the gradients it used. The original trains the generator's
weight-normed convs through g and v; vits-jax folds weight norm at conversion and trains the
weight itself, so the reference's weight norm is removed after conversion (the same forward;
gradients with respect to the same weights). float32 on both sides, highest matmul precision.

Shapes (torch, channels-first, as the original): B batch, T tokens, F frames, Z flow_size, K bins.
"""

import dataclasses
import functools
import importlib.util
import json
import os
import sys
import types
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
from conftest import NoiseRecorder, state_dict_numpy
from test_training_mas import reference_path_each as maximum_path_each  # the original's MAS, in numpy
from test_training_discriminators import original_discriminator

import vits_jax
from vits_jax.training import generator as generator_module
from vits_jax.training.discriminators import DiscriminatorConfig, from_torch_state_dict
from vits_jax.training.generator import generator_forward
from vits_jax.training.segments import random_starts
from vits_jax.training.spectrogram import SpectrogramConfig
from vits_jax.training.step import Batch, TrainConfig, TrainState, train_step
from vits_jax.voice.mapper import map_weights
from vits_jax.voice.tables import ORIGINAL_VITS

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import piper.train.vits as piper_vits
    from piper.train.vits import commons, models as vits_models
    from piper.train.vits import losses as vits_losses

pytestmark = pytest.mark.filterwarnings("ignore:.*weight_norm.*:FutureWarning")

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False

FAST = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}

# The models: the original SynthesizerTrn with two speakers; the stochastic duration predictor's
# depth is fixed by the original (4 flows, 4 posterior flows); the posterior encoder and the prior
# flow are swapped for shallower blocks of the same classes, as in tests/test_weights_original.
HPARAMS = dict(inter_channels=8, hidden_channels=16, filter_channels=24, n_heads=2, n_layers=2, kernel_size=3,
               p_dropout=0.1, resblock="1", resblock_kernel_sizes=[3], resblock_dilation_sizes=[[1, 3, 5]],
               upsample_rates=[8, 8], upsample_initial_channel=32, upsample_kernel_sizes=[16, 16],
               gin_channels=4)
HOP, N_FFT, SAMPLING_RATE, N_MELS = 64, 256, 16000, 40
B, T, F, L = 2, 8, 40, 8                  # batch, tokens, frames, segment frames
TEXT_LENGTHS, FRAME_LENGTHS = np.array([8, 6]), np.array([40, 31])
SPEAKERS = np.array([0, 1])
STARTS = np.array([17, 9])                # segment starts, valid: <= FRAME_LENGTHS - L
B1 = 0.8                                  # TrainConfig's AdamW b1, as VITS'


# --- the original's alignment search --------------------------------------------------------------

def maximum_path(neg_cent, mask):
    """monotonic_align.maximum_path: neg_cent (B, F, T), mask (B, F, T) -> path (B, F, T)."""
    value = neg_cent.detach().numpy().astype(np.float32).copy()
    t_y = mask.sum(1)[:, 0].numpy().astype(np.int32)
    t_x = mask.sum(2)[:, 0].numpy().astype(np.int32)
    path = np.stack([maximum_path_each(value[i], t_y[i], t_x[i]) for i in range(len(value))])
    return torch.from_numpy(path).to(neg_cent.dtype)


@functools.lru_cache(maxsize=None)
def _mel_processing():
    """The original mel_processing module. It imports librosa for its mel filterbank (librosa's
    slaney filterbank, htk=False, norm="slaney"), which is not installed: transformers' slaney
    filterbank stands in for it (the same construction; independent of vits-jax's)."""
    from transformers.audio_utils import mel_filter_bank

    def mel(sr, n_fft, n_mels, fmin, fmax):
        return mel_filter_bank(num_frequency_bins=n_fft // 2 + 1, num_mel_filters=n_mels, min_frequency=fmin,
                               max_frequency=sr / 2 if fmax is None else fmax, sampling_rate=sr,
                               norm="slaney", mel_scale="slaney").T.astype(np.float32)

    librosa = types.ModuleType("librosa")
    librosa.filters = types.SimpleNamespace(mel=mel)
    spec = importlib.util.spec_from_file_location(
        "_vits_mel_processing", os.path.join(os.path.dirname(piper_vits.__file__), "mel_processing.py"))
    module = importlib.util.module_from_spec(spec)
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(sys.modules, "librosa", librosa)
        mp.setitem(sys.modules, "librosa.filters", librosa.filters)
        spec.loader.exec_module(module)
    return module


# --- the models -----------------------------------------------------------------------------------

def original_generator(use_sdp: bool, seed=0):
    """The original SynthesizerTrn, random weights in eval mode (no dropout; vits-jax runs with
    deterministic=True). Parameters the original initialises to zeros (flow `post` convs, the
    duration flows' affine and spline projections, layer-norm betas) or ones (gammas) get random
    values, and weight_g != ||weight_v||, so every tensor is seen by the comparison. The
    deterministic duration predictor is the original's class at 32 filters (256 in the original)."""
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = vits_models.SynthesizerTrn(n_vocab=38, spec_channels=N_FFT // 2 + 1, segment_size=L, n_speakers=2,
                                       use_sdp=use_sdp, **HPARAMS)
        m.enc_q = vits_models.PosteriorEncoder(N_FFT // 2 + 1, 8, 16, 3, 1, 2, gin_channels=4)
        m.flow = vits_models.ResidualCouplingBlock(8, 16, 3, 1, 2, n_flows=2, gin_channels=4)
        if not use_sdp:
            m.dp = vits_models.DurationPredictor(16, 32, 3, 0.5, gin_channels=4)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if not p.any():
                p.copy_(0.1 * torch.randn_like(p))
            elif bool((p == 1).all()):
                p.add_(0.1 * torch.randn_like(p))
            elif name.endswith("weight_g"):
                p.mul_(1 + 0.5 * torch.rand_like(p))
        # The decoder's last conv, scaled so the waveform peaks near 0.35: loud enough for a bound
        # relative to its peak, inside tanh's linear range where a gain error shows at full size.
        m.dec.conv_post.weight.mul_(3.5)
    return m.eval()


def converted(m, folder):
    """The original's state dict through vits-jax's original-checkpoint path (G_*.pth + VITS'
    config.json: enc_p / dp / flow / dec / enc_q / emb_g, weight norm folded), then the
    reference's weight norm removed (the same forward; gradients with respect to the weights)."""
    torch.save({"model": m.state_dict(), "iteration": 1}, folder / "G_1.pth")
    (folder / "config.json").write_text(json.dumps({
        "train": {"segment_size": L * HOP},
        "data": {"sampling_rate": SAMPLING_RATE, "filter_length": N_FFT, "hop_length": HOP, "n_speakers": 2},
        "model": HPARAMS}))
    params = vits_jax.load(folder)
    for module in m.modules():
        try:
            torch.nn.utils.remove_weight_norm(module)
        except ValueError:
            pass
    return params


def inputs():
    """Token ids (B, T), waveforms (B, F * HOP): two tones plus noise, zero past each length, and
    the masks (B, T, 1), (B, F, 1)."""
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 38, (B, T)) * (np.arange(T)[None] < TEXT_LENGTHS[:, None])
    t = np.arange(F * HOP) / SAMPLING_RATE
    wav = 0.3 * np.sin(2 * np.pi * np.array([[220.0], [330.0]]) * t) + 0.05 * rng.normal(size=(B, F * HOP))
    wav *= np.arange(F * HOP)[None] < (FRAME_LENGTHS * HOP)[:, None]
    text_mask = (np.arange(T)[None] < TEXT_LENGTHS[:, None])[..., None].astype(np.float32)
    frame_mask = (np.arange(F)[None] < FRAME_LENGTHS[:, None])[..., None].astype(np.float32)
    return ids.astype(np.int32), wav.astype(np.float32), text_mask, frame_mask


# --- the original's side --------------------------------------------------------------------------------

class Reference:
    """The original pass: SynthesizerTrn.forward on the original's spectrogram of `wav`, with
    recorded noise, fixed segment starts and the ported alignment search; torch on one thread
    (these small convs run several times faster on one)."""

    def __init__(self):
        self.mel_processing = _mel_processing()
        self.mp = pytest.MonkeyPatch()
        self.threads = torch.get_num_threads()

    def __enter__(self):
        torch.set_num_threads(1)
        self.recorder = NoiseRecorder(self.mp, seed=1)
        self.mp.setattr(commons, "rand_slice_segments",
                        lambda x, lengths, size: (commons.slice_segments(x, torch.as_tensor(STARTS), size),
                                                  torch.as_tensor(STARTS)))
        stand_in = types.ModuleType("piper.train.vits.monotonic_align")
        stand_in.maximum_path = maximum_path
        self.mp.setitem(sys.modules, stand_in.__name__, stand_in)
        self.mp.setattr(piper_vits, "monotonic_align", stand_in, raising=False)
        return self

    def __exit__(self, *exc):
        self.mp.undo()
        torch.set_num_threads(self.threads)

    def spectrogram(self, wav):
        """The original's linear spectrogram of the padded batch (as vits-jax's step computes it),
        zero past each length as the original's collate pads it: (B, K, F)."""
        spec = self.mel_processing.spectrogram_torch(torch.from_numpy(wav), N_FFT, SAMPLING_RATE, HOP, N_FFT)
        return spec * (torch.arange(F)[None, None] < torch.as_tensor(FRAME_LENGTHS)[:, None, None])

    def forward(self, m, ids, spec):
        return m(torch.as_tensor(ids).long(), torch.as_tensor(TEXT_LENGTHS), spec, torch.as_tensor(FRAME_LENGTHS),
                 torch.as_tensor(SPEAKERS))


def jax_noise(draws, cfg):
    """A stand-in for jax.random.normal returning the reference's draws, by shape: the posterior
    noise (B, Z, F) -> (B, F, Z) and the duration predictor's (B, 2, T) -> (B, T, 2) (zeros for
    the deterministic predictor, which draws none and whose vits-jax pass ignores its draw)."""
    posterior, *duration = draws
    assert posterior.shape == (B, cfg.flow_size, F)
    noise = {(B, F, cfg.flow_size): posterior.transpose(0, 2, 1),
             (B, T, 2): duration[0].transpose(0, 2, 1) if duration else np.zeros((B, T, 2), np.float32)}
    assert [d.shape for d in duration] in ([(B, 2, T)], [])

    def normal(key, shape=(), dtype=jnp.float32, *args, **kwargs):
        assert tuple(shape) in noise, f"unexpected draw of shape {shape}"
        return jnp.asarray(noise[tuple(shape)], dtype)
    return normal


def first_moment(opt_state):
    """The Adam state's mu (one ScaleByAdamState in the optimiser's chain)."""
    is_adam = lambda s: isinstance(s, optax.ScaleByAdamState)
    found = [s for s in jax.tree.leaves(opt_state, is_leaf=is_adam) if is_adam(s)]
    assert len(found) == 1
    return found[0].mu


# --- the generator's pass, with the stochastic duration predictor ---------------------------------------

@pytest.fixture(scope="module")
def generator_pass(tmp_path_factory):
    """generator_forward and the gradient of its duration loss vs SynthesizerTrn.forward and the
    gradient of its l_length, on the same weights, spectrogram, noise and segments."""
    m = original_generator(use_sdp=True)
    params = converted(m, tmp_path_factory.mktemp("sdp"))
    cfg = params.config
    assert cfg.use_stochastic_duration_prediction and cfg.duration_predictor_num_flows == 4
    ids, wav, text_mask, frame_mask = inputs()

    with Reference() as reference:
        spec = reference.spectrogram(wav)
        y_hat, l_length, attn, ids_slice, _, _, (_, z_p, m_p, logs_p, _, logs_q) = reference.forward(m, ids, spec)
        loss_dur = torch.sum(l_length)                  # train.py's loss_dur
        loss_dur.backward()
        draws = reference.recorder.draws
    channels_last = lambda t: t.detach().numpy().transpose(0, 2, 1)
    ref = dict(waveform=y_hat[:, 0].detach().numpy(), alignment=attn[:, 0].numpy(),    # (B, F, T)
               ids_slice=ids_slice.numpy(), z_p=channels_last(z_p), logs_q=channels_last(logs_q),
               m_p=channels_last(m_p), logs_p=channels_last(logs_p), duration=loss_dur.item(),
               grads=map_weights({k: np.zeros(p.shape, np.float32) if p.grad is None else p.grad.numpy()
                                  for k, p in m.named_parameters()}, ORIGINAL_VITS, params.tree).tree)

    spectrogram = spec.numpy().transpose(0, 2, 1)                                     # (B, F, K)

    def program(p):
        def duration_loss(p):
            out, aux = generator_forward(p, cfg, ids, text_mask, spectrogram, frame_mask, SPEAKERS,
                                         key=jax.random.key(0), segment_frames=L, deterministic=True)
            return out.duration_loss, (out, aux)
        return jax.grad(duration_loss, has_aux=True)(p)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(jax.random, "normal", jax_noise(draws, cfg))
        mp.setattr(generator_module, "random_starts", lambda key, lengths, size: jnp.asarray(STARTS, jnp.int32))
        grads, (out, aux) = jax.jit(program, compiler_options=FAST)(params.tree)
    ours = dict(out=jax.tree.map(np.asarray, out), aux=jax.tree.map(np.asarray, aux),
                grads=jax.tree.map(np.asarray, grads))
    return ours, ref, frame_mask


# --- one train step, with the deterministic duration predictor -------------------------------------------

@pytest.fixture(scope="module")
def step(tmp_path_factory):
    """vits-jax's train_step vs VITS' train step (train.py, c_mel 45, c_kl 1) with the original
    modules and loss functions: the discriminator steps on the detached generated segment with
    AdamW, then the generator's losses use the updated discriminator."""
    m = original_generator(use_sdp=False)
    params = converted(m, tmp_path_factory.mktemp("dp"))
    cfg = params.config
    assert not cfg.use_stochastic_duration_prediction
    # The discriminator: the original's scale and period-2 discriminators, narrowed 16x (the full
    # five periods at full width are compared in test_training_discriminators).
    d = original_discriminator(16, seed=1, num_discriminators=2)
    d_config = dataclasses.replace(DiscriminatorConfig().scaled(16), periods=(2,))
    d_params = from_torch_state_dict(state_dict_numpy(d), d_config)   # a copy: torch steps d in place
    ids, wav, _, frame_mask = inputs()

    with Reference() as reference:
        mp = reference.mel_processing
        spec = reference.spectrogram(wav)                                             # (B, K, F)
        y_hat, l_length, _, ids_slice, _, z_mask, (_, z_p, m_p, logs_p, _, logs_q) = reference.forward(m, ids, spec)
        mel = mp.spec_to_mel_torch(spec, N_FFT, N_MELS, SAMPLING_RATE, 0.0, None)
        y_mel = commons.slice_segments(mel, ids_slice, L)
        y_hat_mel = mp.mel_spectrogram_torch(y_hat.squeeze(1), N_FFT, N_MELS, SAMPLING_RATE, HOP, N_FFT, 0.0, None)
        y = commons.slice_segments(torch.from_numpy(wav)[:, None], ids_slice * HOP, L * HOP)

        # Discriminator
        optim_d = torch.optim.AdamW(d.parameters(), 2e-4, betas=(B1, 0.99), eps=1e-9)   # weight decay 0.01
        y_d_hat_r, y_d_hat_g, _, _ = d(y, y_hat.detach())
        loss_disc, _, _ = vits_losses.discriminator_loss(y_d_hat_r, y_d_hat_g)
        optim_d.zero_grad()
        loss_disc.backward()
        d_grads = {k: p.grad.numpy().copy() for k, p in d.named_parameters()}
        optim_d.step()

        # Generator, against the updated discriminator
        y_d_hat_r, y_d_hat_g, fmap_r, fmap_g = d(y, y_hat)
        loss_dur = torch.sum(l_length.float())
        loss_mel = torch.nn.functional.l1_loss(y_mel, y_hat_mel)
        loss_kl = vits_losses.kl_loss(z_p, logs_q, m_p, logs_p, z_mask)
        loss_fm = vits_losses.feature_loss(fmap_r, fmap_g)
        loss_gen, _ = vits_losses.generator_loss(y_d_hat_g)
        loss_gen_all = loss_gen + loss_fm + 45 * loss_mel + loss_dur + loss_kl
        loss_gen_all.backward()
        draws = reference.recorder.draws
    ref = dict(losses=dict(duration=loss_dur.item(), mel=loss_mel.item(), kl=loss_kl.item(),
                           feature=loss_fm.item(), adversarial=loss_gen.item(), discriminator=loss_disc.item(),
                           generator=loss_gen_all.item()),
               # the reference's gradients in vits-jax's layout, through the same tables as the weights
               g_grads=map_weights({k: p.grad.numpy() for k, p in m.named_parameters()}, ORIGINAL_VITS,
                                   params.tree).tree,
               d_grads=from_torch_state_dict(d_grads, d_config))

    train = TrainConfig(segment_frames=L, deterministic=True, discriminator=d_config,
                        spectrogram=SpectrogramConfig(n_fft=N_FFT, hop_length=HOP, win_length=N_FFT,
                                                      sampling_rate=SAMPLING_RATE, n_mels=N_MELS))
    state = TrainState.create(params, d_params, train)
    batch = Batch(ids, TEXT_LENGTHS, wav, FRAME_LENGTHS * HOP, SPEAKERS)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(jax.random, "normal", jax_noise(draws, cfg))
        mp.setattr(generator_module, "random_starts", lambda key, lengths, size: jnp.asarray(STARTS, jnp.int32))
        step = jax.jit(functools.partial(train_step, config=cfg, train=train), compiler_options=FAST)
        new_state, metrics = step(state, batch, jax.random.key(0))
    ours = dict(
        losses={k: float(v) for k, v in metrics.items()},
        # after one step from zero moments AdamW's first moment is (1 - b1) x the gradient
        g_grads=jax.tree.map(lambda mu: np.asarray(mu) / (1 - B1), first_moment(new_state.generator_opt)),
        d_grads=jax.tree.map(lambda mu: np.asarray(mu) / (1 - B1), first_moment(new_state.discriminator_opt)))
    return ours, ref


# --- comparisons ------------------------------------------------------------------------------------

def relative_error(ours, reference, what):
    """max |ours - reference| / max |reference|, refusing references too small to bound."""
    ours, reference = np.asarray(ours, np.float64), np.asarray(reference, np.float64)
    assert ours.shape == reference.shape, f"{what}: shape {ours.shape} != {reference.shape}"
    assert np.all(np.isfinite(ours)), f"{what}: non-finite values"
    scale = float(np.max(np.abs(reference)))
    assert scale > 0, f"{what}: an all-zero reference"
    err = float(np.max(np.abs(ours - reference)))
    if os.environ.get("VITS_JAX_REPORT_ERRORS"):
        print(f"\n[error] {what}: {err:.2e} = {err / scale:.2e} x {scale:.3g}")
    return err / scale


def test_alignment_and_durations_match_the_original(generator_pass):
    ours, ref, _ = generator_pass
    np.testing.assert_array_equal(ours["aux"].alignment, ref["alignment"].transpose(0, 2, 1))   # (B, T, F)
    np.testing.assert_array_equal(ours["aux"].durations, ref["alignment"].sum(1))
    # a real alignment, not a diagonal: tokens of many frames and of one
    assert ours["aux"].durations.max() >= 5 and (ours["aux"].durations == 1).any()
    np.testing.assert_array_equal(ours["aux"].starts, ref["ids_slice"])


@pytest.mark.parametrize("name", ["z_p", "logs_q", "m_p", "logs_p"])
def test_kl_terms_match_the_original(generator_pass, name):
    # z_p and logs_q from the posterior encoder and the flow; m_p, logs_p expanded through the
    # alignment. Valid frames only (the original leaves z_p unmasked past each length; the KL
    # masks them). float32 through ~10 layers: ~3e-7 of each output's scale measured.
    ours, ref, frame_mask = generator_pass
    valid = frame_mask.astype(bool)[..., 0]
    assert relative_error(getattr(ours["out"], name)[valid], ref[name][valid], name) <= 1e-5


def test_sliced_waveform_matches_the_original(generator_pass):
    # The decoded segment; ~1e-6 x peak measured. The bound is relative to the reference's peak,
    # which must be loud enough for it to mean anything and inside tanh's linear range.
    ours, ref, _ = generator_pass
    peak = float(np.max(np.abs(ref["waveform"])))
    assert 0.1 <= peak <= 0.9, f"reference peak {peak:.3g}: too quiet, or where tanh saturates"
    assert relative_error(ours["out"].waveform, ref["waveform"], "waveform") <= 2e-5


def test_duration_loss_trains_the_duration_predictor_only(generator_pass):
    # Both sides detach the predictor's inputs: its loss reaches no other parameter.
    ours, ref, _ = generator_pass
    for name, tree in (("ours", ours["grads"]), ("reference", ref["grads"])):
        others = {k: g for k, g in _leaves(tree).items() if not k.startswith("['duration_predictor']")}
        assert len(others) > 100 and all(not g.any() for g in others.values()), name


def test_stochastic_duration_loss_matches_the_original(generator_pass):
    ours, ref, _ = generator_pass
    assert relative_error(ours["out"].duration_loss, ref["duration"], "duration") <= 1e-5


def test_stochastic_duration_predictor_gradients_match_the_original(generator_pass):
    # The duration loss trains the duration predictor only (its inputs are detached on both sides).
    ours, ref, _ = generator_pass
    assert _compare_gradients(ours["grads"], ref["grads"], lambda k: k.startswith("['duration_predictor']")) > 200


@pytest.mark.parametrize("name", ["kl", "mel", "adversarial", "feature", "discriminator", "duration", "generator"])
def test_step_losses_match_the_original(step, name):
    # adversarial and feature: against the updated discriminator (VITS' order), so they also
    # check that the discriminator stepped before the generator's losses, as in the original.
    ours, ref = step
    assert relative_error(ours["losses"][name], ref["losses"][name], name) <= 1e-5


def _leaves(tree):
    return {jax.tree_util.keystr(path): np.asarray(x) for path, x in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _compare_gradients(ours, ref, keep):
    """Per leaf: max |g_ours - g_ref| <= 1e-4 x max |g_ref| (float32 through a forward and a
    backward pass of some 30 layers; up to ~3e-5 measured). Returns the number of leaves compared."""
    ours, ref = _leaves(ours), _leaves(ref)
    assert ours.keys() == ref.keys()
    names = [k for k in ref if keep(k)]
    largest = max(float(np.max(np.abs(ref[k]))) for k in names)
    failures = []
    for k in names:
        scale = float(np.max(np.abs(ref[k])))
        if scale < 1e-6 * largest:
            # The attention key projections' biases: softmax is invariant to a shift of a query's
            # scores, so their gradient is zero up to round-off on both sides.
            assert k.endswith("['k_proj']['bias']"), f"{k}: gradient {scale:.3g} vanishes in the reference"
            assert float(np.max(np.abs(ours[k]))) < 1e-6 * largest, k
            continue
        err = relative_error(ours[k], ref[k], k)
        if err > 1e-4:
            failures.append(f"{k}: {err:.2e} x {scale:.3g}")
    assert not failures, "\n".join(failures)
    return len(names)


def test_generator_gradients_match_the_original(step):
    ours, ref = step
    assert _compare_gradients(ours["g_grads"], ref["g_grads"], lambda k: True) > 100


def test_discriminator_gradients_match_the_original(step):
    ours, ref = step
    assert _compare_gradients(ours["d_grads"], ref["d_grads"], lambda k: True) == 3 * (7 + 6)  # g, v, b of 13 convs


def test_random_starts_match_rand_slice_segments(monkeypatch):
    # The same uniform draws through vits-jax's random_starts and the original's formula
    # (ids_str = (rand * (lengths - segment_size + 1)).long()).
    key = jax.random.key(3)
    lengths = np.array([40, 31, 8, 100, 9])
    ours = np.asarray(random_starts(key, lengths, L))
    uniform = torch.from_numpy(np.array(jax.random.uniform(key, lengths.shape)))
    monkeypatch.setattr(torch, "rand", lambda size, **kwargs: uniform.clone())
    _, ref = commons.rand_slice_segments(torch.zeros(len(lengths), 1, 100), torch.as_tensor(lengths), L)
    np.testing.assert_array_equal(ours, ref.numpy())
