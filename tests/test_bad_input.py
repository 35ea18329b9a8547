"""Robustness, round two: careless input gets a clear answer and never loses data."""

import logging
import os
import shutil
import subprocess
import sys
import uuid

import pytest
import torch

from nmt.callbacks import AtomicCheckpointIO
from nmt.data import corpus
from nmt.data.datamodule import TranslationDataModule
from nmt.errors import NmtError
from tests.conftest import checkpoint, run_nmt
from tests.test_robustness import assert_clean_error, fit_args


def run_bytes(*args: str, stdin: bytes) -> subprocess.CompletedProcess:
    """``nmt`` with raw bytes on stdin (text mode would re-encode them)."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    command = [sys.executable, "-m", "nmt", *args]
    result = subprocess.run(command, input=stdin, capture_output=True, env=env, timeout=300)
    return subprocess.CompletedProcess(result.args, result.returncode, result.stdout.decode(), result.stderr.decode())


def write_split(folder, split, pairs, layout="tsv", bom=False, header=None):
    folder.mkdir(parents=True, exist_ok=True)
    lines = ([header] if header else []) + ["\t".join(p) for p in pairs]
    data = "".join(line + "\n" for line in lines).encode()
    (folder / f"{split}.{layout}").write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)


PAIRS = [("Four people arrived.", "Vier Leute kamen an."), ("Anna saw two dogs.", "Anna sah zwei Hunde.")]


# ----------------------------------------------------------------- corpora
def test_a_byte_order_mark_neither_hides_a_header_nor_stays_in_a_sentence(tmp_path):
    write_split(tmp_path, "train", [(de, en) for en, de in PAIRS], bom=True, header="de\ten")
    swapped = corpus.read_split(tmp_path, "train", "en", "de")  # the header decides the direction
    assert swapped.src == [en for en, _ in PAIRS] and swapped.tgt == [de for _, de in PAIRS]
    (tmp_path / "val.en").write_bytes(b"\xef\xbb\xbfFour people arrived.\nAnna saw two dogs.\n")
    (tmp_path / "val.de").write_text("Vier Leute kamen an.\nAnna sah zwei Hunde.\n", encoding="utf-8")
    plain = corpus.read_split(tmp_path, "val", "en", "de")
    assert plain.src[0] == "Four people arrived."  # no U+FEFF left in the first sentence (or reference)


def test_a_tsv_line_with_a_third_column_is_named(tmp_path):
    write_split(tmp_path, "train", [PAIRS[0], (*PAIRS[1], "extra")])
    with pytest.raises(NmtError, match=r"train\.tsv, line 2: expected 2 tab-separated columns .* found 3"):
        corpus.read_split(tmp_path, "train", "en", "de")
    write_split(tmp_path, "val", [("id1", *PAIRS[0])], header="id\ten\tde")  # named columns may be more
    assert corpus.read_split(tmp_path, "val", "en", "de").tgt == [PAIRS[0][1]]


def test_a_folder_where_a_file_belongs(tiny_run, tmp_path):
    (tmp_path / "train.en").mkdir()
    (tmp_path / "train.de").write_text("x\n", encoding="utf-8")
    with pytest.raises(NmtError, match=r"train\.en is a folder, not a text file"):
        corpus.read_split(tmp_path, "train", "en", "de")
    result = run_nmt("translate", "--ckpt", str(checkpoint(tiny_run)), "--input", str(tmp_path))
    assert_clean_error(result, f"{tmp_path} is a folder, not a text file")
    assert_clean_error(run_nmt("translate", "--ckpt", str(tmp_path)), f"{tmp_path} is a folder, not a checkpoint")


def test_empty_training_files_are_named(tmp_path):
    for split in ("train", "val", "test"):
        (tmp_path / f"{split}.en").write_text("" if split == "train" else "a\n", encoding="utf-8")
        (tmp_path / f"{split}.de").write_text("" if split == "train" else "b\n", encoding="utf-8")
    dm = TranslationDataModule(data_dir=str(tmp_path), vocab_size=16, cache_dir=str(tmp_path / "c"))
    with pytest.raises(NmtError, match=r"The train split from .*train\.en \+ .*train\.de is empty\."):
        dm.setup("fit")


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [("vocab_size", 0, "--data.vocab_size must be at least 5"), ("vocab_size", 1, "--data.vocab_size must be at"),
     ("max_tokens", 0, "--data.max_tokens must be a positive"), ("max_tokens", -5, "--data.max_tokens must be"),
     ("model_type", "word", "--data.model_type must be unigram or bpe")],
)  # fmt: skip
def test_impossible_data_options_are_refused_when_read(tiny_runs, tmp_path, option, value, message):
    result = run_nmt(*fit_args(tiny_runs, tmp_path, f"--data.{option}", str(value)))
    assert_clean_error(result, message)
    assert len(result.stderr.splitlines()) <= 3 and "Namespace" not in result.stderr  # no dump of the config


def test_the_same_language_on_both_sides_is_warned_about(caplog):
    with caplog.at_level(logging.WARNING, logger="nmt"):
        TranslationDataModule(src_lang="de", tgt_lang="de")
    assert "--data.src_lang and --data.tgt_lang are both 'de'" in caplog.text


# ----------------------------------------------------------- nmt translate
def test_only_newlines_end_a_line_on_stdin(tiny_run):
    breakers = ["\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]
    stdin = "".join(f"Four people{b}arrived.\n" for b in breakers) + "\n" + "Anna saw two dogs.\n"
    result = run_bytes("translate", "--ckpt", str(checkpoint(tiny_run)), stdin=stdin.encode())
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout.split("\n")
    assert len(out) == len(breakers) + 3 and out[-1] == "" and out[-3] == ""  # one line out per line in


def test_invalid_utf8_on_stdin_is_named_with_its_line(tiny_run):
    result = run_bytes("translate", "--ckpt", str(checkpoint(tiny_run)), stdin=b"Anna.\nZw\xf6lf Leute.\n")
    assert_clean_error(result, "standard input, line 2: not valid UTF-8 (byte 0xf6)", "iconv -f latin1 -t utf-8")
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("options", "message"),
    [(["--beam", "0"], "--beam must be 1 (greedy) or more, got 0"),
     (["--beam", "2", "--nbest", "3"], "--nbest must be between 1 and --beam (2), got 3"),
     (["--max-tokens", "0"], "--max-tokens must be a positive number"),
     (["--output", "/proc/nope/hyp.txt"], "Cannot write /proc/nope/hyp.txt")],
)  # fmt: skip
def test_translate_options_are_checked(tiny_run, options, message):
    assert_clean_error(run_nmt("translate", "--ckpt", str(checkpoint(tiny_run)), *options, stdin="Anna.\n"), message)


def test_the_output_path_is_checked_before_any_decoding(tiny_run, tmp_path, monkeypatch):
    from nmt.commands import translate as command

    monkeypatch.setattr(command, "translate_full", lambda *a, **k: pytest.fail("decoded before checking --output"))
    (tmp_path / "src.txt").write_text("Anna.\n", encoding="utf-8")
    with pytest.raises(NmtError, match="is a folder; give a file name"):
        command.main(["--ckpt", str(checkpoint(tiny_run)), "--input", str(tmp_path / "src.txt"), "-o", str(tmp_path)])


# ------------------------------------------------------------- checkpoints
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


# ------------------------------------------------------------ devices, disk
def test_more_processes_than_batches_is_refused_up_front(tiny_runs, tmp_path):
    result = run_nmt(*fit_args(tiny_runs, tmp_path, "--trainer.accelerator", "cpu", "--trainer.devices", "8",
                               "--trainer.strategy", "ddp", "--data.max_tokens", "60000"))  # fmt: skip
    assert_clean_error(result, "8 processes but one epoch has only 1 training batch(es)", "Use at most 1 devices")
    assert "8 training processes on" in result.stderr  # more processes than cores: a warning, not a refusal
    assert len(result.stderr.splitlines()) < 15


def test_a_full_disk_names_the_folder_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    io = AtomicCheckpointIO()
    target = tmp_path / "last.ckpt"
    io.save_checkpoint({"w": torch.zeros(4)}, target)
    before = target.read_bytes()

    def full(obj, f):
        f.write(b"partial")
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


# ----------------------------------------------------- probed further
def test_a_header_of_other_languages_is_not_read_as_a_sentence(tmp_path):
    write_split(tmp_path, "train", PAIRS, header="en\tfr")
    with pytest.raises(NmtError, match=r"train\.tsv, line 1: a header naming en, fr, but .* 'en' -> 'de'"):
        corpus.read_split(tmp_path, "train", "en", "de")


def test_data_dir_that_is_a_file_and_a_cache_that_cannot_be_written(tmp_path):
    (tmp_path / "corpus.tsv").write_text("a\tb\n", encoding="utf-8")
    with pytest.raises(NmtError, match=r"--data.data_dir .*corpus\.tsv is a file; give the folder"):
        corpus.read_split(tmp_path / "corpus.tsv", "train", "en", "de")
    dm = TranslationDataModule(cache_dir="/proc/nmt-cache")
    with pytest.raises(NmtError, match=r"The cache folder /proc/nmt-cache cannot be written .* --data.cache_dir"):
        dm.prepare_data()


def test_a_reader_that_goes_away_ends_translate_quietly(tiny_run, tmp_path):
    (tmp_path / "src.txt").write_text("Anna saw two dogs.\n" * 50, encoding="utf-8")
    command = f"{sys.executable} -m nmt translate --ckpt {checkpoint(tiny_run)} -i {tmp_path / 'src.txt'}"
    subprocess.run(["bash", "-c", f"{command} 2> {tmp_path / 'err'} | true"], timeout=300, check=True)
    errors = (tmp_path / "err").read_text()
    assert "Traceback" not in errors and "BrokenPipe" not in errors


def test_sigterm_stops_training_with_a_resumable_checkpoint_and_says_so(tiny_runs, tmp_path):
    import signal
    import time

    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    args = fit_args(tiny_runs, tmp_path, "--trainer.max_steps", "400", "--last_checkpoint.every_n_train_steps", "2")
    proc = subprocess.Popen([sys.executable, "-m", "nmt", *args], stderr=subprocess.PIPE, text=True, env=env)
    last, start = tmp_path / "checkpoints" / "last.ckpt", time.time()
    while not last.exists() and time.time() - start < 300:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 2 and "Traceback" not in stderr
    step = torch.load(last, weights_only=True)["global_step"]
    assert 0 < step < 400 and "Stopped by SIGTERM; last.ckpt holds the last step trained" in stderr
    resumed = run_nmt(*args, "--trainer.max_steps", str(step + 2), "--ckpt_path", "last")
    assert resumed.returncode == 0 and torch.load(last, weights_only=True)["global_step"] == step + 2
