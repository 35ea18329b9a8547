"""Shared fixtures: a tiny generated corpus, an isolated cache, one tiny trained checkpoint."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

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
