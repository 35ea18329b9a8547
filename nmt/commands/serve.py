"""``nmt serve``: an HTTP JSON API for a checkpoint (or a CTranslate2 export); see :mod:`nmt.serve`."""

from __future__ import annotations

import argparse
import gc
import logging
import os
import signal
import sys

from nmt.errors import NmtError

log = logging.getLogger(__name__)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nmt serve", description="Serve translations over HTTP (POST /translate).")
    p.add_argument("--ckpt", required=True, nargs="+", help="checkpoint(s) (several: an ensemble), or with "
                   "--engine ctranslate2 the folder written by nmt export")  # fmt: skip
    p.add_argument("--engine", choices=("nmt", "ctranslate2"), default="nmt")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8008)
    p.add_argument("--max-tokens", type=int, default=4096, help="source tokens a batch of requests may hold")
    p.add_argument("--max-chars", type=int, default=5000, help="characters a text may have")
    p.add_argument("--max-lines", type=int, default=256, help="texts a request may have")
    p.add_argument("--max-body", type=int, default=1_000_000, help="bytes a request body may have")
    p.add_argument("--max-work", type=int, default=500_000,
                   help="decoder steps a request may take at most (lines x beam x output length limit); "
                   "more: 413")  # fmt: skip
    p.add_argument("--timeout", type=float, default=60.0,
                   help="seconds a request may take; then it gets 503 and its remaining lines are dropped")  # fmt: skip
    p.add_argument("--stop-timeout", type=float, default=5.0,
                   help="on SIGTERM, seconds to finish answering before the server exits")  # fmt: skip
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if there is one)")
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    try:
        import uvicorn

        from nmt.serve import check_settings, create_app
    except ImportError:
        raise NmtError("nmt serve needs FastAPI and uvicorn: pip install 'nmt[serve]'.") from None
    from nmt.engines import DecodeOptions, engine_class, open_engine
    from nmt.hardware import parse_device

    if not 0 < args.port < 65536:
        raise NmtError(f"--port must be between 1 and 65535, got {args.port}.")
    check_settings(args.max_tokens, args.max_chars, args.max_lines, args.max_body, args.max_work, args.timeout)
    engine_class(args.engine).refuse(DecodeOptions(max_tokens=args.max_tokens).check(), members=len(args.ckpt))
    engine = open_engine(args.engine, args.ckpt, parse_device(args.device))
    gc.freeze()  # as nmt translate: the loaded model's objects stay out of the collector's way
    app = create_app({"default": engine}, args.max_tokens, args.max_chars, args.max_lines, args.max_body,
                     args.max_work, args.timeout)  # fmt: skip

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame) -> None:
            """SIGTERM or Ctrl-C: answer what waits with 503, then stop (a second Ctrl-C: at once). Unlike
            uvicorn's own, it does not raise the signal again once stopped, so the exit status is 0."""
            batcher = getattr(app.state, "batcher", None)
            loop = getattr(self, "loop", None)
            if batcher is not None and loop is not None:
                loop.call_soon_threadsafe(batcher.stop)
            if self.should_exit and sig == signal.SIGINT:
                self.force_exit = True
            else:
                self.should_exit = True

        async def startup(self, sockets=None) -> None:
            import asyncio

            self.loop = asyncio.get_running_loop()
            await super().startup(sockets)

    config = uvicorn.Config(app, host=args.host, port=args.port, log_level="warning",
                            timeout_graceful_shutdown=max(int(args.stop_timeout), 1))  # fmt: skip
    log.info("serving %s on http://%s:%d (POST /translate, GET /health)", " ".join(args.ckpt), args.host, args.port)
    try:
        Server(config).run()
    except OSError as err:  # e.g. the port is taken
        raise NmtError(f"cannot listen on {args.host}:{args.port}: {err.strerror}. Choose another --port.") from None
    log.info("stopped")
    # A batch still decoding runs in a daemon thread: leave without waiting for it (status 0, output flushed).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
