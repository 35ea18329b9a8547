"""``nmt serve``: translation over HTTP, concurrent requests batched together (the API is in docs/deploy.md).

Built on FastAPI and uvicorn (``pip install 'nmt[serve]'``): a small, mature stack whose request
handling we control fully, so that every bad request gets a 4xx answer with a message. (LitServe,
from the Lightning ecosystem, batches requests by count in worker processes of its own, each with a
copy of the model; nmt batches by tokens, in one process, around the one search it already has.)

Each request is checked and its lines encoded once, when it arrives (:meth:`Engine.prepare`); a
request whose work (lines x beam x output length limit) is over ``max_work`` is refused with 413.
One worker thread decodes one batch at a time. A batch takes, in turn, lines of the waiting
requests that share the first one's model and options, up to ``max_tokens`` padded source tokens
(the engine decodes it as one batch), so a long request is cut into batches that alternate with
other clients'. A request that is not answered within ``timeout_s`` gets 503 and its remaining
lines are dropped, as are those of a client that went away. On SIGTERM the server answers what
waits with 503 and stops within ``stop_s`` seconds.
"""

import asyncio
import json
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from nmt import search
from nmt.engines import DecodeOptions, Engine, OptionError, Prepared, Translation
from nmt.errors import NmtError

log = logging.getLogger(__name__)

#: Upper bounds a request may not exceed (the options' own rules are DecodeOptions.check's).
LIMITS = {"beam": 64, "nbest": 64}
#: Request fields besides "text": the JSON types each accepts.
FIELDS = {"beam": (int,), "nbest": (int,), "length_penalty": (int, float, type(None)), "scores": (bool,)}
#: The OpenAPI description of POST /translate's body (the endpoint parses it by hand, to answer every error).
REQUEST_SCHEMA = {
    "type": "object",
    "required": ["text"],
    "properties": {
        "text": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
                 "description": "the lines to translate"},
        "beam": {"type": "integer", "minimum": 1, "maximum": LIMITS["beam"], "default": 1},
        "nbest": {"type": "integer", "minimum": 1, "maximum": LIMITS["nbest"], "default": 1},
        "length_penalty": {"type": ["number", "null"], "default": None},
        "scores": {"type": "boolean", "default": False},
    },
    "additionalProperties": False,
}  # fmt: skip


