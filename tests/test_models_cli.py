"""Every model through the real command line: fit (tiny), translate greedy and beam, plots, averaging."""

import pytest

from nmt.plotting import attention_figure
from tests.conftest import checkpoint, run_nmt

MODELS = ["transformer", "gru", "bahdanau", "luong"]


@pytest.mark.parametrize("name", MODELS)
def test_translate_beam_and_greedy(name, tiny_runs, tiny_corpus):
    ckpt = str(checkpoint(tiny_runs[name]))
    source = "".join(line + "\n" for line in (tiny_corpus / "test.en").read_text().splitlines()[:6])
    greedy = run_nmt("translate", "--ckpt", ckpt, stdin=source)
    beam1 = run_nmt("translate", "--ckpt", ckpt, "--beam", "1", stdin=source)
    beam5 = run_nmt("translate", "--ckpt", ckpt, "--beam", "5", "--nbest", "2", "--scores", stdin=source)
    assert greedy.returncode == beam1.returncode == beam5.returncode == 0, beam5.stderr[-2000:]
    assert greedy.stdout == beam1.stdout and len(greedy.stdout.splitlines()) == 6
    lines = beam5.stdout.splitlines()
    assert len(lines) == 12  # 2 hypotheses per input line
    scores = [float(line.rsplit("\t", 1)[1]) for line in lines]
    assert all(scores[i] >= scores[i + 1] for i in range(0, 12, 2))


@pytest.mark.parametrize("name", MODELS)
def test_plot_attention(name, tiny_runs, tmp_path):
    out = tmp_path / "a.png"
    result = run_nmt("plot-attention", "--ckpt", str(checkpoint(tiny_runs[name])), "--text",
                     "On March 21, 1987, twenty-one people arrived.", "--out", str(out))  # fmt: skip
    if name == "gru":
        assert result.returncode == 2 and "no attention to plot" in result.stderr
        return
    assert result.returncode == 0, result.stderr[-2000:]
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_transformer_layer_and_head(tiny_run, tmp_path):
    ckpt = str(checkpoint(tiny_run))
    ok = run_nmt("plot-attention", "--ckpt", ckpt, "--text", "Hello.", "--out", str(tmp_path / "h.png"),
                 "--layer", "0", "--head", "1")  # fmt: skip
    assert ok.returncode == 0, ok.stderr[-2000:]
    bad = run_nmt("plot-attention", "--ckpt", ckpt, "--text", "Hello.", "--out", str(tmp_path / "x.png"), "--head", "7")
    assert bad.returncode == 2 and "head 7 is outside" in bad.stderr


def test_figure_tick_labels_and_size():
    src = [f"s{i}" for i in range(40)]
    tgt = [f"t{i}" for i in range(40)]
    fig = attention_figure([[1 / 40] * 40 for _ in tgt], src, tgt, "title")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == src
    assert [t.get_text() for t in ax.get_yticklabels()] == tgt
    width, height = fig.get_size_inches()
    assert width >= 12 and height >= 12  # about 0.3 inch per token: labels stay legible


