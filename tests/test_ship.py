"""Shipping a model: CTranslate2 export (same output as nmt) and nmt serve (real HTTP on localhost)."""

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest
import torch

from tests.conftest import checkpoint, run_nmt
from tests.test_robustness import assert_clean_error

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
                       "--max-len-a and --max-len-b must be 0 or more")  # fmt: skip


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
    from nmt.checkpoint import load_network
    from nmt.export import export_ctranslate2

    net = load_network(checkpoint(tiny_runs["transformer"]))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    export_ctranslate2(net, tmp_path / "i8", "int8")  # the converter quantizes its own copies, not the weights
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


# ---------------------------------------------------------------------------------- serve
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _call(port: int, path: str, body: bytes | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method="POST" if body else "GET")
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


@pytest.fixture(scope="module")
def server(tiny_runs):
    pytest.importorskip("fastapi")
    port = _free_port()
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen([sys.executable, "-m", "nmt", "serve", "--ckpt", str(checkpoint(tiny_runs["transformer"])),
                             "--port", str(port), "--max-chars", "2000", "--max-body", "200000"],
                            env=env, stderr=subprocess.PIPE, text=True)  # fmt: skip
    start = time.time()
    while True:
        try:
            if _call(port, "/health")[0] == 200:
                break
        except OSError:
            assert proc.poll() is None, proc.stderr.read()
            assert time.time() - start < 120
            time.sleep(0.2)
    yield port
    proc.terminate()
    proc.wait(timeout=30)


def test_the_server_answers_as_nmt_translate_does(server, tiny_runs):
    lines = ["On Monday, Anna saw two dogs.", "", "The book costs five euros."]
    for options in ({"beam": 1}, {"beam": 5, "scores": True}, {"beam": 4, "nbest": 2}):
        status, answer = _call(server, "/translate", json.dumps({"text": lines, **options}).encode())
        assert status == 200, answer
        flags = ["--beam", str(options["beam"]), "--nbest", str(options.get("nbest", 1))]
        expected = run_nmt("translate", "--ckpt", str(checkpoint(tiny_runs["transformer"])), *flags, "--scores",
                           stdin="".join(line + "\n" for line in lines)).stdout.splitlines()  # fmt: skip
        texts = [e.split("\t")[0] if e else "" for e in expected]
        n = options.get("nbest", 1)
        got = answer["translations"] if n == 1 else [t for group in answer["translations"] for t in group]
        assert got == texts
        if options.get("scores"):
            assert answer["scores"][1] is None
            assert abs(answer["scores"][0] - float(expected[0].split("\t")[1])) < 1e-3


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [(b"not json", 400, "not JSON"), (b"[1, 2]", 422, "JSON object"), (b"{}", 422, "'text' must be"),
     (b'{"text": []}', 422, "non-empty list"), (b'{"text": ["a", 5]}', 422, "'text'[1] is int"),
     (b'{"text": ["a"], "beam": 0}', 422, "'beam' must be a whole number"),
     (b'{"text": ["a"], "beam": 2, "nbest": 3}', 422, "cannot exceed"),
     (b'{"text": ["a"], "scores": "yes"}', 422, "'scores' must be true or false"),
     (b'{"txt": ["a"]}', 422, "unknown field 'txt'"),
     (json.dumps({"text": ["x" * 100_000]}).encode(), 413, "at most"),
     (json.dumps({"text": ["x " * 150_000]}).encode(), 413, "bytes")],
)  # fmt: skip
def test_bad_requests_get_a_4xx_and_the_server_goes_on(server, body, status, message):
    got, answer = _call(server, "/translate", body)
    assert got == status and message in answer["error"]
    assert _call(server, "/health")[0] == 200


def test_concurrent_requests_are_batched_together(server):
    before = _call(server, "/health")[1]
    answers, errors = [], []

    def client(i):
        try:
            answers.append(_call(server, "/translate", json.dumps({"text": [f"Anna saw {i} dogs."]}).encode()))
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    after = _call(server, "/health")[1]
    assert not errors and all(status == 200 for status, _ in answers) and len(answers) == 24
    assert after["requests"] - before["requests"] == 24 and after["batches"] - before["batches"] < 24