class BadRequest(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def _quoted(name: str) -> str:
    return f"'{name}'"


def parse(body: bytes, max_chars: int, max_lines: int) -> tuple[list[str], DecodeOptions, bool]:
    """A request's texts, decoding options and whether it asks for scores, or :class:`BadRequest`."""
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BadRequest(400, f'the body is not JSON ({err}); send {{"text": ["..."]}}') from None
    if not isinstance(data, dict):
        raise BadRequest(422, 'the body must be a JSON object such as {"text": ["..."]}')
    unknown = sorted(set(data) - {"text", *FIELDS})
    if unknown:
        raise BadRequest(422, f"unknown field '{unknown[0]}'; the fields are text, {', '.join(FIELDS)}")
    text = data.get("text")
    if isinstance(text, str):
        text = [text]
    if not isinstance(text, list) or not text:
        raise BadRequest(422, "'text' must be a non-empty list of strings (or one string)")
    if len(text) > max_lines:
        raise BadRequest(413, f"'text' has {len(text)} lines; at most {max_lines} a request")
    for i, line in enumerate(text):
        if not isinstance(line, str):
            raise BadRequest(422, f"'text'[{i}] is {type(line).__name__}, not a string")
        if len(line) > max_chars:
            raise BadRequest(413, f"'text'[{i}] has {len(line)} characters; at most {max_chars}")
    for name, types in FIELDS.items():
        value = data.get(name)
        if name in data and (not isinstance(value, types) or (isinstance(value, bool) and bool not in types)):
            kind = {int: "a whole number", bool: "true or false"}.get(types[0], "a number")
            raise BadRequest(422, f"'{name}' must be {kind}, got {value!r}")
    for name, high in LIMITS.items():
        if data.get(name, 1) > high:
            raise BadRequest(422, f"'{name}' may be at most {high} here, got {data[name]}")
    given = {name: data[name] for name in FIELDS if name in data and name in DecodeOptions.names()}  # scores too
    try:
        options = DecodeOptions(**given).check(_quoted)
    except OptionError as err:
        raise BadRequest(422, str(err).rstrip(".")) from None
    return text, options, data.get("scores", False)


def work(engine: Engine, prepared: Prepared, options: DecodeOptions) -> int:
    """Decoder steps a request may take at most: for each line, its hypotheses (beam, or samples) times its
    output length limit."""
    a = engine.defaults()["max_len_a"] if options.max_len_a is None else options.max_len_a
    b = engine.defaults()["max_len_b"] if options.max_len_b is None else options.max_len_b
    rows = options.nbest if options.sample else options.beam
    lengths = [len(prepared.src[i]) for i in prepared.rows]
    if not lengths:
        return 0
    import torch

    return rows * int(search.length_limits(torch.tensor(lengths), a, b).sum())


@dataclass(eq=False)
class Pending:
    """A request: its prepared lines, those not yet handed to a batch, and the translations so far."""

    engine: str
    prepared: Prepared
    options: DecodeOptions
    future: asyncio.Future = field(repr=False)
    todo: deque = field(default_factory=deque)
    results: list[list[Translation]] = field(default_factory=list)
    left: int = 0

    def __post_init__(self) -> None:
        self.todo = deque(self.prepared.rows)
        self.left = len(self.todo)
        self.results = [[] for _ in self.prepared.texts]

    @property
    def key(self) -> tuple:
        """What requests must share to share a batch."""
        return self.engine, self.options

    def fail(self, status: int, message: str) -> None:
        self.todo.clear()
        if not self.future.done():
            self.future.set_exception(BadRequest(status, message))


def padded_cost(lengths: list[int]) -> int:
    """Source tokens a batch of these lengths takes, padding included."""
    return len(lengths) * max(lengths, default=0)


class Batcher:
    """Collects the requests that wait together and translates them in batches, in one worker thread."""

    def __init__(self, engines: dict[str, Engine], max_tokens: int, wait_s: float = 0.005):
        self.engines, self.max_tokens, self.wait_s = engines, max_tokens, wait_s
        self.waiting: list[Pending] = []
        self.arrived = asyncio.Event()
        self.requests = self.batches = 0
        self.busy_since: float | None = None
        self.stopping = False

    def backlog(self) -> dict:
        busy = None if self.busy_since is None else round(time.monotonic() - self.busy_since, 3)
        return {"waiting_requests": len(self.waiting), "waiting_lines": sum(len(r.todo) for r in self.waiting),
                "busy_s": busy}  # fmt: skip

    def add(self, engine: str, prepared: Prepared, options: DecodeOptions) -> Pending:
        """Queue a request; its ``future`` gets the translations."""
        if self.stopping:
            raise BadRequest(503, "the server is stopping; send the request again to another server")
        request = Pending(engine, prepared, options, asyncio.get_running_loop().create_future())
        if not request.todo:  # only empty lines: nothing to decode
            self.requests += 1
            request.future.set_result(request.results)
            return request
        self.waiting.append(request)
        self.arrived.set()
        return request

    def drop(self, request: Pending, status: int, message: str) -> None:
        """Stop working for ``request`` (its client left, or its time ran out)."""
        request.fail(status, message)
        self.waiting = [r for r in self.waiting if not r.future.done()]

    def stop(self) -> None:
        """Answer every waiting request with 503 and take no more (SIGTERM)."""
        self.stopping = True
        for request in self.waiting:
            request.fail(503, "the server is stopping; send the request again to another server")
        self.waiting = []
        self.arrived.set()

    def _next_batch(self) -> tuple[Pending, list[tuple[Pending, int]]]:
        """The first waiting request, and lines of the requests that share its model and options taken in turn
        (one from each, again and again) while the batch stays within the token budget."""
        first = self.waiting[0]
        options = first.options
        budget = max(self.max_tokens // options.nbest, 1) if options.sample else self.max_tokens
        sharing = [r for r in self.waiting if r.key == first.key]
        taken: list[tuple[Pending, int]] = []
        lengths: list[int] = []
        while any(r.todo for r in sharing):
            for request in sharing:
                if not request.todo:
                    continue
                length = len(request.prepared.src[request.todo[0]])
                if taken and padded_cost([*lengths, length]) > budget:
                    return first, taken
                taken.append((request, request.todo.popleft()))
                lengths.append(length)
        return first, taken

    async def run(self) -> None:
        while not self.stopping:
            self.waiting = [r for r in self.waiting if not r.future.done()]
            if not any(r.todo for r in self.waiting):
                self.arrived.clear()
                await self.arrived.wait()
                await asyncio.sleep(self.wait_s)  # let requests arriving together join
                continue
            first, taken = self._next_batch()
            self.waiting.remove(first)  # the next batch starts from another request's model and options
            self.waiting.append(first)
            await self._translate(first, taken)

    async def _translate(self, first: Pending, taken: list[tuple[Pending, int]]) -> None:
        rows = [(request.prepared, row) for request, row in taken]
        batch = Prepared([p.texts[i] for p, i in rows], [p.src[i] for p, i in rows],
                         prefixes=None if all(p.prefixes is None for p, _ in rows) else
                         [p.prefixes[i] if p.prefixes is not None else [] for p, i in rows])  # fmt: skip
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        engine = self.engines[first.engine]

        def work_in_thread() -> None:  # a daemon thread: a stopping server never waits for it
            try:
                result = engine.run(batch, first.options)
                loop.call_soon_threadsafe(lambda: done.done() or done.set_result(result))
            except Exception as err:  # the model failed: every request of the batch hears it; the server goes on
                failure = err
                loop.call_soon_threadsafe(lambda: done.done() or done.set_exception(failure))

        self.busy_since = time.monotonic()
        threading.Thread(target=work_in_thread, daemon=True, name="nmt-decode").start()
        try:
            results = await done
        except Exception as err:
            log.exception("decoding failed")
            for request in {id(r): r for r, _ in taken}.values():
                request.fail(500, f"decoding failed: {err}")
            return
        finally:
            self.busy_since = None
        self.batches += 1
        for (request, row), hyps in zip(taken, results):
            request.results[row] = hyps
            request.left -= 1
        for request in {id(r): r for r, _ in taken}.values():
            if request.left == 0 and not request.future.done():
                self.requests += 1
                request.future.set_result(request.results)


class ServeError(NmtError):
    """A server setting that cannot work (refused at start)."""


def check_settings(max_tokens: int, max_chars: int, max_lines: int, max_body: int, max_work: int,
                   timeout_s: float) -> None:  # fmt: skip
    for name, value in (("--max-tokens", max_tokens), ("--max-chars", max_chars), ("--max-lines", max_lines),
                        ("--max-body", max_body), ("--max-work", max_work), ("--timeout", timeout_s)):  # fmt: skip
        if not value > 0:
            raise ServeError(f"{name} must be above 0, got {value}; every request would be refused.")


def create_app(engines: dict[str, Engine], max_tokens: int = 4096, max_chars: int = 5000, max_lines: int = 256,
               max_body: int = 1_000_000, max_work: int = 500_000, timeout_s: float = 60.0):  # fmt: skip
    """The FastAPI application around ``engines`` (name -> engine; the first one answers requests that name
    none). ``app.state.batcher`` stops it (:meth:`Batcher.stop`)."""
    from contextlib import asynccontextmanager

    # This module has no "from __future__ import annotations": FastAPI reads the endpoint's annotation.
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException

    check_settings(max_tokens, max_chars, max_lines, max_body, max_work, timeout_s)
    default = next(iter(engines))
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
        what = {404: f"no such path {request.url.path}; the paths are POST /translate and GET /health",
                405: f"{request.method} is not allowed on {request.url.path}"}  # fmt: skip
        what = what.get(err.status_code, str(err.detail))
        return JSONResponse({"error": what}, status_code=err.status_code, headers=getattr(err, "headers", None))

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

    async def answer(request: Request, pending: Pending) -> list[list[Translation]]:
        """The request's translations; 503 after ``timeout_s``; nothing more done for a client that left."""
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
            lines, options, scores = parse(await read_body(request), max_chars, max_lines)
            engine = engines[default]
            engine.refuse(options, spell=_quoted)
            prepared = engine.prepare(lines)
            if prepared.too_long:
                i = prepared.too_long[0]
                n = len(engine.tokenizer.encode_src([prepared.texts[i]])[0])
                raise BadRequest(413, f"'text'[{i}] has {n} source tokens; this model takes at most "
                                 f"{engine.max_source_positions}: split the line")  # fmt: skip
            needed = work(engine, prepared, options)
            if needed > max_work:
                raise BadRequest(413, f"the request may take up to {needed:,} decoder steps (lines x beam x output "
                                 f"length limit); at most {max_work:,} a request (--max-work): send fewer or shorter "
                                 "lines, or a smaller beam")  # fmt: skip
            results = await answer(request, state["batcher"].add(default, prepared, options))
        except BadRequest as err:
            return JSONResponse({"error": err.message}, status_code=err.status)
        except NmtError as err:  # OptionError from refuse: what this engine cannot do
            return JSONResponse({"error": str(err)}, status_code=422)
        single = options.nbest == 1
        texts = [[h.text for h in hyps] or [""] * options.nbest for hyps in results]
        body = {"translations": [t[0] for t in texts] if single else texts}
        if scores:
            values = [[h.score for h in hyps] for hyps in results]
            body["scores"] = [s[0] if s else None for s in values] if single else values
        return body

    return app
