"""python -m convert SRC_DIR DST_DIR: a transformers VITS folder -> a vits_jax checkpoint folder."""

import argparse
import sys

from . import ConversionError, convert_folder


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m convert", description=__doc__)
    parser.add_argument("src", help="transformers model folder (config.json + model.safetensors or pytorch_model.bin)")
    parser.add_argument("dst", help="output folder for the converted checkpoint")
    args = parser.parse_args(argv)
    try:
        params = convert_folder(args.src, args.dst)
    except (ConversionError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"converted {params.num_parameters():,} parameters -> {args.dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
