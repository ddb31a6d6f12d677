"""`vits-jax serve`: one warm process that speaks over HTTP (OpenAI's and Piper's APIs) and,
with --wyoming, the Wyoming protocol (Home Assistant).

    vits-jax serve                                        # the default voice on 127.0.0.1:5000
    vits-jax serve -m joe=en_US-joe-medium.onnx -m ./mms-tts-deu --port 8000 --batch-size 8
    vits-jax serve -m joe=en_US-joe-medium.onnx --wyoming tcp://0.0.0.0:10200

Each voice is loaded once (`Voice.load`; its name is the file stem, or NAME=SOURCE); one engine
(synth/engine.py) owns the queue and batches the sentences of concurrent requests of either
protocol; app/http.py and app/wyoming.py are the protocol adapters, in one event loop. The server
listens at once (/health answers 503) and reports ready, with every address it listens on, once
every voice's programs are compiled. SIGTERM or SIGINT: stop accepting, finish what was accepted,
exit 0. Starlette and uvicorn (the `serve` extra) are imported only when it runs, `wyoming` only
with --wyoming.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
from typing import Optional
from urllib.parse import urlparse

from .common import (CliError, VOICE_HELP, add_cache_options, add_device_options, keep_programs, kept_voices,
                     local_devices, setup_compilation_cache)


def voice_name(spec: str) -> tuple[str, Optional[str]]:
    """-m NAME=SOURCE or -m SOURCE -> (name, source): the name is the source's file stem."""
    if "=" in spec and not os.path.exists(spec):
        name, source = spec.split("=", 1)
        if not name.strip() or not source.strip():
            raise CliError(f"-m {spec}: give NAME=SOURCE with both parts")
        return name.strip(), source
    base = os.path.basename(os.path.normpath(spec))
    for suffix in (".onnx", ".pth", ".ckpt", ".safetensors"):
        if base.endswith(suffix):
            base = base[:-len(suffix)]
    return base or spec, spec


def load_voices(specs, keep_in=None, dtype=None) -> dict:
    """-m specs -> {name: Voice}; keep_in: where parsed sources are kept converted (kept_voices);
    dtype: the decoder's compute dtype (None: float32)."""
    from ..synth.voice import Voice
    from ..voice.default import default_model

    voices = {}
    for spec in specs or [None]:
        if spec is None:
            source = default_model()
            name = voice_name(os.fspath(source))[0]
        else:
            name, source = voice_name(spec)
        if name in voices:
            raise CliError(f"two voices are named {name!r}: name them with -m NAME=SOURCE")
        # as `say`: numbers are spoken, letters the voice lacks folded
        voices[name] = Voice.load(source, expand_numbers=True, fold_diacritics=True, keep_in=keep_in,
                                  dtype=dtype)
    return voices


def wyoming_address(uri: str) -> tuple[str, int]:
    """--wyoming tcp://HOST:PORT -> (host, port); port 0: a free one."""
    parsed = urlparse(uri)
    try:
        port = parsed.port
    except ValueError:
        port = None
    if parsed.scheme != "tcp" or not parsed.hostname or port is None:
        raise CliError(f"--wyoming {uri}: give tcp://HOST:PORT (e.g. tcp://0.0.0.0:10200)")
    return parsed.hostname, port


