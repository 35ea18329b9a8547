"""``nmt serve``: translation over HTTP for one or several models, and a page to look inside translations
(the API is in docs/deploy.md).

Built on FastAPI and uvicorn (``pip install 'nmt[serve]'``): a small, mature stack whose request
handling we control fully, so that every bad request gets a 4xx answer with a message. (LitServe,
from the Lightning ecosystem, batches requests by count in worker processes of its own, each with a
copy of the model; nmt batches by tokens, in one process, around the one search it already has.)

Each request is checked (:mod:`nmt.serve.requests`) and its lines encoded once, when it arrives; a
request whose work (lines x beam x output length limit) is over ``max_work`` is refused with 413.
The batches are :mod:`nmt.serve.batcher`'s. A request that is not answered within ``timeout_s`` gets
503 and its remaining lines are dropped, as are those of a client that went away. On SIGTERM the
server answers what waits with 503. ``GET /`` is the page (``nmt/serve/page``: plain HTML, CSS and
JavaScript, no external assets).
"""

import asyncio
import time
from importlib.resources import files

from nmt.engines import Engine
from nmt.errors import NmtError
from nmt.serve.batcher import Batcher, Pending
from nmt.serve.requests import REQUEST_SCHEMA, Ask, BadRequest, parse, work

PAGE = files("nmt.serve") / "page"
MEDIA = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css"}
PATHS = "GET / (the page), POST /translate, GET /models and GET /health"


class ServeError(NmtError):
    """A server setting that cannot work (refused at start)."""


def check_settings(max_tokens: int, max_chars: int, max_lines: int, max_body: int, max_work: int,
                   timeout_s: float, max_detail_lines: int = 32) -> None:  # fmt: skip
    for name, value in (("--max-tokens", max_tokens), ("--max-chars", max_chars), ("--max-lines", max_lines),
                        ("--max-body", max_body), ("--max-work", max_work), ("--timeout", timeout_s),
                        ("--max-detail-lines", max_detail_lines)):  # fmt: skip
        if not value > 0:
            raise ServeError(f"{name} must be above 0, got {value}; every request would be refused.")


def answer_body(ask: Ask, pending: Pending) -> dict:
    """The JSON answer: the texts (lists of n-best), scores and what lies behind the translations when asked."""
    single = ask.options.nbest == 1
    texts = [[h.text for h in hyps] or [""] * ask.options.nbest for hyps in pending.results]
    body = {"translations": [t[0] for t in texts] if single else texts}
    if ask.scores:
        values = [[h.score for h in hyps] for hyps in pending.results]
        body["scores"] = [s[0] if s else None for s in values] if single else values
    if ask.details:
        body["details"] = pending.details
    return body


def create_app(engines: dict[str, Engine], max_tokens: int = 4096, max_chars: int = 5000, max_lines: int = 256,
               max_body: int = 1_000_000, max_work: int = 500_000, timeout_s: float = 60.0,
               max_detail_lines: int = 32):  # fmt: skip
    """The FastAPI application around ``engines`` (name -> engine; the first one answers requests that name
    none). ``app.state.batcher`` stops it (:meth:`Batcher.stop`)."""
    from contextlib import asynccontextmanager

    # This module has no "from __future__ import annotations": FastAPI reads the endpoint's annotation.
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, Response
    from starlette.exceptions import HTTPException

    check_settings(max_tokens, max_chars, max_lines, max_body, max_work, timeout_s, max_detail_lines)
    models = [{"name": name, **engine.describe()} for name, engine in engines.items()]
    state: dict = {}

    @asynccontextmanager
    async def lifespan(app):
        batcher = app.state.batcher = state["batcher"] = Batcher(engines, max_tokens)
        task = asyncio.create_task(batcher.run())
        yield
        batcher.stop()
        task.cancel()

    # No /docs or /redoc: their pages load scripts from a CDN, blank offline. /openapi.json describes the API.
    app = FastAPI(title="nmt", lifespan=lifespan, docs_url=None, redoc_url=None)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, err: HTTPException):
        what = {404: f"no such path {request.url.path}; the paths are {PATHS}",
                405: f"{request.method} is not allowed on {request.url.path}"}  # fmt: skip
        what = what.get(err.status_code, str(err.detail))
        return JSONResponse({"error": what}, status_code=err.status_code, headers=getattr(err, "headers", None))

    @app.get("/", include_in_schema=False)
    async def page():
        return Response((PAGE / "index.html").read_bytes(), media_type=MEDIA[".html"])

    @app.get("/page/{name}", include_in_schema=False)
    async def page_file(name: str):
        path = PAGE / name
        if name not in ("app.js", "style.css") or not path.is_file():
            return JSONResponse({"error": f"no such file /page/{name}"}, status_code=404)
        return Response(path.read_bytes(), media_type=MEDIA["." + name.rsplit(".", 1)[-1]])

    @app.get("/models")
    async def list_models():
        return {"models": models}

    @app.get("/health")
    async def health():
        batcher = state["batcher"]
        return {"status": "stopping" if batcher.stopping else "ok", "requests": batcher.requests,
                "batches": batcher.batches, **batcher.backlog()}  # fmt: skip

    async def read_body(request: Request) -> bytes:
        size = int(request.headers.get("content-length") or 0)
        if size > max_body:
            raise BadRequest(413, f"the body has {size} bytes; at most {max_body}")
        body = b""
        async for chunk in request.stream():  # also bounds bodies sent without a length
            body += chunk
            if len(body) > max_body:
                raise BadRequest(413, f"the body is over {max_body} bytes")
        return body

    async def finished(request: Request, pending: Pending) -> Pending:
        """The request, translated; 503 after ``timeout_s``; nothing more done for a client that left."""
        batcher, start = state["batcher"], time.monotonic()
        while True:
            done, _ = await asyncio.wait([pending.future], timeout=0.25)
            if done:
                return pending.future.result()
            if await request.is_disconnected():
                batcher.drop(pending, 499, "the client went away")
            elif time.monotonic() - start > timeout_s:
                batcher.drop(pending, 503, f"the request took longer than {timeout_s:g} s (the server's --timeout); "
                             "its remaining lines were dropped. Send fewer lines or a smaller beam, or retry "
                             "later")  # fmt: skip

    @app.post("/translate", openapi_extra={"requestBody": {"required": True, "content": {
        "application/json": {"schema": REQUEST_SCHEMA}}}})  # fmt: skip
    async def translate_endpoint(request: Request):
        try:
            ask = parse(await read_body(request), engines, max_chars, max_lines, max_detail_lines)
            engine = engines[ask.model]
            prepared = engine.prepare(ask.lines)
            if prepared.too_long:
                i = prepared.too_long[0]
                n = len(engine.tokenizer.encode_src([prepared.texts[i]])[0])
                raise BadRequest(413, f"'text'[{i}] has {n} source tokens; this model takes at most "
                                 f"{engine.max_source_positions}: split the line")  # fmt: skip
            needed = work(engine, prepared, ask.options)
            if needed > max_work:
                raise BadRequest(413, f"the request may take up to {needed:,} decoder steps (lines x beam x output "
                                 f"length limit); at most {max_work:,} a request (--max-work): send fewer or shorter "
                                 "lines, or a smaller beam")  # fmt: skip
            pending = await finished(request, state["batcher"].add(ask, prepared))
        except BadRequest as err:
            return JSONResponse({"error": err.message}, status_code=err.status)
        except NmtError as err:
            return JSONResponse({"error": str(err)}, status_code=422)
        return answer_body(ask, pending)

    return app
