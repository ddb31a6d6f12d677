"""`vits-jax info [MODEL]`: what a voice is: format, config, parameters, tokenizer, speakers."""

from __future__ import annotations

import argparse

from .common import CONFIG_HELP, VOICE_HELP


def _describe(voice) -> dict:
    tokenizer, config = voice.tokenizer, voice.config
    symbols = sorted(tokenizer.vocab, key=tokenizer.vocab.get)
    return {
        "model": voice.source,
        "format": voice.format,
        "parameters": voice.params.num_parameters(),
        "sampling_rate": config.sampling_rate,
        "num_speakers": config.num_speakers,
        "speaker_embedding_size": config.speaker_embedding_size,
        "speakers": dict(voice.speakers),
        "vocab_size": tokenizer.vocab_size,
        "symbols": symbols,
        "tokenizer": tokenizer.describe(),
        "config": config.to_dict(),
    }


def cmd_info(args) -> int:
    import json

    from ..synth.voice import Voice
    from ..voice import default as voices

    voice = Voice.load(args.model, config=args.config)
    config, path = voice.config, voice.source
    d = _describe(voice)
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


def register(subparsers) -> argparse.ArgumentParser:
    """Adds `info` to an argparse subparsers object; returns its parser."""
    from ..voice.default import describe_default

    default_voice = describe_default()
    p = subparsers.add_parser("info", help="describe a model",
                          description="Print a model's configuration, parameter count, "
                                      "vocabulary, tokenizer, speakers and sampling rate.")
    p.add_argument("model", metavar="MODEL", nargs="?", default=None,
                      help=f"{VOICE_HELP} (default: {default_voice})")
    p.add_argument("--config", default=None, metavar="FILE", help=CONFIG_HELP)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_info)
    return p