def bind(host: str, port: int, option: str = "--host") -> socket.socket:
    """The listening socket (port 0: a free one), so the ready line names the real port."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise CliError(f"{option} {host}: {e.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as e:
        sock.close()
        raise CliError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def address(sock: socket.socket, scheme: str) -> str:
    host, port = sock.getsockname()[:2]
    return f"{scheme}://{host if ':' not in host else f'[{host}]'}:{port}"


def cmd_serve(args) -> int:
    if not 1 <= args.port <= 65535 and args.port != 0:
        raise CliError(f"--port must be in [0, 65535], got {args.port}")
    wyoming_at = wyoming_address(args.wyoming) if args.wyoming else None
    for option, value in (("--max-queue", args.max_queue), ("--batch-size", args.batch_size),
                          ("--max-chars", args.max_chars)):
        if value < 1:
            raise CliError(f"{option} must be >= 1, got {value}")
    try:
        import starlette  # noqa: F401
        import uvicorn
    except ImportError as e:
        raise CliError(f"`vits-jax serve` needs the serve extra (pip install 'vits-jax[serve]'): "
                       f"{e}") from None
    if wyoming_at is not None:
        try:
            from . import wyoming
        except ImportError as e:
            raise CliError(f"--wyoming needs the wyoming package (pip install 'vits-jax[serve]'): "
                           f"{e}") from None
    devices = local_devices(args.devices)
    cache = None if args.no_cache else setup_compilation_cache(args.cache_dir)
    dtype = None if args.dtype == "float32" else args.dtype
    voices = {name: keep_programs(voice, cache)
              for name, voice in load_voices(args.model, kept_voices(cache), dtype).items()}
    sock = bind(args.host, args.port)
    wyoming_sock = bind(*wyoming_at, option="--wyoming") if wyoming_at is not None else None

    from ..synth.engine import Engine
    from .http import create_app

    engine = Engine(voices, batch_size=args.batch_size, max_queue=args.max_queue,
                    max_chars=args.max_chars, devices=devices)
    urls = address(sock, "http") + (f" wyoming {address(wyoming_sock, 'tcp')}" if wyoming_sock else "")
    print(f"loaded {len(voices)} voice(s): {', '.join(voices)}; compiling ...", file=sys.stderr, flush=True)
    engine.start()

    import asyncio

    async def announce():
        await asyncio.get_running_loop().run_in_executor(None, engine.ready.wait)
        print(f"ready: {urls} (voices: {', '.join(voices)})", file=sys.stderr, flush=True)

    class Server(uvicorn.Server):
        stop_wyoming = None

        async def startup(self, sockets=None):
            await super().startup(sockets)
            if wyoming_sock is not None:             # the same loop and engine as HTTP
                self.stop_wyoming = await wyoming.serve(engine, wyoming_sock)
            self._announce = asyncio.ensure_future(announce())

        async def shutdown(self, sockets=None):
            # both protocols stop accepting at once and finish what they accepted
            await asyncio.gather(super().shutdown(sockets),
                                 *([self.stop_wyoming()] if self.stop_wyoming else []))

    config = uvicorn.Config(create_app(engine), log_level="warning", access_log=False,
                            timeout_graceful_shutdown=None, lifespan="off")
    server = Server(config)
    # uvicorn handles SIGTERM / SIGINT itself (stop accepting, let the open responses finish) and
    # raises the signal again when it is done: handlers that ignore it then, so the exit is 0
    previous = {s: signal.signal(s, lambda *_: None) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.run(sockets=[sock])
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        engine.close()
        sock.close()
        if wyoming_sock is not None:
            wyoming_sock.close()
    print("stopped", file=sys.stderr, flush=True)
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "serve", help="serve voices over HTTP (OpenAI's /v1/audio/speech, Piper's API) and Wyoming",
        description="Serve voices over HTTP on one port: OpenAI's POST /v1/audio/speech, "
                    "GET /v1/models, GET /v1/audio/voices; Piper's POST /synthesize, GET /voices, "
                    "GET /info; GET /health; and GET /, a page to try the voices in a browser "
                    "(POST /api/speak: audio with word timings). With --wyoming, also the Wyoming "
                    "protocol (Home Assistant's Wyoming integration), on the same voices. Concurrent "
                    "requests share batches. SIGTERM / Ctrl-C finishes the accepted requests and exits.")
    p.add_argument("-m", "--model", action="append", default=None, metavar="VOICE",
                   help=f"{VOICE_HELP}; NAME=VOICE names it (default name: the file stem). "
                        "Repeat for several voices; the first is the default (without -m: the "
                        "default voice)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=5000, help="port (default 5000; 0: a free one)")
    p.add_argument("--wyoming", metavar="URI", default=None,
                   help="also speak the Wyoming protocol (Home Assistant) at tcp://HOST:PORT, "
                        "e.g. tcp://0.0.0.0:10200 (port 0: a free one)")
    p.add_argument("--max-queue", type=int, default=64, metavar="N",
                   help="most requests in progress; more get 503 with Retry-After (default 64)")
    p.add_argument("--max-chars", type=int, default=10000, metavar="N",
                   help="longest input text in characters; longer gets 413 (default 10000)")
    p.add_argument("--batch-size", type=int, default=8, metavar="N",
                   help="most sentences per synthesis batch, across requests (default 8)")
    add_device_options(p, "serve")
    add_cache_options(p)
    p.set_defaults(func=cmd_serve)
