"""Shared fixtures and helpers: a tiny generated corpus, an isolated cache, tiny trained runs, the real command."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from nmt.data import synthetic

REPO = Path(__file__).resolve().parents[1]
MULTI30K = REPO.parent / "shared" / "data" / "multi30k"
TINY_SIZES = {"train": 400, "val": 24, "test": 24}

# Tiny data and trainer settings for end-to-end CLI runs (seconds on 2 CPU cores).
TINY_ARGS = [
    "--data.vocab_size", "120",
    "--data.max_tokens", "1024",
    "--model.warmup_steps", "10",
    "--trainer.max_steps", "12",
    "--trainer.val_check_interval", "6",
    "--trainer.enable_progress_bar", "false",
    "--trainer.enable_model_summary", "false",
    "--samples.num_sentences", "2",
    "--trainer.log_every_n_steps", "4",
]  # fmt: skip
RNN_TINY = ["--model.net.emb_size", "16", "--model.net.hidden_size", "32"]
# Per model: its config file and tiny sizes.
MODEL_ARGS = {
    "transformer": [
        "--config", str(REPO / "configs/transformer.yaml"),
        "--model.net.d_model", "32",
        "--model.net.n_heads", "2",
        "--model.net.d_ff", "64",
        "--model.net.encoder_layers", "1",
        "--model.net.decoder_layers", "1",
    ],
    "gru": ["--config", str(REPO / "configs/gru.yaml"), *RNN_TINY],
    "bahdanau": ["--config", str(REPO / "configs/bahdanau.yaml"), *RNN_TINY],
    "luong": ["--config", str(REPO / "configs/luong.yaml"), *RNN_TINY],
}  # fmt: skip


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    os.environ["NMT_CACHE"] = str(tmp_path_factory.mktemp("nmt-cache"))
    os.environ.setdefault("WANDB_MODE", "offline")


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    return synthetic.write(tmp_path_factory.mktemp("tiny"), TINY_SIZES)


def run_nmt(*args: str, stdin: str | None = None, timeout: int = 600, cwd: Path | None = None,
            env: dict | None = None) -> subprocess.CompletedProcess:  # fmt: skip
    """Run the real ``nmt`` command in a subprocess (exit codes and stderr as a user sees them)."""
    return subprocess.run(
        [sys.executable, "-m", "nmt", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env={**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})},
    )


class TinyRuns:
    """Trains each tiny model once per session, on first use."""

    def __init__(self, factory, corpus: Path):
        self.factory, self.corpus, self.roots = factory, corpus, {}

    def args(self, name: str) -> list[str]:
        return [*MODEL_ARGS[name], "--data.data_dir", str(self.corpus), *TINY_ARGS]

    def __getitem__(self, name: str) -> Path:
        if name not in self.roots:
            root = self.factory.mktemp(f"run-{name}")
            result = run_nmt("fit", *self.args(name), "--trainer.default_root_dir", str(root))
            assert result.returncode == 0, result.stderr[-3000:]
            self.roots[name] = root
        return self.roots[name]


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory, tiny_corpus) -> TinyRuns:
    return TinyRuns(tmp_path_factory, tiny_corpus)


@pytest.fixture(scope="session")
def tiny_run(tiny_runs) -> Path:
    """The tiny Transformer's run folder."""
    return tiny_runs["transformer"]


def checkpoint(root: Path, name: str = "best.ckpt") -> Path:
    found = sorted(root.rglob(name))
    assert found, f"no {name} under {root}"
    return found[-1]


def fit_args(tiny_runs, root, *extra):
    return ["fit", *tiny_runs.args("transformer"), "--trainer.default_root_dir", str(root), *extra]


def state_dict(path):
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def assert_clean_error(result, *phrases):
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    for phrase in phrases:
        assert phrase in result.stderr, result.stderr[-3000:]


def metrics(root):
    rows = list(csv.DictReader(next(root.rglob("metrics.csv")).open()))
    return rows


def free_port() -> int:

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


LINES = ["On Monday, Anna saw two dogs.", "The book costs five euros.", "", "Peter was born on May 1, 1990."]


STDIN = "".join(line + "\n" for line in LINES)


def losses(root) -> list[float]:
    rows = csv.DictReader(next(root.rglob("metrics.csv")).open())
    return [float(r["train/loss"]) for r in rows if r.get("train/loss")]


def load(path):
    """The nmt engine of one checkpoint (its network and tokenizer), as nmt translate opens it."""
    from nmt.engines.native import NmtEngine

    return NmtEngine.load([path])


def translate(engine, lines: list[str], beam: int = 1, max_tokens: int = 4096) -> list[str]:
    """The best translation of each line ("" for an empty one)."""
    from nmt.engines import DecodeOptions

    options = DecodeOptions(beam, max_tokens=max_tokens)
    return [hyps[0].text if hyps else "" for hyps in engine.translate(lines, options)]


def together(fn, calls: list[tuple]) -> list:
    """``fn(*args)`` for every ``args`` of ``calls`` at once, each in a thread of its own; the results in order
    (an exception in any call is raised here)."""
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(lambda args: fn(*args), calls))


TINY_TRANSFORMER = dict(d_model=16, n_heads=2, d_ff=32, encoder_layers=1, decoder_layers=1)


def tiny_system(vocab_size: int = 20, net_args: dict | None = None, **system_args):
    """A tiny Transformer system, built as the command line builds one."""
    from nmt.networks import TransformerNet
    from nmt.system import Seq2SeqSystem

    net = TransformerNet(
        src_vocab_size=vocab_size, tgt_vocab_size=vocab_size, **{**TINY_TRANSFORMER, **(net_args or {})}
    )
    return Seq2SeqSystem(net, **system_args)


def train_losses(model, batch, steps: int, lr: float, smoothing: float = 0.0) -> list[float]:
    """Train ``model`` on one :class:`~nmt.data.batching.Batch` with Adam; the per-token loss after each step."""
    from nmt.system import label_smoothed_nll

    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        loss, _ = label_smoothed_nll(model(batch), batch.tgt_out, smoothing)
        (loss / batch.ntokens).backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item() / batch.ntokens)
    return losses


def http_call(port: int, path: str, body: bytes | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method="POST" if body else "GET")
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def start_server(ckpt, *options: str) -> tuple[subprocess.Popen, int]:  # ckpt None: the options name the models
    """``nmt serve`` on a free port of 127.0.0.1, once it answers /health: (process, port)."""
    pytest.importorskip("fastapi")
    port = free_port()
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    models = [] if ckpt is None else ["--ckpt", str(ckpt)]
    proc = subprocess.Popen([sys.executable, "-m", "nmt", "serve", *models, "--port", str(port), *options],
                            env=env, stderr=subprocess.PIPE, text=True)  # fmt: skip
    start = time.time()
    while True:
        try:
            if http_call(port, "/health")[0] == 200:
                return proc, port
        except OSError:
            assert proc.poll() is None, proc.stderr.read()
            assert time.time() - start < 120
            time.sleep(0.2)
