"""Work on every core, in order: a process pool with a bounded window over a stream of items."""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context


def ordered_map(fn, items: Iterator, workers: int, initializer=None, initargs=()) -> Iterator:
    """``map(fn, items)`` on ``workers`` processes, in order, with at most 2 x workers items in flight
    (the input is streamed, never read ahead whole); in this process when ``workers`` is 1."""
    if workers <= 1:
        if initializer:
            initializer(*initargs)
        yield from map(fn, items)
        return
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=initializer,
                             initargs=initargs) as pool:  # fmt: skip
        pending: deque = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
