"""Issue 6: bad input is explained, interrupted runs resume exactly, checkpoints are safe."""

import logging
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import torch

from nmt.callbacks import AtomicCheckpointIO
from nmt.checkpoint import load_network
from nmt.data.datamodule import TranslationDataModule
from nmt.translation import translate
from tests.conftest import checkpoint, run_nmt


def fit_args(tiny_runs, root, *extra):
    return ["fit", *tiny_runs.args("transformer"), "--trainer.default_root_dir", str(root), *extra]


def state_dict(path):
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def assert_clean_error(result, *phrases):
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    for phrase in phrases:
        assert phrase in result.stderr, result.stderr[-3000:]


# ------------------------------------------------------------------ bad input
def test_corrupted_checkpoint_for_test_and_translate(tiny_runs, tmp_path):
    good = checkpoint(tiny_runs["transformer"]).read_bytes()
    half = tmp_path / "half.ckpt"
    half.write_bytes(good[: len(good) // 2])
    assert_clean_error(run_nmt("translate", "--ckpt", str(half), stdin="x\n"), "not a readable checkpoint")
    result = run_nmt("test", *tiny_runs.args("transformer"), "--ckpt_path", str(half),
                     "--trainer.default_root_dir", str(tmp_path / "r"))  # fmt: skip
    assert_clean_error(result, "not a readable checkpoint", "truncated")


def test_evaluation_commands_need_a_checkpoint(tiny_corpus, tmp_path):
    for command in ("test", "predict"):
        result = run_nmt(command, "--data.data_dir", str(tiny_corpus), "--trainer.default_root_dir", str(tmp_path))
        assert_clean_error(result, f"nmt {command} needs --ckpt_path", "RUN/checkpoints/best.ckpt")


def test_checkpoint_of_another_model_or_vocabulary(tiny_runs, tmp_path):
    # Another model: the checkpoint names its class and settings, and `nmt test` builds that model.
    gru = checkpoint(tiny_runs["gru"])
    other_model = run_nmt("test", *tiny_runs.args("transformer"), "--ckpt_path", str(gru),
                          "--trainer.default_root_dir", str(tmp_path))  # fmt: skip
    assert other_model.returncode == 0, other_model.stderr[-3000:]
    assert "test BLEU" in other_model.stdout
    assert "class_path: nmt.networks.gru.GRUNet" in next(tmp_path.rglob("config.yaml")).read_text()
    assert "holds a GRUNet: nmt test uses it with its own network settings, not the config's TransformerNet" in (
        other_model.stderr
    )
    # Not an nmt checkpoint at all.
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, foreign)
    assert_clean_error(run_nmt("translate", "--ckpt", str(foreign), stdin="x\n"), "is not an nmt checkpoint")
    # Written by an older nmt (format 2: a system class per architecture): refused with the reason, by every command.
    old = torch.load(checkpoint(tiny_runs["gru"]), map_location="cpu", weights_only=True)
    old["nmt"] = {**old["nmt"], "format": 2, "model_class": "nmt.models.gru.GRUSeq2Seq"}
    old["hyper_parameters"] = {
        "_class_path": "nmt.models.gru.GRUSeq2Seq",
        **old["hyper_parameters"]["net"]["init_args"],
    }
    torch.save(old, tmp_path / "old.ckpt")
    for command in (["translate", "--ckpt"], ["test", *tiny_runs.args("gru"), "--ckpt_path"], ["average", "--out",
                    str(tmp_path / "avg.ckpt"), "--ckpts"]):  # fmt: skip
        assert_clean_error(run_nmt(*command, str(tmp_path / "old.ckpt"), stdin="x\n"), "older nmt", "format 2")
    # Another vocabulary.
    transformer = checkpoint(tiny_runs["transformer"])
    other_vocab = run_nmt("test", *tiny_runs.args("transformer"), "--data.vocab_size", "100",
                          "--ckpt_path", str(transformer), "--trainer.default_root_dir", str(tmp_path))  # fmt: skip
    assert_clean_error(other_vocab, "trained with other sizes", "same --config")


def test_more_devices_than_exist(tiny_runs, tmp_path):
    result = run_nmt(*fit_args(tiny_runs, tmp_path, "--trainer.accelerator", "gpu", "--trainer.devices", "2"))
    assert_clean_error(result, "nmt: error:")


def test_unwritable_output_directory(tiny_runs):
    result = run_nmt(*fit_args(tiny_runs, "/proc/nmt-cannot-write"))
    assert_clean_error(result, "--trainer.default_root_dir /proc/nmt-cannot-write cannot be written")


def test_control_characters_and_blank_lines_are_counted(tmp_path, caplog):
    (tmp_path / "train.en").write_text("a\tb\x07c\n   \nfine line\n" * 20, encoding="utf-8")
    (tmp_path / "train.de").write_text("x\ny\nz\n" * 20, encoding="utf-8")
    for split in ("val", "test"):
        (tmp_path / f"{split}.en").write_text("a b\n", encoding="utf-8")
        (tmp_path / f"{split}.de").write_text("x\n", encoding="utf-8")
    dm = TranslationDataModule(data_dir=str(tmp_path), vocab_size=16, cache_dir=str(tmp_path / "c"))
    with caplog.at_level(logging.INFO, logger="nmt"):
        dm.setup("fit")
    assert [dm.tokenizer.src.decode(dm.datasets["train"][i][1]) for i in (0, 1)] == ["a b c", "fine line"]
    assert "train: 40 of 60 pairs kept" in caplog.text and "20 empty" in caplog.text
    assert "lines cleaned: 40" in caplog.text  # 20 control-character lines + 20 blank ones


def test_overlong_input_is_truncated_with_a_warning(tiny_runs, caplog):
    model = load_network(checkpoint(tiny_runs["transformer"]))
    lines = ["On March 21, 1987, four hundred and twenty-one people arrived.", "", "Anna."]
    short = len(model.tokenizer.encode_src(["Anna."])[0])
    model.max_source_positions = short
    assert len(model.tokenizer.encode_src(lines[:1])[0]) > short
    with caplog.at_level(logging.WARNING, logger="nmt"):
        out = translate(model, lines)
    assert len(out) == 3 and out[1] == ""
    assert f"1 input line(s) exceed the model's {short} source tokens (first: line 1)" in caplog.text


# ----------------------------------------------------------- safe checkpoints
class _Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {os.environ['NMT_EXPLOIT_FLAG']}",))


def test_loading_never_runs_pickled_code(tmp_path, monkeypatch):
    flag = tmp_path / "pwned"
    monkeypatch.setenv("NMT_EXPLOIT_FLAG", str(flag))
    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "nmt": {"payload": _Exploit()}}, evil)
    result = run_nmt("translate", "--ckpt", str(evil), stdin="x\n")
    assert_clean_error(result, "holds Python objects or code that nmt does not load")
    assert "weights_only=False" not in result.stderr and "truncated" not in result.stderr
    assert not flag.exists()


