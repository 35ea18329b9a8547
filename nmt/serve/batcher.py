"""The server's one queue: requests waiting together are translated in token-budget batches, one at a time,
in a worker thread.

A batch takes the first waiting request's model and options, and lines of every waiting request that
shares them, one from each in turn, up to ``max_tokens`` padded source tokens (the engine's own
budget rule, so it decodes the batch as one). A long request is thus cut into batches that alternate
with other clients'. Sampled requests are decoded alone, so a seed gives the same samples whoever
else is waiting. A request can be dropped (its client left, its time ran out) or all of them
answered 503 (the server stops).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from nmt.engines import Engine, Prepared
from nmt.serve.requests import Ask, BadRequest

log = logging.getLogger(__name__)
STOPPING = "the server is stopping; send the request again to another server"


@dataclass(eq=False)
class Pending:
    """A request: its prepared lines, those not yet handed to a batch, and the translations (and what lies
    behind them) so far."""

    ask: Ask
    prepared: Prepared
    future: asyncio.Future = field(repr=False)
    todo: deque = field(default_factory=deque)
    results: list = field(default_factory=list)
    details: list = field(default_factory=list)
    left: int = 0

    def __post_init__(self) -> None:
        self.todo = deque(self.prepared.rows)
        self.left = len(self.todo)
        self.results = [[] for _ in self.prepared.texts]
        self.details = [[] for _ in self.prepared.texts]

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

    def add(self, ask: Ask, prepared: Prepared) -> Pending:
        """Queue a request; its ``future`` gets the translations."""
        if self.stopping:
            raise BadRequest(503, STOPPING)
        request = Pending(ask, prepared, asyncio.get_running_loop().create_future())
        if not request.todo:  # only empty lines: nothing to decode
            self.requests += 1
            request.future.set_result(request)
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
            request.fail(503, STOPPING)
        self.waiting = []
        self.arrived.set()

    def _next_batch(self) -> tuple[Pending, list[tuple[Pending, int]]]:
        """The first waiting request, and lines of the requests that share its model and options taken in turn
        (one from each, again and again) while the batch stays within the token budget."""
        first = self.waiting[0]
        options = first.ask.options
        budget = max(self.max_tokens // options.nbest, 1) if options.sample else self.max_tokens
        sharing = [first] if options.sample else [r for r in self.waiting if r.ask.key == first.ask.key]
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
            # Before every batch, let requests arriving together join: after a batch, the clients just answered
            # send their next request within this pause (without it, the next batch holds only the stragglers).
            # The pause is part of the batch: /health shows the server busy while work waits.
            self.busy_since = time.monotonic()
            await asyncio.sleep(self.wait_s)
            self.waiting = [r for r in self.waiting if not r.future.done()]
            if self.stopping or not any(r.todo for r in self.waiting):
                self.busy_since = None
                continue
            first, taken = self._next_batch()
            self.waiting.remove(first)  # the next batch starts from another request's model and options
            self.waiting.append(first)
            await self._translate(first.ask, taken)

    async def _translate(self, ask: Ask, taken: list[tuple[Pending, int]]) -> None:
        rows = [(request.prepared, row) for request, row in taken]
        batch = Prepared([p.texts[i] for p, i in rows], [p.src[i] for p, i in rows])
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        engine = self.engines[ask.model]

        def work_in_thread() -> None:  # a daemon thread: a stopping server never waits for it
            try:
                results = engine.run(batch, ask.options)
                details = None
                if ask.details:
                    details = engine.details(batch, results, ask.alternatives, ask.attention, self.max_tokens)
                loop.call_soon_threadsafe(lambda: done.done() or done.set_result((results, details)))
            except Exception as err:  # the model failed: every request of the batch hears it; the server goes on
                failure = err
                loop.call_soon_threadsafe(lambda: done.done() or done.set_exception(failure))

        threading.Thread(target=work_in_thread, daemon=True, name="nmt-decode").start()
        try:
            results, details = await done
        except Exception as err:
            log.exception("decoding failed")
            for request in {id(r): r for r, _ in taken}.values():
                request.fail(500, f"decoding failed: {err}")
            return
        finally:
            self.busy_since = None
        self.batches += 1
        for k, ((request, row), hyps) in enumerate(zip(taken, results)):
            request.results[row] = hyps
            request.details[row] = details[k] if details else []
            request.left -= 1
        for request in {id(r): r for r, _ in taken}.values():
            if request.left == 0 and not request.future.done():
                self.requests += 1
                request.future.set_result(request)
