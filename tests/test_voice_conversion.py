"""Voice conversion and the posterior path (core/conversion.py, synth/conversion.py, `vits-jax vc`).

References, built in the test from a fixed torch seed: Piper's copy of the original VITS
(`piper.train.vits.models.SynthesizerTrn.voice_conversion`, its `spectrogram_torch`), read through
the original-VITS path (G_*.pth + config.json), and transformers' own posterior_encoder / flow /
decoder modules composed the same way. Noise off (the posterior means) unless the reference's own
draws are injected."""

import dataclasses
import json
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from conftest import assert_close, hf_model, ncw, nwc, small_config, state_dict_numpy

import vits_jax
from convert import to_flax
from vits_jax import VitsConfig, VitsParams
from vits_jax.app import main as cli
from vits_jax.synth import audio
from vits_jax.synth.conversion import VoiceConversionError, compilation_count

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from piper.train.vits import models as vits_models
    try:
        from piper.train.vits.mel_processing import spectrogram_torch
    except ModuleNotFoundError as e:      # librosa is only for its mel filterbank, unused here
        if e.name != "librosa":
            raise
        import sys
        import types

        stub = types.ModuleType("librosa")
        stub.filters = types.ModuleType("librosa.filters")
        stub.filters.mel = None
        sys.modules.update({"librosa": stub, "librosa.filters": stub.filters})
        from piper.train.vits.mel_processing import spectrogram_torch
        del sys.modules["librosa"], sys.modules["librosa.filters"]

SPEAKERS = 3
HPARAMS = dict(inter_channels=8, hidden_channels=16, filter_channels=24, n_heads=2, n_layers=1, kernel_size=3,
               p_dropout=0.1, resblock="1", resblock_kernel_sizes=[3],
               resblock_dilation_sizes=[[1, 3, 5]], upsample_rates=[8, 8],
               upsample_initial_channel=32, upsample_kernel_sizes=[16, 16], gin_channels=4)
VITS_JSON = {"train": {"segment_size": 2048},
             "data": {"sampling_rate": 16000, "filter_length": 256, "hop_length": 64, "n_speakers": SPEAKERS},
             "model": HPARAMS}
N_FFT, HOP = 256, 64
# Inputs stay under 32 frames (2048 samples): one bucket, so the host compiles one program per
# batch size for every test here (compilation, not computing, is what these tests spend).
spectrogram = jax.jit(vits_jax.linear_spectrogram, static_argnums=1)
posterior = jax.jit(vits_jax.posterior)
flow = jax.jit(vits_jax.flow, static_argnames="reverse")
decode = jax.jit(vits_jax.decode)
convert_speaker = jax.jit(vits_jax.convert_speaker)


def original_model(seed=0):
    """Piper's SynthesizerTrn with small posterior / flow blocks of the same classes; the flow's
    zero-initialised output convs get values and the decoder's conv_post is scaled so the
    waveform stays in tanh's linear range with a peak of a few tenths."""
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")     # torch's old weight_norm, as the original code uses
        m = vits_models.SynthesizerTrn(n_vocab=38, spec_channels=N_FFT // 2 + 1, segment_size=32,
                                       n_speakers=SPEAKERS, use_sdp=True, **HPARAMS)
        m.enc_q = vits_models.PosteriorEncoder(N_FFT // 2 + 1, 8, 16, 3, 1, 2, gin_channels=4)
        m.flow = vits_models.ResidualCouplingBlock(8, 16, 3, 1, 2, n_flows=2, gin_channels=4)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.startswith("flow.") and ".post." in name:
                p.copy_(0.1 * torch.randn_like(p))
        m.dec.conv_post.weight.mul_(6.0)
    return m.eval()


def speechlike(samples, seed=0, rate=16000):
    """A voiced-sounding test signal: harmonics of a gliding pitch under a syllable envelope."""
    rng = np.random.default_rng(seed)
    t = np.arange(samples) / rate
    f0 = 120 + 40 * np.sin(2 * np.pi * 1.5 * t + rng.uniform(0, 6))
    phase = 2 * np.pi * np.cumsum(f0) / rate
    x = sum(np.sin(k * phase) / k for k in range(1, 8))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t + rng.uniform(0, 6)) ** 2
    x = x * envelope + 0.01 * rng.normal(size=samples)
    return (0.4 * x / np.max(np.abs(x))).astype(np.float32)


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    """(torch model, VitsParams read from its G_1.pth + config.json, the folder)."""
    m = original_model()
    folder = tmp_path_factory.mktemp("vits-vc")
    torch.save({"model": m.state_dict(), "iteration": 1, "learning_rate": 2e-4}, folder / "G_1.pth")
    (folder / "config.json").write_text(json.dumps(VITS_JSON))
    return m, vits_jax.load(folder), folder


