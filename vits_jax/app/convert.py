"""`vits-jax convert SRC DST`: any voice -> a converted vits-jax folder (weights conversion)."""

from __future__ import annotations

import argparse

from .common import CONFIG_HELP, VOICE_HELP


def cmd_convert(args) -> int:
    from ..voice.checkpoint import convert_weights

    params = convert_weights(args.src, args.dst, overwrite=args.overwrite, config=args.config)
    print(f"converted {params.num_parameters():,} parameters -> {args.dst}")
    return 0


def register(subparsers) -> argparse.ArgumentParser:
    """Adds `convert` to an argparse subparsers object; returns its parser."""
    p = subparsers.add_parser(
        "convert", help="convert any voice to a vits-jax checkpoint",
        description="Convert a voice (Piper .onnx, transformers folder or hub id, original VITS or "
                    "Piper training checkpoint) into a vits-jax checkpoint folder. The source is "
                    "never touched; an existing DST is replaced only with --overwrite, and only "
                    "when it is a vits-jax checkpoint.")
    p.add_argument("src", metavar="SRC", help=VOICE_HELP)
    p.add_argument("dst", metavar="DST", help="output folder")
    p.add_argument("--config", default=None, metavar="FILE", help=CONFIG_HELP)
    p.add_argument("--overwrite", action="store_true",
                      help="replace DST if it is a vits-jax checkpoint (anything else is refused)")
    p.set_defaults(func=cmd_convert)
    return p
