"""On a GPU: mixed precision training and the benchmark's GPU figures.

Skipped without a CUDA device (CI has none: ``.ci/run`` hides every GPU).
"""

import json
import subprocess
import sys

import pytest
import torch
import yaml

from tests.conftest import REPO, metrics, run_nmt

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.parametrize("precision", ["bf16-mixed", "16-mixed"])
def test_mixed_precision_on_a_gpu_loss_falls_and_weights_stay_finite(tiny_runs, tmp_path, precision):
    if precision == "bf16-mixed" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    result = run_nmt(
        "fit", *tiny_runs.args("transformer"), "--trainer.accelerator", "gpu", "--trainer.devices", "1",
        "--trainer.precision", precision, "--trainer.max_steps", "40", "--trainer.val_check_interval", "40",
        "--trainer.log_every_n_steps", "1", "--samples.num_sentences", "0", "--trainer.default_root_dir", str(tmp_path),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    losses = [float(r["train/loss"]) for r in metrics(tmp_path) if r.get("train/loss")]
    assert len(losses) == 40
    assert sum(losses[-5:]) / 5 < 0.85 * sum(losses[:5]) / 5
    state = torch.load(next(tmp_path.rglob("last.ckpt")), map_location="cpu", weights_only=False)["state_dict"]
    assert all(bool(torch.isfinite(v).all()) for v in state.values() if v.is_floating_point())


def test_benchmark_on_a_gpu_reports_gpu_memory_and_known_devices_flops_utilisation(tiny_corpus, tmp_path):
    sys.path.insert(0, str(REPO / "scripts"))
    from benchmark import bf16_peak_tflops

    config = {
        "model": {
            "net": {
                "class_path": "nmt.networks.TransformerNet",
                "init_args": {"d_model": 32, "n_heads": 2, "d_ff": 64, "encoder_layers": 1, "decoder_layers": 1},
            }
        },
        "data": {"data_dir": str(tiny_corpus), "vocab_size": 120, "max_tokens": 512},
    }
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(config))
    out = tmp_path / "bench.json"
    cmd = [sys.executable, "scripts/benchmark.py", "--config", str(tmp_path / "tiny.yaml"), "--device", "cuda",
           "--precision", "bf16" if torch.cuda.is_bf16_supported() else "16", "--warmup-steps", "2",
           "--train-steps", "3", "--decode-lines", "10", "--out", str(out)]  # fmt: skip
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["device_name"] == torch.cuda.get_device_name()
    assert report["gpu_peak_allocated_mib"] > 0 and report["train"]["tokens_per_s"] > 0
    peak = bf16_peak_tflops(report["device_name"])
    if peak:
        expected = 6 * report["parameters"] * report["train"]["tokens_per_s"] / (peak * 1e12)
        assert report["train"]["mfu"] == pytest.approx(expected)
        assert "model FLOPs utilisation" in result.stdout
    else:
        assert "mfu" not in report["train"]
