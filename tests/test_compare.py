"""nmt compare: its measures against hand-computed values, and the report end to end."""

import json
import os
import re
import subprocess
import sys
import zipfile
from html.parser import HTMLParser

import numpy as np
import pytest
import torch

from nmt.compare import measures
from nmt.compare.probe import gradient_by_distance
from nmt.compare.report import COLUMNS, table_rows
from nmt.networks import GRUNet
from tests.conftest import REPO, checkpoint, run_nmt


# ------------------------------------------------------------------------------ measures
def test_aer_of_a_hand_computed_example():
    gold = measures.parse_gold("0-0 1-2 1p1 2p2")  # S = {(0,0), (1,2)}, P = S + {(1,1), (2,2)}
    assert gold.sure == {(0, 0), (1, 2)} and gold.possible == {(0, 0), (1, 2), (1, 1), (2, 2)}
    a = {(0, 0), (1, 1), (2, 0)}  # one sure hit, one possible-only hit, one miss
    # 1 - (|A&S| + |A&P|) / (|A| + |S|) = 1 - (1 + 2) / (3 + 2)
    assert measures.aer([a], [gold]) == pytest.approx(0.4)
    assert measures.aer([gold.sure], [gold]) == 0.0  # the sure links alone are perfect
    # Summed over a corpus, not averaged per sentence: (1 + 2) + (0 + 0) hits over (3 + 2) + (1 + 1)
    assert measures.aer([a, {(0, 1)}], [gold, measures.parse_gold("0-0")]) == pytest.approx(1 - 3 / 7)


def test_gold_files_may_be_one_based_or_the_other_way_round():
    assert measures.parse_gold("1-1 2p3", base=1).possible == {(0, 0), (1, 2)}
    assert measures.parse_gold("0-3", swap=True).sure == {(3, 0)}
    with pytest.raises(ValueError, match="line 7: 'x-1' is not a link"):
        measures.parse_gold("0-0 x-1", origin="gold.align", number=7)
    with pytest.raises(ValueError, match="are the links 0-based"):
        measures.parse_gold("0-1", base=1)


def test_word_alignment_sums_subword_attention():
    # source pieces: ▁Zw ölf ▁Leute (2 words), target pieces: ▁Twelve ▁peo ple (2 words)
    src_words = measures.word_starts(["\u2581Zw", "ölf", "\u2581Leute"])
    tgt_words = measures.word_starts(["\u2581Twelve", "\u2581peo", "ple"])
    assert src_words == [0, 0, 1] and tgt_words == [0, 1, 1]
    attention = np.array(
        [
            [0.3, 0.3, 0.4],  # "Twelve": 0.6 on "Zwölf" (two pieces) beats 0.4 on "Leute"
            [0.1, 0.1, 0.8],
            [0.5, 0.4, 0.1],
        ]
    )  # fmt: skip  "people": 0.1 + 0.9 on "Zwölf", 0.9 on "Leute"
    assert measures.word_alignment(attention, src_words, tgt_words) == {(0, 0), (0, 1)}


def test_expected_calibration_error_by_hand():
    confidence = np.array([0.05, 0.15, 0.95, 0.95, 1.0])
    correct = np.array([0, 1, 1, 0, 1])
    result = measures.calibration(confidence, correct, bins=10)
    # bins: [0,.1): conf .05 acc 0; [.1,.2): .15 / 1; [.9,1]: (.95+.95+1)/3 / 2/3
    expected = (1 / 5) * 0.05 + (1 / 5) * 0.85 + (3 / 5) * abs(2 / 3 - (0.95 + 0.95 + 1.0) / 3)
    assert result.ece == pytest.approx(expected)
    assert [b["count"] for b in result.bins] == [1, 1, 0, 0, 0, 0, 0, 0, 0, 3]


def test_beam_tokens_are_labelled_by_an_edit_distance_alignment():
    reference = "the cat sat on the mat".split()
    assert measures.matched("the cat sat on the mat".split(), reference) == [True] * 6
    assert measures.matched("a cat sat on mat".split(), reference) == [False, True, True, True, True]
    assert measures.matched("cat the".split(), ["the", "cat"]) in ([True, False], [False, True])


