"""`vits-jax say TEXT -o FILE.wav`: speak text with a voice (the default voice without -m).

The work is the library's: `Voice.speak` (sentences split by the voice's tokenizer, batches of
similar length, pauses) written as WAV, FLAC, OGG or MP3 by the output's extension
(synth/audio.py), or `Voice.stream` for --output-raw; timings and subtitles are synth/timings.py.
"""

from __future__ import annotations

import argparse
import sys

from . import common
from .common import (CONFIG_HELP, CliError, VOICE_HELP, Warnings, add_cache_options, add_device_options,
                     check_audio_extension, check_output, decode_stdin, finite, local_devices, read_text,
                     setup_compilation_cache, keep_programs, kept_voices)


def cmd_say(args) -> int:
    from ..synth import speech
    from ..synth.synthesis import MAX_TOKENS
    from ..synth.voice import Voice, locate, open_tokenizer

    finite("--rate", args.rate, positive=True)
    finite("--noise-scale", args.noise_scale)
    finite("--noise-scale-duration", args.noise_scale_duration)
    finite("--pause", args.pause)
    if args.batch_size < 1:
        raise CliError(f"--batch-size must be >= 1, got {args.batch_size}")
    if not 8 <= args.max_tokens <= MAX_TOKENS:
        raise CliError(f"--max-tokens must be in [8, {MAX_TOKENS}], got {args.max_tokens}")
    if not 0 <= args.seed < 2 ** 32:
        raise CliError(f"--seed must be in [0, 2**32), got {args.seed}")
    raw = args.output is None
    if raw:
        if sys.stdout.isatty():
            raise CliError("refusing to write raw audio to a terminal: pipe --output-raw into a player "
                           "(e.g. `| aplay -r RATE -f S16_LE -c 1`) or pass -o FILE.wav")
        if args.timings or args.subtitles:
            raise CliError("--timings and --subtitles need -o FILE.wav (they are written with the "
                           "whole speech, not streamed)")
        if args.devices is not None:
            raise CliError("--devices needs -o FILE.wav: --output-raw streams each sentence as it is "
                           "rendered, on one device")
    else:
        check_output(args.output)
        check_audio_extension(args.output)
    if args.timings:
        check_output(args.timings, "--timings", "FILE.json")
    if args.subtitles:
        if not args.subtitles.lower().endswith((".srt", ".vtt")):
            raise CliError(f"--subtitles {args.subtitles}: the file name must end in .srt or .vtt")
        check_output(args.subtitles, "--subtitles", "FILE.srt")
    devices = local_devices(args.devices)
    if args.ssml_lenient:
        args.ssml = True
    lines = raw and args.text == "-" and not args.ssml   # stdin line by line as it arrives, as Piper
    text = None if lines else read_text(args.text)
    report = Warnings()
    path, info = locate(args.model, args.config)
    # `say` speaks numbers ("1997", "8:45") and folds letters the voice lacks ("é" -> "e");
    # whatever is still dropped or replaced is reported as a `warning:` line
    tokenizer = open_tokenizer(path, config=args.config, expand_numbers=True, fold_diacritics=True)
    prepared = None
    if args.ssml:
        from ..tokenizer.ssml import parse_ssml

        with report():      # SSML errors (line and column) before the slow part
            parse_ssml(text, lenient=args.ssml_lenient, language=getattr(tokenizer, "language", None) or "en",
                       phonemes_allowed=speech.is_piper_voice(tokenizer))
    elif text is not None:
        with report():      # text errors before the slow part; the text is tokenized only here
            prepared = speech.prepare_pieces(tokenizer, text, args.max_tokens)
    common.INTERRUPT.check()

    cache = None if args.no_cache else setup_compilation_cache(args.cache_dir)
    from ..synth import audio

    with report():   # an exported folder whose programs cannot run here says so in one line
        voice = keep_programs(Voice.load(path, config=args.config, tokenizer=tokenizer,
                                         keep_in=kept_voices(cache)), cache)
    speaker = voice.speaker_id(args.speaker)
    common.INTERRUPT.check()
    options = dict(seed=args.seed, speaker_id=speaker, speaking_rate=args.rate,
                   noise_scale=args.noise_scale, noise_scale_duration=args.noise_scale_duration,
                   max_tokens=args.max_tokens, pause=args.pause, normalize=args.normalize,
                   dtype=None if args.dtype == "float32" else args.dtype)
    if raw and not args.ssml:
        return _say_raw(voice, text, options, report)
    with report():
        if args.ssml:
            said = voice.speak(text, batch_size=args.batch_size, progress=True, ssml=True,
                               ssml_lenient=args.ssml_lenient, devices=devices, **options)
        else:
            said = voice.speak(text, batch_size=args.batch_size, progress=True, prepared=prepared,
                               devices=devices, **options)
    if raw:                 # SSML: the whole speech, then its PCM (breaks and rates need it whole)
        sys.stdout.buffer.write(audio.to_pcm16(said.waveform).tobytes())
        sys.stdout.buffer.flush()
        print(f"wrote standard output (raw 16-bit PCM): {said.seconds:.2f} s at {said.sampling_rate} Hz, "
              f"{len(said.pieces)} sentence(s)", file=sys.stderr)
        return 0
    if any(said.truncated):
        cut = sum(said.truncated)
        print(f"warning: {cut} of {len(said.pieces)} sentence(s) reached the synthesizer's "
              "frame limit and were cut short", file=sys.stderr)
    with report():   # the words are tokenized again: their warnings were shown already
        extra = _timing_files(args, said, voice.tokenizer)
    common.write_output(args.output, said.waveform, said.sampling_rate, audio.write_audio)
    for where, data in extra:    # after the commit point: the audio is written, so are these
        audio.write_atomic(where, data)
    where = "standard output" if args.output == "-" else args.output
    from ..synth.timings import cues

    sentences = len(cues(said))   # a long sentence spoken in pieces counts once, as its cue
    print(f"wrote {where}: {said.seconds:.2f} s at {said.sampling_rate} Hz, "
          f"{sentences} sentence(s)" + "".join(f", {w}" for w, _ in extra), file=sys.stderr)
    return 0


