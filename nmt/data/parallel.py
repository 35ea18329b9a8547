"""Work on every core, in order: a process pool with a bounded window over a stream of items."""

from __future__ import annotations

import os
import threading
import time
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
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_start_worker,
                             initargs=(os.getpid(), initializer, initargs)) as pool:  # fmt: skip
        pending: deque = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _start_worker(parent: int, initializer, initargs) -> None:
    """A worker ends itself when its parent is gone (killed with SIGKILL, say): the pool's queues
    never close then, so without this the workers would wait for work forever."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="nmt-parent-watch").start()
    if initializer:
        initializer(*initargs)


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
