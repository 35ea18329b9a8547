"""``nmt serve``: translation over HTTP, concurrent requests batched together.

Built on FastAPI and uvicorn (``pip install 'nmt[serve]'``): a small, mature stack whose request
handling we control fully, so that every bad request gets a 4xx answer with a message. (LitServe,
from the Lightning ecosystem, batches requests by count in worker processes of its own, each with a
copy of the model; nmt batches by tokens, in one process, around the one search it already has.)

    POST /translate   {"text": ["...", ...], "beam": 5, "nbest": 1, "scores": false, "length_penalty": null}
                  ->  {"translations": ["...", ...]}  (lists of nbest strings when nbest > 1; "scores" when asked)
    GET  /health      200 {"status": "ok", "requests": N, "batches": M} once the model is loaded

Requests waiting at the same moment with the same options are translated as one batch, up to
``max_tokens`` source tokens; the model runs in one worker thread, one batch at a time.
"""

import asyncio
import json
from dataclasses import dataclass, field

from nmt.errors import NmtError

#: Options a request may give, their type and allowed range.
LIMITS = {"beam": (1, 64), "nbest": (1, 64)}


class BadRequest(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


@dataclass
class Pending:
    """A request waiting for its batch."""

    lines: list[str]
    options: tuple  # (beam, nbest, length_penalty): what must agree for requests to share a batch
    future: asyncio.Future = field(repr=False)
    tokens: int = 0


def parse(body: bytes, max_chars: int, max_lines: int) -> tuple[list[str], dict]:
    """A request's texts and options, or :class:`BadRequest` saying what is wrong."""
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BadRequest(400, f'the body is not JSON ({err}); send {{"text": ["..."]}}') from None
    if not isinstance(data, dict):
        raise BadRequest(422, 'the body must be a JSON object such as {"text": ["..."]}')
    unknown = sorted(set(data) - {"text", "beam", "nbest", "scores", "length_penalty"})
    if unknown:
        raise BadRequest(422, f"unknown field '{unknown[0]}'; the fields are text, beam, nbest, scores, length_penalty")
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
    options = {"beam": data.get("beam", 1), "nbest": data.get("nbest", 1)}
    for name, value in options.items():
        low, high = LIMITS[name]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise BadRequest(422, f"'{name}' must be a whole number from {low} to {high}, got {value!r}")
    if options["nbest"] > options["beam"]:
        raise BadRequest(422, f"'nbest' ({options['nbest']}) cannot exceed 'beam' ({options['beam']})")
    penalty = data.get("length_penalty")
    if penalty is not None and (isinstance(penalty, bool) or not isinstance(penalty, (int, float))):
        raise BadRequest(422, f"'length_penalty' must be a number, got {penalty!r}")
    scores = data.get("scores", False)
    if not isinstance(scores, bool):
        raise BadRequest(422, f"'scores' must be true or false, got {scores!r}")
    return text, {**options, "length_penalty": penalty, "scores": scores}


class Batcher:
    """Collects the requests that wait together and translates them as batches, in one worker thread."""

    def __init__(self, translate, count_tokens, max_tokens: int, wait_s: float = 0.005):
        self.translate, self.count_tokens = translate, count_tokens
        self.max_tokens, self.wait_s = max_tokens, wait_s
        self.queue: asyncio.Queue[Pending] = asyncio.Queue()
        self.requests = self.batches = 0

    async def submit(self, lines: list[str], options: dict) -> list[list]:
        future = asyncio.get_running_loop().create_future()
        key = (options["beam"], options["nbest"], options["length_penalty"])
        await self.queue.put(Pending(lines, key, future, self.count_tokens(lines)))
        return await future

    async def run(self) -> None:
        waiting: list[Pending] = []
        while True:
            if not waiting:
                waiting.append(await self.queue.get())
            await asyncio.sleep(self.wait_s)  # let requests arriving together join
            while not self.queue.empty():
                waiting.append(self.queue.get_nowait())
            key = waiting[0].options
            batch, budget, rest = [], 0, []
            for request in waiting:
                if request.options == key and (not batch or budget + request.tokens <= self.max_tokens):
                    batch.append(request)
                    budget += request.tokens
                else:
                    rest.append(request)
            waiting = rest
            await self._translate(batch)

    async def _translate(self, batch: list[Pending]) -> None:
        beam, nbest, penalty = batch[0].options
        lines = [line for request in batch for line in request.lines]
        try:
            results = await asyncio.to_thread(self.translate, lines, beam, nbest, penalty)
        except Exception as err:  # the model failed: every request of the batch hears it; the server goes on
            for request in batch:
                request.future.set_exception(err)
            return
        self.requests, self.batches = self.requests + len(batch), self.batches + 1
        start = 0
        for request in batch:
            request.future.set_result(results[start : start + len(request.lines)])
            start += len(request.lines)


def create_app(translate, count_tokens, max_tokens: int = 4096, max_chars: int = 5000, max_lines: int = 256,
               max_body: int = 1_000_000):  # fmt: skip
    """The FastAPI application around ``translate(lines, beam, nbest, length_penalty) -> [[Translation]]``."""
    from contextlib import asynccontextmanager

    # This module has no "from __future__ import annotations": FastAPI reads the endpoint's annotation.
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

    batcher = Batcher(translate, count_tokens, max_tokens)

    @asynccontextmanager
    async def lifespan(app):
        task = asyncio.create_task(batcher.run())
        yield
        task.cancel()

    app = FastAPI(title="nmt", lifespan=lifespan)

    @app.get("/health")
    async def health():
        return {"status": "ok", "requests": batcher.requests, "batches": batcher.batches}

    @app.post("/translate")
    async def translate_endpoint(request: Request):
        try:
            size = int(request.headers.get("content-length") or 0)
            if size > max_body:
                raise BadRequest(413, f"the body has {size} bytes; at most {max_body}")
            body = b""
            async for chunk in request.stream():  # also bounds bodies sent without a length
                body += chunk
                if len(body) > max_body:
                    raise BadRequest(413, f"the body is over {max_body} bytes")
            lines, options = parse(body, max_chars, max_lines)
        except BadRequest as err:
            return JSONResponse({"error": err.message}, status_code=err.status)
        try:
            results = await batcher.submit(lines, options)
        except NmtError as err:
            return JSONResponse({"error": str(err)}, status_code=422)
        single = options["nbest"] == 1
        texts = [[h.text for h in hyps] or [""] * options["nbest"] for hyps in results]
        answer = {"translations": [t[0] for t in texts] if single else texts}
        if options["scores"]:
            scores = [[h.score for h in hyps] for hyps in results]
            answer["scores"] = [s[0] if s else None for s in scores] if single else scores
        return answer

    return app
