"""The CTranslate2 export: the same output as nmt's own search, and what cannot be exported."""

import json
import os

import pytest
import torch

from tests.conftest import assert_clean_error, checkpoint, load, run_nmt

ctranslate2 = pytest.importorskip("ctranslate2")


@pytest.fixture(scope="module")
def exported(tiny_runs, tmp_path_factory):
    out = tmp_path_factory.mktemp("ct2")
    result = run_nmt("export", "--ckpt", str(checkpoint(tiny_runs["transformer"])), "--out", str(out / "f32"))
    assert result.returncode == 0, result.stderr[-3000:]
    return out / "f32"


def test_the_export_translates_as_nmt_does(tiny_runs, tiny_corpus, exported, tmp_path):
    source = str(tiny_corpus / "test.en")
    ckpt = str(checkpoint(tiny_runs["transformer"]))
    assert {"model.bin", "config.json", "source.spm", "target.spm", "nmt.json"} <= {p.name for p in exported.iterdir()}
    for options in (["--beam", "1"], ["--beam", "5"], ["--beam", "4", "--nbest", "2"]):
        ours = run_nmt("translate", "--ckpt", ckpt, "-i", source, *options)
        theirs = run_nmt("translate", "--engine", "ctranslate2", "--ckpt", str(exported), "-i", source, *options)
        assert ours.returncode == theirs.returncode == 0, theirs.stderr[-2000:]
        assert len(theirs.stdout.splitlines()) == len(ours.stdout.splitlines())
        # The same search, line for line; of an n-best list the best (this untrained model runs into the
        # length limit, where the others may differ: see docs/deploy.md).
        step = 2 if "--nbest" in options else 1
        assert theirs.stdout.splitlines()[::step] == ours.stdout.splitlines()[::step], options
    (tmp_path / "p").write_text("Am Sonntag\n" + "\n" * 23, encoding="utf-8")
    prefixed = run_nmt("translate", "--engine", "ctranslate2", "--ckpt", str(exported), "-i", source, "--prefix",
                       str(tmp_path / "p"))  # fmt: skip
    assert prefixed.returncode == 0 and prefixed.stdout.startswith("Am Sonntag")


def test_length_limits_from_the_command_line_for_both_engines(tiny_runs, tiny_corpus, exported):
    source = str(tiny_corpus / "test.en")
    ckpt = str(checkpoint(tiny_runs["transformer"]))
    outputs = {}
    for engine in (["--ckpt", ckpt], ["--engine", "ctranslate2", "--ckpt", str(exported)]):
        for beam in ("1", "3"):
            result = run_nmt("translate", *engine, "-i", source, "--beam", beam, "--max-len-a", "0", "--max-len-b",
                             "2", "--format", "jsonl")  # fmt: skip
            assert result.returncode == 0, result.stderr[-2000:]
            records = [json.loads(line) for line in result.stdout.splitlines()]
            assert len(records) == 24 and all(len(r["hypotheses"][0]["tokens"]) <= 2 for r in records)
            assert max(len(r["hypotheses"][0]["tokens"]) for r in records) == 2  # cut there, not shorter by chance
            outputs[engine[0], beam] = [r["hypotheses"][0]["text"] for r in records]
    assert outputs["--ckpt", "1"] == outputs["--engine", "1"]  # greedy: the same output
    assert_clean_error(run_nmt("translate", "--ckpt", ckpt, "--max-len-a", "-1", stdin="a\n"),
                       "--max-len-a must be 0 or more", "got -1.0")  # fmt: skip


def test_int8_export_and_what_cannot_be_exported(tiny_runs, tiny_corpus, tmp_path):
    result = run_nmt("export", "--ckpt", str(checkpoint(tiny_runs["transformer"])), "--out", str(tmp_path / "i8"),
                     "--quantization", "int8")  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((tmp_path / "i8" / "nmt.json").read_text())["quantization"] == "int8"
    assert (tmp_path / "i8" / "model.bin").stat().st_size < 0.5 * os.path.getsize(checkpoint(tiny_runs["transformer"]))
    out = run_nmt("translate", "--engine", "ctranslate2", "--ckpt", str(tmp_path / "i8"), "-i",
                  str(tiny_corpus / "test.en"))  # fmt: skip
    assert out.returncode == 0 and len(out.stdout.splitlines()) == 24
    gru = run_nmt("export", "--ckpt", str(checkpoint(tiny_runs["gru"])), "--out", str(tmp_path / "g"))
    assert_clean_error(gru, "CTranslate2 has no specification for a GRUNet")
    sampled = run_nmt("translate", "--engine", "ctranslate2", "--ckpt", str(tmp_path / "i8"), "--sample", stdin="a\n")
    assert_clean_error(sampled, "--engine ctranslate2 does not take --sample")


