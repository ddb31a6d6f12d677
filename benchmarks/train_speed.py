"""Training speed: steps per second of the jitted train step (generator + discriminator update),
for the tiny test config and the MMS-eng architecture, at batch 8 and 16, on the default device.

    python benchmarks/train_speed.py [--configs tiny,mms] [--batches 8,16] [--steps 5]
        [--seconds 6.0] [--tokens-per-second 12] [--wait-quiet 600]

Data are synthetic and shaped like fine-tuning clips: each item `--seconds` of audio (noise) with
`--tokens-per-second` tokens of text (MMS-eng reads ~12 characters per second). The shapes are
fixed, so only the first step compiles; compile time is reported apart. The MMS size trains
against VITS' full discriminator (5 periods + scale, 46.7 M parameters); the tiny config against
the same structure with widths / 16, as in the tests. Both use VITS' 32-frame decoder window.
Each row ends with the cores other processes used while it ran (NOT VALID above --max-other).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import add_load_arguments, snapshot, start_load  # noqa: E402

# The tests' training config: hop 64, 129 bins, hidden 16 (tests/conftest.py TRAIN_TINY, spelled
# out here because importing conftest would also switch the matmul precision to "highest").
TINY = dict(vocab_size=38, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, window_size=2,
            ffn_dim=24, ffn_kernel_size=3, flow_size=8, spectrogram_bins=129,
            upsample_initial_channel=32, upsample_rates=[8, 8], upsample_kernel_sizes=[16, 16],
            resblock_kernel_sizes=[3, 5], resblock_dilation_sizes=[[1, 3], [1, 2]],
            duration_predictor_filter_channels=12, duration_predictor_flow_bins=4,
            duration_predictor_num_flows=2, depth_separable_num_layers=2, prior_encoder_num_flows=2,
            prior_encoder_num_wavenet_layers=2, posterior_encoder_num_wavenet_layers=2,
            wavenet_kernel_size=3)


def peak_rss_mb() -> float:
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", default="tiny,mms")
    parser.add_argument("--batches", default="8,16")
    parser.add_argument("--steps", type=int, default=5, help="timed steps after the compiling one")
    parser.add_argument("--seconds", type=float, default=6.0, help="audio per item")
    parser.add_argument("--tokens-per-second", type=float, default=12.0)
    add_load_arguments(parser)
    args = parser.parse_args()
    load = start_load(args)

    import jax
    import jax.numpy as jnp

    from vits_jax import VitsConfig
    from vits_jax.training import DiscriminatorConfig, TrainConfig, init_state, make_train_step
    from vits_jax.training.spectrogram import SpectrogramConfig
    from vits_jax.training.step import Batch

    print(f"jax {jax.__version__}, device: {jax.devices()[0]}")
    print(f"{'config':6} {'batch':>5} {'generator':>11} {'discrim.':>11} {'compile s':>10} {'s/step':>8} {'steps/s':>8} "
          f"{'audio s/s':>9} {'peak RSS MB':>11}")
    for name in args.configs.split(","):
        config = VitsConfig.from_dict(TINY) if name == "tiny" else VitsConfig()
        spec = SpectrogramConfig.from_vits(config, n_mels=40 if name == "tiny" else 80)
        disc = DiscriminatorConfig().scaled(16) if name == "tiny" else DiscriminatorConfig()
        train = TrainConfig(spectrogram=spec, discriminator=disc)
        hop = config.hop_length
        frames = int(args.seconds * config.sampling_rate) // hop
        tokens = max(1, int(args.seconds * args.tokens_per_second))
        state = init_state(config, train, jax.random.key(0))
        n_params = sum(x.size for x in jax.tree.leaves(state.generator))
        n_disc = sum(x.size for x in jax.tree.leaves(state.discriminator))
        step = make_train_step(config, train, donate=True)
        for batch_size in map(int, args.batches.split(",")):
            since = snapshot()
            rng = np.random.default_rng(batch_size)
            batch = Batch(jnp.asarray(rng.integers(1, config.vocab_size, (batch_size, tokens)), jnp.int32),
                          jnp.full((batch_size,), tokens, jnp.int32),
                          jnp.asarray(0.1 * rng.standard_normal((batch_size, frames * hop)), jnp.float32),
                          jnp.full((batch_size,), frames * hop, jnp.int32))
            t0 = time.perf_counter()
            state, metrics = step(state, batch, jax.random.key(0))
            jax.block_until_ready(metrics)
            compile_s = time.perf_counter() - t0
            times = []
            for i in range(args.steps):
                t = time.perf_counter()
                state, metrics = step(state, batch, jax.random.key(i + 1))
                jax.block_until_ready(metrics)
                times.append(time.perf_counter() - t)
            per_step = float(np.median(times))
            print(f"{name:6} {batch_size:5d} {n_params:11,d} {n_disc:11,d} {compile_s:10.1f} {per_step:8.3f} "
                  f"{1 / per_step:8.2f} {batch_size * args.seconds / per_step:9.1f} {peak_rss_mb():11.0f}  "
                  f"{load.note(since)}", flush=True)
            assert all(np.isfinite(float(v)) for v in metrics.values()), metrics
    load.report()


if __name__ == "__main__":
    main()
