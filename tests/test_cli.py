"""End-to-end runs of the real ``nmt`` command, as a user types it."""

import os
import re
import subprocess
import sys

import torch

from nmt.networks.transformer import TransformerNet
from tests.conftest import REPO, checkpoint, load, run_nmt, translate


def test_fit_writes_self_contained_checkpoints(tiny_run):
    best, last = checkpoint(tiny_run, "best.ckpt"), checkpoint(tiny_run, "last.ckpt")
    ckpt = torch.load(best, map_location="cpu", weights_only=True)  # no pickled code needed
    assert ckpt["nmt"]["format"] == 3 and ckpt["nmt"]["tokenizer"]["src"] and ckpt["global_step"] > 0
    net = ckpt["hyper_parameters"]["net"]
    assert net["class_path"] == "nmt.networks.transformer.TransformerNet"
    assert net["init_args"]["d_model"] == 32 and net["init_args"]["src_vocab_size"] == 120
    assert net["init_args"]["share_embeddings"] is True and ckpt["hyper_parameters"]["lr"] == 2e-3
    assert last.is_file()
    log_dir = next(tiny_run.rglob("metrics.csv")).parent
    metrics = (log_dir / "metrics.csv").read_text()
    assert "val/bleu" in metrics and "val/chrf" in metrics and "val/ppl" in metrics
    samples = (log_dir / "samples.csv").read_text(encoding="utf-8").splitlines()
    assert samples[0] == "step,source,reference,hypothesis" and len(samples) == 1 + 2 * 2  # 2 validations x 2
    assert len(list((log_dir / "attention").glob("*.png"))) == 4


def test_translate_one_line_out_per_line_in(tiny_run, tiny_corpus):
    lines = (tiny_corpus / "test.en").read_text(encoding="utf-8").splitlines()[:5]
    stdin = "\n".join([lines[0], "", *lines[1:]]) + "\n"
    result = run_nmt("translate", "--ckpt", str(checkpoint(tiny_run)), stdin=stdin)
    assert result.returncode == 0, result.stderr
    out = result.stdout.split("\n")[:-1]
    assert len(out) == 6 and out[1] == ""
    # the same model in-process gives the same text, whatever the batching
    model = load(checkpoint(tiny_run))
    assert translate(model, lines[:1])[0] == out[0]
    assert translate(model, [lines[0], lines[1]], max_tokens=8) == [out[0], out[2]]
    assert translate(model, [""]) == [""]


