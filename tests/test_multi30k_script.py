"""scripts/multi30k.py end to end on the tiny corpus (the real sweep needs hours of GPU time)."""

import json
import subprocess
import sys

import sacrebleu

from tests.conftest import MODEL_ARGS, REPO, load

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
    model = load(tmp_path / "transformer.en-de" / "checkpoints" / "best.ckpt")
    assert result["parameters"] == sum(p.numel() for p in model.net.parameters())  # tied embeddings counted once
    assert result["bleu_signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a")
    assert "| transformer | en-de |" in (tmp_path / "results.md").read_text()
    assert result["length_penalty"] == 1.0 and result["val_bleu_by_checkpoint"] == {}
    assert result["checkpoint"] == "best.ckpt"  # last.ckpt is the same step: nothing to choose
    again = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "nmt fit" not in again.stdout  # finished runs are kept, not retrained
    # Decoding again with the length penalty chosen on the validation set; the training is kept.
    (tmp_path / "transformer.en-de" / "score.json").unlink()
    tuned = subprocess.run([*cmd[:2], "--length-penalties", "0.0", "2.0", *cmd[2:]], cwd=REPO, capture_output=True,
                           text=True, timeout=600)  # fmt: skip
    assert tuned.returncode == 0, tuned.stderr[-3000:]
    assert "nmt fit" not in tuned.stdout and tuned.stdout.count("nmt translate") == 3
    [result] = json.loads((tmp_path / "results.json").read_text())
    val_ref = [(tiny_corpus / "val.de").read_text().splitlines()]
    val_bleu = {}
    for alpha in ("0.0", "2.0"):
        val_hyp = (tmp_path / "transformer.en-de" / f"val.hyp.de.best.lp{alpha}").read_text().splitlines()
        val_bleu[alpha] = round(sacrebleu.corpus_bleu(val_hyp, val_ref).score, 2)
    assert result["val_bleu_by_checkpoint"] == {"best.ckpt": val_bleu}
    assert result["length_penalty"] == max([0.0, 2.0], key=lambda a: val_bleu[str(a)])
    assert f"| {result['length_penalty']} |" in (tmp_path / "results.md").read_text()


def test_train_more_continues_from_last_checkpoint_and_adds_the_time(tiny_corpus, tmp_path):
    def sweep(*extra):
        cmd = [sys.executable, "scripts/multi30k.py", "--data-dir", str(tiny_corpus), "--out", str(tmp_path),
               "--models", "transformer", "--directions", "de-en", "--test-split", "test", *extra, "--",
               *TINY_FIT[:-6], "--trainer.val_check_interval", "4",
               "--trainer.enable_model_summary", "false"]  # fmt: skip
        done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    folder = tmp_path / "transformer.de-en"
    sweep("--trainer.max_steps", "4")
    assert json.loads((folder / "score.json").read_text())["steps"] == 4
    step4 = (folder / "checkpoints" / "best.ckpt").read_bytes()
    (folder / "fit.json").unlink()  # as in folders scored before fit.json existed: recovered from score.json
    out = sweep("--train-more", "--trainer.max_steps", "8")
    assert "--ckpt_path last" in out  # the optimizer, schedule and step count continue
    result = json.loads((folder / "score.json").read_text())
    assert json.loads((folder / "score.step4.json").read_text())["steps"] == 4  # the earlier score is kept
    # (the scored checkpoint is the best by validation BLEU, which may still be step 4's)
    fit = json.loads((folder / "fit.json").read_text())
    assert [s.get("steps") for s in fit["sessions"]] == [None, 8]  # (the recovered session has no step count)
    assert result["train_seconds"] == fit["train_seconds"] == sum(s["seconds"] for s in fit["sessions"])
    assert "nmt fit" not in sweep("--train-more", "--trainer.max_steps", "8")  # the same arguments: done
    # best.ckpt from before the last step: the validation split chooses between it and last.ckpt.
    (folder / "checkpoints" / "best.ckpt").write_bytes(step4)
    (folder / "score.json").unlink()
    out = sweep("--trainer.max_steps", "8")
    assert "nmt fit" not in out and out.count("nmt translate") == 3
    result = json.loads((folder / "score.json").read_text())
    val_ref = [(tiny_corpus / "val.en").read_text().splitlines()]
    val_bleu = {}
    for name in ("best", "last"):
        val_hyp = (folder / f"val.hyp.en.{name}.lp1.0").read_text().splitlines()
        val_bleu[f"{name}.ckpt"] = {"1.0": round(sacrebleu.corpus_bleu(val_hyp, val_ref).score, 2)}
    assert result["val_bleu_by_checkpoint"] == val_bleu
    chosen = "last.ckpt" if val_bleu["last.ckpt"]["1.0"] > val_bleu["best.ckpt"]["1.0"] else "best.ckpt"
    assert result["checkpoint"] == chosen and result["steps"] == {"best.ckpt": 4, "last.ckpt": 8}[chosen]
    assert f"| {chosen} | {result['steps']} |" in (tmp_path / "results.md").read_text()
    # A fit killed after writing last.ckpt counts until that checkpoint and resumes from it.
    last = folder / "checkpoints" / "last.ckpt"
    (folder / "fit.started").write_text(json.dumps({"start": last.stat().st_mtime - 7, "fit_args": ["killed"]}))
    (folder / "score.json").unlink()
    assert "--ckpt_path last" in sweep("--trainer.max_steps", "12")
    fit = json.loads((folder / "fit.json").read_text())
    assert [s.get("steps") for s in fit["sessions"]] == [None, 8, 8, 12] and not (folder / "fit.started").exists()
    assert fit["sessions"][2] == {"seconds": 7, "fit_args": ["killed"], "steps": 8, "killed": True}
