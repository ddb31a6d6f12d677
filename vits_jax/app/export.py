"""`vits-jax export VOICE DIR`: a converted voice folder plus the programs `say` runs, serialized with
`jax.export`, so `say -m DIR` (and `Voice.load(DIR)`) loads them instead of tracing the model.

The work is the library's (`vits_jax.synth.exported.export_voice`); this module parses, checks and
prints. DIR is assembled beside itself and renamed into place at the end (after the Ctrl-C check).
"""

from __future__ import annotations

import argparse

from . import common
from .common import CONFIG_HELP, CliError, VOICE_HELP


def _names(value: str) -> list[str]:
    names = [v.strip() for v in value.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(f"invalid list {value!r}: expected names separated by commas")
    return names


def _sizes(value: str) -> list[int]:
    try:
        sizes = [int(v) for v in value.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid list {value!r}: expected token counts separated by "
                                         "commas, e.g. 16,32,64") from None
    if any(s < 1 for s in sizes):
        raise argparse.ArgumentTypeError(f"invalid list {value!r}: token counts must be positive")
    return sizes


def cmd_export(args) -> int:
    import sys

    from ..synth.exported import check_buckets, check_platforms, export_voice

    try:                                 # option errors before any weights are read
        platforms = check_platforms(args.platforms)
    except ValueError as e:
        raise CliError(f"--platforms: {e}") from None
    try:
        buckets = None if args.buckets is None else check_buckets(args.buckets)
    except ValueError as e:
        raise CliError(f"--buckets: {e}") from None
    manifest = export_voice(args.voice, args.dir, platforms=platforms, buckets=buckets,
                            overwrite=args.overwrite, config=args.config, progress=True,
                            before_replace=common.INTERRUPT.commit)
    programs = manifest["programs"]
    print(f"exported {len(programs)} program{'s' if len(programs) != 1 else ''} for {', '.join(manifest['platforms'])} (token buckets "
          f"{', '.join(map(str, manifest['token_buckets']))}, jax {manifest['jax']}) -> {args.dir}",
          file=sys.stderr)
    return 0


def register(subparsers) -> argparse.ArgumentParser:
    """Adds `export` to an argparse subparsers object; returns its parser."""
    p = subparsers.add_parser(
        "export", help="a voice folder with its programs exported (jax.export): no tracing at start-up",
        description="Write VOICE as a converted vits-jax folder DIR (as `convert`) plus the programs "
                    "`say` runs for it, serialized with jax.export for each platform, and a manifest "
                    "(platforms, shapes, jax version). `say -m DIR` then loads those programs "
                    "instead of tracing the model; other shapes, platforms or jax versions run the "
                    "usual jitted programs. DIR must be absent or empty; an existing one is replaced "
                    "only with --overwrite, and only when it is a vits-jax folder.")
    p.add_argument("voice", metavar="VOICE", help=VOICE_HELP)
    p.add_argument("dir", metavar="DIR", help="output folder")
    p.add_argument("--config", default=None, metavar="FILE", help=CONFIG_HELP)
    p.add_argument("--platforms", type=_names, default=None, metavar="cpu[,cuda,tpu]",
                   help="platforms to lower the programs for, comma-separated: cpu, cuda, rocm, tpu "
                        "(no such device is needed; default: this machine's)")
    p.add_argument("--buckets", type=_sizes, default=None, metavar="N[,N...]",
                   help="token buckets to export, comma-separated (default: every bucket up to "
                        "say's --max-tokens default: 16, 24, 32, 48, 64, 96, 128, 192, 256)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace DIR if it is a vits-jax folder (anything else is refused)")
    p.set_defaults(func=cmd_export)
    return p
