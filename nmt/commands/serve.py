"""``nmt serve``: an HTTP JSON API for a checkpoint (or a CTranslate2 export); see :mod:`nmt.serve`."""

from __future__ import annotations

import argparse
import gc
import logging

from nmt.errors import NmtError

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="nmt serve", description="Serve translations over HTTP (POST /translate).")
    parser.add_argument("--ckpt", required=True, nargs="+", help="checkpoint(s), or with --engine ctranslate2 a folder")
    parser.add_argument("--engine", choices=["nmt", "ctranslate2"], default="nmt")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8008)
    parser.add_argument("--max-tokens", type=int, default=4096, help="source tokens a batch of requests may hold")
    parser.add_argument("--max-chars", type=int, default=5000, help="characters a text may have")
    parser.add_argument("--max-lines", type=int, default=256, help="texts a request may have")
    parser.add_argument("--max-body", type=int, default=1_000_000, help="bytes a request body may have")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if there is one)")
    args = parser.parse_args(argv)
    try:
        import uvicorn

        from nmt.serve import create_app
    except ImportError:
        raise NmtError("nmt serve needs FastAPI and uvicorn: pip install 'nmt[serve]'.") from None
    import torch

    from nmt.commands.io import load
    from nmt.commands.translate import exported
    from nmt.hardware import parse_device
    from nmt.translation import translate_full

    device = parse_device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if args.engine == "nmt":
        model = load(args.ckpt, device)

        def translate(lines, beam, nbest, penalty):
            return translate_full(model, lines, beam, nbest, penalty, args.max_tokens, attention=False)

    else:
        model = exported(args.ckpt[0], device.type)

        def translate(lines, beam, nbest, penalty):
            return model.translate(lines, beam, nbest, penalty, args.max_tokens)

    tok = model.tokenizer
    gc.freeze()  # as nmt translate: the loaded model's objects stay out of the collector's way
    app = create_app(translate, lambda lines: sum(len(ids) for ids in tok.encode_src(lines)), args.max_tokens,
                     args.max_chars, args.max_lines, args.max_body)  # fmt: skip
    log.info("serving %s on http://%s:%d (POST /translate, GET /health)", " ".join(args.ckpt), args.host, args.port)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
