#!/usr/bin/env python
"""A bounded load test of ``nmt serve`` on localhost: requests per second and latency percentiles.

    python scripts/serve_benchmark.py --ckpt CKPT [--engine ctranslate2] [--requests 1000] [--clients 8] [--details]

Starts ``nmt serve`` on a free port, sends ``--requests`` requests (one sentence each, from the
embedded test set, beam ``--beam``) from ``--clients`` concurrent clients, and reports requests/s,
p50/p95/p99 latency and how many batches the server ran them in. ``--details``: each request also asks
for what the page shows (token probabilities, 5 alternatives a step, every layer's attention). Writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def call(port: int, path: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data)
    with urllib.request.urlopen(request, timeout=300) as response:
        return json.loads(response.read())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", required=True)
    parser.add_argument("--engine", choices=["nmt", "ctranslate2"], default="nmt")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--details", action="store_true", help="ask for probabilities, alternatives and attention")
    parser.add_argument("--out", type=Path, default=Path("serve_bench.json"))
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from nmt.data import synthetic

    sentences = [en for en, _ in synthetic.generate({"test": 1000})["test"]]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tempfile.TemporaryFile()
    server = subprocess.Popen([sys.executable, "-m", "nmt", "serve", "--ckpt", args.ckpt, "--engine", args.engine,
                               "--port", str(port)], stderr=log, cwd=REPO)  # fmt: skip
    try:
        start = time.time()
        while True:
            try:
                call(port, "/health")
                break
            except OSError:
                if server.poll() is not None or time.time() - start > 300:
                    log.seek(0)
                    sys.exit(f"the server did not start:\n{log.read().decode()}")
                time.sleep(0.2)
        latencies: list[float] = []
        lock = threading.Lock()
        todo = iter(range(args.requests))
        details = {"probabilities": True, "alternatives": 5, "attention": True} if args.details else {}

        def client() -> None:
            while True:
                with lock:
                    i = next(todo, None)
                if i is None:
                    return
                sent = time.perf_counter()
                call(port, "/translate", {"text": [sentences[i % len(sentences)]], "beam": args.beam, **details})
                with lock:
                    latencies.append(time.perf_counter() - sent)

        threads = [threading.Thread(target=client) for _ in range(args.clients)]
        began = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        seconds = time.perf_counter() - began
        health = call(port, "/health")
    finally:
        server.terminate()
        server.wait(timeout=60)
    latencies.sort()

    def pct(q: float) -> float:
        return latencies[min(int(q * len(latencies)), len(latencies) - 1)] * 1000

    result = {"ckpt": args.ckpt, "engine": args.engine, "requests": args.requests, "clients": args.clients,
              "beam": args.beam, "details": args.details, "seconds": seconds, "requests_per_s": args.requests / seconds,
              "p50_ms": pct(0.5), "p95_ms": pct(0.95), "p99_ms": pct(0.99), "batches": health["batches"],
              "cores": len(os.sched_getaffinity(0)), "date": time.strftime("%Y-%m-%d")}  # fmt: skip
    shown = ", with details" if args.details else ""
    print(f"{args.requests} requests from {args.clients} clients ({args.engine}, beam {args.beam}{shown}): "
          f"{result['requests_per_s']:.1f} requests/s, p50 {result['p50_ms']:.0f} ms, p95 {result['p95_ms']:.0f} ms, "
          f"p99 {result['p99_ms']:.0f} ms, {health['batches']} batches")  # fmt: skip
    args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
