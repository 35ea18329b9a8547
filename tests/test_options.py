"""One source of truth: every option declared once, described in --help; the command line a person expects."""

import contextlib
import inspect
import io
import re

import pytest

from nmt.data.datamodule import TranslationDataModule
from nmt.lightning_cli import build_cli
from nmt.networks import BahdanauNet, GRUNet, LuongNet, Seq2SeqNet, TransformerNet
from nmt.system import Seq2SeqSystem
from tests.conftest import checkpoint, run_nmt

NETWORKS = [TransformerNet, GRUNet, BahdanauNet, LuongNet]


def help_text(*args: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        build_cli(["fit", *args])
    return out.getvalue()


def described_options(text: str, prefix: str) -> dict[str, str]:
    """{option: its description} for the options of ``text`` starting with ``prefix``."""
    blocks = re.split(r"\n  (?=--)", text.split("\n\n", 1)[1])
    options = {}
    for block in blocks:
        match = re.match(rf"({re.escape(prefix)}[\w.]+)(?: \S+)?\s+(.*?)\(type:", block, re.S)
        if match and not match.group(1).endswith(".help"):
            options[match.group(1)] = " ".join(match.group(2).split())
    return options


def arguments(cls: type) -> set[str]:
    """Every keyword argument ``cls(...)`` takes, its base classes' included."""
    names = set()
    for klass in cls.__mro__:
        if "__init__" in vars(klass) and klass.__module__.startswith("nmt."):
            params = inspect.signature(klass.__init__).parameters.values()
            names |= {p.name for p in params if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    return names


@pytest.mark.parametrize("cls", NETWORKS, ids=lambda c: c.__name__)
def test_every_network_option_is_described_in_help(cls):
    options = described_options(help_text("--model.net.help", cls.__name__), "--model.net.")
    assert {o.removeprefix("--model.net.") for o in options} == arguments(cls)
    assert all(options.values()), [o for o, text in options.items() if not text]


def test_every_training_and_data_option_is_described_in_help():
    text = help_text("--help")
    model = described_options(text, "--model.")
    assert {o.removeprefix("--model.") for o in model} == arguments(Seq2SeqSystem) - {"net"}
    data = described_options(text, "--data.")
    assert {o.removeprefix("--data.") for o in data} == arguments(TranslationDataModule)
    assert all(model.values()) and all(data.values()), [o for o, t in {**model, **data}.items() if not t]
    assert "--model.net.help" in text  # the networks' own options are one flag away


@pytest.mark.parametrize("cls", NETWORKS, ids=lambda c: c.__name__)
def test_no_option_is_declared_by_both_the_system_and_a_network(cls):
    assert arguments(Seq2SeqSystem) & arguments(cls) == set()
    assert {"src_vocab_size", "tgt_vocab_size", "length_penalty"} <= arguments(Seq2SeqNet)


def test_a_network_remembers_the_arguments_that_build_it_again():
    from nmt.checkpoint import build_network

    net = GRUNet(src_vocab_size=30, tgt_vocab_size=30, hidden_size=12, emb_size=8, cell="lstm", length_penalty=0.6)
    assert net.config["class_path"] == "nmt.networks.gru.GRUNet"
    assert net.config["init_args"] == {
        "bidirectional": False, "emb_size": 8, "hidden_size": 12, "num_layers": 1, "dropout": 0.2, "cell": "lstm",
        "share_embeddings": True, "tie_output": True, "teacher_forcing_ratio": 1.0, "src_vocab_size": 30,
        "tgt_vocab_size": 30, "max_len_a": 1.5, "max_len_b": 10, "length_penalty": 0.6,
    }  # fmt: skip
    again = build_network(net.config)
    assert type(again) is GRUNet and again.config == net.config
    assert [p.shape for p in again.parameters()] == [p.shape for p in net.parameters()]
    assert Seq2SeqSystem(net).hparams["net"] == net.config  # what checkpoints store


def test_nmt_help_names_every_command():
    result = run_nmt("--help")
    assert result.returncode == 0
    for command in ("fit", "validate", "test", "predict", "translate", "plot-attention", "average"):
        assert re.search(rf"^  {command} +\S", result.stdout, re.M), command
    bare = run_nmt()
    assert bare.returncode == 2 and "commands:" in bare.stdout
    unknown = run_nmt("tarnslate")
    assert unknown.returncode == 2 and "unknown command 'tarnslate'" in unknown.stderr


def test_training_without_checkpoints_and_without_lightnings_tips(tiny_runs, tmp_path):
    result = run_nmt("fit", *tiny_runs.args("transformer"), "--trainer.enable_checkpointing", "false",
                     "--trainer.max_steps", "3", "--trainer.val_check_interval", "3",
                     "--trainer.default_root_dir", str(tmp_path))  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "max_steps=3" in result.stderr and not list(tmp_path.rglob("*.ckpt"))
    for noise in ("litlogger", "tensorboardX", "LeafSpec", "weights_only"):
        assert noise not in result.stderr + result.stdout, noise


def test_fast_dev_run_never_touches_a_runs_checkpoints(tiny_runs, tmp_path):
    import shutil

    shutil.copytree(checkpoint(tiny_runs["transformer"], "last.ckpt").parent, tmp_path / "checkpoints")
    before = {p.name: p.read_bytes() for p in (tmp_path / "checkpoints").iterdir()}
    result = run_nmt("fit", *tiny_runs.args("transformer"), "--trainer.fast_dev_run", "true",
                     "--trainer.default_root_dir", str(tmp_path))  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert {p.name: p.read_bytes() for p in (tmp_path / "checkpoints").iterdir()} == before


def test_resuming_without_a_last_checkpoint_says_so(tiny_runs, tmp_path):
    result = run_nmt("fit", *tiny_runs.args("transformer"), "--ckpt_path", "last",
                     "--trainer.default_root_dir", str(tmp_path))  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"there is no last.ckpt in {tmp_path / 'checkpoints'}; start without --ckpt_path" in result.stderr
