#!/usr/bin/env python
"""Measure training and decoding speed of an nmt config on this machine; print a table, write JSON.

    python scripts/benchmark.py --config configs/bench/transformer_d256.yaml --device cpu --out bench.json
    python scripts/benchmark.py --config configs/bench/transformer_base.yaml --precision bf16 --data.max_tokens 32768

Options the script does not know are passed to ``nmt fit`` (``--data.max_tokens``, ``--model.*``).

Training: target tokens per second (real, non-padding tokens) over ``--train-steps`` optimizer
steps after ``--warmup-steps``, through the Lightning Trainer as ``nmt fit`` runs it (the config's
data module, model, optimizer, schedule and batching; gradient clipping 1.0; no validation).
``--profile N`` runs ``torch.profiler`` over the first N timed steps and prints the top operators.
Decoding: a fresh ``nmt translate`` process over ``--decode-lines`` sentences, greedy and beam 5,
timed as a whole (start-up and model load included), plus the steady-state rate in-process, in the
same ``--precision`` (``bf16``: ``nmt translate --precision bf16``, autocast).
Decoding speed depends on how long the outputs are, so give a trained checkpoint with ``--ckpt``
(the model trained for the timing above is far from converged and stops almost at once).
Memory: peak CPU RSS of this process, and on GPU the peak allocated memory. On GPU, model
FLOPs utilisation (6 * params * tokens / s for training, against the device's dense bf16 peak).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nmt.hardware import bound_onednn_kernel_cache  # noqa: E402

# Dense bf16 peak TFLOP/s of devices we know (no sparsity); the first name found in the device's name counts.
PEAK_BF16_TFLOPS = {"H100 PCIe": 756.0, "H100 NVL": 835.0, "H100": 989.0, "H200": 989.0, "A100": 312.0,
                    "L40S": 362.0, "L40": 181.0, "L4": 121.0, "A10": 125.0}  # fmt: skip


def bf16_peak_tflops(device_name: str) -> float | None:
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in device_name), None)


def build(config_path: str, device: str, precision: str, compile_model: bool, warmup: int, steps: int, callback,
          extra: list[str] = ()):  # fmt: skip
    """Data module, model and trainer exactly as ``nmt fit --config CONFIG`` builds them (the same vocabulary
    links and seed), with a trainer for timing only: no validation, checkpoints, logger or progress bar."""
    from nmt.lightning_cli import build_cli

    args = ["--config", config_path, "--trainer.max_steps", str(warmup + steps),
            "--trainer.accelerator", "gpu" if device.startswith("cuda") else "cpu", "--trainer.devices", "1",
            "--trainer.precision", {"32": "32-true", "bf16": "bf16-mixed", "16": "16-mixed"}[precision],
            "--trainer.limit_val_batches", "0", "--trainer.num_sanity_val_steps", "0", "--trainer.logger", "false",
            "--trainer.enable_checkpointing", "false", "--trainer.enable_progress_bar", "false",
            "--trainer.enable_model_summary", "false", "--samples.num_sentences", "0",
            "--trainer.default_root_dir", tempfile.mkdtemp(prefix="nmt-bench-"),
            "--model.compile", str(compile_model).lower(), *extra]  # fmt: skip
    cli = build_cli(args, run=False, callbacks=[callback])
    return cli.datamodule, cli.model, cli.trainer


class _StepTimer:
    """Times optimizer steps ``warmup`` .. ``warmup + steps`` of a Lightning run and counts their target tokens;
    with ``profile_steps`` it also runs ``torch.profiler`` over the first of them."""

    def __init__(self, warmup: int, steps: int, device: str, profile_steps: int = 0):
        import lightning as L

        outer = self

        class Callback(L.Callback):
            def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
                if trainer.global_step == warmup:
                    _sync(device)
                    outer.start = time.perf_counter()
                    if profile_steps:
                        activities = [torch.profiler.ProfilerActivity.CPU]
                        if device.startswith("cuda"):
                            activities.append(torch.profiler.ProfilerActivity.CUDA)
                        outer.profiler = torch.profiler.profile(activities=activities, record_shapes=False)
                        outer.profiler.start()
                if trainer.global_step >= warmup:
                    outer.tokens += batch.ntokens

            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
                if outer.profiler is not None and trainer.global_step == warmup + profile_steps:
                    outer.profiler.stop()
                    where = "self_cuda_time_total" if device.startswith("cuda") else "self_cpu_time_total"
                    outer.table = outer.profiler.key_averages().table(sort_by=where, row_limit=15)
                    outer.profiler = None

            def on_train_end(self, trainer, pl_module):
                _sync(device)
                outer.seconds = time.perf_counter() - outer.start

        self.callback = Callback()
        self.steps = steps
        self.start, self.seconds, self.tokens = 0.0, 0.0, 0
        self.profiler, self.table = None, ""


def train_speed(dm, model, trainer, timer: _StepTimer, device: str) -> dict:
    """Target tokens/s of ``nmt fit``'s own loop (Lightning Trainer, the model's optimizer and
    schedule, gradient clipping), without validation or checkpoints."""
    trainer.fit(model, datamodule=dm)
    result = {"steps": timer.steps, "target_tokens": timer.tokens, "seconds": timer.seconds,
              "tokens_per_s": timer.tokens / timer.seconds}  # fmt: skip
    if timer.table:
        result["profile"] = timer.table
    return result


def decode_steady(engine, lines, beam, max_tokens) -> dict:
    from nmt.engines import DecodeOptions

    engine.net.eval()
    options = DecodeOptions(beam=beam, max_tokens=max_tokens)
    engine.translate(lines[:32], options)  # warm-up
    _sync(str(engine.net.device))
    start = time.perf_counter()
    out = [hyps[0].text if hyps else "" for hyps in engine.translate(lines, options)]
    _sync(str(engine.net.device))
    seconds = time.perf_counter() - start
    ntok = sum(len(engine.tokenizer.tgt.encode(o)) for o in out)
    return {"sentences_per_s": len(lines) / seconds, "tokens_per_s": ntok / seconds, "seconds": seconds}


def decode_process(ckpt: Path, src: Path, beam: int, device: str, max_tokens: int, precision: str = "32") -> float:
    cmd = [sys.executable, "-m", "nmt", "translate", "--ckpt", str(ckpt), "--input", str(src), "--beam", str(beam),
           "--device", device, "--max-tokens", str(max_tokens), "--precision", precision,
           "--output", os.devnull]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=REPO)
    return time.perf_counter() - start


def _cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--precision",
        choices=["32", "bf16", "16"],
        default="32",
        help="training: 32-true, bf16-mixed or 16-mixed; decoding: `nmt translate --precision` of the same",
    )
    parser.add_argument("--compile", action="store_true", help="torch.compile the model (falls back if unsupported)")
    parser.add_argument("--warmup-steps", type=int, default=10)
    parser.add_argument("--train-steps", type=int, default=300)
    parser.add_argument("--decode-lines", type=int, default=500)
    parser.add_argument("--decode-max-tokens", type=int, default=4096)
    parser.add_argument("--ckpt", help="trained checkpoint to decode with (default: the briefly trained model)")
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="N",
        help="run torch.profiler over the first N timed steps and print its top operators",
    )
    parser.add_argument("--out", default="benchmark.json")
    args, extra = parser.parse_known_args()  # the rest are nmt fit options, e.g. --data.max_tokens 32768
    bound_onednn_kernel_cache()  # as `nmt fit` and `nmt translate` do

    timer = _StepTimer(args.warmup_steps, args.train_steps, args.device, min(args.profile, args.train_steps))
    dm, model, trainer = build(
        args.config,
        args.device,
        args.precision,
        args.compile,
        args.warmup_steps,
        args.train_steps,
        timer.callback,
        extra,
    )
    params = sum(p.numel() for p in model.parameters())
    result = {
        "config": args.config,
        "fit_options": extra,
        "device": args.device,
        "device_name": torch.cuda.get_device_name() if args.device.startswith("cuda") else _cpu_name(),
        "cpu_threads": torch.get_num_threads(),
        "precision": args.precision,
        "parameters": params,
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d"),
    }
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    result["train"] = train_speed(dm, model, trainer, timer, args.device)
    model.to(args.device)  # the Trainer may hand the model back on the CPU

    lines = dm.text("test").src[: args.decode_lines]
    result["decode"] = {}
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src.txt"
        src.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        ckpt = Path(tmp) / "model.ckpt"
        from nmt.engines.native import NmtEngine

        if args.ckpt:
            ckpt, engine = Path(args.ckpt), NmtEngine.load([args.ckpt], args.device, args.precision)
            result["decode_ckpt"] = args.ckpt
        else:
            engine = NmtEngine(model.net, model.tokenizer, args.precision)
            trainer.save_checkpoint(ckpt)  # what nmt fit writes
        for beam in (1, 5):
            steady = decode_steady(engine, lines, beam, args.decode_max_tokens)
            steady["process_seconds"] = decode_process(
                ckpt, src, beam, args.device, args.decode_max_tokens, args.precision
            )
            result["decode"][f"beam{beam}"] = steady
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if args.device.startswith("cuda"):
        result["gpu_peak_allocated_mib"] = torch.cuda.max_memory_allocated() / 2**20
        peak = bf16_peak_tflops(result["device_name"])
        if peak:
            result["train"]["mfu"] = 6 * params * result["train"]["tokens_per_s"] / (peak * 1e12)

    t, d = result["train"], result["decode"]
    if "profile" in t:
        print(t["profile"])
    if args.ckpt:
        print(f"decoding with {args.ckpt}")
    print(f"\n{args.config} on {args.device} ({result['device_name']}, {result['cpu_threads']} threads), "
          f"{params / 1e6:.1f} M parameters, precision {args.precision}")  # fmt: skip
    print(f"{'training':<28}{t['tokens_per_s']:>12,.0f} target tokens/s  ({t['steps']} steps)")
    for beam in (1, 5):
        r = d[f"beam{beam}"]
        print(f"{'decoding beam ' + str(beam):<28}{r['sentences_per_s']:>12,.1f} sentences/s {r['tokens_per_s']:>9,.0f}"
              f" tokens/s  ({len(lines)} sentences: {r['process_seconds']:.1f} s whole process)")  # fmt: skip
    print(f"{'peak CPU RSS':<28}{result['peak_rss_mib']:>12,.0f} MiB")
    if "gpu_peak_allocated_mib" in result:
        print(f"{'peak GPU allocated':<28}{result['gpu_peak_allocated_mib']:>12,.0f} MiB")
    if "mfu" in t:
        print(f"{'model FLOPs utilisation':<28}{100 * t['mfu']:>11.1f} %")
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
