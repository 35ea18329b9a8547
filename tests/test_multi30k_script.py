"""scripts/multi30k.py end to end on the tiny corpus (the real sweep needs hours of GPU time)."""

import json
import subprocess
import sys

import sacrebleu

from nmt.translate import load_model
from tests.conftest import MODEL_ARGS, REPO

TINY_FIT = [
    *MODEL_ARGS["transformer"][2:],  # tiny sizes, without --config
    "--data.vocab_size", "120", "--data.max_tokens", "1024", "--data.max_length", "64",
    "--trainer.max_steps", "4", "--trainer.val_check_interval", "4", "--trainer.enable_model_summary", "false",
]  # fmt: skip


def test_sweep_scores_the_best_checkpoint_and_resumes(tiny_corpus, tmp_path):
    cmd = [sys.executable, "scripts/multi30k.py", "--data-dir", str(tiny_corpus), "--out", str(tmp_path),
           "--models", "transformer", "--directions", "en-de", "--test-split", "test", "--", *TINY_FIT]  # fmt: skip
    first = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    [result] = json.loads((tmp_path / "results.json").read_text())
    hyp = (tmp_path / "transformer.en-de" / "test.hyp.de").read_text().splitlines()
    ref = (tiny_corpus / "test.de").read_text().splitlines()
    assert len(hyp) == len(ref) == 24
    assert result["bleu"] == round(sacrebleu.corpus_bleu(hyp, [ref]).score, 2)
    assert result["steps"] == 4 and result["direction"] == "en-de"
    model = load_model(tmp_path / "transformer.en-de" / "checkpoints" / "best.ckpt")
    assert result["parameters"] == sum(p.numel() for p in model.parameters())  # tied embeddings counted once
    assert result["bleu_signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a")
    assert "| transformer | en-de |" in (tmp_path / "results.md").read_text()
    again = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "nmt fit" not in again.stdout  # finished runs are kept, not retrained
