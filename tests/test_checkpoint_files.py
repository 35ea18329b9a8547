"""Checkpoint files: read safely (never running code), checked, refused with one clear sentence, written atomically."""

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
import torch

from nmt.callbacks import AtomicCheckpointIO
from nmt.errors import NmtError
from tests.conftest import assert_clean_error, checkpoint, fit_args, run_nmt


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
    assert_clean_error(
        other_vocab, "does not fit the network", "is (120, 32) and this TransformerNet's (100, 32)", "same --config"
    )


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
        Path(f).write_bytes(b"PK half a zip")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        AtomicCheckpointIO().save_checkpoint({"x": 1}, target)
    assert target.read_bytes() == b"previous good checkpoint"
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_an_empty_checkpoint_is_named(tiny_runs, tmp_path):
    empty = tmp_path / "e.ckpt"
    empty.touch()
    assert_clean_error(run_nmt("translate", "--ckpt", str(empty), stdin="x\n"), "e.ckpt is empty (0 bytes)")
    result = run_nmt("test", *tiny_runs.args("transformer"), "--ckpt_path", str(empty),
                     "--trainer.default_root_dir", str(tmp_path / "r"))  # fmt: skip
    assert_clean_error(result, "e.ckpt is empty (0 bytes)")


def test_average_refuses_other_runs_and_overwriting_its_input(tiny_runs, tmp_path):
    transformer = checkpoint(tiny_runs["transformer"])
    other = torch.load(transformer, weights_only=True)
    other["nmt"]["run"] = uuid.uuid4().hex  # a second training run of the same model: same shapes
    torch.save(other, tmp_path / "other.ckpt")
    result = run_nmt("average", "--ckpts", str(transformer), str(tmp_path / "other.ckpt"), "--out", str(tmp_path / "a"))
    assert_clean_error(result, "come from different training runs", "--force")
    forced = run_nmt("average", "--ckpts", str(transformer), str(tmp_path / "other.ckpt"), "--out",
                     str(tmp_path / "a.ckpt"), "--force")  # fmt: skip
    assert forced.returncode == 0 and (tmp_path / "a.ckpt").is_file()
    last = checkpoint(tiny_runs["transformer"], "last.ckpt")
    before = last.read_bytes()
    result = run_nmt("average", "--ckpts", str(transformer), str(last), "--out", str(last))
    assert_clean_error(result, "is one of the checkpoints to average")
    assert last.read_bytes() == before


def test_a_full_disk_names_the_folder_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    io = AtomicCheckpointIO()
    target = tmp_path / "last.ckpt"
    io.save_checkpoint({"w": torch.zeros(4)}, target)
    before = target.read_bytes()

    def full(obj, f):
        Path(f).write_bytes(b"partial")
        raise RuntimeError("[enforce fail at inline_container.cc] . PytorchStreamWriter failed writing file")

    monkeypatch.setattr(torch, "save", full)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 100, 100))
    with pytest.raises(NmtError, match=rf"No space left in {tmp_path} to write last.ckpt: it needs about 3.8 MiB"):
        io.save_checkpoint({"w": torch.zeros(10**6)}, target)
    assert target.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("mount") is None, reason="needs root to mount a tmpfs")
def test_training_on_a_full_disk_stops_with_one_line(tiny_runs, tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("mounting a tmpfs is not allowed here")
    try:
        first = run_nmt(*fit_args(tiny_runs, disk, "--trainer.max_steps", "2", "--trainer.val_check_interval", "2",
                                  "--checkpoint.save_top_k", "0"))  # fmt: skip
        assert first.returncode == 0, first.stderr[-2000:]
        last = disk / "checkpoints" / "last.ckpt"
        before = last.read_bytes()
        (disk / "filler").write_bytes(b"\0" * (3 * 2**20 - len(before) - 200 * 1024))  # leave too little room
        result = run_nmt(*fit_args(tiny_runs, disk, "--trainer.max_steps", "4", "--trainer.val_check_interval", "4",
                                   "--checkpoint.save_top_k", "0"), "--ckpt_path", "last")  # fmt: skip
        assert_clean_error(result, f"No space left in {disk / 'checkpoints'} to write", "MiB are free")
        assert result.stderr.count("No space left") <= 2  # the error, and at most the warning of the exit save
        assert last.read_bytes() == before
    finally:
        subprocess.run(["umount", str(disk)], check=False)
