"""nmt score: the log-probability the search gave a hypothesis, computed again from the text."""

import json

import torch

from tests.conftest import LINES, assert_clean_error, checkpoint, load, run_nmt


def test_score_gives_what_the_search_reported(tiny_runs, tmp_path):
    for name in ("transformer", "bahdanau"):
        ckpt = str(checkpoint(tiny_runs[name]))
        tok = load(ckpt).tokenizer
        sources = [line for line in LINES if line]
        (tmp_path / "src").write_text("".join(s + "\n" for s in sources), encoding="utf-8")
        greedy = run_nmt("translate", "--ckpt", ckpt, "--format", "jsonl", "-i", str(tmp_path / "src"))
        hyps = [json.loads(line)["hypotheses"][0] for line in greedy.stdout.splitlines()]
        (tmp_path / "hyp").write_text("".join(h["text"] + "\n" for h in hyps), encoding="utf-8")
        scored = run_nmt("score", "--ckpt", ckpt, "--source", str(tmp_path / "src"), "--target", str(tmp_path / "hyp"),
                         "--format", "jsonl")  # fmt: skip
        assert scored.returncode == 0, scored.stderr[-2000:]
        records = [json.loads(line) for line in scored.stdout.splitlines()]
        for hyp, record in zip(hyps, records):
            assert record["tokens"][-1] == "</s>" and len(record["tokens"]) == len(record["token_scores"])
            assert abs(sum(record["token_scores"]) - record["score"]) < 1e-6
            # The text is scored as SentencePiece splits it; where that is how the search spelled it, the
            # score is the search's (an undertrained model sometimes spells words in other pieces).
            if tok.tgt.encode(hyp["text"], out_type=str) == hyp["tokens"]:
                assert abs(record["score"] - hyp["score"]) < 2e-4
    (tmp_path / "hyp").write_text("x\n", encoding="utf-8")
    result = run_nmt("score", "--ckpt", ckpt, "--source", str(tmp_path / "src"), "--target", str(tmp_path / "hyp"))
    assert_clean_error(result, "has 3 lines but", "has 1")


def test_the_scorer_and_the_search_compute_the_same_log_probabilities(tiny_runs):
    from nmt.data.batching import pad
    from nmt.data.tokenizer import BOS_ID, EOS_ID, PAD_ID
    from nmt.scoring import token_log_probs
    from nmt.search import Sampling, decode_batch

    for name in ("transformer", "bahdanau"):
        engine = load(checkpoint(tiny_runs[name]))
        net = engine.net
        src = engine.tokenizer.encode_src([line for line in LINES if line])
        ids = pad(src)
        for options in (
            {"beam": 1},
            {"beam": 3, "nbest": 2, "alpha": 0.0},
            {"nbest": 2, "sampling": Sampling(temperature=2.0, generator=torch.Generator().manual_seed(0))},
        ):
            hyps = decode_batch(net, ids, ids != PAD_ID, attention=False, **options)
            for rank in range(hyps.tokens.size(1)):
                tgt = [[BOS_ID, *seq, EOS_ID] for seq in hyps.token_lists(rank)]
                scores = token_log_probs(net, src, tgt)
                assert torch.allclose(torch.tensor([sum(s) for s in scores]), hyps.score[:, rank], atol=1e-4), options


def test_targets_the_vocabulary_lacks_are_counted(tiny_run, tmp_path):
    (tmp_path / "src").write_text("Anna saw two dogs.\nAnna saw two dogs.\n", encoding="utf-8")
    (tmp_path / "tgt").write_text("Anna sah zwei Hunde.\nАнна видела двух собак.\n", encoding="utf-8")
    args = ["score", "--ckpt", str(checkpoint(tiny_run)), "--source", str(tmp_path / "src"), "--target"]
    text = run_nmt(*args, str(tmp_path / "tgt"))
    assert text.returncode == 0, text.stderr[-2000:]
    columns = [line.split("\t") for line in text.stdout.splitlines()]
    assert [c[2] for c in columns][0] == "0" and int(columns[1][2]) >= 4  # each Cyrillic word: an <unk>
    assert "1 target line(s) hold text the vocabulary lacks (first: line 2, 'Анна'" in text.stderr
    records = [
        json.loads(line) for line in run_nmt(*args, str(tmp_path / "tgt"), "--format", "jsonl").stdout.splitlines()
    ]
    assert [r["unknown_pieces"] for r in records] == [0, int(columns[1][2])]
