"""What nmt translate reads and writes: lines as a user means them, options checked before any work."""

import logging
import os
import subprocess
import sys

import pytest

from nmt.errors import NmtError
from tests.conftest import assert_clean_error, checkpoint, load, run_nmt, translate


def test_overlong_input_is_truncated_with_a_warning(tiny_runs, caplog):
    model = load(checkpoint(tiny_runs["transformer"]))
    lines = ["On March 21, 1987, four hundred and twenty-one people arrived.", "", "Anna."]
    short = len(model.tokenizer.encode_src(["Anna."])[0])
    model.max_source_positions = short
    assert len(model.tokenizer.encode_src(lines[:1])[0]) > short
    with caplog.at_level(logging.WARNING, logger="nmt"):
        out = translate(model, lines)
    assert len(out) == 3 and out[1] == ""
    assert f"1 input line(s) exceed the model's {short} source tokens (first: line 1)" in caplog.text


def run_bytes(*args: str, stdin: bytes) -> subprocess.CompletedProcess:
    """``nmt`` with raw bytes on stdin (text mode would re-encode them)."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    command = [sys.executable, "-m", "nmt", *args]
    result = subprocess.run(command, input=stdin, capture_output=True, env=env, timeout=300)
    return subprocess.CompletedProcess(result.args, result.returncode, result.stdout.decode(), result.stderr.decode())


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
    from nmt.engines.native import NmtEngine

    monkeypatch.setattr(NmtEngine, "run", lambda *a, **k: pytest.fail("decoded before checking --output"))
    (tmp_path / "src.txt").write_text("Anna.\n", encoding="utf-8")
    with pytest.raises(NmtError, match="is a folder; give a file name"):
        command.main(["--ckpt", str(checkpoint(tiny_run)), "--input", str(tmp_path / "src.txt"), "-o", str(tmp_path)])


def test_a_reader_that_goes_away_ends_translate_quietly(tiny_run, tmp_path):
    (tmp_path / "src.txt").write_text("Anna saw two dogs.\n" * 50, encoding="utf-8")
    command = f"{sys.executable} -m nmt translate --ckpt {checkpoint(tiny_run)} -i {tmp_path / 'src.txt'}"
    subprocess.run(["bash", "-c", f"{command} 2> {tmp_path / 'err'} | true"], timeout=300, check=True)
    errors = (tmp_path / "err").read_text()
    assert "Traceback" not in errors and "BrokenPipe" not in errors


def test_the_output_is_never_one_of_the_inputs(tiny_run, tmp_path):
    src = tmp_path / "src.txt"
    src.write_text("Anna saw two dogs.\n", encoding="utf-8")
    (tmp_path / "link.txt").symlink_to(src)
    ckpt = str(checkpoint(tiny_run))
    for output in (str(src), str(tmp_path / "link.txt"), str(tmp_path / "." / "sub" / ".." / "src.txt")):
        (tmp_path / "sub").mkdir(exist_ok=True)
        result = run_nmt("translate", "--ckpt", ckpt, "-i", str(src), "-o", output)
        assert_clean_error(result, "is the --input file", "would replace what is read")
        assert src.read_text(encoding="utf-8") == "Anna saw two dogs.\n"
    score = run_nmt("score", "--ckpt", ckpt, "--source", str(src), "--target", str(src), "-o", str(src))
    assert_clean_error(score, "is the --source file")


def test_what_is_not_a_checkpoint_is_named(tiny_run, tmp_path):
    text = tmp_path / "notes.ckpt"
    text.write_text("these are my notes\n")
    for command in (["translate", "--ckpt"], ["score", "--source", str(text), "--target", str(text), "--ckpt"]):
        assert_clean_error(
            run_nmt(*command, str(text), stdin="x\n"), "is a text file, not a checkpoint written by nmt fit"
        )
    export = tmp_path / "ct2"
    export.mkdir()
    (export / "model.bin").write_bytes(b"x")
    (export / "nmt.json").write_text("{}")
    result = run_nmt("translate", "--ckpt", str(export), stdin="x\n")
    assert_clean_error(result, "is a CTranslate2 export", f"--engine ctranslate2 --ckpt {export}")


@pytest.mark.parametrize(
    ("options", "message"),
    [(["--sample", "--temperature", "0"], "--temperature must be above 0, got 0.0"),
     (["--sample", "--topp", "1.5"], "--topp must be above 0 and at most 1, got 1.5"),
     (["--sample", "--topk", "-1"], "--topk must be 0 (every token) or more, got -1"),
     (["--topp", "0.5"], "--topp applies to --sample"),
     (["--engine", "ctranslate2", "--sample"], "does not take --sample: nmt does not sample with CTranslate2"),
     (["--engine", "ctranslate2", "--alignments"], "does not take --alignments: an export returns no attention"),
     (["--engine", "ctranslate2", "--precision", "bf16"], "the export's weights have the type chosen at export")],
)  # fmt: skip
def test_each_impossible_value_is_named(options, message):
    from nmt.commands import translate as command

    with pytest.raises(NmtError) as refused:  # before any checkpoint is read
        command.main(["--ckpt", "not-read.ckpt", *options])
    assert message in str(refused.value)
