"""Shared test setup: float32 at highest matmul precision on both sides, small configs."""

import json
import os
import shutil

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import jax  # noqa: E402

jax.config.update("jax_default_matmul_precision", "highest")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from jax.experimental.compilation_cache import compilation_cache  # noqa: E402

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


# The peak, before tanh, that hf_model gives its waveforms (measured on its own calibration
# inputs; the tests' inputs land at about 0.2-0.5): inside tanh's linear range, where a gain error
# in the decoder shows in the waveform at full size, and loud enough for a bound relative to it.
OUTPUT_PEAK = 0.35


def hf_model(seed: int = 0, **config_kwargs):
    """A random-init transformers VitsModel in eval mode, reproducible from `seed`, whose waveform
    peaks near OUTPUT_PEAK with and without noise."""
    from transformers import VitsConfig as HFConfig, VitsModel as HFModel

    torch.manual_seed(seed)
    model = HFModel(HFConfig(**config_kwargs)).eval()
    with torch.no_grad():
        # transformers leaves log_scale/translate at zero; give them values so the test can see them.
        for name, p in model.named_parameters():
            if name.endswith(("translate", "log_scale")):
                p.copy_(0.1 * torch.randn_like(p))
        # Random init gives prior log variances up to ~5 (noise with a std of e^5), so the noisy
        # waveform is 3-5x louder than the noise-free one and no one output scale suits both;
        # trained voices keep them near or below 0. A third of them keeps noise audible.
        half = model.config.flow_size
        model.text_encoder.project.weight[half:].mul_(0.3)
        model.text_encoder.project.bias[half:].mul_(0.3)
        # Random init drives the decoder's last conv to |x| ~ 10, where tanh saturates and the
        # waveform shows nothing: scale it so the waveform peaks near OUTPUT_PEAK.
        model.decoder.conv_post.weight.mul_(OUTPUT_PEAK / _pre_tanh_peak(model))
    return model


class _Durations(Exception):
    pass


def _pre_tanh_peak(model, tokens=8, frames_per_token=6):
    """The largest |decoder output before tanh| over two utterances at ~6 frames per token, one
    without noise (speaker 0) and one with the config's noise (the last speaker). Torch's global
    random state is left as it was."""
    cfg = model.config
    peaks = []
    hook = model.decoder.conv_post.register_forward_hook(lambda m, i, o: peaks.append(float(o.abs().max())))
    scales = model.noise_scale, model.noise_scale_duration
    try:
        with torch.random.fork_rng(), torch.no_grad():
            torch.manual_seed(0)
            for i, noise in enumerate((False, True)):
                ids = torch.randint(0, cfg.vocab_size, (1, tokens))
                speaker = (cfg.num_speakers - 1) * i if cfg.num_speakers > 1 else None
                model.noise_scale = cfg.noise_scale if noise else 0.0
                model.noise_scale_duration = cfg.noise_scale_duration if noise else 0.0
                state = torch.random.get_rng_state()     # the same noise for the durations and the run
                rate = _speaking_rate(model, ids, speaker, frames_per_token)
                torch.random.set_rng_state(state)
                model(ids, speaker_id=speaker, speaking_rate=rate)
    finally:
        hook.remove()
        model.noise_scale, model.noise_scale_duration = scales
    return max(peaks)


def _speaking_rate(model, ids, speaker, frames_per_token):
    """The rate giving ~frames_per_token (random-init durations run from 0.1 to 100 frames per
    token): the duration predictor's output, read by a hook that stops the forward there."""
    def stop(module, inputs, output):
        raise _Durations(output)

    hook = model.duration_predictor.register_forward_hook(stop)
    try:
        model(ids, speaker_id=speaker, speaking_rate=1.0)
    except _Durations as d:
        log_durations = d.args[0]
    finally:
        hook.remove()
    return float(torch.ceil(torch.exp(log_durations)).mean()) / frames_per_token


FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
# MMS-eng's tokenizer (38 symbols): what every random model folder of the tests reads its text with.
MMS_ENG = os.path.join(FIXTURES, "mms-tts-eng")
TOKENIZER_FILES = ("vocab.json", "tokenizer_config.json", "special_tokens_map.json")