def test_exporting_leaves_the_network_as_it_was(tiny_runs, tmp_path):
    from nmt.export import export_ctranslate2

    engine = load(checkpoint(tiny_runs["transformer"]))
    net = engine.net
    before = {k: v.clone() for k, v in net.state_dict().items()}
    export_ctranslate2(net, engine.tokenizer, tmp_path / "i8", "int8")  # the converter quantizes copies
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


# ------------------------------------------------------------------ where the export goes, and what it checks
def test_export_never_deletes_what_it_did_not_write(tiny_runs, tmp_path):
    ckpt = checkpoint(tiny_runs["transformer"])
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    result = run_nmt("export", "--ckpt", str(ckpt), "--out", str(mine))
    assert_clean_error(result, "holds other files (not an earlier export)", "--force")
    assert (mine / "notes.txt").read_text() == "keep me"
    # The checkpoint's own folder (or any folder above it) is refused even with --force.
    for out in (ckpt.parent, ckpt.parent.parent):
        result = run_nmt("export", "--ckpt", str(ckpt), "--out", str(out), "--force")
        assert_clean_error(result, f"holds {ckpt}", "write the export elsewhere")
        assert ckpt.is_file() and (ckpt.parent / "last.ckpt").is_file()
    (tmp_path / "file").write_text("x")
    assert_clean_error(run_nmt("export", "--ckpt", str(ckpt), "--out", str(tmp_path / "file")), "is a file")
    # An earlier export is replaced (the new one complete before the old one goes); --force replaces other files.
    first = run_nmt("export", "--ckpt", str(ckpt), "--out", str(tmp_path / "ct2"))
    again = run_nmt("export", "--ckpt", str(ckpt), "--out", str(tmp_path / "ct2"), "--quantization", "int8")
    assert first.returncode == again.returncode == 0, again.stderr[-2000:]
    assert json.loads((tmp_path / "ct2" / "nmt.json").read_text())["quantization"] == "int8"
    forced = run_nmt("export", "--ckpt", str(ckpt), "--out", str(mine), "--force")
    assert forced.returncode == 0 and not (mine / "notes.txt").exists() and (mine / "model.bin").is_file()
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_an_export_interrupted_while_writing_leaves_the_earlier_one(tiny_runs, tmp_path, monkeypatch):
    from nmt import export

    engine = load(checkpoint(tiny_runs["transformer"]))
    out = tmp_path / "ct2"
    export.export_ctranslate2(engine.net, engine.tokenizer, out)
    before = (out / "model.bin").read_bytes()

    def dies(spec, net, tok, folder, *settings):
        (folder / "model.bin").write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(export, "_write", dies)
    with pytest.raises(KeyboardInterrupt):
        export.export_ctranslate2(engine.net, engine.tokenizer, out, "int8")
    assert (out / "model.bin").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ct2"]


@pytest.mark.parametrize(
    ("damage", "message"),
    [("rm model.bin", "lacks model.bin: the export is incomplete"),
     ("cut model.bin", "model.bin is cut short or changed"),
     ("rm config.json", "lacks config.json"),
     ("other target.spm", "target.spm belongs to another model"),
     ("garble nmt.json", "nmt.json is damaged"),
     ("rm nmt.json", "is not an export of nmt (no nmt.json)"),
     ("rm folder", "no such folder; write one with nmt export --ckpt CKPT --out"),
     ("file folder", "takes the folder written by nmt export as --ckpt")],
)  # fmt: skip
def test_a_damaged_or_mixed_up_export_is_named(exported, tiny_runs, tmp_path, damage, message):
    import shutil

    folder = tmp_path / "copy"
    shutil.copytree(exported, folder)
    verb, name = damage.split()
    path = folder if name == "folder" else folder / name
    if name == "folder":  # the folder itself missing, or a file in its place
        shutil.rmtree(folder)
        if verb == "file":
            folder.write_text("not an export\n")
    elif verb == "rm":
        path.unlink()
    elif verb == "cut":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif verb == "garble":
        path.write_text("{not json")
    else:  # another model's SentencePiece file, of the very same size
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    result = run_nmt("translate", "--engine", "ctranslate2", "--ckpt", str(folder), stdin="Anna saw two dogs.\n")
    assert_clean_error(result, message)


