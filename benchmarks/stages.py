"""Per-stage profile of one utterance: where vits-jax's time goes, stage by stage, against the
machine's measured conv peak. Used by benchmarks/piper.py and benchmarks/speed.py (`profile`).

Stages, each jitted alone on the utterance's own shapes (batch 1, its token bucket, its frame
bucket) and timed as the median of `repeats` runs: the text encoder, the duration predictor, the
flow (reverse, over the frames rendered), the decoder's conv_pre, each upsampling stage (its
transposed conv and residual blocks) and conv_post. Then the two programs synthesize really runs
(encode, render) and the whole `synthesize` call: what the whole call spends beyond its two
programs is the host's work and the dispatches (argument checks, the durations' transfer,
slicing). FLOPs are XLA's own count for each compiled stage (cost analysis), so GFLOP/s compare
stages of any kind; "of peak" is that rate over a large 3x256x256 conv's rate on this machine.
Frames: those the durations need vs those rendered (the frame bucket).
"""

from __future__ import annotations

import numpy as np

from common import conv_peak_gflops, median_time


def _flops(compiled) -> float:
    analysis = compiled.cost_analysis()
    if isinstance(analysis, (list, tuple)):
        analysis = analysis[0]
    return float((analysis or {}).get("flops", 0.0))


def _stage(fn, args, repeats: int) -> tuple[float, float]:
    """(median seconds, XLA's FLOPs) of jit(fn)(*args)."""
    import jax

    compiled = jax.jit(fn).lower(*args).compile()
    jax.block_until_ready(compiled(*args))
    return median_time(lambda: jax.block_until_ready(compiled(*args)), repeats), _flops(compiled)


