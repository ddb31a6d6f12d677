"""The `vits-jax` command: speak text to a WAV file, convert voices, describe a voice, train.

    vits-jax say "Hello there. How are you?" -o hello.wav             # the default voice
    echo "Long text ..." | vits-jax say - -m ./mms-tts-deu -o out.wav --rate 1.1 --seed 3
    vits-jax say "Hi." -m en_US-joe-medium.onnx -o hi.wav --timings hi.json --subtitles hi.srt
    vits-jax say - --output-raw < book.txt | aplay -r 22050 -f S16_LE -c 1   # streamed as produced
    vits-jax convert voice.onnx ./joe                                 # any voice -> vits-jax folder
    vits-jax info ./mms-tts-eng
    vits-jax vc in.wav -m G_100000.pth --source-speaker 3 --target-speaker 7 -o out.wav   # voice conversion
    vits-jax train --model facebook/mms-tts-eng --data corpus/train.csv --out runs/eng --steps 2000
    vits-jax serve -m joe=en_US-joe-medium.onnx --port 5000       # HTTP: OpenAI and Piper APIs
    vits-jax export ./mms-tts-eng ./eng-exported --platforms cpu,cuda   # loaded, not traced

Each command is one module of this package (say.py, convert.py, info.py, batch.py, train.py, vc.py,
serve.py, export.py) with
`register(subparsers)` and its `cmd_*` function; what they share (the `error:` convention, Ctrl-C,
the compilation cache, output-path checks) is common.py. The commands only parse, validate and
print; the work is the library's (`vits_jax.Voice`, `vits_jax.synth`, `vits_jax.training`).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Optional, Sequence

from . import common

__all__ = ["main", "build_parser", "run"]

COMMANDS = ("say", "convert", "info", "batch", "train", "vc", "serve", "export")   # one module each in vits_jax/app/
# how each command takes a local voice, for the hint of a voice that was not found
VOICE_OPTION = {"say": "`vits-jax say TEXT -m FOLDER -o FILE.wav`", "convert": "`vits-jax convert FOLDER DST`",
                "info": "`vits-jax info FOLDER`", "batch": "`vits-jax batch MANIFEST --out DIR -m FOLDER`",
                "train": "`vits-jax train -m FOLDER --data MANIFEST --out DIR`",
                "vc": "`vits-jax vc INPUT.wav -m FOLDER --source-speaker A --target-speaker B -o OUT.wav`",
                "serve": "`vits-jax serve -m FOLDER`", "export": "`vits-jax export FOLDER DIR`"}


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = common.Parser(
        prog="vits-jax", description="VITS / MMS-TTS text-to-speech in JAX.",
        epilog="Run `vits-jax COMMAND -h` for the options of a command.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f".{name}", __package__).register(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    def body() -> int:
        from ..voice.hub import ModelNotFoundError

        args = build_parser().parse_args(argv)
        try:
            return args.func(args)
        except ModelNotFoundError as e:   # a voice not found: say how THIS command takes a folder
            hint = VOICE_OPTION.get(args.command)
            if hint is None or hint in str(e):
                raise
            raise ModelNotFoundError(f"{e}; on the command line: {hint}") from None
    return common.run_command(body)


def run() -> None:
    """The console script: `main`, then exit. After a Ctrl-C the process ends at once (stdio
    flushed, status 130) instead of finalizing the interpreter: an interrupt can land inside JAX's
    start-up or a compilation, and tearing down its runtime threads from there can crash."""
    status = main()
    if status == 130:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(130)
    sys.exit(status)


if __name__ == "__main__":
    run()