def test_both_engines_give_the_same_scores_and_the_same_rendering_of_unknown_text(tiny_runs, exported, tmp_path):
    ckpt = str(checkpoint(tiny_runs["transformer"]))
    lines = ["On Monday, Anna saw two dogs.", "The book costs five euros.", "Peter was born on May 1, 1990."]
    (tmp_path / "src").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    (tmp_path / "prefix").write_text("Am Жук\n\nDas\n", encoding="utf-8")
    outputs = {}
    for name, engine in (("nmt", ["--ckpt", ckpt]), ("ct2", ["--engine", "ctranslate2", "--ckpt", str(exported)])):
        # Greedy: this tiny model runs into the length limit, where beam search may differ (docs/deploy.md).
        result = run_nmt("translate", *engine, "-i", str(tmp_path / "src"), "--format", "jsonl",
                         "--prefix", str(tmp_path / "prefix"))  # fmt: skip
        assert result.returncode == 0, result.stderr[-2000:]
        assert "the prefix of line 1 holds 'Жук', which the target vocabulary lacks" in result.stderr
        outputs[name] = [json.loads(line)["hypotheses"][0] for line in result.stdout.splitlines()]
    for ours, theirs in zip(outputs["nmt"], outputs["ct2"]):
        assert ours["text"] == theirs["text"] and ours["tokens"] == theirs["tokens"]
        assert abs(ours["score"] - theirs["score"]) < 1e-4  # nmt's own log-probabilities, not CTranslate2's
        assert all(abs(a - b) < 1e-4 for a, b in zip(ours["token_scores"], theirs["token_scores"]))
    assert outputs["nmt"][0]["text"].startswith("Am") and "⁇" in outputs["nmt"][0]["text"]  # the unknown shows


def test_an_export_is_served_beside_its_checkpoint(tiny_runs, exported):
    from nmt.checkpoint import Checkpoint
    from tests.conftest import http_call, start_server

    ckpt = checkpoint(tiny_runs["transformer"])
    server, port = start_server(None, f"--model=nmt={ckpt}", f"--model=ct2={exported}")
    try:
        status, answer = http_call(port, "/models")
        assert status == 200
        ours, theirs = answer["models"]
        # The export remembers what it was exported from.
        assert theirs["network"] == "TransformerNet (CTranslate2, float32)" and theirs["engine"] == "ctranslate2"
        assert theirs["steps"] == Checkpoint.read(ckpt).step == ours["steps"] > 0
        assert theirs["parameters"] == ours["parameters"] and theirs["languages"] == ours["languages"] == ["en", "de"]
        assert theirs["features"] == {"attention": False, "alternatives": False, "sampling": False}
        lines = ["Anna saw two dogs.", "Peter was born on May 1, 1990."]
        answers = {}
        for model in ("nmt", "ct2"):
            body = {"text": lines, "model": model, "beam": 3, "probabilities": True}
            status, answers[model] = http_call(port, "/translate", json.dumps(body).encode())
            assert status == 200, answers[model]
        assert answers["ct2"]["translations"] == answers["nmt"]["translations"]
        for mine, its in zip(answers["nmt"]["details"], answers["ct2"]["details"]):
            assert its[0]["tokens"] == mine[0]["tokens"]
            assert its[0]["probabilities"] == pytest.approx(mine[0]["probabilities"], abs=1e-3)
        # What an export cannot show is a 422 naming it; the server goes on.
        status, refused = http_call(port, "/translate", json.dumps({"text": lines, "model": "ct2",
                                                                      "attention": True}).encode())  # fmt: skip
        assert (
            status == 422
            and refused["error"] == "'attention': model 'ct2' (TransformerNet (CTranslate2, float32)) has none to show"
        )
        assert http_call(port, "/translate", json.dumps({"text": lines, "model": "ct2"}).encode())[0] == 200
    finally:
        server.terminate()
        server.wait(timeout=30)
