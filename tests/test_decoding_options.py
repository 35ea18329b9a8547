"""Decoding options through nmt translate: sampling, target prefixes, ensembles."""

import torch

from nmt.data.tokenizer import Tokenizer
from tests.conftest import LINES, STDIN, assert_clean_error, checkpoint, run_nmt


def test_sampling_is_seeded_and_keeps_the_line_count(tiny_run):
    ckpt = str(checkpoint(tiny_run))
    hot = ["--sample", "--nbest", "3", "--temperature", "3.0"]
    a = run_nmt("translate", "--ckpt", ckpt, *hot, "--seed", "1", stdin=STDIN)
    b = run_nmt("translate", "--ckpt", ckpt, *hot, "--seed", "1", stdin=STDIN)
    c = run_nmt("translate", "--ckpt", ckpt, *hot, "--seed", "2", "--scores", stdin=STDIN)
    assert a.returncode == b.returncode == c.returncode == 0, a.stderr[-2000:]
    assert a.stdout == b.stdout and len(a.stdout.splitlines()) == 3 * len(LINES)
    assert [line.split("\t")[0] for line in c.stdout.splitlines()] != a.stdout.splitlines()
    scores = [float(line.split("\t")[1]) for line in c.stdout.splitlines()[:3]]
    assert scores == sorted(scores, reverse=True)  # the samples of a line, best first
    top1 = run_nmt("translate", "--ckpt", ckpt, "--sample", "--topk", "1", stdin=STDIN)
    assert top1.stdout == run_nmt("translate", "--ckpt", ckpt, stdin=STDIN).stdout  # top-1 sampling is greedy
    bad = run_nmt("translate", "--ckpt", ckpt, "--topk", "5", stdin=STDIN)
    assert_clean_error(bad, "applies to --sample")


def test_every_translation_starts_with_its_prefix(tiny_runs, tmp_path):
    prefixes = ["Am Sonntag", "Das Auto", "", ""]
    (tmp_path / "prefix.txt").write_text("".join(p + "\n" for p in prefixes), encoding="utf-8")
    for name in ("transformer", "luong"):
        ckpt = str(checkpoint(tiny_runs[name]))
        plain = run_nmt("translate", "--ckpt", ckpt, stdin=STDIN).stdout.splitlines()
        for search in (["--beam", "1"], ["--beam", "3"], ["--sample", "--seed", "3"]):
            result = run_nmt("translate", "--ckpt", ckpt, "--prefix", str(tmp_path / "prefix.txt"), *search,
                             stdin=STDIN)  # fmt: skip
            assert result.returncode == 0, result.stderr[-2000:]
            out = result.stdout.splitlines()
            assert out[0].startswith("Am Sonntag") and out[1].startswith("Das Auto") and out[2] == ""
            if search[0] == "--beam" and search[1] == "1":
                assert out[3] == plain[3]  # no prefix: the usual translation
    short = tmp_path / "short.txt"
    short.write_text("Am\n", encoding="utf-8")
    result = run_nmt("translate", "--ckpt", ckpt, "--prefix", str(short), stdin=STDIN)
    assert_clean_error(result, "has 1 lines but the input has 4")


def test_an_ensemble_of_a_model_with_itself_is_that_model(tiny_runs, tmp_path):
    ckpt = str(checkpoint(tiny_runs["transformer"]))
    for search in (["--beam", "1"], ["--beam", "5", "--nbest", "2"]):
        alone = run_nmt("translate", "--ckpt", ckpt, *search, "--scores", stdin=STDIN)
        twice = run_nmt("translate", "--ckpt", ckpt, ckpt, *search, "--scores", stdin=STDIN)
        assert alone.returncode == twice.returncode == 0, twice.stderr[-2000:]
        assert alone.stdout == twice.stdout
    mixed = run_nmt("translate", "--ckpt", ckpt, str(checkpoint(tiny_runs["luong"])), "--beam", "3", stdin=STDIN)
    assert mixed.returncode == 0 and len(mixed.stdout.splitlines()) == len(LINES)  # any mix sharing the vocabulary
    other = torch.load(ckpt, weights_only=True)
    other["nmt"]["tokenizer"] = Tokenizer.train(["a b c d e f g"] * 20, ["h i j k l m n"] * 20, 20).to_dict()
    torch.save(other, tmp_path / "other.ckpt")
    result = run_nmt("translate", "--ckpt", ckpt, str(tmp_path / "other.ckpt"), stdin=STDIN)
    assert_clean_error(result, "trained with different vocabularies")