def test_tampered_tokenizer_is_detected(tiny_runs, tmp_path):
    ckpt = torch.load(checkpoint(tiny_runs["transformer"]), weights_only=True)
    model = bytearray(ckpt["nmt"]["tokenizer"]["tgt"])
    model[-20] ^= 0xFF
    ckpt["nmt"]["tokenizer"]["tgt"] = bytes(model)
    bad = tmp_path / "tampered.ckpt"
    torch.save(ckpt, bad)
    assert_clean_error(run_nmt("translate", "--ckpt", str(bad), stdin="x\n"), "SHA-256")


def test_atomic_checkpoint_write_leaves_no_half_file(tmp_path, monkeypatch):
    target = tmp_path / "last.ckpt"
    target.write_bytes(b"previous good checkpoint")

    def dying_save(obj, f):
        f.write(b"PK half a zip")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        AtomicCheckpointIO().save_checkpoint({"x": 1}, target)
    assert target.read_bytes() == b"previous good checkpoint"
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_two_runs_sharing_a_cache(tiny_corpus, tmp_path):
    digests, errors = [], []

    def prepare():
        try:
            dm = TranslationDataModule(data_dir=str(tiny_corpus), vocab_size=120, cache_dir=str(tmp_path))
            dm.setup("fit")
            digests.append(dm.tokenizer.digest())
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=prepare) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(digests)) == 1 and len(digests) == 3
    assert not list(tmp_path.rglob("*.tmp"))