def test_translate_loads_the_network_without_lightning(tiny_run, tmp_path):
    """`nmt translate` builds the network alone from the checkpoint; Lightning is never imported."""
    src, out = tmp_path / "src.txt", tmp_path / "hyp.txt"
    src.write_text("Michael was born on March 4, 1991.\n", encoding="utf-8")
    code = (
        "import sys; from nmt.cli import main; "
        "main(['translate', '--ckpt', sys.argv[1], '--input', sys.argv[2], '--output', sys.argv[3], '--beam', '2']); "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'lightning', 'pytorch_lightning', 'torchmetrics'}))"
    )
    result = subprocess.run([sys.executable, "-c", code, str(checkpoint(tiny_run)), str(src), str(out)],
                            capture_output=True, text=True, cwd=REPO, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"
    model = load(checkpoint(tiny_run))
    assert isinstance(model.net, TransformerNet) and not model.net.training
    assert model.tokenizer is not None and model.net.max_len_a == 1.5
    assert out.read_text(encoding="utf-8") == translate(model, [src.read_text().strip()], beam=2)[0] + "\n"


def test_test_command_prints_scores_with_signature(tiny_runs):
    root = tiny_runs["transformer"]
    result = run_nmt(
        "test",
        *tiny_runs.args("transformer"),
        "--ckpt_path",
        str(checkpoint(root)),
        "--trainer.default_root_dir",
        str(root),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert re.search(r"test BLEU = \d+\.\d\d +\(nrefs:1\|case:mixed\|eff:no\|tok:13a", result.stdout)
    assert "test CHRF" in result.stdout and "test TER" in result.stdout


def test_predict_writes_the_test_split_translations_in_order(tiny_runs, tiny_corpus, tmp_path):
    root = tiny_runs["transformer"]
    out = tmp_path / "pred" / "test.hyp.de"
    result = run_nmt("predict", *tiny_runs.args("transformer"), "--ckpt_path", str(checkpoint(root)),
                     "--trainer.default_root_dir", str(tmp_path), "--predictions.output", str(out))  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"wrote 24 translations of test to {out}" in result.stderr
    lines = (tiny_corpus / "test.en").read_text(encoding="utf-8").splitlines()
    model = load(checkpoint(root))
    hyps = out.read_text(encoding="utf-8").splitlines()
    test_beam = torch.load(checkpoint(root), weights_only=True)["hyper_parameters"]["test_beam"]
    assert test_beam == 5 and hyps == translate(model, lines, beam=test_beam)
    # without --predictions.output: next to the run, named after the split and target language
    again = run_nmt("predict", *tiny_runs.args("transformer"), "--ckpt_path", str(checkpoint(root)),
                    "--trainer.default_root_dir", str(tmp_path / "run"))  # fmt: skip
    assert again.returncode == 0, again.stderr[-2000:]
    assert (tmp_path / "run" / "test.hyp.de").read_text(encoding="utf-8").splitlines() == hyps


def test_misaligned_corpus_fails_fast_without_traceback(tmp_path):
    (tmp_path / "train.de").write_text("".join(f"satz {i}\n" for i in range(10)), encoding="utf-8")
    (tmp_path / "train.en").write_text("".join(f"sentence {i}\n" for i in range(9)), encoding="utf-8")
    for lang in ("de", "en"):
        (tmp_path / f"val.{lang}").write_text("a\n", encoding="utf-8")
    result = run_nmt("fit", "--data.data_dir", str(tmp_path), "--trainer.default_root_dir", str(tmp_path / "r"))
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert re.search(r"train\.en has 9 lines but .*train\.de has 10", result.stderr)


def test_translate_bad_checkpoint_is_explained(tmp_path):
    broken = tmp_path / "half.ckpt"
    broken.write_bytes(b"PK\x03\x04 truncated")
    result = run_nmt("translate", "--ckpt", str(broken), stdin="hello\n")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "not a readable checkpoint" in result.stderr
    missing = run_nmt("translate", "--ckpt", str(tmp_path / "nope.ckpt"), stdin="hello\n")
    assert missing.returncode == 2 and "Checkpoint not found" in missing.stderr


def test_print_config_shows_linked_defaults():
    result = run_nmt("fit", "--print_config")
    assert result.returncode == 0, result.stderr
    assert "class_path: nmt.networks.TransformerNet" in result.stdout
    assert "monitor: val/bleu" in result.stdout


def test_progress_bar_refreshes_every_step_on_cpu_and_less_often_on_a_gpu():
    from types import SimpleNamespace

    from nmt.callbacks import DeviceAwareProgressBar

    def refresh_rate(device: str) -> int:
        bar = DeviceAwareProgressBar(accelerator_refresh_rate=25)
        trainer = SimpleNamespace(is_global_zero=True, strategy=SimpleNamespace(root_device=torch.device(device)))
        bar.setup(trainer, None, "fit")
        return bar.refresh_rate

    assert refresh_rate("cpu") == 1
    assert refresh_rate("cuda") == 25


def test_fit_shows_a_progress_bar_and_takes_the_users_own(tiny_runs, tmp_path):
    args = [*tiny_runs.args("transformer"), "--trainer.enable_progress_bar", "true", "--samples.num_sentences", "0",
            "--trainer.max_steps", "6", "--trainer.val_check_interval", "6"]  # fmt: skip
    ours = run_nmt("fit", *args, "--trainer.default_root_dir", str(tmp_path / "a"))
    assert ours.returncode == 0, ours.stderr[-3000:]
    steps = set(re.findall(r"Epoch 0: +\d+%\S* +\| *(\d+)/", ours.stdout.replace("\r", "\n")))
    assert {"1", "2", "3", "4"} <= steps  # every step on a CPU (an epoch here is 5 batches)
    bar = ["--trainer.callbacks+=lightning.pytorch.callbacks.TQDMProgressBar", "--trainer.callbacks.refresh_rate=3"]
    theirs = run_nmt("fit", *args, *bar, "--trainer.default_root_dir", str(tmp_path / "b"))
    assert theirs.returncode == 0, theirs.stderr[-3000:]  # not two progress bars
    steps = set(re.findall(r"Epoch 0: +\d+%\S* +\| *(\d+)/", theirs.stdout.replace("\r", "\n")))
    assert steps & {"1", "2", "4"} == set() and "3" in steps


def test_nmt_bounds_onednn_kernel_cache_unless_the_user_set_it(monkeypatch):
    from nmt import cli

    monkeypatch.setitem(cli.COMMANDS, "noop", ("translate", "nothing"))
    monkeypatch.setattr("nmt.commands.translate.main", lambda argv: None)
    monkeypatch.delenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", raising=False)
    cli.main(["noop"])
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == "64"
    monkeypatch.setenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "1024")
    cli.main(["noop"])
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == "1024"
