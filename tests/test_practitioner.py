"""Fine-tuning, early stopping, sampling, prefixes, ensembles and scoring, through the real commands."""

import csv
import json

import torch

from nmt.data.tokenizer import Tokenizer
from tests.conftest import checkpoint, run_nmt
from tests.test_robustness import assert_clean_error

LINES = ["On Monday, Anna saw two dogs.", "The book costs five euros.", "", "Peter was born on May 1, 1990."]
STDIN = "".join(line + "\n" for line in LINES)


def losses(root) -> list[float]:
    rows = csv.DictReader(next(root.rglob("metrics.csv")).open())
    return [float(r["train/loss"]) for r in rows if r.get("train/loss")]


def test_fine_tuning_starts_from_the_trained_model(tiny_runs, tmp_path):
    trained = checkpoint(tiny_runs["transformer"], "last.ckpt")
    one_step = ["--trainer.max_steps", "1", "--trainer.log_every_n_steps", "1", "--trainer.limit_val_batches", "0"]
    fresh = run_nmt("fit", *tiny_runs.args("transformer"), *one_step, "--trainer.default_root_dir", str(tmp_path / "f"))
    tuned = run_nmt("fit", *tiny_runs.args("transformer"), *one_step, "--init_from", str(trained),
                    "--data.vocab_size", "200", "--trainer.default_root_dir", str(tmp_path / "t"))  # fmt: skip
    assert fresh.returncode == tuned.returncode == 0, tuned.stderr[-3000:]
    start, fresh_start, trained_end = (
        losses(tmp_path / "t")[0],
        losses(tmp_path / "f")[0],
        losses(trained.parents[1])[-1],
    )
    assert abs(start - trained_end) < 0.25 and start < fresh_start - 0.5  # where training left off, not from scratch
    assert f"starting from the weights of {trained} (step 12)" in tuned.stderr
    new = torch.load(tmp_path / "t" / "checkpoints" / "last.ckpt", weights_only=True)
    old = torch.load(trained, weights_only=True)
    assert new["global_step"] == 1  # a fresh step count (and optimizer and schedule)
    assert new["nmt"]["tokenizer"]["sha256"] == old["nmt"]["tokenizer"]["sha256"]  # not a 200-piece vocabulary
    assert new["hyper_parameters"]["net"]["init_args"]["src_vocab_size"] == 120


def test_fine_tuning_from_another_network_or_size_is_refused(tiny_runs, tmp_path):
    trained = str(checkpoint(tiny_runs["transformer"]))
    gru = run_nmt("fit", *tiny_runs.args("gru"), "--init_from", trained, "--trainer.default_root_dir", str(tmp_path))
    assert_clean_error(gru, "holds a TransformerNet but the config builds a GRUNet")
    wider = run_nmt("fit", *tiny_runs.args("transformer"), "--model.net.d_ff", "128", "--init_from", trained,
                    "--trainer.default_root_dir", str(tmp_path))  # fmt: skip
    assert_clean_error(wider, "has other sizes", "(64, 32) there and (128, 32) here")
    both = run_nmt("fit", *tiny_runs.args("transformer"), "--init_from", trained, "--ckpt_path", trained,
                   "--trainer.default_root_dir", str(tmp_path))  # fmt: skip
    assert_clean_error(both, "give one of them")


def test_early_stopping_when_validation_bleu_stops_improving(tiny_runs, tmp_path):
    still = ["--model.lr", "1e-12", "--model.warmup_steps", "1", "--trainer.max_steps", "40",
             "--trainer.val_check_interval", "2", "--early_stopping.patience", "2"]  # fmt: skip
    result = run_nmt("fit", *tiny_runs.args("transformer"), *still, "--trainer.default_root_dir", str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "did not improve in the last 2 records" in result.stderr
    assert torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 6  # 3 validations


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
    assert_clean_error(bad, "apply to --sample")


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


def test_score_gives_what_the_search_reported(tiny_runs, tmp_path):
    from nmt.checkpoint import load_network

    for name in ("transformer", "bahdanau"):
        ckpt = str(checkpoint(tiny_runs[name]))
        tok = load_network(ckpt).tokenizer
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
    from nmt.checkpoint import load_network
    from nmt.data.batching import pad
    from nmt.data.tokenizer import BOS_ID, EOS_ID, PAD_ID
    from nmt.scoring import score_ids
    from nmt.search import Sampling

    for name in ("transformer", "bahdanau"):
        net = load_network(checkpoint(tiny_runs[name]))
        src = net.tokenizer.encode_src([line for line in LINES if line])
        ids = pad(src)
        for options in (
            {"beam": 1},
            {"beam": 3, "nbest": 2, "alpha": 0.0},
            {"nbest": 2, "sampling": Sampling(temperature=2.0, generator=torch.Generator().manual_seed(0))},
        ):
            hyps = net.translate_batch(ids, ids != PAD_ID, attention=False, **options)
            for rank in range(hyps.tokens.size(1)):
                tgt = [[BOS_ID, *seq, EOS_ID] for seq in hyps.token_lists(rank)]
                scores = score_ids(net, src, tgt)
                assert torch.allclose(torch.tensor([sum(s) for s in scores]), hyps.score[:, rank], atol=1e-4), options