def save_model_folder(model, folder) -> str:
    """Saves a transformers model (save_pretrained: safetensors + config.json) with MMS-eng's
    tokenizer files beside it: a folder every loader reads. Returns the folder as a string."""
    model.save_pretrained(folder)
    for name in TOKENIZER_FILES:
        shutil.copy(os.path.join(MMS_ENG, name), folder)
    return str(folder)


@pytest.fixture(scope="session")
def model_folder(tmp_path_factory):
    """model_folder(seed, **config) -> the folder of a random transformers model (hf_model(seed,
    **config), vocab_size 38 for the tokenizer) with MMS-eng's tokenizer files, built once per
    session for each (seed, config): the test files share the models and the programs compiled
    for them. Read-only: copy it before spoiling it."""
    made = {}

    def make(seed: int, **config) -> str:
        assert config.get("vocab_size") == 38, "the folders carry MMS-eng's 38-symbol tokenizer"
        key = (seed, json.dumps(config, sort_keys=True))
        if key not in made:
            made[key] = save_model_folder(hf_model(seed, **config), tmp_path_factory.mktemp(f"model-{seed}"))
        return made[key]

    return make


@pytest.fixture(scope="session")
def eng_single(model_folder):
    """A single-speaker random model folder (seed 3) with MMS-eng's tokenizer."""
    return model_folder(3, **small_config(vocab_size=38))


@pytest.fixture(scope="session")
def eng_multi(model_folder):
    """A 3-speaker random model folder (seed 4) with MMS-eng's tokenizer."""
    return model_folder(4, **small_config(vocab_size=38, num_speakers=3, speaker_embedding_size=4))


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


def assert_waveform_close(ours, reference, tol=2e-5, min_peak=0.1, max_peak=0.9, what=""):
    """End-to-end waveform parity: max |ours - reference| <= tol * max |reference|.

    The bound is relative to the reference's peak, and a reference quieter than `min_peak` is
    refused: on a near-silent signal any small absolute bound is a large fraction of it and would
    pass a wrong gain. One louder than `max_peak` is refused too: there tanh saturates and hides
    errors made before it."""
    ours, reference = np.asarray(ours), np.asarray(reference)
    assert ours.shape == reference.shape, f"{what}: shape {ours.shape} != {reference.shape}"
    assert np.all(np.isfinite(ours)), f"{what}: non-finite values"
    assert np.all(np.isfinite(reference)), f"{what}: non-finite values in the reference"
    peak = float(np.max(np.abs(reference))) if reference.size else 0.0
    err = float(np.max(np.abs(ours.astype(np.float64) - reference))) if reference.size else 0.0
    if os.environ.get("VITS_JAX_REPORT_ERRORS"):
        print(f"\n[waveform] {what}: peak {peak:.3f}, max abs error {err:.2e} = {err / max(peak, 1e-30):.2e} x peak")
    assert peak >= min_peak, (f"{what}: reference peak {peak:.3g} < {min_peak}: too quiet for a bound "
                              f"relative to it to mean anything")
    assert peak <= max_peak, f"{what}: reference peak {peak:.3g} > {max_peak}: tanh saturates there"
    assert err <= tol * peak, f"{what}: max abs error {err:.3g} > {tol:.0e} x peak {peak:.3g}"
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


_CACHE_OPTIONS = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs",
                  "jax_persistent_cache_min_entry_size_bytes")


@pytest.fixture(autouse=True)
def _no_persistent_compilation_cache():
    """A command run in this process (`cli.main(["say", ...])`) turns JAX's persistent
    compilation cache on for the whole process. Each test gets the settings it started with back,
    so no later test writes every program it compiles to disk (slow, and it broke one run)."""
    before = {name: getattr(jax.config, name) for name in _CACHE_OPTIONS}
    yield
    if any(getattr(jax.config, name) != value for name, value in before.items()):
        for name, value in before.items():
            jax.config.update(name, value)
        compilation_cache.reset_cache()


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