def test_bleu_by_source_length_buckets():
    sources = ["one two", "a b c d e f g h i j k l", "x y z"]
    refs = ["the same words here", "another one that is long enough", "three words only here"]
    hyps = [refs[0], "nothing in common at all", refs[2]]
    buckets = measures.bleu_by_bucket(sources, hyps, refs, width=10)
    assert buckets == [{"bucket": "1-10", "sentences": 2, "bleu": 100.0},
                       {"bucket": "11-20", "sentences": 1, "bleu": 0.0}]  # fmt: skip
    assert measures.length_buckets(["w " * 10, "w " * 11, "w"], 5) == ["6-10", "11-15", "1-5"]


def test_an_elman_rnn_with_a_small_recurrent_weight_forgets_the_start_of_the_source():
    torch.manual_seed(0)
    net = GRUNet(src_vocab_size=20, tgt_vocab_size=20, emb_size=8, hidden_size=16, cell="rnn", dropout=0.0)
    with torch.no_grad():
        net.encoder.rnn.weight_hh_l0.mul_(0.2)  # contracting recurrence: gradients shrink with every step back
    src = [[5 + (i % 10) for i in range(12)] + [3] for _ in range(6)]
    tgt = [[2, 7, 8, 3] for _ in range(6)]
    norms = gradient_by_distance(net, src, tgt)
    assert len(norms) == 12 and all(a > b for a, b in zip(norms, norms[1:]))
    assert norms[-1] < 1e-3 * norms[0]  # far words barely reach the output


# -------------------------------------------------------------------------- end to end
class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.cells, self.images, self._in_cell = [], [], False

    def handle_starttag(self, tag, attrs):
        self._in_cell = tag in ("td", "th")
        if tag == "img":
            self.images.append(dict(attrs)["src"])
        if tag == "tr":
            self.cells.append([])

    def handle_data(self, data):
        if self._in_cell and self.cells:
            self.cells[-1].append(data)


def test_compare_checkpoints_writes_a_consistent_report(tiny_runs, tiny_corpus, tmp_path):
    ckpts = [str(checkpoint(tiny_runs[name])) for name in ("gru", "bahdanau", "luong", "transformer")]
    result = run_nmt("compare", "--out", str(tmp_path), "--ckpts", *ckpts, "--data.data_dir", str(tiny_corpus),
                     "--data.vocab_size", "120", "--show", "0", "5")  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    models = report["models"]
    assert list(models) == ["gru", "bahdanau", "luong", "transformer"] and report["test"]["sentences"] == 24
    assert models["gru"]["aer"] is None and all(0 <= models[m]["aer"] <= 1 for m in ("bahdanau", "luong"))
    for row in models.values():
        keys = {"parameters", "steps", "bleu", "chrf", "ece", "inference_ece", "gradient_by_source_distance"}
        assert keys <= set(row)
        assert sum(b["sentences"] for b in row["bleu_by_source_length"]) == 24
        steps = torch.load(row["checkpoint"], weights_only=True)["global_step"]
        assert 0 <= row["ece"] <= 1 and row["steps"] == steps > 0 and row["gradient_by_source_distance"]
    assert report["signatures"]["bleu"].startswith("nrefs:1|case:mixed")
    page = _Page()
    page.feed((tmp_path / "report.html").read_text())
    assert all((tmp_path / src).is_file() for src in page.images) and len(page.images) == 5  # 3 + 2 attention
    header, *rows = [r for r in page.cells if r]
    for row in rows:
        data = models[row[0]]
        for heading, text in zip(header[1:], row[1:]):
            key = next(k for k, h in COLUMNS if h == heading)
            value = data[key]
            expected = ("no attention" if row[0] == "gru" else "no gold alignments") if value is None and key == "aer" \
                else "-" if value is None else f"{value:,}" if isinstance(value, int) else str(value)  # fmt: skip
            assert text == expected, (row[0], key)
    assert re.search(r"\| transformer \| TransformerNet \|", (tmp_path / "report.md").read_text())


def test_aer_cell_says_why_it_is_empty():
    rows = table_rows({"models": {"gru": {"attention": False, "aer": None},
                                  "luong": {"attention": True, "aer": None},
                                  "bahdanau": {"attention": True, "aer": 0.25}}})  # fmt: skip
    aer = [h for _, h in COLUMNS].index("AER") + 1
    assert [r[aer] for r in rows] == ["no attention", "no gold alignments", "0.25"]