def _timing_files(args, said, tokenizer) -> list[tuple[str, bytes]]:
    """[(path, contents)] of the --timings JSON and the --subtitles file asked for."""
    import json

    from ..synth import timings

    files = []
    if args.timings:
        data = json.dumps(timings.timings(said, tokenizer), indent=1, ensure_ascii=False)
        files.append((args.timings, (data + "\n").encode("utf-8")))
    if args.subtitles:
        files.append((args.subtitles, timings.subtitles(args.subtitles, timings.cues(said)).encode("utf-8")))
    return files


def _stdin_lines():
    """Standard input's lines as they arrive (UTF-8)."""
    stream = sys.stdin.buffer if hasattr(sys.stdin, "buffer") else sys.stdin
    for line in iter(stream.readline, b"" if stream is not sys.stdin else ""):
        yield decode_stdin(line)


def _say_raw(voice, text, options, report) -> int:
    """--output-raw: 16-bit little-endian mono PCM on stdout as it is produced (as Piper's
    --output-raw), piece after piece, chunk after chunk; nothing to commit, so a Ctrl-C stops it.
    TEXT `-` is read line by line as it arrives, each line spoken as soon as it is complete (as
    Piper does); the pieces keep one running index, so the seeds and pauses are those of the
    whole text. A line with nothing to say is reported and skipped."""
    from ..synth import audio, speech

    out = sys.stdout.buffer
    samples = pieces = 0
    for part in ([text] if text is not None else _stdin_lines()):
        if not part.strip():
            continue
        with report():
            try:
                prepared = speech.prepare_pieces(voice.tokenizer, part, options["max_tokens"])
            except speech.NothingToSayError as e:
                if text is not None:
                    raise
                print(f"warning: skipped a line: {e}", file=sys.stderr)
                continue
            for chunk in voice.stream(part, first_piece=pieces, prepared=prepared, **options):
                common.INTERRUPT.check()
                out.write(audio.to_pcm16(chunk).tobytes())
                out.flush()
                samples += len(chunk)
        pieces += len(prepared[0])
    if not pieces:
        raise speech.NothingToSayError("standard input held nothing to say")
    rate = voice.sampling_rate
    print(f"wrote standard output (raw 16-bit PCM): {samples / rate:.2f} s at {rate} Hz, "
          f"{pieces} sentence(s)", file=sys.stderr)
    return 0


def _speaker(value: str):
    """--speaker: an id (int) or a name the voice lists; a number that is not an integer is refused."""
    try:
        return int(value)
    except ValueError:
        pass
    try:
        float(value)
    except ValueError:
        return value
    raise argparse.ArgumentTypeError(f"invalid speaker {value!r}: expected an integer id or a name")


