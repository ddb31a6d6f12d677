"""The `vits-jax` command: speak text to a WAV file, convert voices, describe a voice, train.

    vits-jax say "Hello there. How are you?" -o hello.wav             # the default voice
    echo "Long text ..." | vits-jax say - -m ./mms-tts-deu -o out.wav --rate 1.1 --seed 3
    vits-jax say "Hi." -m en_US-joe-medium.onnx -o hi.wav --timings hi.json --subtitles hi.srt
    vits-jax say - --output-raw < book.txt | aplay -r 22050 -f S16_LE -c 1   # streamed as produced
    vits-jax convert voice.onnx ./joe                                 # any voice -> vits-jax folder
    vits-jax info ./mms-tts-eng
    vits-jax train --model facebook/mms-tts-eng --data corpus/train.csv --out runs/eng --steps 2000

This file only parses arguments, validates options and prints; the work is the library's:
`say` is `vits_jax.speech.speak` (sentences split by the voice's tokenizer, batches of similar
length, pauses) written as a 16-bit PCM mono WAV (vits_jax/audio.py), or `speech.speak_stream`
for --output-raw; timings and subtitles are vits_jax/timings.py; a voice is whatever
`vits_jax.load` reads, its tokenizer found by `speech.open_tokenizer`; the default voice is
`vits_jax.voices.default_model()`. JAX's persistent compilation cache is on by default, so a
second run with the same shapes skips compilation.

User errors (unknown model, empty text, bad speaker id, unusable output path, ...) print
`error: ...` to stderr and exit with status 1 (set VITS_JAX_DEBUG=1 to get the traceback instead),
before any synthesis where they can be known before it.

Ctrl-C at any moment exits with status 130 and leaves the output as it was: SIGINT is handled from
the first line of `main` (this module and `vits_jax/__init__.py` import nothing heavy before it),
the output file is only created by a rename at the very end, and an interrupt that some library
swallowed is still noticed at that commit point.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
import tempfile
import threading
from typing import Optional, Sequence

from .hub import ModelNotFoundError

__all__ = ["main", "build_parser", "setup_compilation_cache", "default_cache_dir", "CliError"]

CACHE_ENV = "VITS_JAX_CACHE_DIR"


class CliError(Exception):
    """A user error: printed as `error: <message>`, exit status 1, no traceback."""


# Exceptions that come from what the user passed (paths, text, options, files), not from bugs.
_USER_ERRORS = (CliError, ModelNotFoundError, FileNotFoundError, NotADirectoryError,
                IsADirectoryError, PermissionError, ValueError, ImportError, OSError)


# ------------------------------------------------------------------ compilation cache
def default_cache_dir() -> str:
    """$VITS_JAX_CACHE_DIR, else $XDG_CACHE_HOME/vits-jax/jax, else ~/.cache/vits-jax/jax."""
    if os.environ.get(CACHE_ENV):
        return os.path.expanduser(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "vits-jax", "jax")


def setup_compilation_cache(cache_dir: Optional[str] = None) -> Optional[str]:
    """Turns on JAX's persistent compilation cache in `cache_dir` (default: default_cache_dir()).

    Every compiled program is written (no minimum compile time or size), so the next process
    with the same shapes loads it instead of compiling. Returns the folder, or None (with a
    warning) if it cannot be created. Call before the first compilation.
    """
    import jax

    folder = os.path.abspath(os.path.expanduser(cache_dir or default_cache_dir()))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        print(f"warning: compilation cache disabled, cannot create {folder}: {e.strerror or e}",
              file=sys.stderr)
        return None
    jax.config.update("jax_compilation_cache_dir", folder)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)  # -1: cache every size
    return folder


# ------------------------------------------------------------------ helpers
def _decode_stdin(data) -> str:
    """Bytes (or text) read from standard input -> text; not UTF-8 is a user error."""
    if isinstance(data, bytes):
        try:
            return data.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise CliError(f"standard input is not UTF-8 text ({e})") from None
    return data


def _read_text(text: str) -> str:
    if text != "-":
        return text
    return _decode_stdin(sys.stdin.buffer.read() if hasattr(sys.stdin, "buffer") else sys.stdin.read())


def _check_output(path: str, option: str = "-o", example: str = "FILE.wav") -> None:
    """Refuses, before any synthesis, every output path the final write would fail on."""
    if path == "-" and option == "-o":
        if sys.stdout.isatty():
            raise CliError("refusing to write WAV data to a terminal: redirect standard output "
                           "(-o - > out.wav, or into a player) or pass -o FILE.wav")
        return
    if not path.strip():
        what = "output" if option == "-o" else option
        raise CliError(f"the {what} file name is empty: pass {option} {example}"
                       + (" (or -o - for standard output)" if option == "-o" else ""))
    if "\0" in path:
        raise CliError(f"{option} {path!r} contains a NUL character")
    if os.path.isdir(path) or path.endswith((os.sep, "/")) or os.path.basename(path) in (".", ".."):
        raise CliError(f"output {path} is a folder; pass a file name such as "
                       f"{os.path.join(path, 'out' + os.path.splitext(example)[1])}")
    if os.path.lexists(path) and not os.path.isfile(path):
        raise CliError(f"cannot write {path}: it exists and is not a regular file")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise CliError(f"cannot write {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise CliError(f"cannot write {path}: folder {folder} is not writable")
    # The write goes through a temporary file beside the output (audio.write_atomic): create and
    # remove one now, so a read-only file system, a too-long name or the like fails here.
    from .audio import temporary_name

    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=temporary_name(path), suffix=".tmp")
    except OSError as e:
        raise CliError(f"cannot write {path}: {e.strerror or e}") from None
    os.close(fd)
    os.unlink(probe)


class _Warnings:
    """Collects the library's warnings (dropped or replaced characters, ...) and prints each
    message once as a `warning: ...` line on stderr; the Python API keeps `warnings.warn`."""

    def __init__(self):
        self.shown: set[str] = set()

    def __call__(self):
        import contextlib
        import warnings

        from . import speech

        @contextlib.contextmanager
        def scope():
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    yield
                except speech.NothingToSayError:
                    caught.clear()   # the error names what could not be said; no warning beside it
                    raise
                finally:
                    for w in caught:
                        message = " ".join(str(w.message).split())
                        if message not in self.shown:
                            self.shown.add(message)
                            print(f"warning: {message}", file=sys.stderr)
        return scope()


def _finite(name: str, value: Optional[float], *, positive: bool = False) -> None:
    if value is None:
        return
    if not math.isfinite(value) or (value <= 0 if positive else value < 0):
        need = "a positive number" if positive else "a number >= 0"
        raise CliError(f"{name} must be {need}, got {value}")


def _check_speaker(speaker: Optional[int], num_speakers: int, model: str) -> Optional[int]:
    if speaker is None:
        return None
    if num_speakers <= 1:
        if speaker == 0:
            return None
        raise CliError(f"--speaker {speaker}: model {model} has a single speaker (id 0); "
                       "--speaker is for multi-speaker models")
    if not 0 <= speaker < num_speakers:
        raise CliError(f"--speaker {speaker} is out of range: model {model} has {num_speakers} "
                       f"speakers (ids 0 to {num_speakers - 1})")
    return speaker


# ------------------------------------------------------------------ subcommands
def cmd_say(args) -> int:
    from . import speech, voices
    from .hub import resolve
    from .synthesis import MAX_TOKENS

    _finite("--rate", args.rate, positive=True)
    _finite("--noise-scale", args.noise_scale)
    _finite("--noise-scale-duration", args.noise_scale_duration)
    _finite("--pause", args.pause)
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
    else:
        _check_output(args.output)
    if args.timings:
        _check_output(args.timings, "--timings", "FILE.json")
    if args.subtitles:
        if not args.subtitles.lower().endswith((".srt", ".vtt")):
            raise CliError(f"--subtitles {args.subtitles}: the file name must end in .srt or .vtt")
        _check_output(args.subtitles, "--subtitles", "FILE.srt")
    lines = raw and args.text == "-"        # streamed from standard input, line by line, as Piper
    text = None if lines else _read_text(args.text)
    model = args.model if args.model is not None else voices.default_model()

    report = _Warnings()
    path = resolve(model)
    # `say` speaks numbers ("1997", "8:45") and folds letters the voice lacks ("é" -> "e");
    # whatever is still dropped or replaced is reported as a `warning:` line
    tokenizer = speech.open_tokenizer(path, config=args.config, expand_numbers=True, fold_diacritics=True)
    if text is not None:
        with report():
            speech.prepare_pieces(tokenizer, text, args.max_tokens)  # text errors before the slow part
    _INTERRUPT.check()

    if not args.no_cache:
        setup_compilation_cache(args.cache_dir)
    from . import audio
    from .checkpoint import load

    params = load(path, config=args.config)
    speaker = _check_speaker(args.speaker, params.config.num_speakers, model)
    _INTERRUPT.check()
    options = dict(seed=args.seed, speaker_id=speaker, speaking_rate=args.rate,
                   noise_scale=args.noise_scale, noise_scale_duration=args.noise_scale_duration,
                   max_tokens=args.max_tokens, pause=args.pause, normalize=args.normalize)
    if raw:
        return _say_raw(params, tokenizer, text, options, report)
    with report():
        said = speech.speak(params, tokenizer, text, batch_size=args.batch_size, progress=True, **options)
    if any(said.truncated):
        cut = sum(said.truncated)
        print(f"warning: {cut} of {len(said.pieces)} sentence(s) reached the synthesizer's "
              "frame limit and were cut short", file=sys.stderr)
    with report():   # the words are tokenized again: their warnings were shown already
        extra = _timing_files(args, said, tokenizer)
    if args.output == "-":
        data = audio.wav_bytes(said.waveform, said.sampling_rate)
        _INTERRUPT.commit()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        audio.write_wav(args.output, said.waveform, said.sampling_rate, before_replace=_INTERRUPT.commit)
    for where, data in extra:    # after the commit point: the audio is written, so are these
        audio.write_atomic(where, data)
    where = "standard output" if args.output == "-" else args.output
    print(f"wrote {where}: {said.seconds:.2f} s at {said.sampling_rate} Hz, "
          f"{len(said.pieces)} sentence(s)" + "".join(f", {w}" for w, _ in extra), file=sys.stderr)
    return 0


def _timing_files(args, said, tokenizer) -> list[tuple[str, bytes]]:
    """[(path, contents)] of the --timings JSON and the --subtitles file asked for."""
    import json

    from . import timings

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
        yield _decode_stdin(line)


def _say_raw(params, tokenizer, text, options, report) -> int:
    """--output-raw: 16-bit little-endian mono PCM on stdout as it is produced (as Piper's
    --output-raw), piece after piece, chunk after chunk; nothing to commit, so a Ctrl-C stops it.
    TEXT `-` is read line by line as it arrives, each line spoken as soon as it is complete (as
    Piper does); the pieces keep one running index, so the seeds and pauses are those of the
    whole text. A line with nothing to say is reported and skipped."""
    from . import audio, speech

    out = sys.stdout.buffer
    samples = pieces = 0
    for part in ([text] if text is not None else _stdin_lines()):
        if not part.strip():
            continue
        with report():
            try:
                found = speech.prepare_pieces(tokenizer, part, options["max_tokens"])[0]
            except speech.NothingToSayError as e:
                if text is not None:
                    raise
                print(f"warning: skipped a line: {e}", file=sys.stderr)
                continue
            for chunk in speech.speak_stream(params, tokenizer, part, first_piece=pieces, **options):
                _INTERRUPT.check()
                out.write(audio.to_pcm16(chunk).tobytes())
                out.flush()
                samples += len(chunk)
        pieces += len(found)
    if not pieces:
        raise speech.NothingToSayError("standard input held nothing to say")
    rate = params.config.sampling_rate
    print(f"wrote standard output (raw 16-bit PCM): {samples / rate:.2f} s at {rate} Hz, "
          f"{pieces} sentence(s)", file=sys.stderr)
    return 0


def cmd_convert(args) -> int:
    from . import convert_voice

    params = convert_voice(args.src, args.dst, overwrite=args.overwrite, config=args.config)
    print(f"converted {params.num_parameters():,} parameters -> {args.dst}")
    return 0


def _format(path: str) -> str:
    """What kind of voice `path` is, for `info` (from its file names: the weights are not read)."""
    import glob

    from .checkpoint import is_converted

    if is_converted(path):
        return "vits-jax checkpoint (orbax)"
    names = [n for n in ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")
             if os.path.isfile(os.path.join(path, n))] if os.path.isdir(path) else []
    if names:
        return f"transformers ({names[0]})"
    found = sorted(glob.glob(os.path.join(glob.escape(path), "*"))) if os.path.isdir(path) else [path]
    for suffix, kind in ((".onnx", "Piper ONNX voice"), (".ckpt", "Piper training checkpoint")):
        hits = [f for f in found if f.endswith(suffix)]
        if hits:
            return f"{kind} ({os.path.basename(hits[0])})"
    return "original VITS checkpoint"


def _describe(path: str, config, tokenizer, params) -> dict:
    symbols = sorted(tokenizer.vocab, key=tokenizer.vocab.get)
    return {
        "model": path,
        "format": _format(path),
        "parameters": params.num_parameters(),
        "sampling_rate": config.sampling_rate,
        "num_speakers": config.num_speakers,
        "speaker_embedding_size": config.speaker_embedding_size,
        "vocab_size": tokenizer.vocab_size,
        "symbols": symbols,
        "tokenizer": tokenizer.describe(),
        "config": config.to_dict(),
    }


def cmd_info(args) -> int:
    import json

    from . import speech, voices
    from .hub import resolve

    path = resolve(args.model if args.model is not None else voices.default_model())
    params, tokenizer = speech.load_model(path, config=args.config)
    config = params.config
    d = _describe(path, config, tokenizer, params)
    d["default_model"] = voices.default_model()
    if args.json:
        print(json.dumps(d, indent=2, ensure_ascii=False))
        return 0
    c = config
    duration = "stochastic" if c.use_stochastic_duration_prediction else "deterministic"
    upsample = "x".join(str(r) for r in c.upsample_rates)
    t = d["tokenizer"]
    lines = [
        ("model", path),
        ("format", d["format"]),
        ("parameters", f"{d['parameters']:,}"),
        ("sampling rate", f"{c.sampling_rate} Hz"),
        ("speakers", f"{c.num_speakers}" + (f" (embedding size {c.speaker_embedding_size})"
                                            if c.num_speakers > 1 else "")),
        ("vocab size", f"{d['vocab_size']}" + ("" if d["vocab_size"] == c.vocab_size else
                                               f" (config.vocab_size is {c.vocab_size}!)")),
        ("symbols", json.dumps(d["symbols"], ensure_ascii=False)),
        ("tokenizer", f"{t['kind']}: " + " ".join(f"{k}={v}" for k, v in t.items() if k != "kind")),
        ("text encoder", f"{c.num_hidden_layers} layers, hidden {c.hidden_size}, "
                         f"{c.num_attention_heads} heads, ffn {c.ffn_dim}, window {c.window_size}"),
        ("duration", f"{duration} predictor"),
        ("flow", f"{c.prior_encoder_num_flows} coupling layers, size {c.flow_size}"),
        ("decoder", f"HiFi-GAN, upsample {upsample} (hop {c.hop_length}), "
                    f"{c.upsample_initial_channel} channels, residual block {getattr(c, 'resblock', '1')}"),
        ("defaults", f"speaking_rate={c.speaking_rate} noise_scale={c.noise_scale} "
                     f"noise_scale_duration={c.noise_scale_duration}"),
        ("default voice", voices.describe_default()),
    ]
    width = max(len(k) for k, _ in lines) + 1
    for k, v in lines:
        print(f"{k + ':':<{width}} {v}")
    return 0


def cmd_train(args) -> int:
    from .training.loop import RunConfig, train

    _finite("--lr", args.lr, positive=True)
    if args.max_grad_norm is not None:
        _finite("--max-grad-norm", args.max_grad_norm, positive=True)
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


# ------------------------------------------------------------------ argument parsing
class _Parser(argparse.ArgumentParser):
    """argparse with the command's error convention: a bad option is an `error: ...` line and
    exit status 1, like every other user error (argparse itself exits 2). Subcommand parsers
    inherit the class."""

    def error(self, message):
        self.print_usage(sys.stderr)
        self.exit(1, f"error: {message} (`{self.prog} -h` lists the options)\n")


def build_parser() -> argparse.ArgumentParser:
    from .speech import DEFAULT_BATCH_SIZE, DEFAULT_PAUSE
    from .text import DEFAULT_MAX_TOKENS
    from .voices import describe_default

    default_voice = describe_default()
    parser = _Parser(
        prog="vits-jax", description="VITS / MMS-TTS text-to-speech in JAX.",
        epilog="Run `vits-jax COMMAND -h` for the options of a command.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    voice_help = ("a voice: a Piper .onnx (or a folder holding one), a converted folder, a transformers "
                  "VITS folder, an original VITS G_*.pth / Piper .ckpt checkpoint (its config.json "
                  "beside it, or --config), a hub id or a Piper voice name such as en_US-lessac-medium")
    config_help = ("the training config.json of an original VITS / Piper checkpoint whose config is "
                   "not beside it")
    say = sub.add_parser(
        "say", help="speak text into a WAV file",
        description="Speak TEXT into a 16-bit PCM mono WAV file. Long text is split into "
                    "sentences, synthesized in batches and joined with short pauses. Numbers, "
                    "times and years are spoken; letters the voice lacks fall back to their base "
                    "letter; anything still dropped is reported as a `warning:` line.")
    say.add_argument("text", metavar="TEXT", help="the text to speak; `-` reads standard input")
    say.add_argument("-m", "--model", default=None, help=f"{voice_help} (default: {default_voice})")
    say.add_argument("--config", default=None, metavar="FILE", help=config_help)
    output = say.add_mutually_exclusive_group(required=True)
    output.add_argument("-o", "--output", default=None, metavar="FILE.wav",
                        help="output WAV file (written atomically); `-` writes to standard output")
    output.add_argument("--output-raw", action="store_true",
                        help="write 16-bit little-endian mono PCM at the voice's rate to standard "
                             "output as it is produced, sentence after sentence (as Piper's "
                             "--output-raw)")
    say.add_argument("--timings", default=None, metavar="FILE.json",
                     help="also write each sentence's, word's and token's start and end seconds "
                          "(from the predicted durations) as JSON")
    say.add_argument("--subtitles", default=None, metavar="FILE.srt|FILE.vtt",
                     help="also write subtitles, one cue per sentence (SubRip or WebVTT, by the "
                          "file name's extension)")
    say.add_argument("--speaker", type=int, default=None, metavar="N",
                     help="speaker id for multi-speaker models, 0 .. num_speakers-1 (default: "
                          "none, i.e. no speaker conditioning, as transformers)")
    say.add_argument("--rate", type=float, default=None, metavar="R",
                     help="speaking rate; >1 is faster (default: the model config's, usually 1.0)")
    say.add_argument("--seed", type=int, default=0, metavar="S",
                     help="random seed; the same seed gives the same audio (default: 0)")
    say.add_argument("--noise-scale", type=float, default=None, metavar="X",
                     help="prior noise, i.e. variation in voice (default: the config's, 0.667 for MMS)")
    say.add_argument("--noise-scale-duration", type=float, default=None, metavar="X",
                     help="duration noise, i.e. variation in rhythm (default: the config's, 0.8 for MMS)")
    say.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, metavar="N",
                     help=f"sentences synthesized together (default: {DEFAULT_BATCH_SIZE})")
    say.add_argument("--max-tokens", type=int, default=DEFAULT_MAX_TOKENS, metavar="N",
                     help="longer sentences are split at commas, then between words "
                          f"(default: {DEFAULT_MAX_TOKENS} token ids)")
    say.add_argument("--pause", type=float, default=DEFAULT_PAUSE, metavar="SECONDS",
                     help=f"silence between sentences (default: {DEFAULT_PAUSE})")
    say.add_argument("--normalize", action=argparse.BooleanOptionalAction, default=None,
                     help="scale each sentence to peak 1.0, as Piper does (default: on for Piper "
                          "voices, off for transformers / MMS voices)")
    cache = say.add_mutually_exclusive_group()
    cache.add_argument("--cache-dir", default=None, metavar="DIR",
                       help=f"JAX compilation cache folder (default: ${CACHE_ENV}, else "
                            "~/.cache/vits-jax/jax)")
    cache.add_argument("--no-cache", action="store_true",
                       help="do not read or write the compilation cache")
    say.set_defaults(func=cmd_say)

    conv = sub.add_parser(
        "convert", help="convert any voice to a vits-jax checkpoint",
        description="Convert a voice (Piper .onnx, transformers folder or hub id, original VITS or "
                    "Piper training checkpoint) into a vits-jax checkpoint folder. The source is "
                    "never touched; an existing DST is replaced only with --overwrite, and only "
                    "when it is a vits-jax checkpoint.")
    conv.add_argument("src", metavar="SRC", help=voice_help)
    conv.add_argument("dst", metavar="DST", help="output folder")
    conv.add_argument("--config", default=None, metavar="FILE", help=config_help)
    conv.add_argument("--overwrite", action="store_true",
                      help="replace DST if it is a vits-jax checkpoint (anything else is refused)")
    conv.set_defaults(func=cmd_convert)

    info = sub.add_parser("info", help="describe a model",
                          description="Print a model's configuration, parameter count, "
                                      "vocabulary, tokenizer, speakers and sampling rate.")
    info.add_argument("model", metavar="MODEL", nargs="?", default=None,
                      help=f"{voice_help} (default: {default_voice})")
    info.add_argument("--config", default=None, metavar="FILE", help=config_help)
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(func=cmd_info)

    from .corpus_cli import register as register_batch   # `vits-jax batch` (vits_jax/corpus_cli.py)

    register_batch(sub)

    tr = sub.add_parser(
        "train", help="fine-tune a model on recordings",
        description="Train a model's generator (with a fresh discriminator) on a manifest of "
                    "recordings: a CSV with header audio,text[,speaker] or a JSONL file with those "
                    "keys, audio paths relative to the manifest. Writes losses.csv, samples/, "
                    "checkpoints/ and, at the end, OUT/model (usable with `say -m OUT/model`). "
                    "Running again with the same --out resumes from the newest checkpoint.")
    tr.add_argument("--model", "-m", required=True,
                    help="the model to start from: a converted folder, a transformers folder or a hub id")
    tr.add_argument("--data", required=True, metavar="MANIFEST",
                    help="CSV or JSONL manifest, or a folder of NAME.wav + NAME.txt pairs (or holding "
                         "a metadata.csv)")
    tr.add_argument("--out", required=True, metavar="DIR", help="output folder")
    tr.add_argument("--steps", type=int, default=1000, help="total training steps (default: 1000)")
    tr.add_argument("--batch-size", type=int, default=8, help="clips per step (default: 8)")
    tr.add_argument("--lr", type=float, default=2e-4, help="learning rate of both networks (default: 2e-4)")
    tr.add_argument("--save-every", type=int, default=500, metavar="N",
                    help="write a training checkpoint every N steps (default: 500)")
    tr.add_argument("--keep", type=int, default=3, metavar="K", help="training checkpoints kept (default: 3)")
    tr.add_argument("--sample-every", type=int, default=500, metavar="N",
                    help="speak the sample text into OUT/samples every N steps (default: 500)")
    tr.add_argument("--sample-text", default=None, help="default: the first clip's text")
    tr.add_argument("--seed", type=int, default=0, help="seed of data order, noise and discriminator init")
    tr.add_argument("--max-seconds", type=float, default=20.0, help="skip longer clips (default: 20)")
    tr.add_argument("--segment-frames", type=int, default=32,
                    help="decoder training window in frames (default: 32, VITS')")
    tr.add_argument("--n-mels", type=int, default=80, help="mel bands of the mel loss (default: 80)")
    tr.add_argument("--max-grad-norm", type=float, default=None, help="clip gradients to this global norm")
    tr.add_argument("--discriminator", default=None, metavar="FILE",
                    help="start the discriminator from these PyTorch weights (VITS' D_*.pth, a state "
                         "dict .pth/.bin or .safetensors); default: random")
    tr.add_argument("--discriminator-scale", type=int, default=1, metavar="D",
                    help="divide the discriminator's widths by D (default: 1, VITS' discriminator)")
    tr.add_argument("--compute-dtype", choices=("float32", "bfloat16"), default="float32",
                    help="dtype of the decoder and discriminator computations (params, optimiser state "
                         "and losses stay float32; default: float32)")
    tr.add_argument("--devices", type=int, default=None, metavar="N",
                    help="train data-parallel on the first N local devices (default: all; the batch "
                         "size must be a multiple of N)")
    tr.add_argument("--fast-compile", action="store_true",
                    help="compile at low XLA optimisation: quicker start, slower steps (smoke tests)")
    tcache = tr.add_mutually_exclusive_group()
    tcache.add_argument("--cache-dir", default=None, metavar="DIR", help="JAX compilation cache folder")
    tcache.add_argument("--no-cache", action="store_true", help="do not use the compilation cache")
    tr.set_defaults(func=cmd_train)
    return parser


class _Interrupt:
    """Ctrl-C handling of one `main` call.

    SIGINT raises KeyboardInterrupt, as Python's own handler does, and is remembered. Python drops
    an exception raised inside a garbage-collector or finalizer callback (JAX registers one) and
    prints it as "Exception ignored": such a KeyboardInterrupt is silenced and the signal sent
    again a moment later, until it lands in ordinary code and reaches `main`. An interrupt that a
    library swallowed outright is still noticed by `check` / `commit`, so the output is never
    written after a Ctrl-C.
    """

    def __init__(self):
        self.received = False      # a SIGINT arrived
        self.delivered = False     # main caught it, or the output is committed: later ones are ignored
        self.previous = None
        self.previous_hook = None

    def _handler(self, signum, frame):
        if not self.delivered:
            self.received = True
            raise KeyboardInterrupt

    def _redeliver(self) -> None:
        if not self.delivered:
            os.kill(os.getpid(), signal.SIGINT)

    def _unraisable(self, unraisable) -> None:
        if issubclass(unraisable.exc_type, KeyboardInterrupt) and self.previous is not None:
            if not self.delivered:   # raised where Python ignores exceptions: deliver it again
                threading.Timer(0.01, self._redeliver).start()
            return
        self.previous_hook(unraisable)

    def install(self) -> None:
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handler)
            self.previous_hook, sys.unraisablehook = sys.unraisablehook, self._unraisable

    def restore(self) -> None:
        self.delivered = True
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
            sys.unraisablehook = self.previous_hook
            self.previous = None

    def check(self) -> None:
        """Raises KeyboardInterrupt if a Ctrl-C arrived, even one that was swallowed."""
        if self.received:
            raise KeyboardInterrupt

    def commit(self) -> None:
        """The point of no return (just before the output is renamed into place or written to
        stdout): a Ctrl-C that arrived before it aborts; one that arrives after it is ignored, as
        if it had come after the command ended."""
        self.check()
        self.delivered = True


_INTERRUPT = _Interrupt()


def main(argv: Optional[Sequence[str]] = None) -> int:
    global _INTERRUPT
    _INTERRUPT = interrupt = _Interrupt()
    interrupt.install()      # first: a Ctrl-C during the imports below must not be lost
    try:
        return _main(argv, interrupt)
    except KeyboardInterrupt:
        interrupt.delivered = True   # a second Ctrl-C must not interrupt the clean-up
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        interrupt.restore()


def _main(argv: Optional[Sequence[str]], interrupt: _Interrupt) -> int:
    args = build_parser().parse_args(argv)
    try:
        status = int(args.func(args) or 0)
        interrupt.check()
        return status
    except BrokenPipeError:  # `vits-jax info | head`: the reader left; say nothing more
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except _USER_ERRORS as e:
        if os.environ.get("VITS_JAX_DEBUG"):
            raise
        message = str(e) or type(e).__name__
        if isinstance(e, OSError) and e.filename and e.strerror:
            message = f"{e.filename}: {e.strerror}"
        print(f"error: {message}", file=sys.stderr)
        return 1


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
