"""Training on several processes (DDP on CPU, two nodes on localhost): disjoint batches, one result."""

import json

import sacrebleu
import torch

from nmt.data.datamodule import TranslationDataModule
from tests.conftest import free_port, load, metrics, run_nmt, translate


def test_ddp_two_cpu_processes_disjoint_batches_and_one_bleu(tiny_runs, tiny_corpus, tmp_path):
    probe = tmp_path / "probe"
    result = run_nmt(
        "fit", *tiny_runs.args("transformer"),
        "--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp",
        "--trainer.max_steps", "6", "--trainer.val_check_interval", "6",
        "--trainer.max_time", "00:00:30:00",  # the final-checkpoint check asks rank 0's clock every step
        "--trainer.callbacks+=tests.ddp_probe.RecordBatches", f"--trainer.callbacks.out_dir={probe}",
        "--trainer.default_root_dir", str(tmp_path / "R"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    assert torch.load(tmp_path / "R" / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 6
    ranks = [json.loads((probe / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert all(r["world"] == 2 for r in ranks)
    # Both ranks read the one store prepared on this node, memory-mapped (shared through the page cache).
    assert ranks[0]["store"] == ranks[1]["store"] and all(r["memory_mapped"] for r in ranks)
    train = [set(i for b in r["train"] for i in b) for r in ranks]
    assert len(ranks[0]["train"]) == len(ranks[1]["train"]) == 6  # equal shares
    # Within an epoch the shards are disjoint (the tiny corpus has more than 6 batches a rank).
    assert not train[0] & train[1]
    val = [i for r in ranks for b in r["val"] for i in b]
    assert sorted(val) == list(range(24))  # every validation sentence decoded exactly once
    # val/bleu is corpus BLEU over all 24 gathered hypotheses: the same as one process decoding them all.
    logged = [float(r["val/bleu"]) for r in metrics(tmp_path / "R") if r.get("val/bleu")]
    model = load(tmp_path / "R" / "checkpoints" / "last.ckpt")
    dm = TranslationDataModule(data_dir=str(tiny_corpus), vocab_size=120)
    dm.setup("validate")
    val = dm.text("val")
    hyps = translate(model, val.src)
    assert abs(logged[-1] - sacrebleu.corpus_bleu(hyps, [val.tgt]).score) < 1e-4
    # nmt predict on both ranks writes one file: every test sentence once, in corpus order.
    out = tmp_path / "test.hyp.de"
    predicted = run_nmt(
        "predict", *tiny_runs.args("transformer"), "--ckpt_path", str(tmp_path / "R" / "checkpoints" / "last.ckpt"),
        "--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp",
        "--trainer.default_root_dir", str(tmp_path / "P"), "--predictions.output", str(out),
    )  # fmt: skip
    assert predicted.returncode == 0, predicted.stderr[-4000:]
    test_sources = (tiny_corpus / "test.en").read_text(encoding="utf-8").splitlines()
    assert out.read_text(encoding="utf-8").splitlines() == translate(model, test_sources, beam=5)


def test_ddp_a_nan_on_one_rank_stops_every_rank_with_good_weights(tiny_runs, tmp_path):
    # Gradients are averaged across ranks, so every rank sees the non-finite norm, skips the same step and stops.
    result = run_nmt(
        "fit", *tiny_runs.args("transformer"),
        "--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp",
        "--trainer.max_steps", "8", "--trainer.val_check_interval", "8",
        "--trainer.callbacks+=tests.ddp_probe.NanGradientOnOneRank", "--trainer.default_root_dir", str(tmp_path),
        timeout=300,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert result.stderr.count("Training stopped at step 3: the gradient norm is nan") == 2  # both ranks
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 4  # the skipped update is counted, nothing after it ran
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values() if v.is_floating_point())


def test_two_nodes_each_build_their_own_store_and_train_like_one_node(tiny_runs, tmp_path):
    """Nodes need not share a disk: each prepares its data once (local rank 0) in its own cache."""
    import os
    import subprocess
    import sys

    common = [*tiny_runs.args("transformer"), "--trainer.accelerator", "cpu", "--trainer.strategy", "ddp",
              "--trainer.max_steps", "6", "--trainer.val_check_interval", "6", "--samples.num_sentences", "0",
              "--trainer.callbacks+=tests.ddp_probe.RecordBatches"]  # fmt: skip
    one = run_nmt(
        "fit",
        *common,
        f"--trainer.callbacks.out_dir={tmp_path / 'one'}",
        "--trainer.devices",
        "2",
        "--data.cache_dir",
        str(tmp_path / "cache-one"),
        "--trainer.default_root_dir",
        str(tmp_path / "R1"),
    )
    assert one.returncode == 0, one.stderr[-3000:]
    port, env = str(free_port()), {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    nodes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--nnodes",
                "2",
                "--nproc-per-node",
                "1",
                "--node-rank",
                str(node),
                "--master-addr",
                "127.0.0.1",
                "--master-port",
                port,
                "-m",
                "nmt",
                "fit",
                *common,
                f"--trainer.callbacks.out_dir={tmp_path / 'two'}",
                "--trainer.devices",
                "1",
                "--trainer.num_nodes",
                "2",
                "--data.cache_dir",
                str(tmp_path / f"cache-node{node}"),
                "--trainer.default_root_dir",
                str(tmp_path / f"R-node{node}"),
            ],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            env=env,
        )  # fmt: skip
        for node in (0, 1)
    ]
    errors = [p.communicate(timeout=600)[1] for p in nodes]
    assert [p.returncode for p in nodes] == [0, 0], "\n".join(e[-2000:] for e in errors)
    for node, stderr in enumerate(errors):
        assert stderr.count("encoding train into") == 1, stderr[-2000:]  # once per node, by its local rank 0
        assert len(list((tmp_path / f"cache-node{node}" / "stores").glob("train-*"))) == 1
    single = [json.loads((tmp_path / "one" / f"rank{r}.json").read_text()) for r in (0, 1)]
    nodes_ = [json.loads((tmp_path / "two" / f"rank{r}.json").read_text()) for r in (0, 1)]
    for a, b in zip(single, nodes_):
        assert a["train"] == b["train"] and a["losses"] == b["losses"] and len(a["losses"]) == 6
