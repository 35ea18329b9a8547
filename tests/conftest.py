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

# Tiny model and data settings for end-to-end CLI runs (seconds on 2 CPU cores).
TINY_ARGS = [
    "--data.vocab_size", "120",
    "--data.max_tokens", "1024",
    "--model.init_args.d_model", "32",
    "--model.init_args.n_heads", "2",
    "--model.init_args.d_ff", "64",
    "--model.init_args.encoder_layers", "1",
    "--model.init_args.decoder_layers", "1",
    "--model.init_args.warmup_steps", "10",
    "--trainer.max_steps", "12",
    "--trainer.val_check_interval", "6",
    "--trainer.enable_progress_bar", "false",
    "--trainer.enable_model_summary", "false",
]  # fmt: skip


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    os.environ["NMT_CACHE"] = str(tmp_path_factory.mktemp("nmt-cache"))
    os.environ.setdefault("WANDB_MODE", "offline")


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    return synthetic.write(tmp_path_factory.mktemp("tiny"), TINY_SIZES)


def run_nmt(*args: str, stdin: str | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run the real ``nmt`` command in a subprocess (exit codes and stderr as a user sees them)."""
    return subprocess.run(
        [sys.executable, "-m", "nmt", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_corpus) -> Path:
    """Train the tiny default Transformer once; returns the run's root dir."""
    root = tmp_path_factory.mktemp("run")
    result = run_nmt("fit", "--data.data_dir", str(tiny_corpus), "--trainer.default_root_dir", str(root), *TINY_ARGS)
    assert result.returncode == 0, result.stderr[-3000:]
    return root


def checkpoint(root: Path, name: str = "best.ckpt") -> Path:
    found = sorted(root.rglob(name))
    assert found, f"no {name} under {root}"
    return found[-1]
