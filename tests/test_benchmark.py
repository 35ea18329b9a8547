"""scripts/benchmark.py on a tiny model: the numbers it reports are the ones it claims to measure."""

import json
import subprocess
import sys

import yaml

from nmt.data.datamodule import TranslationDataModule
from tests.conftest import REPO


def test_benchmark_counts_the_timed_steps_tokens_and_decodes(tiny_corpus, tmp_path):
    data = {"data_dir": str(tiny_corpus), "vocab_size": 120, "max_tokens": 512}
    config = {
        "model": {
            "net": {
                "class_path": "nmt.networks.TransformerNet",
                "init_args": {"d_model": 32, "n_heads": 2, "d_ff": 64, "encoder_layers": 1, "decoder_layers": 1},
            }
        },
        "data": data,
    }
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(config))
    out = tmp_path / "bench.json"
    cmd = [sys.executable, "scripts/benchmark.py", "--config", str(tmp_path / "tiny.yaml"), "--device", "cpu",
           "--warmup-steps", "2", "--train-steps", "3", "--decode-lines", "10", "--profile", "2", "--precision", "bf16",
           "--out", str(out)]  # fmt: skip
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())

    # The timed steps are optimizer steps 2, 3 and 4 of epoch 0: count their target tokens ourselves.
    dm = TranslationDataModule(**data)
    dm.prepare_data()
    dm.setup("fit")
    batches = list(dm.train_dataloader())
    assert report["train"]["target_tokens"] == sum(b.ntokens for b in batches[2:5])
    assert report["train"]["steps"] == 3 and report["train"]["tokens_per_s"] > 0
    assert "aten::" in report["train"]["profile"]  # the profiler's operator table
    for beam in ("beam1", "beam5"):
        decode = report["decode"][beam]
        assert decode["process_seconds"] > 0 and decode["sentences_per_s"] > 0
        assert abs(decode["seconds"] * decode["sentences_per_s"] - 10) < 1e-6
    assert report["parameters"] > 0 and report["peak_rss_mib"] > 0 and report["precision"] == "bf16"
    assert "training" in result.stdout and "decoding beam 5" in result.stdout


def test_model_flops_utilisation_uses_the_devices_own_peak():
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        from benchmark import bf16_peak_tflops
    finally:
        sys.path.remove(str(REPO / "scripts"))
    assert bf16_peak_tflops("NVIDIA H100 80GB HBM3") == 989.0
    assert bf16_peak_tflops("NVIDIA H100 PCIe") == 756.0
    assert bf16_peak_tflops("NVIDIA L40") == 181.0 and bf16_peak_tflops("NVIDIA L4") == 121.0
    assert bf16_peak_tflops("Tesla T4") is None  # no MFU rather than a wrong one