def test_average_checkpoints_translates(tiny_run, tmp_path, tiny_corpus):
    import torch

    best, last = checkpoint(tiny_run, "best.ckpt"), checkpoint(tiny_run, "last.ckpt")
    out = tmp_path / "avg.ckpt"
    result = run_nmt("average", "--ckpts", str(best), str(last), "--out", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    avg = torch.load(out, weights_only=True)
    a = torch.load(best, weights_only=True)["state_dict"]
    b = torch.load(last, weights_only=True)["state_dict"]
    key = "net.encoder.layers.0.ff.0.weight"
    assert torch.allclose(avg["state_dict"][key], (a[key] + b[key]) / 2)
    translated = run_nmt("translate", "--ckpt", str(out), stdin="Anna was born on May 1, 1990.\n")
    assert translated.returncode == 0 and len(translated.stdout.splitlines()) == 1


@pytest.mark.parametrize(
    "name,options",
    [
        ("gru", ["--model.net.cell", "rnn"]),
        ("bahdanau", ["--model.net.cell", "lstm"]),
        ("luong", ["--model.net.score", "dot", "--model.net.cell", "lstm"]),
        ("luong", ["--model.net.score", "concat", "--model.net.input_feeding", "false"]),
    ],
)
def test_cells_and_scores_train_and_translate(name, options, tiny_runs, tmp_path):
    args = [*tiny_runs.args(name), "--trainer.max_steps", "3", "--trainer.val_check_interval", "3", *options]
    fit = run_nmt("fit", *args, "--trainer.default_root_dir", str(tmp_path))
    assert fit.returncode == 0, fit.stderr[-2000:]
    ckpt = checkpoint(tmp_path, "last.ckpt")
    import torch

    net_args = torch.load(ckpt, weights_only=True)["hyper_parameters"]["net"]["init_args"]
    assert str(net_args[options[0].rsplit(".", 1)[1]]).lower() == options[1]
    out = run_nmt("translate", "--ckpt", str(ckpt), "--beam", "3", stdin="On Monday, Anna saw two dogs.\n")
    assert out.returncode == 0 and len(out.stdout.splitlines()) == 1


def test_scripts_translate_is_the_same_command(tiny_run):
    import subprocess
    import sys

    from tests.conftest import REPO

    line = "There are two cats in the park.\n"
    script = subprocess.run([sys.executable, str(REPO / "scripts/translate.py"), "--ckpt", str(checkpoint(tiny_run))],
                            input=line, capture_output=True, text=True)  # fmt: skip
    assert script.returncode == 0, script.stderr[-2000:]
    assert script.stdout == run_nmt("translate", "--ckpt", str(checkpoint(tiny_run)), stdin=line).stdout


def test_jsonl_alignments_and_precision(tiny_run, tmp_path):
    import json

    stdin = "On Monday, Anna saw two dogs.\n\nThe book costs five euros.\n"
    result = run_nmt("translate", "--ckpt", str(checkpoint(tiny_run)), "--beam", "3", "--nbest", "2",
                     "--format", "jsonl", "--alignments", "--precision", "bf16", stdin=stdin)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["source"] for r in records] == stdin.splitlines()
    assert records[1]["hypotheses"] == []  # empty line, empty result
    first = records[0]["hypotheses"]
    assert len(first) == 2 and first[0]["score"] >= first[1]["score"]
    hyp = first[0]
    assert len(hyp["token_scores"]) == len(hyp["tokens"]) + 1  # + EOS
    assert len(hyp["attention"]) == len(hyp["tokens"]) + 1
    text = run_nmt("translate", "--ckpt", str(checkpoint(tiny_run)), "--alignments", "--scores", stdin=stdin)
    columns = text.stdout.splitlines()[0].split("\t")
    assert len(columns) == 3 and all("-" in pair for pair in columns[2].split())
    bad = run_nmt("translate", "--ckpt", str(checkpoint(tiny_run)), "--output", "/proc/nope/hyp.txt", stdin=stdin)
    assert bad.returncode == 2 and "Cannot write /proc/nope/hyp.txt" in bad.stderr


def test_fit_keeps_the_checkpoints_that_average_reads(tiny_runs, tmp_path):
    """The README's recipe: --last_checkpoint.keep_every N writes stepNNNNNNN.ckpt beside last.ckpt."""
    import torch

    run = run_nmt("fit", *tiny_runs.args("transformer"), "--last_checkpoint.keep_every", "4",
                  "--trainer.default_root_dir", str(tmp_path))  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    kept = sorted((tmp_path / "checkpoints").glob("step*.ckpt"))
    assert [p.name for p in kept] == ["step0000004.ckpt", "step0000008.ckpt", "step0000012.ckpt"]
    result = run_nmt("average", "--ckpts", *map(str, kept), "--out", str(tmp_path / "avg.ckpt"))
    assert result.returncode == 0, result.stderr[-2000:]
    key = "net.encoder.layers.0.ff.0.weight"
    weights = [torch.load(p, weights_only=True)["state_dict"][key] for p in kept]
    assert torch.allclose(torch.load(tmp_path / "avg.ckpt", weights_only=True)["state_dict"][key], sum(weights) / 3)
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"][key]
    assert torch.equal(weights[-1], last)  # the step-12 copy holds the final weights
