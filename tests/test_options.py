"""One source of truth: every option declared once, described in --help; the command line a person expects."""

import contextlib
import inspect
import io
import logging
import re
import shutil

import pytest

from nmt.data.datamodule import TranslationDataModule
from nmt.lightning_cli import build_cli
from nmt.networks import BahdanauNet, GRUNet, LuongNet, Seq2SeqNet, TransformerNet
from nmt.system import Seq2SeqSystem
from tests.conftest import assert_clean_error, checkpoint, fit_args, run_nmt

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
    from nmt.networks.loading import build

    net = GRUNet(src_vocab_size=30, tgt_vocab_size=30, hidden_size=12, emb_size=8, cell="lstm", length_penalty=0.6)
    assert net.config["class_path"] == "nmt.networks.gru.GRUNet"
    assert net.config["init_args"] == {
        "bidirectional": False, "emb_size": 8, "hidden_size": 12, "num_layers": 1, "dropout": 0.2, "cell": "lstm",
        "share_embeddings": True, "tie_output": True, "teacher_forcing_ratio": 1.0, "src_vocab_size": 30,
        "tgt_vocab_size": 30, "max_len_a": 1.5, "max_len_b": 10, "length_penalty": 0.6, "pad_id": 0, "bos_id": 2,
        "eos_id": 3,
    }  # fmt: skip
    again = build(net.config)
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


def test_more_devices_than_exist(tiny_runs, tmp_path):
    result = run_nmt(*fit_args(tiny_runs, tmp_path, "--trainer.accelerator", "gpu", "--trainer.devices", "2"))
    assert_clean_error(result, "nmt: error:")


def test_unwritable_output_directory(tiny_runs):
    result = run_nmt(*fit_args(tiny_runs, "/proc/nmt-cannot-write"))
    assert_clean_error(result, "--trainer.default_root_dir /proc/nmt-cannot-write cannot be written")


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [("vocab_size", 0, "--data.vocab_size must be at least 5"), ("vocab_size", 1, "--data.vocab_size must be at"),
     ("max_tokens", 0, "--data.max_tokens must be a positive"), ("max_tokens", -5, "--data.max_tokens must be"),
     ("model_type", "word", "--data.model_type must be unigram or bpe")],
)  # fmt: skip
def test_impossible_data_options_are_refused_when_read(tiny_runs, tmp_path, option, value, message):
    result = run_nmt(*fit_args(tiny_runs, tmp_path, f"--data.{option}", str(value)))
    assert_clean_error(result, message)
    assert len(result.stderr.splitlines()) <= 3 and "Namespace" not in result.stderr  # no dump of the config


def test_the_same_language_on_both_sides_is_warned_about(caplog):
    with caplog.at_level(logging.WARNING, logger="nmt"):
        TranslationDataModule(src_lang="de", tgt_lang="de")
    assert "--data.src_lang and --data.tgt_lang are both 'de'" in caplog.text


def test_more_processes_than_batches_is_refused_up_front(tiny_runs, tmp_path):
    result = run_nmt(*fit_args(tiny_runs, tmp_path, "--trainer.accelerator", "cpu", "--trainer.devices", "8",
                               "--trainer.strategy", "ddp", "--data.max_tokens", "60000"))  # fmt: skip
    assert_clean_error(result, "8 processes but one epoch has only 1 training batch(es)", "Use at most 1 devices")
    assert "8 training processes on" in result.stderr  # more processes than cores: a warning, not a refusal
    assert len(result.stderr.splitlines()) < 15


@pytest.mark.parametrize(
    ("options", "message"),
    [(["--early_stopping.patience", "-1"], "--early_stopping.patience must be 1 or more validations"),
     (["--last_checkpoint.keep_every", "-2"], "--last_checkpoint.keep_every must be 0 (off) or more"),
     (["--data.max_tokens", "3"], "--data.max_tokens 3 is below most training pairs (median")],
)  # fmt: skip
def test_training_values_that_cannot_work_are_refused(tiny_runs, tmp_path, options, message):
    assert_clean_error(run_nmt(*fit_args(tiny_runs, tmp_path, *options)), message)


def test_a_budget_below_some_pairs_is_said(tiny_corpus, caplog):
    dm = TranslationDataModule(data_dir=str(tiny_corpus), vocab_size=120, max_tokens=45)
    with caplog.at_level(logging.WARNING, logger="nmt"):
        dm.setup("fit")
    longer = int((dm.datasets["train"].lengths() > 45).sum())
    assert longer and f"{longer} training pairs are longer than --data.max_tokens 45" in caplog.text


@pytest.mark.parametrize(
    ("options", "message"),
    [(["--max-tokens", "0"], "--max-tokens must be above 0"), (["--max-lines", "0"], "--max-lines must be above 0"),
     (["--max-work", "-1"], "--max-work must be above 0"), (["--timeout", "0"], "--timeout must be above 0"),
     (["--port", "70000"], "--port must be between 1 and 65535")],
)  # fmt: skip
def test_a_server_that_could_answer_nothing_does_not_start(options, message):
    pytest.importorskip("fastapi")
    from nmt.commands import serve as command
    from nmt.errors import NmtError

    with pytest.raises(NmtError) as refused:  # before any checkpoint is read
        command.main(["--ckpt", "not-read.ckpt", *options])
    assert message in str(refused.value)
