"""`vits-jax vc INPUT.wav -m MODEL --source-speaker A --target-speaker B -o OUT.wav`: voice conversion.

The work is the library's: the input is read and resampled to the voice's rate (synth/audio.py),
`Voice.convert` (synth/conversion.py) speaks it as the target speaker, and the WAV is written
atomically. The voice must be a multi-speaker training checkpoint (it needs the posterior encoder);
any other voice is refused, saying why, before the input is read.
"""

from __future__ import annotations

import argparse
import sys

from . import common
from .common import CONFIG_HELP, VOICE_HELP, CliError, add_cache_options, check_output, finite, setup_compilation_cache


def cmd_vc(args) -> int:
    import os
    import wave

    finite("--noise-scale", args.noise_scale)
    if not 0 <= args.seed < 2 ** 32:
        raise CliError(f"--seed must be in [0, 2**32), got {args.seed}")
    check_output(args.output)
    if not os.path.isfile(args.input):
        raise CliError(f"input {args.input}: no such file" if not os.path.exists(args.input)
                       else f"input {args.input} is not a file")
    common.INTERRUPT.check()

    if not args.no_cache:
        setup_compilation_cache(args.cache_dir)
    from ..synth import audio
    from ..synth.conversion import check_convertible
    from ..synth.voice import Voice

    voice = Voice.load(args.model, config=args.config, text=False)
    check_convertible(voice.params, voice.source or "the voice")
    source = voice.speaker_id(args.source_speaker)
    target = voice.speaker_id(args.target_speaker)
    common.INTERRUPT.check()
    try:
        waveform, rate = audio.read_audio(args.input)
    except (RuntimeError, EOFError, wave.Error) as e:        # soundfile / wave on what is not audio
        raise CliError(f"cannot read {args.input} as audio: {e}") from None
    out = voice.convert(waveform, source_speaker=source, target_speaker=target, sampling_rate=rate,
                        seed=args.seed, noise_scale=args.noise_scale)
    common.write_output(args.output, out, voice.sampling_rate, audio.write_wav)
    where = "standard output" if args.output == "-" else args.output
    resampled = f" (input resampled from {rate} Hz)" if rate != voice.sampling_rate else ""
    print(f"wrote {where}: {out.size / voice.sampling_rate:.2f} s at {voice.sampling_rate} Hz{resampled}, "
          f"speaker {source} -> {target}", file=sys.stderr)
    return 0


def register(subparsers) -> argparse.ArgumentParser:
    """Adds `vc` to an argparse subparsers object; returns its parser."""
    p = subparsers.add_parser(
        "vc", help="convert speech from one speaker's voice to another's",
        description="Voice conversion (VITS' voice_conversion): speech by the source speaker, read from "
                    "INPUT (WAV at any rate, resampled to the voice's), spoken again by the target "
                    "speaker. Needs a multi-speaker training checkpoint (it holds the posterior "
                    "encoder; Piper's .onnx voices do not).")
    p.add_argument("input", metavar="INPUT.wav", help="the speech to convert: a WAV file (FLAC / OGG too with soundfile installed)")
    p.add_argument("-m", "--model", required=True, help=VOICE_HELP)
    p.add_argument("--config", default=None, metavar="FILE", help=CONFIG_HELP)
    p.add_argument("--source-speaker", required=True, metavar="N|NAME",
                   help="the speaker of INPUT: an id 0 .. num_speakers-1 or a speaker name the voice lists")
    p.add_argument("--target-speaker", required=True, metavar="N|NAME",
                   help="the speaker to convert to: an id or a name")
    p.add_argument("-o", "--output", required=True, metavar="FILE.wav",
                   help="output WAV file (written atomically); `-` writes to standard output")
    p.add_argument("--noise-scale", type=float, default=1.0, metavar="X",
                   help="spread of the posterior sample (0: its means, deterministic; default: 1.0, as VITS)")
    p.add_argument("--seed", type=int, default=0, metavar="S",
                   help="random seed of the posterior noise (default: 0)")
    add_cache_options(p)
    p.set_defaults(func=cmd_vc)
    return p
