"""`vits-jax train -m MODEL --data MANIFEST --out DIR`: fine-tune a voice (vits_jax/training/loop.py)."""

from __future__ import annotations

import argparse
import os

from .common import CliError, add_cache_options, finite, setup_compilation_cache


def cmd_train(args) -> int:
    from ..training.loop import RunConfig, train

    finite("--lr", args.lr, positive=True)
    if args.max_grad_norm is not None:
        finite("--max-grad-norm", args.max_grad_norm, positive=True)
    for name in ("steps", "batch_size", "save_every", "sample_every", "keep", "segment_frames",
                 "discriminator_scale", "n_mels"):
        if getattr(args, name) < 1:
            raise CliError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if not 0 <= args.seed < 2 ** 32:
        raise CliError(f"--seed must be in [0, 2**32), got {args.seed}")
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise CliError(f"--out {args.out} exists and is not a folder")
    if not args.no_cache:
        setup_compilation_cache(args.cache_dir)
    run = RunConfig(model=args.model, data=args.data, out=args.out, steps=args.steps,
                    batch_size=args.batch_size, learning_rate=args.lr, save_every=args.save_every,
                    sample_every=args.sample_every, keep=args.keep, seed=args.seed,
                    max_seconds=args.max_seconds, segment_frames=args.segment_frames, n_mels=args.n_mels,
                    discriminator_scale=args.discriminator_scale,
                    discriminator=args.discriminator, max_grad_norm=args.max_grad_norm,
                    sample_text=args.sample_text, fast_compile=args.fast_compile, devices=args.devices,
                    compute_dtype=None if args.compute_dtype == "float32" else args.compute_dtype)
    train(run)
    return 0


def register(subparsers) -> argparse.ArgumentParser:
    """Adds `train` to an argparse subparsers object; returns its parser."""
    p = subparsers.add_parser(
        "train", help="fine-tune a model on recordings",
        description="Train a model's generator (with a fresh discriminator) on a manifest of "
                    "recordings: a CSV with header audio,text[,speaker] or a JSONL file with those "
                    "keys, audio paths relative to the manifest. Writes losses.csv, samples/, "
                    "checkpoints/ and, at the end, OUT/model (usable with `say -m OUT/model`). "
                    "Running again with the same --out resumes from the newest checkpoint.")
    p.add_argument("--model", "-m", required=True,
                    help="the model to start from: a converted folder, a transformers folder or a hub id")
    p.add_argument("--data", required=True, metavar="MANIFEST",
                    help="CSV or JSONL manifest, or a folder of NAME.wav + NAME.txt pairs (or holding "
                         "a metadata.csv)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--steps", type=int, default=1000, help="total training steps (default: 1000)")
    p.add_argument("--batch-size", type=int, default=8, help="clips per step (default: 8)")
    p.add_argument("--lr", type=float, default=2e-4, help="learning rate of both networks (default: 2e-4)")
    p.add_argument("--save-every", type=int, default=500, metavar="N",
                    help="write a training checkpoint every N steps (default: 500)")
    p.add_argument("--keep", type=int, default=3, metavar="K", help="training checkpoints kept (default: 3)")
    p.add_argument("--sample-every", type=int, default=500, metavar="N",
                    help="speak the sample text into OUT/samples every N steps (default: 500)")
    p.add_argument("--sample-text", default=None, help="default: the first clip's text")
    p.add_argument("--seed", type=int, default=0, help="seed of data order, noise and discriminator init")
    p.add_argument("--max-seconds", type=float, default=20.0, help="skip longer clips (default: 20)")
    p.add_argument("--segment-frames", type=int, default=32,
                    help="decoder training window in frames (default: 32, VITS')")
    p.add_argument("--n-mels", type=int, default=80, help="mel bands of the mel loss (default: 80)")
    p.add_argument("--max-grad-norm", type=float, default=None, help="clip gradients to this global norm")
    p.add_argument("--discriminator", default=None, metavar="FILE",
                    help="start the discriminator from these PyTorch weights (VITS' D_*.pth, a state "
                         "dict .pth/.bin or .safetensors); default: random")
    p.add_argument("--discriminator-scale", type=int, default=1, metavar="D",
                    help="divide the discriminator's widths by D (default: 1, VITS' discriminator)")
    p.add_argument("--compute-dtype", choices=("float32", "bfloat16"), default="float32",
                    help="dtype of the decoder and discriminator computations (params, optimiser state "
                         "and losses stay float32; default: float32)")
    p.add_argument("--devices", type=int, default=None, metavar="N",
                    help="train data-parallel on the first N local devices (default: all; the batch "
                         "size must be a multiple of N)")
    p.add_argument("--fast-compile", action="store_true",
                    help="compile at low XLA optimisation: quicker start, slower steps (smoke tests)")
    add_cache_options(p)
    p.set_defaults(func=cmd_train)
    return p