def test_compare_trains_each_model_once(tiny_corpus, tmp_path):
    args = ["compare", "--out", str(tmp_path), "--models", "gru", "--cells", "rnn", "--data.data_dir",
            str(tiny_corpus), "--data.vocab_size", "120", "--trainer.max_steps", "2", "--trainer.val_check_interval",
            "2", "--samples.num_sentences", "0", "--show"]  # fmt: skip
    first = run_nmt(*args)
    assert first.returncode == 0, first.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert list(report["models"]) == ["gru", "gru-rnn"] and report["models"]["gru-rnn"]["steps"] == 2
    recorded = (tmp_path / "runs" / "gru-rnn" / "fit.json").read_text()
    assert '"--model.net.cell", "rnn"' in recorded
    again = run_nmt(*args, "--force")  # the report is redone; the model is not trained again
    assert again.returncode == 0 and "training gru" not in again.stderr  # already trained: evaluated only
    assert (tmp_path / "runs" / "gru-rnn" / "fit.json").read_text() == recorded
    bad = run_nmt("compare", "--out", str(tmp_path), "--modles", "gru")
    assert bad.returncode == 2 and "unknown option --modles" in bad.stderr


def test_compare_logs_the_table_and_figures_to_wandb(tiny_runs, tiny_corpus, tmp_path):
    from tests.conftest import REPO

    ckpts = [str(checkpoint(tiny_runs[name])) for name in ("gru", "transformer")]
    result = run_nmt("compare", "--out", str(tmp_path / "out"), "--ckpts", *ckpts, "--data.data_dir", str(tiny_corpus),
                     "--data.vocab_size", "120", "--show", "0", "--config", str(REPO / "configs/logger/wandb.yaml"),
                     cwd=tmp_path, env={"WANDB_MODE": "offline"})  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = (tmp_path / "runs" / "wandb").glob("offline-run-*")
    media = run / "files" / "media"
    table = json.loads(next((media / "table" / "compare").glob("table_*.table.json")).read_text())
    assert table["columns"][:3] == ["model", "network", "parameters"]
    assert [row[0] for row in table["data"]] == ["gru", "transformer"]
    assert {p.name.split("_")[0] for p in (media / "images" / "compare").glob("*.png")} >= {"bleu", "reliability"}


def test_the_model_configs_ship_with_the_package(tmp_path):
    """A plain install (a wheel, no source tree) holds configs/, where nmt compare finds its models from any folder."""
    wheel = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(REPO), "-w", str(tmp_path)],
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    assert wheel.returncode == 0, wheel.stderr[-2000:]
    site = tmp_path / "site"
    with zipfile.ZipFile(next(tmp_path.glob("nmt-*.whl"))) as archive:
        archive.extractall(site)
    code = (
        "from nmt.commands.compare import CONFIGS, MODELS; "
        "print(CONFIGS, all((CONFIGS / f'{m}.yaml').is_file() for m in MODELS))"
    )
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                           env={**os.environ, "PYTHONPATH": str(site)}, timeout=120)  # fmt: skip
    assert found.stdout.split() == [str(site / "nmt" / "configs"), "True"], found.stderr[-2000:]


def test_the_default_length_groups_fit_the_test_set():
    short = ["w " * n for n in range(3, 21) for _ in range(60)]  # 3 to 20 words, as the embedded corpus
    assert measures.default_width(short) == 6  # 10 gives two groups, 7 to 9 three, 6 the first four
    assert sorted(set(measures.length_buckets(short, 6))) == ["1-6", "13-18", "19-24", "7-12"]
    assert measures.default_width(["w"] * 30) == 10  # too small for four groups: the widest of the best


def test_a_report_already_in_out_is_not_replaced_without_force(tmp_path):
    (tmp_path / "report.json").write_text("{}")
    result = run_nmt("compare", "--out", str(tmp_path), "--ckpts", str(tmp_path / "none.ckpt"))
    assert result.returncode == 2 and "already holds a report" in result.stderr and "--force" in result.stderr
    assert (tmp_path / "report.json").read_text() == "{}"
