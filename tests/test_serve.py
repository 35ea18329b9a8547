"""nmt serve over real HTTP on localhost: nmt translate's answers, 4xx for bad requests, shared batches."""

import json
import math
import signal
import threading
import time
import urllib.error
import urllib.request

import pytest
import torch

from tests.conftest import checkpoint, http_call, load, run_nmt, start_server, together


@pytest.fixture(scope="module")
def server(tiny_runs):
    proc, port = start_server(checkpoint(tiny_runs["transformer"]), "--max-chars", "2000", "--max-body", "200000")
    yield port
    proc.terminate()
    proc.wait(timeout=30)


def test_the_server_answers_as_nmt_translate_does(server, tiny_runs):
    lines = ["On Monday, Anna saw two dogs.", "", "The book costs five euros."]
    for options in ({"beam": 1}, {"beam": 5, "scores": True}, {"beam": 4, "nbest": 2}):
        status, answer = http_call(server, "/translate", json.dumps({"text": lines, **options}).encode())
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
     (b'{"text": ["a"], "beam": 0}', 422, "'beam' must be 1 (greedy) or more"),
     (b'{"text": ["a"], "beam": 2, "nbest": 3}', 422, "'nbest' must be between 1 and 'beam' (2), got 3"),
     (b'{"text": ["a"], "scores": "yes"}', 422, "'scores' must be true or false"),
     (b'{"txt": ["a"]}', 422, "unknown field 'txt'"),
     (json.dumps({"text": ["x" * 100_000]}).encode(), 413, "at most"),
     (json.dumps({"text": ["x " * 150_000]}).encode(), 413, "bytes")],
)  # fmt: skip
def test_bad_requests_get_a_4xx_and_the_server_goes_on(server, body, status, message):
    got, answer = http_call(server, "/translate", body)
    assert got == status and message in answer["error"]
    assert http_call(server, "/health")[0] == 200


def test_concurrent_requests_are_batched_together(server):
    before = http_call(server, "/health")[1]
    bodies = [(server, "/translate", json.dumps({"text": [f"Anna saw {i} dogs."]}).encode()) for i in range(24)]
    answers = together(http_call, bodies)
    after = http_call(server, "/health")[1]
    assert all(status == 200 for status, _ in answers) and len(answers) == 24
    assert after["requests"] - before["requests"] == 24 and after["batches"] - before["batches"] < 24


