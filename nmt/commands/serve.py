"""``nmt serve``: an HTTP JSON API and a page for one or several models (checkpoints, ensembles or CTranslate2
exports); see :mod:`nmt.serve.app`."""

from __future__ import annotations

import argparse
import gc
import logging
import os
import signal
import sys
from pathlib import Path

from nmt.errors import NmtError

log = logging.getLogger(__name__)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nmt serve", description="Serve translations over HTTP (POST /translate) and a "
                                "page to look inside them (GET /).")  # fmt: skip
    p.add_argument("--ckpt", nargs="+", help="checkpoint(s) (several: an ensemble), or with --engine ctranslate2 the "
                   "folder written by nmt export")  # fmt: skip
    p.add_argument("--model", action="append", default=[], metavar="NAME=PATH",
                   help="a model by name, repeatable: a checkpoint or a CTranslate2 export folder "
                   "(--model transformer=A.ckpt --model luong=B.ckpt)")  # fmt: skip
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
    p.add_argument("--max-detail-lines", type=int, default=32,
                   help="lines a request may have when it asks for alternatives or attention")  # fmt: skip
    p.add_argument("--stop-timeout", type=float, default=5.0,
                   help="on SIGTERM, seconds to finish answering before the server exits")  # fmt: skip
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if there is one)")
    return p


def is_export(path: Path) -> bool:
    """Whether ``path`` is a CTranslate2 export folder (``nmt export``) rather than a checkpoint."""
    return path.is_dir() and (path / "model.bin").is_file()


def models(args: argparse.Namespace, device) -> dict:
    """Name -> a function opening its engine, from ``--ckpt`` (and ``--engine``) and the ``--model NAME=PATH``s,
    every option checked before any model is read."""
    from nmt.engines import DecodeOptions, engine_class, open_engine

    if not args.ckpt and not args.model:
        raise NmtError("give the model to serve: --ckpt CKPT (several: an ensemble) or --model NAME=PATH (repeatable).")
    budget = DecodeOptions(max_tokens=args.max_tokens).check()
    openers = {}
    if args.ckpt:
        engine_class(args.engine).refuse(budget, members=len(args.ckpt))
        openers[""] = lambda: open_engine(args.engine, args.ckpt, device)  # named by what it is, once open
    for given in args.model:
        name, sep, path = given.partition("=")
        if not sep or not name or not path:
            raise NmtError(f"--model {given}: give NAME=PATH, e.g. --model transformer=runs/checkpoints/best.ckpt.")
        if name in openers:
            raise NmtError(f"--model {given}: the name {name} is taken; give each model its own.")
        engine = "ctranslate2" if is_export(Path(path)) else "nmt"
        openers[name] = lambda engine=engine, path=path: open_engine(engine, [path], device)
    return openers


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    try:
        import uvicorn

        from nmt.serve.app import check_settings, create_app
    except ImportError:
        raise NmtError("nmt serve needs FastAPI and uvicorn: pip install 'nmt[serve]'.") from None
    from nmt.hardware import parse_device

    if not 0 < args.port < 65536:
        raise NmtError(f"--port must be between 1 and 65535, got {args.port}.")
    check_settings(args.max_tokens, args.max_chars, args.max_lines, args.max_body, args.max_work, args.timeout,
                   args.max_detail_lines)  # fmt: skip
    device = parse_device(args.device)
    engines = {name: opener() for name, opener in models(args, device).items()}
    if "" in engines:  # --ckpt: named after its network (transformer, luong, ...), an ensemble or ctranslate2
        engine = engines.pop("")
        network = engine.describe()["network"]
        name = (
            args.engine if args.engine == "ctranslate2" else "ensemble" if network.startswith("ensemble") else network
        )
        engines = {name.removesuffix("Net").lower(): engine, **engines}
    gc.freeze()  # as nmt translate: the loaded models' objects stay out of the collector's way
    app = create_app(engines, args.max_tokens, args.max_chars, args.max_lines, args.max_body, args.max_work,
                     args.timeout, args.max_detail_lines)  # fmt: skip

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
    log.info("serving %s on http://%s:%d (the page: GET /; POST /translate, GET /models, GET /health)",
             ", ".join(engines), args.host, args.port)  # fmt: skip
    try:
        Server(config).run()
    except OSError as err:  # e.g. the port is taken
        raise NmtError(f"cannot listen on {args.host}:{args.port}: {err.strerror}. Choose another --port.") from None
    log.info("stopped")
    # A batch still decoding runs in a daemon thread: leave without waiting for it (status 0, output flushed).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
