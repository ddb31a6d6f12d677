"""python -m convert SRC DST: a VITS voice (transformers folder, Piper .onnx, original VITS or Piper
checkpoint) -> a vits_jax checkpoint folder. Nothing is replaced without --overwrite."""

import argparse
import sys

from vits_jax.app.common import run_command
from vits_jax.voice.checkpoint import convert_weights


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m convert", description=__doc__)
    parser.add_argument("src", help="transformers model folder, Piper .onnx voice (or its folder), original "
                                    "VITS G_*.pth / Piper .ckpt, or a hub id")
    parser.add_argument("dst", help="output folder for the converted checkpoint (must not exist)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace DST if it is a vits-jax checkpoint (anything else is never replaced)")
    parser.add_argument("--config", metavar="CONFIG", default=None,
                        help="training config.json of an original VITS or Piper checkpoint, when not beside it")
    args = parser.parse_args(argv)

    def body() -> int:
        params = convert_weights(args.src, args.dst, overwrite=args.overwrite, config=args.config)
        print(f"converted {params.num_parameters():,} parameters -> {args.dst}")
        return 0
    # the `vits-jax` error convention: `error:` line and status 1; Ctrl-C 130, saying what it kept
    return run_command(body, interrupted="error: interrupted; the destination was not changed")


if __name__ == "__main__":
    sys.exit(main())