# ------------------------------------------------- interrupted runs, determinism
RESUME = ["--trainer.max_steps", "40", "--trainer.val_check_interval", "20", "--last_checkpoint.every_n_train_steps",
          "5", "--trainer.deterministic", "true", "--samples.num_sentences", "0"]  # fmt: skip


@pytest.fixture(scope="module")
def straight_run(tiny_runs, tmp_path_factory):
    root = tmp_path_factory.mktemp("straight")
    # Also keeps the checkpoints saved in on_train_epoch_end (test_resuming_from_a_checkpoint_saved_at_epoch_end).
    epoch_end = ["--trainer.callbacks+=lightning.pytorch.callbacks.ModelCheckpoint",
                 "--trainer.callbacks.every_n_epochs=1", "--trainer.callbacks.save_on_train_epoch_end=true",
                 "--trainer.callbacks.save_top_k=-1", f"--trainer.callbacks.dirpath={root / 'epochs'}"]  # fmt: skip
    result = run_nmt(*fit_args(tiny_runs, root, *RESUME, *epoch_end))
    assert result.returncode == 0, result.stderr[-3000:]
    return root


def test_same_seed_same_checkpoint_and_translations(tiny_runs, straight_run, tmp_path):
    again = run_nmt(*fit_args(tiny_runs, tmp_path, *RESUME))
    assert again.returncode == 0, again.stderr[-3000:]
    a, b = state_dict(straight_run / "checkpoints/last.ckpt"), state_dict(tmp_path / "checkpoints/last.ckpt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    line = "On Monday, Anna saw thirty-two dogs.\n"
    first = run_nmt("translate", "--ckpt", str(straight_run / "checkpoints/last.ckpt"), stdin=line)
    second = run_nmt("translate", "--ckpt", str(tmp_path / "checkpoints/last.ckpt"), stdin=line)
    assert first.stdout == second.stdout and first.returncode == second.returncode == 0


def _start(tiny_runs, root):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "nmt", *fit_args(tiny_runs, root, *RESUME)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)


def _wait_for(path, proc, timeout=300):
    start = time.time()
    while not path.exists():
        assert proc.poll() is None, "the run ended before it could be interrupted"
        assert time.time() - start < timeout
        time.sleep(0.02)