def reference_conversion(m, waveform, source, target, monkeypatch, noise=None):
    """Piper's spectrogram_torch + SynthesizerTrn.voice_conversion; the posterior's randn_like
    returns zeros (noise off) or the given draws (B, Z, F)."""
    monkeypatch.setattr(torch, "randn_like", lambda t, **k: torch.zeros_like(t) if noise is None
                        else torch.as_tensor(noise))
    y = torch.as_tensor(waveform)[None]
    spec = spectrogram_torch(y, N_FFT, 16000, HOP, N_FFT)
    with torch.no_grad():
        out, mask, _ = m.voice_conversion(spec, torch.tensor([spec.shape[-1]]), torch.tensor([source]),
                                          torch.tensor([target]))
    return out[0, 0].numpy(), spec


def test_linear_spectrogram_matches_piper_alone_and_padded(original):
    _, params, _ = original
    waves = [speechlike(n, seed=n) for n in (1000, 1601)]
    for w in waves:
        ref = spectrogram_torch(torch.as_tensor(w)[None], N_FFT, 16000, HOP, N_FFT)
        ours = spectrogram(jnp.asarray(w)[None], params.config)
        assert ours.shape[1] == len(w) // HOP == ref.shape[-1]
        assert_close(ours, nwc(ref), what="linear spectrogram")
    # a padded batch: each item reflected at its own end, its frames equal to the item alone
    padded = np.zeros((2, 1700), np.float32)
    for i, w in enumerate(waves):
        padded[i, :len(w)] = w
    batch = np.asarray(spectrogram(padded, params.config, np.array([1000, 1601])))
    for i, w in enumerate(waves):
        alone = np.asarray(spectrogram(w[None], params.config))[0]
        np.testing.assert_array_equal(batch[i, :len(w) // HOP], alone)


def test_conversion_matches_piper_voice_conversion(original, monkeypatch):
    m, params, _ = original
    wav = speechlike(1900 + 37)                             # not a whole number of frames
    ref, _ = reference_conversion(m, wav, 0, 2, monkeypatch)
    ours = vits_jax.voice_conversion(params, wav, source_speaker=0, target_speaker=2, noise_scale=0.0)
    assert ours.shape == ref.shape == (len(wav) // HOP * HOP,)         # frames equal, then samples
    peak = float(np.max(np.abs(ref)))
    assert 0.1 <= peak <= 0.9                                # tanh's linear range, not silence
    err = float(np.max(np.abs(ours - ref)))
    assert err <= 2e-5 * peak, f"waveform vs Piper's voice_conversion: {err:.2e} > 2e-5 x {peak:.3f}"
    # the bound catches a 0.1% gain error
    assert np.max(np.abs(1.001 * ours - ref)) > 2e-5 * peak
    # a different target speaker changes the voice
    other = vits_jax.voice_conversion(params, wav, source_speaker=0, target_speaker=1, noise_scale=0.0)
    assert np.max(np.abs(other - ours)) > 0.05 * peak


def test_posterior_noise_matches_piper_with_its_draws(original, monkeypatch):
    m, params, _ = original
    wav = speechlike(1900, seed=3)
    frames = len(wav) // HOP
    noise = np.random.default_rng(5).normal(size=(1, 8, frames)).astype(np.float32)   # torch layout
    ref, spec = reference_conversion(m, wav, 1, 0, monkeypatch, noise=noise)
    ours = convert_speaker(params, nwc(spec), None, None, source_speaker_id=1, target_speaker_id=0,
                           noise_scale=1.0, noise=noise.transpose(0, 2, 1))[0]
    peak = float(np.max(np.abs(ref)))
    assert peak >= 0.1 and float(np.max(np.abs(np.asarray(ours) - ref))) <= 2e-5 * peak


@pytest.fixture(scope="module")
def hf():
    model = hf_model(3, **small_config(num_speakers=SPEAKERS, speaker_embedding_size=6, spectrogram_bins=17,
                                       upsample_rates=[4, 4], upsample_kernel_sizes=[8, 8], num_hidden_layers=1,
                                       resblock_kernel_sizes=[3], resblock_dilation_sizes=[[1, 3]]))
    with torch.no_grad():
        model.decoder.conv_post.weight.mul_(1.5e2)    # conftest's 1e-3 leaves a near-silent waveform here
    cfg = VitsConfig.from_dict(model.config.to_dict())
    return model, VitsParams(to_flax(state_dict_numpy(model), cfg), cfg)


def test_stages_match_transformers_modules(hf, monkeypatch):
    model, params = hf
    monkeypatch.setattr(torch, "randn_like", lambda t, **k: torch.zeros_like(t))
    rng = np.random.default_rng(2)
    f, lengths = 23, np.array([23, 15])
    spec = np.abs(rng.normal(size=(2, f, 17))).astype(np.float32)
    mask = (np.arange(f)[None, :] < lengths[:, None]).astype(np.float32)[..., None]
    src, tgt = np.array([0, 1]), np.array([2, 0])
    with torch.no_grad():
        g_src = model.embed_speaker(torch.as_tensor(src)).unsqueeze(-1)
        g_tgt = model.embed_speaker(torch.as_tensor(tgt)).unsqueeze(-1)
        z, m_q, logs_q = model.posterior_encoder(ncw(spec), ncw(mask), g_src)
        z_p = model.flow(z, ncw(mask), g_src)
        z_hat = model.flow(z_p, ncw(mask), g_tgt, reverse=True)
        wave_1 = model.decoder((z_hat * ncw(mask))[1:, :, :15], g_tgt[1:])[0, 0].numpy()   # item 1 alone
        wave_0 = model.decoder(z_hat[:1] * ncw(mask)[:1], g_tgt[:1])[0, 0].numpy()
    latents, means, log_stds = posterior(params, spec, lengths, None, speaker_id=src)
    assert_close(means, nwc(m_q), what="posterior means")
    assert_close(log_stds, nwc(logs_q), what="posterior log stds")
    assert_close(latents, nwc(z), what="posterior latents (noise off)")
    forward = flow(params, latents, lengths, speaker_id=src)
    assert_close(forward, nwc(z_p), what="flow forward")
    back = flow(params, forward, lengths, speaker_id=tgt, reverse=True)
    assert_close(back, nwc(z_hat), what="flow reverse")
    wave = np.asarray(decode(params, back, lengths, speaker_id=tgt))
    peak = float(np.max(np.abs(wave_0)))
    assert peak >= 0.1
    assert_close(wave[0], wave_0, tol=2e-5, what="decoder")
    hop = params.config.hop_length
    assert_close(wave[1, :15 * hop], wave_1[:15 * hop], tol=2e-5, what="decoder, padded item vs alone")
    whole = convert_speaker(params, spec, lengths, None, source_speaker_id=src, target_speaker_id=tgt)
    assert_close(whole[0], wave_0, tol=2e-5, what="convert_speaker")
    # the flow is volume preserving and exactly invertible
    assert_close(flow(params, forward, lengths, speaker_id=src, reverse=True), latents,
                 what="flow reverse(forward)")
    # vmap over items: each alone as a batch of one, equal to the batch
    one = jax.jit(jax.vmap(lambda x, n, s: vits_jax.flow(params, x[None], n[None], speaker_id=s)[0]))
    assert_close(one(latents, lengths, src), forward, tol=1e-6, what="vmap of flow")


def test_gradients_through_flow_reverse_and_decode_match_finite_differences(hf):
    _, params = hf
    rng = np.random.default_rng(4)
    hop = params.config.hop_length
    with jax.enable_x64(True):               # float64 end to end: central differences to ~1e-9
        params64 = jax.tree.map(lambda x: jnp.asarray(x, jnp.float64), params)
        latents = jnp.asarray(0.5 * rng.normal(size=(1, 12, 8)), jnp.float64)
        weights = jnp.asarray(rng.normal(size=(1, 12 * hop)), jnp.float64)
        lengths = np.array([10])

        @jax.jit
        def loss(x):
            z = vits_jax.flow(params64, x, lengths, speaker_id=1, reverse=True)
            wave = vits_jax.decode(params64, z, lengths, speaker_id=1)
            assert wave.dtype == jnp.float64
            return jnp.sum(weights * wave)

        grad = jax.grad(loss)(latents)
        assert np.all(np.asarray(grad[0, 10:]) == 0)        # masked frames: no gradient
        h = 1e-6
        for idx in [(0, 0, 0), (0, 4, 3), (0, 9, 7), (0, 6, 1)]:
            e = jnp.zeros_like(latents).at[idx].set(1.0)
            numeric = float((loss(latents + h * e) - loss(latents - h * e)) / (2 * h))
            assert abs(numeric - float(grad[idx])) <= 1e-6 * max(1.0, abs(numeric)), (idx, numeric, grad[idx])
        assert abs(float(grad[0, 4, 3])) > 1e-3             # a gradient that is not trivially zero
        direction = jnp.asarray(rng.normal(size=latents.shape), jnp.float64)
        numeric = float((loss(latents + h * direction) - loss(latents - h * direction)) / (2 * h))
        assert abs(numeric - float(jnp.vdot(grad, direction))) <= 1e-6 * max(1.0, abs(numeric))


def test_batch_padding_does_not_leak_and_same_speaker_keeps_frames(original):
    _, params, _ = original
    waves = [speechlike(n, seed=n) for n in (2000, 1800, 1230)]
    keys = jax.random.split(jax.random.key(7), 3)
    batch = vits_jax.voice_conversion(params, waves, source_speaker=[0, 1, 2], target_speaker=1,
                                      key=keys, noise_scale=0.7)
    for i, w in enumerate(waves):
        alone = vits_jax.voice_conversion(params, w, source_speaker=i, target_speaker=1, key=keys[i][None],
                                          noise_scale=0.7)
        assert batch[i].shape == alone.shape == (len(w) // HOP * HOP,)
        assert_close(batch[i], alone, tol=1e-6, what=f"batch item {i} vs alone")
    # exact windows: a 150-frame input, 16 output frames at a time, gives the whole conversion's samples
    left, right = vits_jax.core.conversion.conversion_field(params.config)
    assert 0 < left + right < 150 - 16
    long = speechlike(150 * HOP + 13, seed=9)
    whole = vits_jax.voice_conversion(params, long, source_speaker=2, target_speaker=0, key=keys[0], noise_scale=0.7)
    windowed = vits_jax.voice_conversion(params, long, source_speaker=2, target_speaker=0, key=keys[0],
                                         noise_scale=0.7, window_frames=16)
    assert windowed.shape == whole.shape == (150 * HOP,)
    assert_close(windowed, whole, tol=1e-6, what="windows vs whole")
    compiled = compilation_count()
    same = vits_jax.voice_conversion(params, waves[1], source_speaker=2, target_speaker=2, noise_scale=0.0)
    assert same.size // HOP == len(waves[1]) // HOP
    # speakers, noise scale, key and length within the bucket are traced: nothing recompiles
    vits_jax.voice_conversion(params, waves[2][:1500], source_speaker=1, target_speaker=0, noise_scale=0.3,
                              key=jax.random.key(3))
    assert compilation_count() == compiled


def _pruned(sd):
    return {k: v for k, v in sd.items() if not k.startswith(("enc_q.", "dp.post_", "dp.flows.1."))}


def test_voices_that_cannot_convert_and_bad_inputs_say_why(original, hf, tmp_path):
    m, params, folder = original
    torch.save(_pruned(m.state_dict()), tmp_path / "voice.pth")
    pruned = vits_jax.load(tmp_path / "voice.pth", config=str(folder / "config.json"))
    wav = speechlike(2000)
    with pytest.raises(VoiceConversionError, match="(?s)no posterior encoder.*training checkpoint"):
        vits_jax.voice_conversion(pruned, wav, source_speaker=0, target_speaker=1)
    single = VitsParams(params.tree, dataclasses.replace(params.config, num_speakers=1))
    with pytest.raises(VoiceConversionError, match="(?s)single speaker.*multi-speaker"):
        vits_jax.voice_conversion(single, wav, source_speaker=0, target_speaker=0)
    bad = [(dict(waveform=np.zeros((2, 2, 500), np.float32)), "shape"), (dict(waveform=(wav * 32768).astype(np.int16)), "32768"),
           (dict(waveform=wav[:50]), "too short"), (dict(waveform=np.full(500, np.nan, np.float32)), "NaN"),
           (dict(source_speaker=3), "out of range"), (dict(target_speaker="bob"), "speaker id"),
           (dict(noise_scale=-1.0), "noise_scale"), (dict(waveform=[]), "no waveforms"),
           (dict(source_speaker=[0, 1]), "2 speakers for 1")]
    for change, message in bad:
        kwargs = {**dict(waveform=[wav] if "source_speaker" in change and np.ndim(change["source_speaker"])
                         else wav, source_speaker=0, target_speaker=1, noise_scale=0.0), **change}
        with pytest.raises(VoiceConversionError, match=message):
            vits_jax.voice_conversion(params, kwargs.pop("waveform"), **kwargs)


def test_voice_convert_takes_names_and_resamples(original):
    _, params, folder = original
    voice = vits_jax.Voice.load(folder, text=False)
    assert voice.tokenizer is None
    voice = dataclasses.replace(voice, speakers={"ana": 0, "ben": 2})
    wav = speechlike(2000)
    direct = vits_jax.voice_conversion(params, wav, source_speaker=0, target_speaker=2, noise_scale=0.0)
    by_name = voice.convert(wav, source_speaker="ana", target_speaker="ben", noise_scale=0.0)
    np.testing.assert_array_equal(by_name, direct)
    wav_22k = audio.resample(wav, 16000, 22050)
    resampled = voice.convert(wav_22k, source_speaker="ana", target_speaker=2, sampling_rate=22050,
                              noise_scale=0.0)
    assert resampled.size == len(audio.resample(wav_22k, 22050, 16000)) // HOP * HOP
    with pytest.raises(ValueError, match="no speaker of that name"):
        voice.convert(wav, source_speaker="cleo", target_speaker=0)


def test_cli_vc(original, hf, tmp_path, capsys):
    _, params, folder = original
    wav = speechlike(2700, rate=22050)
    audio.write_wav(tmp_path / "in.wav", wav, 22050)
    out = tmp_path / "out.wav"
    argv = ["vc", str(tmp_path / "in.wav"), "-m", str(folder), "--source-speaker", "1", "--target-speaker", "0",
            "-o", str(out), "--noise-scale", "0", "--no-cache"]
    assert cli.main(argv) == 0
    got, rate = audio.read_wav(out)
    assert rate == 16000
    read, _ = audio.read_audio(tmp_path / "in.wav")
    want = vits_jax.voice_conversion(params, audio.resample(read, 22050, 16000), source_speaker=1,
                                     target_speaker=0, noise_scale=0.0)
    assert got.size == want.size and np.max(np.abs(got - np.clip(want, -1, 1))) <= 1.5 / 32768
    assert "22050 Hz" in capsys.readouterr().err
    # a single-speaker voice: refused, saying why and what would work
    model, _ = hf
    one = hf_model(1, **small_config())
    one.save_pretrained(tmp_path / "one")
    assert cli.main(["vc", str(tmp_path / "in.wav"), "-m", str(tmp_path / "one"), "--source-speaker", "0",
                     "--target-speaker", "0", "-o", str(tmp_path / "x.wav"), "--no-cache"]) == 1
    err = capsys.readouterr().err
    assert "error:" in err and "single speaker" in err and "multi-speaker" in err
    assert cli.main(argv[:1] + [str(tmp_path / "missing.wav")] + argv[2:]) == 1
    assert "no such file" in capsys.readouterr().err
    assert cli.main([a if a != "1" else "9" for a in argv]) == 1       # --source-speaker 9
    assert "out of range" in capsys.readouterr().err
    assert not (tmp_path / "x.wav").exists()
