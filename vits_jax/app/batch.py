"""`vits-jax batch MANIFEST --out DIR [-m MODEL]`: speak a manifest of texts into an audio corpus.

    vits-jax batch texts.csv --out corpus/ -m ./mms-tts-eng --seed 1 --rate-range 0.9,1.2
    vits-jax batch texts.jsonl --out corpus/ -m ./vctk --speakers random --mix-range 0.2,0.5 --format flac
    vits-jax batch texts.csv --out corpus/ -m ./mms-tts-eng --dry-run     # the plan, from stage 1 only
    vits-jax batch texts.csv --out corpus/ -m en_US-joe-medium.onnx       # a Piper voice

Running again with the same --out resumes: finished rows are kept, the rest is spoken, and the
folder ends as an uninterrupted run would have left it (see vits_jax/synth/corpus.py). On a CPU each
frame bucket compiles its own program once; set JAX_COMPILATION_CACHE_DIR (with
JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0) to keep them for the next run.

`register(subparsers)` adds the subcommand to the `vits-jax` parser; `python -m vits_jax.app.batch
ARGS` runs it alone. User errors print `error: ...` on stderr and exit with status 1.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Optional, Sequence

from .common import (VOICE_HELP, Parser, add_cache_options, add_device_options, local_devices, run_command,
                     setup_compilation_cache)

__all__ = ["register", "cmd_batch", "main"]


def _pair(text: str) -> tuple[float, float]:
    """'0.9,1.2' or '1.1' -> (low, high)."""
    try:
        parts = [float(p) for p in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH or one number, got {text!r}") from None
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH or one number, got {text!r}")
    return parts[0], parts[1]


def _speakers(text: str):
    if text in ("all", "random"):
        return text
    try:
        return [int(s) for s in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected all, random or ids such as 0,3,5, got {text!r}") from None


def register(subparsers) -> argparse.ArgumentParser:
    """Adds `batch` to an argparse subparsers object; returns its parser."""
    p = subparsers.add_parser(
        "batch", help="speak a manifest of texts into an audio corpus",
        description="Speak every row of MANIFEST (CSV/TSV with a header, or JSONL; fields id, text and "
                    "optionally speaker, rate, noise_scale, noise_scale_duration, seed) into "
                    "DIR/audio/<id>.wav, listing them in DIR/manifest.jsonl and the rows that cannot be "
                    "spoken in DIR/skipped.jsonl. Run again with the same --out to resume.")
    p.add_argument("manifest", metavar="MANIFEST", help="a .csv, .tsv or .jsonl file")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (new, empty, or an earlier run's)")
    p.add_argument("-m", "--model", default=None,
                   help=f"{VOICE_HELP} (default: the default voice, as `say`)")
    p.add_argument("--seed", type=int, default=0, help="run seed: a row without its own seed gets "
                   "blake2b(seed, id) (default: 0)")
    p.add_argument("--batch-size", type=int, default=16, metavar="N", help="rows per batch (default: 16)")
    p.add_argument("--format", choices=("wav", "flac"), default="wav", help="audio format (default: wav)")
    p.add_argument("--speakers", type=_speakers, default=None, metavar="all|random|LIST",
                   help="multi-speaker models: every row once per speaker (all, or ids 0,3,5), or one "
                        "random speaker per row (random); default: the row's speaker column")
    p.add_argument("--rate-range", type=_pair, default=None, metavar="LOW,HIGH",
                   help="speaking rate drawn per row (a row's rate column wins)")
    p.add_argument("--noise-range", type=_pair, default=None, metavar="LOW,HIGH",
                   help="noise_scale drawn per row")
    p.add_argument("--noise-duration-range", type=_pair, default=None, metavar="LOW,HIGH",
                   help="noise_scale_duration drawn per row")
    p.add_argument("--mix-range", type=_pair, default=None, metavar="LOW,HIGH",
                   help="mix each row's speaker with a second random one (slerp of embeddings, the "
                        "second's weight drawn in this range)")
    add_device_options(p, "render")
    p.add_argument("--dry-run", action="store_true",
                   help="print the plan (rows, predicted hours, batches) from stage 1 and write nothing")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar (on a terminal) or progress lines every few seconds (otherwise)")
    add_cache_options(p)
    p.set_defaults(func=cmd_batch)
    return p


def cmd_batch(args) -> int:
    from ..synth.corpus import CorpusError, synthesize_corpus
    from ..synth.corpus_manifest import read_manifest
    from ..synth.voice import Voice

    if args.batch_size < 1:
        raise CorpusError(f"--batch-size must be >= 1, got {args.batch_size}")
    if not 0 <= args.seed < 2 ** 32:
        raise CorpusError(f"--seed must be in [0, 2**32), got {args.seed}")
    devices = local_devices(args.devices)
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise CorpusError(f"--out {args.out} exists and is not a folder")
    read_manifest(args.manifest)            # a bad manifest fails before the model loads
    if not args.no_cache and not args.dry_run:
        setup_compilation_cache(args.cache_dir)
    voice = Voice.load(args.model)     # any voice the library reads; None: the default voice
    summary = synthesize_corpus(
        voice.params, voice.tokenizer, args.manifest, args.out, seed=args.seed, batch_size=args.batch_size,
        audio_format=args.format, speakers=args.speakers, rate_range=args.rate_range,
        noise_range=args.noise_range, noise_duration_range=args.noise_duration_range,
        mix_range=args.mix_range, devices=devices, dtype=args.dtype, dry_run=args.dry_run,
        progress=not args.no_progress)  # a bar on a terminal, else a line every few seconds
    print(summary, file=sys.stderr if not args.dry_run else sys.stdout)
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """`vits-jax batch ...` alone (`python -m vits_jax.app.batch batch ...`)."""
    parser = Parser(prog="vits-jax")
    register(parser.add_subparsers(dest="command", metavar="COMMAND", required=True))

    def body() -> int:
        args = parser.parse_args(argv)
        return args.func(args)
    return run_command(body)


if __name__ == "__main__":
    sys.exit(main())