def register(subparsers) -> argparse.ArgumentParser:
    """Adds `say` to an argparse subparsers object; returns its parser."""
    from ..synth.speech import DEFAULT_BATCH_SIZE, DEFAULT_PAUSE
    from ..tokenizer.sentences import DEFAULT_MAX_TOKENS
    from ..voice.default import describe_default

    default_voice = describe_default()
    p = subparsers.add_parser(
        "say", help="speak text into an audio file",
        description="Speak TEXT into a mono audio file: 16-bit PCM WAV, FLAC, OGG Vorbis or MP3 by "
                    "the file's extension (FLAC, OGG and MP3 with the soundfile package; MP3 where "
                    "its libsndfile writes it). Long text is split into "
                    "sentences, synthesized in batches and joined with short pauses. Numbers, "
                    "times and years are spoken; letters the voice lacks fall back to their base "
                    "letter; anything still dropped is reported as a `warning:` line.")
    p.add_argument("text", metavar="TEXT", help="the text to speak; `-` reads standard input")
    p.add_argument("-m", "--model", default=None, help=f"{VOICE_HELP} (default: {default_voice})")
    p.add_argument("--config", default=None, metavar="FILE", help=CONFIG_HELP)
    output = p.add_mutually_exclusive_group(required=True)
    output.add_argument("-o", "--output", default=None, metavar="FILE",
                        help="output audio file (written atomically), in the format of its "
                             "extension: .wav, .flac, .ogg or .mp3 (another is refused before "
                             "synthesis); `-` writes a WAV to standard output")
    output.add_argument("--output-raw", action="store_true",
                        help="write 16-bit little-endian mono PCM at the voice's rate to standard "
                             "output as it is produced, sentence after sentence (as Piper's "
                             "--output-raw)")
    p.add_argument("--timings", default=None, metavar="FILE.json",
                     help="also write each sentence's, word's and token's start and end seconds "
                          "(from the predicted durations) as JSON")
    p.add_argument("--subtitles", default=None, metavar="FILE.srt|FILE.vtt",
                     help="also write subtitles, one cue per sentence (SubRip or WebVTT, by the "
                          "file name's extension)")
    p.add_argument("--speaker", type=_speaker, default=None, metavar="N|NAME",
                   help="speaker id for multi-speaker models, 0 .. num_speakers-1, or a speaker name "
                        "the voice lists (default: none, i.e. no speaker conditioning, as transformers)")
    p.add_argument("--rate", type=float, default=None, metavar="R",
                     help="speaking rate; >1 is faster (default: the model config's, usually 1.0)")
    p.add_argument("--seed", type=int, default=0, metavar="S",
                     help="random seed; the same seed gives the same audio (default: 0)")
    p.add_argument("--noise-scale", type=float, default=None, metavar="X",
                     help="prior noise, i.e. variation in voice (default: the config's, 0.667 for MMS)")
    p.add_argument("--noise-scale-duration", type=float, default=None, metavar="X",
                     help="duration noise, i.e. variation in rhythm (default: the config's, 0.8 for MMS)")
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, metavar="N",
                     help=f"sentences synthesized together (default: {DEFAULT_BATCH_SIZE})")
    p.add_argument("--max-tokens", type=int, default=DEFAULT_MAX_TOKENS, metavar="N",
                     help="longer sentences are split at commas, then between words "
                          f"(default: {DEFAULT_MAX_TOKENS} token ids)")
    p.add_argument("--pause", type=float, default=DEFAULT_PAUSE, metavar="SECONDS",
                     help=f"silence between sentences (default: {DEFAULT_PAUSE})")
    p.add_argument("--normalize", action=argparse.BooleanOptionalAction, default=None,
                     help="scale each sentence to peak 1.0, as Piper does (default: on for Piper "
                          "voices, off for transformers / MMS voices)")
    p.add_argument("--ssml", action="store_true",
                   help="TEXT is SSML: <speak>, <p>, <s>, <break>, <prosody rate>, <say-as>, <sub>, "
                        "<voice name> (a speaker name), <phoneme ph> (Piper voices)")
    p.add_argument("--ssml-lenient", action="store_true",
                   help="with --ssml: speak the text of unknown elements (with a warning) instead of "
                        "refusing them")
    add_device_options(p)
    add_cache_options(p)
    p.set_defaults(func=cmd_say)
    return p