def _raw(port: int, method: str, path: str) -> tuple[int, dict | str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_every_error_is_json_with_an_error_and_the_api_is_described(server, tiny_runs):
    status, answer = _raw(server, "GET", "/nowhere")
    assert status == 404 and answer["error"].startswith("no such path /nowhere; the paths are GET / (the page)")
    assert _raw(server, "GET", "/translate") == (405, {"error": "GET is not allowed on /translate"})
    assert _raw(server, "GET", "/docs")[0] == 404  # Swagger UI would load scripts from a CDN: none offline
    status, schema = _raw(server, "GET", "/openapi.json")
    body = schema["paths"]["/translate"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert status == 200 and body["required"] == ["text"] and set(body["properties"]) >= {"text", "beam", "nbest"}
    # A line over the model's source length is refused by number, not cut quietly.
    tok = load(checkpoint(tiny_runs["transformer"])).tokenizer
    long = ".," * 990
    assert len(tok.encode_src([long])[0]) > 1024
    status, answer = http_call(server, "/translate", json.dumps({"text": ["Anna.", long]}).encode())
    assert status == 413 and answer["error"].startswith("'text'[1] has ") and "at most 1024" in answer["error"]


@pytest.fixture(scope="module")
def slow_server(tiny_runs):
    """A recurrent model with small batches: a long request takes many batches."""
    proc, port = start_server(checkpoint(tiny_runs["luong"]), "--max-tokens", "200", "--max-work", "2000000",
                              "--timeout", "60", "--stop-timeout", "2")  # fmt: skip
    yield proc, port
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=30)


LONG = "On the first of May, four hundred and twenty-one people saw Anna, Peter and Michael in Berlin."


def test_a_long_request_does_not_hold_up_the_others(slow_server):
    """The load test: while one client's 256 lines at beam 16 take many batches, other clients' one-line requests
    are answered between them; /health shows the backlog; work beyond a request's bound is refused at once."""
    _, port = slow_server
    long_body = json.dumps({"text": [LONG] * 256, "beam": 16}).encode()
    finished: dict[str, float] = {}

    def long_client():
        status, answer = http_call(port, "/translate", long_body)
        finished["long"] = time.monotonic()
        assert status == 200 and len(answer["translations"]) == 256

    start = time.monotonic()
    client = threading.Thread(target=long_client)
    client.start()
    time.sleep(1.0)
    backlog = http_call(port, "/health")[1]
    assert backlog["waiting_lines"] > 0 and backlog["busy_s"] is not None
    latencies = []
    for i in range(10):
        t = time.monotonic()
        status, answer = http_call(port, "/translate", json.dumps({"text": [f"Anna saw {i} dogs."]}).encode())
        latencies.append(time.monotonic() - t)
        assert status == 200 and len(answer["translations"]) == 1
    shorts_done = time.monotonic()
    client.join(timeout=300)
    assert "long" in finished and shorts_done < finished["long"], "the short requests waited for the long one"
    assert max(latencies) < (finished["long"] - start) / 3, (latencies, finished["long"] - start)
    assert http_call(port, "/health")[1]["waiting_lines"] == 0
    status, answer = http_call(port, "/translate", json.dumps({"text": [LONG * 10] * 256, "beam": 64}).encode())
    assert status == 413 and "decoder steps" in answer["error"] and "--max-work" in answer["error"]


def test_the_work_of_a_client_that_left_is_dropped(slow_server):
    _, port = slow_server
    request = urllib.request.Request(f"http://127.0.0.1:{port}/translate", method="POST",
                                     data=json.dumps({"text": [LONG] * 256, "beam": 16}).encode())  # fmt: skip
    with pytest.raises(OSError):  # the client gives up after a second and closes its connection
        urllib.request.urlopen(request, timeout=1.0)
    deadline = time.monotonic() + 10
    while http_call(port, "/health")[1]["waiting_lines"] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert http_call(port, "/health")[1]["waiting_lines"] == 0  # its remaining lines are not decoded


def test_sigterm_answers_what_waits_and_stops_in_bounded_time(slow_server):
    proc, port = slow_server
    answers = []
    client = threading.Thread(target=lambda: answers.append(http_call(port, "/translate", json.dumps(
        {"text": [LONG] * 256, "beam": 16}).encode())))  # fmt: skip
    client.start()
    time.sleep(1.0)
    start = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    assert time.monotonic() - start < 10  # --stop-timeout 2, and a batch of 200 tokens
    client.join(timeout=30)
    assert answers and answers[0][0] == 503 and "the server is stopping" in answers[0][1]["error"]


@pytest.fixture(scope="module")
def models_server(tiny_runs):
    proc, port = start_server(None, *(f"--model={name}={checkpoint(tiny_runs[name])}" for name in
                                      ("transformer", "luong", "gru")), "--max-detail-lines", "4")  # fmt: skip
    yield port
    proc.terminate()
    proc.wait(timeout=30)


def test_models_are_described(models_server, tiny_runs):
    status, answer = http_call(models_server, "/models")
    assert status == 200 and [m["name"] for m in answer["models"]] == ["transformer", "luong", "gru"]
    transformer, luong, gru = answer["models"]
    assert transformer["network"] == "TransformerNet" and transformer["languages"] == ["en", "de"]
    from nmt.checkpoint import Checkpoint

    ckpt = Checkpoint.read(checkpoint(tiny_runs["transformer"]))
    assert transformer["steps"] == ckpt.step > 0 and transformer["parameters"] > 1000
    assert (transformer["layers"], transformer["heads"], luong["layers"], luong["heads"]) == (1, 2, 1, 1)
    assert gru["features"] == {"attention": False, "alternatives": True, "sampling": True} and gru["layers"] is None


def test_what_lies_behind_a_translation(models_server, tiny_runs, tmp_path):
    lines = ["On Monday, Anna saw two dogs.", "", "Peter was born on May 1, 1990."]
    for model in ("transformer", "luong"):
        body = {"text": lines, "model": model, "probabilities": True, "alternatives": 3, "attention": True}
        status, answer = http_call(models_server, "/translate", json.dumps(body).encode())
        assert status == 200, answer
        details = answer["details"]
        assert details[1] == [] and len(details[0]) == len(details[2]) == 1
        for found in details:
            if not found:
                continue
            detail, steps = found[0], len(found[0]["tokens"]) + 1  # and EOS
            assert len(detail["probabilities"]) == steps and all(0 < p <= 1 for p in detail["probabilities"])
            assert len(detail["alternatives"]) == steps and all(len(a) == 3 for a in detail["alternatives"])
            for t, alternatives in enumerate(detail["alternatives"][:-1]):  # greedy: the best is what was chosen
                assert alternatives[0][0] == detail["tokens"][t]
                assert alternatives[0][1] == pytest.approx(detail["probabilities"][t], abs=1e-3)
                assert [p for _, p in alternatives] == sorted((p for _, p in alternatives), reverse=True)
            attention = torch.tensor(detail["attention"])
            layers, heads = (1, 2) if model == "transformer" else (1, 1)
            assert attention.shape == (layers, heads, steps, len(detail["source_tokens"]))
            assert torch.allclose(attention.sum(-1), torch.ones(layers, heads, steps), atol=1e-3)  # rows sum to 1
        # The probabilities are nmt score's for the same output.
        (tmp_path / "src").write_text(lines[0] + "\n", encoding="utf-8")
        (tmp_path / "hyp").write_text(answer["translations"][0] + "\n", encoding="utf-8")
        scored = run_nmt("score", "--ckpt", str(checkpoint(tiny_runs[model])), "--source", str(tmp_path / "src"),
                         "--target", str(tmp_path / "hyp"), "--format", "jsonl")  # fmt: skip
        record = json.loads(scored.stdout)
        if record["tokens"][:-1] == details[0][0]["tokens"]:  # SentencePiece splits the text as the search did
            expected = [math.exp(s) for s in record["token_scores"]]
            assert details[0][0]["probabilities"] == pytest.approx(expected, abs=1e-3)
    # A request without them costs what it did: no details at all.
    status, plain = http_call(models_server, "/translate", json.dumps({"text": lines}).encode())
    assert status == 200 and set(plain) == {"translations"}


def test_sampling_over_http_is_seeded(models_server, tiny_runs):
    body = json.dumps({"text": ["Anna saw two dogs."], "sample": True, "nbest": 2, "seed": 5, "topk": 10}).encode()
    first, second = http_call(models_server, "/translate", body), http_call(models_server, "/translate", body)
    assert first == second and first[0] == 200 and len(first[1]["translations"][0]) == 2
    expected = run_nmt("translate", "--ckpt", str(checkpoint(tiny_runs["transformer"])), "--sample", "--nbest", "2",
                       "--seed", "5", "--topk", "10", stdin="Anna saw two dogs.\n").stdout.splitlines()  # fmt: skip
    assert first[1]["translations"][0] == expected


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [({"alternatives": -1}, 422, "'alternatives' must be 0 or more"),
     ({"alternatives": 21}, 422, "'alternatives' may be at most 20"),
     ({"attention": "yes"}, 422, "'attention' must be true or false"),
     ({"probabilities": 1}, 422, "'probabilities' must be true or false"),
     ({"model": "marian"}, 422, "unknown model 'marian'; the models are transformer, luong, gru"),
     ({"model": 3}, 422, "'model' must be a string"),
     ({"model": "gru", "attention": True}, 422, "'attention': model 'gru' (GRUNet) has none to show"),
     ({"sample": True, "temperature": 0}, 422, "'temperature' must be above 0"),
     ({"sample": True, "beam": 3}, 422, "'sample' draws translations instead of searching"),
     ({"text": ["a"] * 5, "attention": True}, 413, "at most 4 lines a request")],
)  # fmt: skip
def test_bad_detail_requests_get_a_4xx(models_server, body, status, message):
    got, answer = http_call(models_server, "/translate", json.dumps({"text": ["Anna."], **body}).encode())
    assert got == status and message in answer["error"], answer
    assert http_call(models_server, "/health")[0] == 200