def test_kill_9_then_resume_gives_the_same_weights(tiny_runs, straight_run, tmp_path):
    proc = _start(tiny_runs, tmp_path)
    _wait_for(tmp_path / "checkpoints/last.ckpt", proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = torch.load(tmp_path / "checkpoints/last.ckpt", weights_only=True)["global_step"]
    assert 0 < killed_at < 40
    resumed = run_nmt(*fit_args(tiny_runs, tmp_path, *RESUME), "--ckpt_path", "last")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "unreliable results" not in resumed.stderr  # Lightning's warning does not apply: the position is kept
    final = torch.load(tmp_path / "checkpoints/last.ckpt", weights_only=True)
    assert final["global_step"] == 40
    a, b = state_dict(straight_run / "checkpoints/last.ckpt"), final["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a), f"weights differ after resuming from step {killed_at}"


def test_last_checkpoint_holds_the_final_step(tiny_runs, straight_run, tmp_path):
    # 33 steps without validation, so no best.ckpt is saved (Lightning would then write last.ckpt once
    # more at the end, with the epoch counted as finished); the last periodic save is step 30.
    short = run_nmt(*fit_args(tiny_runs, tmp_path, *RESUME, "--trainer.max_steps", "33",
                              "--trainer.limit_val_batches", "0"))  # fmt: skip
    assert short.returncode == 0, short.stderr[-3000:]
    last = torch.load(tmp_path / "checkpoints/last.ckpt", weights_only=True)
    assert last["global_step"] == 33
    # 17 batches an epoch: step 33 is the 16th of the second epoch, and a run continued from here goes on there.
    assert last["TranslationDataModule"] == {"epoch": 1, "batches_done": 16}
    more = run_nmt(*fit_args(tiny_runs, tmp_path, *RESUME), "--ckpt_path", "last")  # trained further to 40
    assert more.returncode == 0, more.stderr[-3000:]
    assert "Restored all states" in more.stderr + more.stdout
    final = torch.load(tmp_path / "checkpoints/last.ckpt", weights_only=True)
    assert final["global_step"] == 40
    # The same batches in the same order as 40 steps straight (the second epoch's last one included).
    a, b = state_dict(straight_run / "checkpoints/last.ckpt"), final["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a), "weights differ after resuming in the second epoch"


def test_resuming_after_the_last_batch_of_an_epoch_starts_the_next_one(tiny_runs, straight_run, tmp_path):
    # Step 34 is the second epoch's last batch: max_steps saves it in on_train_batch_end.
    short = run_nmt(*fit_args(tiny_runs, tmp_path, *RESUME, "--trainer.max_steps", "34"))
    assert short.returncode == 0, short.stderr[-3000:]
    last = torch.load(tmp_path / "checkpoints/last.ckpt", weights_only=True)
    assert last["TranslationDataModule"] == {"epoch": 2, "batches_done": 0}  # Lightning starts epoch 2 on resume
    more = run_nmt(*fit_args(tiny_runs, tmp_path, *RESUME), "--ckpt_path", "last")
    assert more.returncode == 0, more.stderr[-3000:]
    a, b = state_dict(straight_run / "checkpoints/last.ckpt"), state_dict(tmp_path / "checkpoints/last.ckpt")
    assert all(torch.equal(a[k], b[k]) for k in a), "weights differ after resuming at an epoch's end"


def test_resuming_from_a_checkpoint_saved_at_epoch_end(tiny_runs, straight_run, tmp_path):
    # Saved in on_train_epoch_end after step 34; Lightning then passes set_epoch one too many.
    (saved,) = (straight_run / "epochs").glob("epoch=1-step=34*.ckpt")
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints/last.ckpt").write_bytes(saved.read_bytes())
    more = run_nmt(*fit_args(tiny_runs, tmp_path, *RESUME), "--ckpt_path", "last")
    assert more.returncode == 0, more.stderr[-3000:]
    assert torch.load(tmp_path / "checkpoints/last.ckpt", weights_only=True)["global_step"] == 40
    a, b = state_dict(straight_run / "checkpoints/last.ckpt"), state_dict(tmp_path / "checkpoints/last.ckpt")
    assert all(torch.equal(a[k], b[k]) for k in a), "weights differ after resuming from an epoch-end checkpoint"


def test_ctrl_c_stops_cleanly_and_leaves_a_resumable_checkpoint(tiny_runs, tmp_path):
    proc = _start(tiny_runs, tmp_path)
    _wait_for(tmp_path / "checkpoints/last.ckpt", proc)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert "Traceback" not in stderr
    step = torch.load(tmp_path / "checkpoints/last.ckpt", weights_only=True)["global_step"]
    assert 0 < step <= 40
    resumed = run_nmt(*fit_args(tiny_runs, tmp_path, *RESUME), "--ckpt_path", "last")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert torch.load(tmp_path / "checkpoints/last.ckpt", weights_only=True)["global_step"] == 40


def test_non_finite_loss_stops_with_advice_and_keeps_good_weights(tiny_runs, tmp_path):
    result = run_nmt(*fit_args(tiny_runs, tmp_path, "--model.lr", "1e30", "--model.warmup_steps",
                               "1", "--last_checkpoint.every_n_train_steps", "1"))  # fmt: skip
    assert_clean_error(result, "Training stopped at step", "--model.lr", "--ckpt_path last")
    last = state_dict(tmp_path / "checkpoints/last.ckpt")
    assert all(torch.isfinite(v).all() for v in last.values() if v.is_floating_point())
