"""Shared test setup: float32 at highest matmul precision on both sides, small configs."""

import os

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import jax  # noqa: E402

jax.config.update("jax_default_matmul_precision", "highest")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

try:
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_num_threads(2)
except ImportError:  # pragma: no cover
    torch = None

# A config small enough for fast parity tests that still exercises every code path:
# several layers and flows, window smaller than the sequence, two upsample stages.
SMALL = dict(
    vocab_size=20, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, window_size=2,
    ffn_dim=24, ffn_kernel_size=3, flow_size=8, spectrogram_bins=9,
    upsample_initial_channel=16, upsample_rates=[4, 2], upsample_kernel_sizes=[8, 4],
    resblock_kernel_sizes=[3, 5], resblock_dilation_sizes=[[1, 3], [1, 2]],
    duration_predictor_filter_channels=12, duration_predictor_flow_bins=4,
    duration_predictor_num_flows=2, depth_separable_num_layers=2,
    prior_encoder_num_flows=2, prior_encoder_num_wavenet_layers=2,
    posterior_encoder_num_wavenet_layers=2, wavenet_kernel_size=3,
)


def small_config(**overrides):
    return {**SMALL, **overrides}


# The training tests' model: hop 64 (8 x 8), 129 spectrogram bins (n_fft 256) and MMS-eng's
# 38-symbol vocabulary, so the espeak-ng clips tokenize with the fixture tokenizer.
TRAIN_TINY = small_config(vocab_size=38, upsample_rates=[8, 8], upsample_kernel_sizes=[16, 16],
                          spectrogram_bins=129, upsample_initial_channel=32)


def hf_model(seed: int = 0, **config_kwargs):
    """A random-init transformers VitsModel in eval mode, reproducible from `seed`."""
    from transformers import VitsConfig as HFConfig, VitsModel as HFModel

    torch.manual_seed(seed)
    model = HFModel(HFConfig(**config_kwargs)).eval()
    # transformers leaves log_scale/translate at zero; give them values so the test can see them.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("translate", "log_scale")):
                p.copy_(0.1 * torch.randn_like(p))
        # Random init drives the decoder's last conv to |x| ~ 1e3, where tanh saturates and the
        # waveform shows nothing; scale it so the output lives in tanh's responsive range.
        model.decoder.conv_post.weight.mul_(1e-3)
    return model


def state_dict_numpy(model):
    return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}


@pytest.fixture(scope="session")
def rng():
    return np.random.default_rng(0)


def assert_close(ours, reference, tol=1e-5, what=""):
    """max |ours - reference| <= tol * max(1, max |reference|): float32 round-off of a deep net
    scales with the size of its outputs, so the bound is relative for large outputs."""
    ours, reference = np.asarray(ours), np.asarray(reference)
    assert ours.shape == reference.shape, f"{what}: shape {ours.shape} != {reference.shape}"
    assert np.all(np.isfinite(ours)), f"{what}: non-finite values"
    scale = max(1.0, float(np.max(np.abs(reference)))) if reference.size else 1.0
    err = float(np.max(np.abs(ours - reference))) if reference.size else 0.0
    assert err <= tol * scale, f"{what}: max abs error {err:.3g} > {tol:.0e} x {scale:.3g}"
    if os.environ.get("VITS_JAX_REPORT_ERRORS"):  # `-s` with this set lists every comparison
        print(f"\n[error] {what}: {err:.2e} (scale {scale:.3g})")
    return err


def to_torch(x):
    return torch.from_numpy(np.ascontiguousarray(np.asarray(x)))


def ncw(x):
    """channels-last (B, T, C) numpy -> torch (B, C, T)."""
    return to_torch(np.asarray(x).transpose(0, 2, 1))


def nwc(t):
    """torch (B, C, T) -> numpy (B, T, C)."""
    return t.detach().numpy().transpose(0, 2, 1)


class NoiseRecorder:
    """Replaces torch.randn / torch.randn_like with seeded draws and keeps them, so the same noise
    can be handed to the Flax side. Draws are recorded in call order, in torch's layout."""

    def __init__(self, monkeypatch, seed=0):
        self.draws = []
        gen = torch.Generator().manual_seed(seed)
        real_randn = torch.randn

        def randn(*size, **kwargs):
            size = size[0] if len(size) == 1 and isinstance(size[0], (tuple, list, torch.Size)) else size
            out = real_randn(*size, generator=gen, dtype=torch.float32)
            self.draws.append(out.numpy().copy())
            return out

        def randn_like(t, **kwargs):
            return randn(*t.shape)

        monkeypatch.setattr(torch, "randn", randn)
        monkeypatch.setattr(torch, "randn_like", randn_like)


FRAMES_PER_TOKEN = 6


def realistic_rate(params, cfg, ids, speaker_id, sdp_noise, noise_scale_duration):
    """Random-init durations are far from speech (0.1 to 100 frames per token); the speaking rate
    that brings them to ~6 frames per token, as real voices have. Both sides then use it."""
    b, t = ids.shape
    speakers = None if speaker_id is None else np.full((b,), speaker_id)
    from vits_jax import VitsModel

    durations, _, _ = VitsModel(cfg).apply({"params": params}, np.asarray(ids), np.ones((b, t, 1)),
                                           speakers, sdp_noise, noise_scale_duration, 1.0,
                                           method=VitsModel.durations)
    return float(np.mean(durations)) / FRAMES_PER_TOKEN


def speech_clip(path, text: str, seed: int = 0):
    """A short recording of `text` at `path` (WAV): espeak-ng's voice where it is installed, else
    a 0.6 s sine tone (pitch set by `seed`) at 16 kHz."""
    import shutil
    import subprocess
    import wave

    if shutil.which("espeak-ng"):
        subprocess.run(["espeak-ng", "-w", str(path), text], check=True, capture_output=True, timeout=60)
        return
    rate = 16000
    t = np.arange(int(0.6 * rate)) / rate
    x = 0.4 * np.sin(2 * np.pi * (180 + 40 * seed) * t)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(rate)
        w.writeframes(np.round(x * 32767).astype("<i2").tobytes())


@pytest.fixture(scope="session", autouse=True)
def _nothing_under_home(tmp_path_factory):
    """What libraries would write under the home folder goes to this session's temporary folder,
    in this process and every process it starts: matplotlib's font cache (the notebooks, the
    training loop's loss plot), IPython's profile and Jupyter's connection files (the notebooks'
    kernels), and everything kept under XDG_CACHE_HOME (`vits-jax`'s default JAX compilation
    cache, the hub's and torch's caches, fontconfig's)."""
    root = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as env:
        for name, folder in (("MPLCONFIGDIR", "matplotlib"), ("IPYTHONDIR", "ipython"),
                             ("JUPYTER_CONFIG_DIR", "jupyter/config"), ("JUPYTER_DATA_DIR", "jupyter/data"),
                             ("JUPYTER_RUNTIME_DIR", "jupyter/runtime"), ("XDG_CACHE_HOME", "cache"),
                             ("XDG_CONFIG_HOME", "config"), ("XDG_DATA_HOME", "data")):
            env.setenv(name, str(root / folder))
        yield root
