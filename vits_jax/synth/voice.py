"""`Voice`: one loaded voice — params, tokenizer, what it is and its defaults — that speaks.

    voice = Voice.load("en_US-joe-medium.onnx")        # any source vits_jax.load reads
    speech = voice.speak("Hello there. How are you?", seed=0)
    for chunk in voice.stream("A long text ..."):        # exact chunks, as produced
        ...
    out = voice.synthesize(voice.tokenize(["Hi.", "Bye."]))

`Voice.load` is the one way in: it asks `vits_jax.voice.sources.describe_source` what the source
is, opens the tokenizer that source names (`tokenizer_location`), reads the weights through the
mapper, and takes the defaults from the voice (config noise scales and rate, Piper's per-sentence
peak normalization, speaker names). A `vits-jax export` folder also brings its exported programs
(`programs`, synth/exported.py), which its methods run for the shapes they cover instead of tracing
the model. Everything above (CLI commands, corpus synthesis, notebooks,
training's samples, the server) takes a Voice; nothing above inspects file names. The functional
API (`vits_jax.load`, `speak`, `synthesize`, `stream`) is what these methods call.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Iterator, Mapping, Optional

import numpy as np

from ..voice.sources import EXPORTED, SourceInfo, describe_source, tokenizer_location
from .speech import DEFAULT_BATCH_SIZE, DEFAULT_PAUSE, is_piper_voice

__all__ = ["Voice", "open_tokenizer", "load_model", "check_speaker"]


class SpeakerError(ValueError):
    """A speaker id or name the voice does not have."""


def open_tokenizer(path: str, *, config: Optional[str] = None, **options):
    """A local voice -> its tokenizer, without reading weights: the tokenizer files the sniffer
    names (`tokenizer_location`) through `Tokenizer.load`. options: `expand_numbers=True`, ..."""
    from ..tokenizer import PiperTokenizer, Tokenizer

    kind, location = tokenizer_location(path, config)
    if kind == "piper":
        return PiperTokenizer.load(location, **options)
    return Tokenizer.load(location, **options)


def check_speaker(speaker, num_speakers: int, speakers: Mapping[str, int] | None = None,
                  where: str = "the voice") -> Optional[int]:
    """A speaker id or name -> id (None: no conditioning). Single-speaker voices take 0 or None.
    The one check of a speaker given by a user (CLI, server, Voice methods)."""
    if speaker is None:
        return None
    if isinstance(speaker, str) and not speaker.strip().lstrip("-").isdigit():
        names = dict(speakers or {})
        if speaker not in names:
            known = ", ".join(sorted(names)[:12]) or "none: give an id"
            raise SpeakerError(f"speaker {speaker!r}: {where} has no speaker of that name (names: {known})")
        return names[speaker]
    speaker = int(speaker)
    if num_speakers <= 1:
        if speaker == 0:
            return None
        raise SpeakerError(f"--speaker {speaker}: model {where} has a single speaker (id 0); "
                           "--speaker is for multi-speaker models")
    if not 0 <= speaker < num_speakers:
        raise SpeakerError(f"--speaker {speaker} is out of range: model {where} has {num_speakers} "
                           f"speakers (ids 0 to {num_speakers - 1})")
    return speaker


@dataclasses.dataclass(frozen=True)
class Voice:
    """A loaded voice. Immutable: `dataclasses.replace(voice, speaking_rate=1.2)` gives another.

    params:    VitsParams (the pytree `vits_jax.generate` takes; its config rides along).
    tokenizer: the voice's tokenizer (`Tokenizer` for character / MMS voices, `PiperTokenizer`).
    kind:      what the source was (`vits_jax.voice.sources`: "Piper ONNX", "transformers", ...).
    source:    the local path it was read from.
    speakers:  {name: id} where the voice names its speakers (Piper's speaker_id_map), else {}.
    speaking_rate, noise_scale, noise_scale_duration: the voice's defaults (its config's).
    normalize: peak-normalize each sentence (Piper's behaviour: on for Piper voices).
    pause:     seconds of silence between sentences.
    programs:  exported stage programs (`ExportedPrograms`) of a `vits-jax export` folder, else None.
    """

    params: Any
    tokenizer: Any
    kind: str
    source: str
    speakers: Mapping[str, int] = dataclasses.field(default_factory=dict)
    speaking_rate: float = 1.0
    noise_scale: float = 0.667
    noise_scale_duration: float = 0.8
    normalize: bool = False
    pause: float = DEFAULT_PAUSE
    dtype: Optional[str] = None
    format: str = ""              # one line on the source's format, for `vits-jax info`
    programs: Any = None

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, source: Optional[str | os.PathLike] = None, *, config: Optional[str] = None,
             dtype: Optional[str] = None, tokenizer=None, text: bool = True,
             keep_in: Optional[str] = None, **tokenizer_options) -> "Voice":
        """Any voice `vits_jax.load` reads (Piper .onnx / folder / voice name, converted folder,
        transformers folder or hub id, original VITS / Piper checkpoint with its config), or None
        for the default voice. `config`: a checkpoint's training config when not beside it.
        `dtype`: the decoder's compute dtype (None: float32). `tokenizer`: one already opened
        for this source (the CLI opens it first, to check the text before reading weights);
        else `tokenizer_options` go to its `load` (`expand_numbers=True`, ...). text=False: a voice
        for `convert` only (voice conversion reads no text), so a training checkpoint without
        tokenizer files loads with `tokenizer` None instead of failing. An exported folder's
        programs are loaded too (a warning, and none, when they cannot run in this process).
        keep_in: a folder where a source that must be parsed (a Piper .onnx, a training
        checkpoint) is kept converted, so later loads map it instead (voice/kept.py)."""
        from ..voice.checkpoint import load_local
        from ..voice.kept import kept_or_none

        path, info = locate(source, config)
        if tokenizer is None:
            try:
                tokenizer = open_tokenizer(path, config=config, **tokenizer_options)
            except (OSError, ValueError):
                if text:
                    raise
                tokenizer = None
        params = kept_or_none(info, keep_in) or load_local(path, config, info)[0]
        voice = cls.from_params(params, tokenizer, kind=info.kind, source=path, dtype=dtype)
        programs = None
        if info.kind == EXPORTED:
            from .exported import load_programs

            programs = load_programs(path)
        return dataclasses.replace(voice, format=info.format, programs=programs)

    @classmethod
    def from_params(cls, params, tokenizer, *, kind: str = "params", source: str = "",
                    dtype: Optional[str] = None) -> "Voice":
        """A Voice around params and a tokenizer already in memory (e.g. fresh from training)."""
        config = params.config
        voice_json = getattr(tokenizer, "config", None) or {}
        names = voice_json.get("speaker_id_map") or {} if isinstance(voice_json, dict) else {}
        return cls(params=params, tokenizer=tokenizer, kind=kind, source=source,
                   speakers={str(k): int(v) for k, v in names.items()},
                   speaking_rate=float(config.speaking_rate), noise_scale=float(config.noise_scale),
                   noise_scale_duration=float(config.noise_scale_duration),
                   normalize=is_piper_voice(tokenizer), dtype=dtype)

    # ------------------------------------------------------------------ what it is
    @property
    def config(self):
        return self.params.config

    @property
    def sampling_rate(self) -> int:
        return int(self.params.config.sampling_rate)

    @property
    def num_speakers(self) -> int:
        return int(self.params.config.num_speakers)

    @property
    def language(self) -> Optional[str]:
        return getattr(self.tokenizer, "language", None)

    def speaker_id(self, speaker) -> Optional[int]:
        """A speaker id or name -> id (SpeakerError naming the known ones)."""
        return check_speaker(speaker, self.num_speakers, self.speakers, self.source or "the voice")

    def _options(self, options: dict) -> dict:
        out = dict(speaking_rate=self.speaking_rate, noise_scale=self.noise_scale,
                   noise_scale_duration=self.noise_scale_duration)
        out.update({k: v for k, v in options.items() if v is not None})
        if "speaker_id" in options:
            out["speaker_id"] = self.speaker_id(options["speaker_id"])
        return out

    # ------------------------------------------------------------------ programs
    def tokenize(self, texts, **kwargs):
        """Texts -> right-padded (ids (B, T), mask (B, T)) int32, as `Tokenizer.__call__`."""
        return self.tokenizer(texts, **kwargs)

    def synthesize(self, ids, attention_mask=None, **options):
        """Token ids -> `SynthesisOutput` (`vits_jax.synthesize` with this voice's defaults)."""
        from .synthesis import synthesize

        options.setdefault("dtype", self.dtype)
        options.setdefault("programs", self.programs)
        return synthesize(self.params, ids, attention_mask, **self._options(options))

    def speak(self, text: str, *, batch_size: int = DEFAULT_BATCH_SIZE, pause: Optional[float] = None,
              normalize: Optional[bool] = None, ssml: bool = False, ssml_lenient: bool = False, **options):
        """Text of any length -> `Speech` (`vits_jax.speak` with this voice's defaults). ssml=True:
        `text` is SSML (synth/ssml.py; <voice name> picks one of this voice's named speakers);
        ssml_lenient: unknown elements are spoken as text with a warning instead of an error."""
        if ssml:
            from .ssml import speak_ssml

            options = self._options(options)
            options.pop("prepared", None)
            return speak_ssml(self.params, self.tokenizer, text, batch_size=batch_size,
                              pause=self.pause if pause is None else pause,
                              normalize=self.normalize if normalize is None else normalize,
                              lenient=ssml_lenient, speaker_for=self.speaker_id, programs=self.programs,
                              **options)
        from .speech import speak

        return speak(self.params, self.tokenizer, text, batch_size=batch_size,
                     pause=self.pause if pause is None else pause,
                     normalize=self.normalize if normalize is None else normalize,
                     programs=self.programs, **self._options(options))

    def stream(self, text: str, *, pause: Optional[float] = None, normalize: Optional[bool] = None,
               **options) -> Iterator[np.ndarray]:
        """`speak` as it is produced: float32 chunks whose concatenation is `speak`'s waveform."""
        from .speech import speak_stream

        return speak_stream(self.params, self.tokenizer, text,
                            pause=self.pause if pause is None else pause,
                            normalize=self.normalize if normalize is None else normalize,
                            programs=self.programs, **self._options(options))

    def convert(self, waveform, *, source_speaker, target_speaker, sampling_rate: Optional[int] = None,
                seed: int = 0, noise_scale: float = 1.0, key=None):
        """Voice conversion: speech by `source_speaker` -> the same speech by `target_speaker`
        (`vits_jax.voice_conversion`; speakers by id or by name, as `speaker_id`).

        waveform: mono float samples (S,), or a list of them (one padded batch), at `sampling_rate`
        (None: the voice's; another rate is resampled to the voice's). Returns float32 samples at
        the voice's rate (S' // hop * hop, S' the resampled length), or a list. noise_scale: the
        posterior's spread (0: its means); the noise comes from `seed` (or `key`). Needs a
        multi-speaker voice with a posterior encoder (a training checkpoint): otherwise
        `VoiceConversionError` says what would work."""
        import jax

        from .audio import resample
        from .conversion import VoiceConversionError, check_convertible, voice_conversion

        check_convertible(self.params, self.source or "this voice")
        source = self.speaker_id(source_speaker)
        target = self.speaker_id(target_speaker)
        if sampling_rate is not None:
            if int(sampling_rate) <= 0:
                raise VoiceConversionError(f"sampling_rate must be positive, got {sampling_rate}")
            single = np.ndim(waveform) == 1 and not isinstance(waveform, list)
            items = [waveform] if single else list(waveform)
            items = [resample(np.asarray(x, np.float32), int(sampling_rate), self.sampling_rate)
                     if np.ndim(x) == 1 and np.issubdtype(np.asarray(x).dtype, np.floating) else x
                     for x in items]
            waveform = items[0] if single else items
        return voice_conversion(self.params, waveform, source_speaker=source, target_speaker=target,
                                key=jax.random.key(seed) if key is None else key,
                                noise_scale=noise_scale, dtype=self.dtype)

    def __repr__(self) -> str:
        return (f"Voice({self.kind} {self.source!r}, {self.sampling_rate} Hz, "
                f"{self.num_speakers} speaker(s), {self.params.num_parameters():,} parameters)")


def locate(source: Optional[str | os.PathLike], config: Optional[str] = None) -> tuple[str, SourceInfo]:
    """A source (None: the default voice; a hub id or Piper voice name is fetched) -> (local
    path, what it is). No weights are read."""
    from ..voice.default import default_model
    from ..voice.hub import resolve

    path = resolve(os.fspath(default_model() if source is None else source))
    return path, describe_source(path, config)


def load_model(model: Optional[str] = None, *, config: Optional[str] = None, **tokenizer_options):
    """A voice (None: the default) -> (VitsParams, tokenizer): `Voice.load` unpacked."""
    voice = Voice.load(model, config=config, **tokenizer_options)
    return voice.params, voice.tokenizer