def profile(params, ids, repeats: int = 5, peak: float | None = None,
            speaking_rate: float | None = None) -> tuple[list[tuple], dict]:
    """One utterance `ids` (T,) at noise 0 (and `speaking_rate`) -> (rows (stage, seconds, GFLOP), facts): the stages in
    the module docstring, then "encode program", "render program", "host and dispatch" and
    "synthesize (all)". facts: tokens, token bucket, frames needed / rendered, conv peak GFLOP/s."""
    import jax
    import jax.numpy as jnp

    from vits_jax import synthesize
    from vits_jax.nn import alignment
    from vits_jax.nn.hifigan import VitsHifiGan, _masked
    from vits_jax.nn.layers import leaky_relu
    from vits_jax.nn.model import VitsModel
    from vits_jax.synth import synthesis

    cfg, tree = params.config, params.tree
    model = VitsModel(cfg)
    t = len(ids)
    tb = synthesis.bucket(t, synthesis.MIN_TOKEN_BUCKET)
    padded = np.zeros((1, tb), np.int32)
    padded[0, :t] = ids
    mask = (np.arange(tb) < t).astype(np.float32)[None, :, None]                  # (1, Tb, 1)
    rows = []

    def add(name, fn, *args):
        seconds, flops = _stage(fn, args, repeats)
        rows.append((name, seconds, flops / 1e9))

    add("text encoder", lambda p, i, m: model.apply({"params": p}, i, m, method=VitsModel.encode_text),
        tree, padded, mask)
    hidden, means, log_variances = jax.jit(
        lambda p, i, m: model.apply({"params": p}, i, m, method=VitsModel.encode_text))(tree, padded, mask)
    noise = jnp.zeros((1, tb, 2), jnp.float32)
    scale = jnp.zeros((1,), jnp.float32)
    add("duration predictor", lambda p, h, m, n, s: model.apply(
        {"params": p}, h, m, None, n, s, method=VitsModel.predict_log_durations), tree, hidden, mask, noise,
        scale[:, None, None])

    out = synthesize(params, ids, noise_scale=0.0, noise_scale_duration=0.0, speaking_rate=speaking_rate)
    needed = int(out.durations.sum())
    frames = synthesis.frame_bucket(needed)
    durations = jnp.asarray(np.pad(out.durations[0], (0, tb - t)).astype(np.float32))[None]
    prior = alignment.expand(means, durations, frames, 0)                          # (1, F, Z): noise 0
    fmask = alignment.frame_mask(alignment.output_lengths(durations), frames, prior.dtype)
    add("flow", lambda p, z, m: model.apply({"params": p}, z, m, None, reverse=True, method=VitsModel.run_flow),
        tree, prior, fmask)

    decoder = VitsHifiGan(cfg)
    dec = tree["decoder"]
    n = len(cfg.resblock_kernel_sizes)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(1, frames, cfg.flow_size)).astype(np.float32))
    add("decoder conv_pre", lambda p, z: decoder.apply({"params": p}, z, method=lambda d, z: d.conv_pre(z)), dec, x)
    x = decoder.apply({"params": dec}, x, method=lambda d, z: d.conv_pre(z))
    for i, rate in enumerate(cfg.upsample_rates):
        def stage(p, z, i=i):
            def body(d, z):
                z = d.upsampler[i](leaky_relu(z, cfg.leaky_relu_slope))
                return sum(d.resblocks[i * n + j](z, None) for j in range(n)) / n
            return decoder.apply({"params": p}, z, method=body)
        add(f"decoder stage {i + 1} (x{rate}, {x.shape[-1] // 2} ch)", stage, dec, x)
        x = jax.jit(stage)(dec, x)
    add("decoder conv_post", lambda p, z: decoder.apply(
        {"params": p}, z, method=lambda d, z: _masked(jnp.tanh(d.conv_post(leaky_relu(z, 0.01))), None)), dec, x)

    p, encode_args, options = synthesis.stage_arguments(params, 1, tb)
    rate = np.full((1,), speaking_rate or cfg.speaking_rate, np.float32)
    encode_args = dict(encode_args, ids=padded, attention_mask=mask[..., 0], noise_scale_duration=scale,
                       speaking_rate=rate)
    options = dict(options, noise_scale=scale)
    encoded = synthesis.encode_program(p, **encode_args)
    add("encode program", lambda q, a: synthesis.encode_program(q, **a), p, encode_args)
    add("render program", lambda q, e, k, o: synthesis.render_program(q, e, k, **o, num_frames=frames),
        p, encoded, encode_args["key"], options)
    whole = median_time(lambda: synthesize(params, ids, noise_scale=0.0, noise_scale_duration=0.0, speaking_rate=speaking_rate), repeats)
    programs = rows[-2][1] + rows[-1][1]
    rows.append(("host and dispatch", max(whole - programs, 0.0), 0.0))
    rows.append(("synthesize (all)", whole, rows[-3][2] + rows[-2][2]))
    peak = conv_peak_gflops() if peak is None else peak
    return rows, dict(tokens=t, token_bucket=tb, frames_needed=needed, frames_rendered=frames, peak=peak)


def print_profile(title: str, rows, facts, note: str = "") -> None:
    print(f"\nper-stage profile: {title}: {facts['tokens']} tokens (bucket {facts['token_bucket']}), "
          f"frames needed {facts['frames_needed']}, rendered {facts['frames_rendered']} "
          f"(+{facts['frames_rendered'] / max(facts['frames_needed'], 1) - 1:.0%}); conv peak "
          f"{facts['peak']:.0f} GFLOP/s{'; ' + note if note else ''}")
    total = rows[-1][1]
    print(f"{'stage':<36}{'ms':>9}{'share':>8}{'GFLOP':>9}{'GFLOP/s':>9}{'of peak':>9}")
    for name, seconds, gflop in rows:
        rate = gflop / seconds if seconds and gflop else 0.0
        print(f"{name:<36}{seconds * 1e3:>9.1f}{seconds / total:>8.0%}{gflop:>9.2f}"
              f"{rate:>9.1f}{rate / facts['peak']:>9.0%}")
