#!/usr/bin/env python
"""How nmt's data pipeline copes with a large corpus: preparation time, start-up, memory, loader speed.

    python scripts/data_benchmark.py --pairs 1000000 --work /tmp/databench [--out data_bench.json]

Generates (once) a corpus of ``--pairs`` training pairs with ``scripts/make_corpus.py`` (or takes
``--corpus DIR`` with ``train/val/test.{src,tgt}``), then, each in a fresh process:

1. **first preparation**: ``TranslationDataModule.prepare_data()`` with an empty cache
   (SentencePiece on the sample, encoding every split) - wall time and peak RSS;
2. **cached start**: ``nmt fit`` with everything cached, a tiny model, 20 steps: seconds from the
   process start to its first training batch, and the training process's peak RSS;
3. **two DDP ranks** (CPU, gloo): the proportional set size (PSS) of both ranks together at step 10,
   against one process's, read from ``/proc/PID/smaps_rollup``;
4. **loader**: training batches per second from the data module's DataLoader alone.

Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

from lightning.pytorch import Callback

REPO = Path(__file__).resolve().parents[1]
FIT = ["--config", str(REPO / "configs/transformer.yaml"), "--model.net.d_model", "64", "--model.net.n_heads", "2",
       "--model.net.d_ff", "128", "--model.net.encoder_layers", "1", "--model.net.decoder_layers", "1",
       "--trainer.max_steps", "20", "--trainer.limit_val_batches", "0", "--trainer.num_sanity_val_steps", "0",
       "--trainer.enable_progress_bar", "false", "--trainer.enable_checkpointing", "false", "--trainer.logger",
       "false", "--samples.num_sentences", "0"]  # fmt: skip


def pss_kib(pid: int) -> dict[str, int]:
    """This process's proportional set size in KiB: ``pss`` in all, ``anon`` of it private or copied memory
    (heap, tensors), ``file`` of it mapped files (libraries, the store), shared pages counted in part."""
    fields = {"Pss:": "pss", "Pss_Anon:": "anon", "Pss_File:": "file"}
    out = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        name = line.split()[0]
        if name in fields:
            out[fields[name]] = int(line.split()[1])
    return out


class Probe(Callback):
    """A Lightning callback (``--trainer.callbacks+=data_benchmark.Probe``): the time of the first training
    batch since ``$BENCH_T0``, this process's PSS at step 10 and its peak RSS, written to ``$BENCH_OUT``."""

    def __init__(self):
        self.record = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if not self.record:
            self.record["first_batch_s"] = time.time() - float(os.environ["BENCH_T0"])
        if trainer.global_step == 10:
            self.record["pss_kib"] = pss_kib(os.getpid())

    def on_fit_end(self, trainer, pl_module):
        self.record["peak_rss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        (Path(os.environ["BENCH_OUT"]) / f"rank{trainer.global_rank}.json").write_text(json.dumps(self.record))


def run(cmd: list[str], env: dict) -> float:
    start = time.time()
    subprocess.run(cmd, check=True, env={**os.environ, **env, "BENCH_T0": str(start)}, cwd=REPO,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    return time.time() - start


def data_args(corpus: Path, cache: Path, vocab: int) -> list[str]:
    return ["--data.data_dir", str(corpus), "--data.src_lang", "src", "--data.tgt_lang", "tgt",
            "--data.vocab_size", str(vocab), "--data.cache_dir", str(cache)]  # fmt: skip


def fit(corpus: Path, cache: Path, vocab: int, work: Path, name: str, *extra: str) -> list[dict]:
    out = work / name
    out.mkdir(parents=True, exist_ok=True)
    env = {"BENCH_OUT": str(out), "PYTHONPATH": f"{REPO / 'scripts'}:{os.environ.get('PYTHONPATH', '')}"}
    cmd = [sys.executable, "-m", "nmt", "fit", *FIT, *data_args(corpus, cache, vocab), "--trainer.default_root_dir",
           str(out), "--trainer.callbacks+=data_benchmark.Probe", *extra]  # fmt: skip
    run(cmd, env)
    return [json.loads(p.read_text()) for p in sorted(out.glob("rank*.json"))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=1_000_000)
    parser.add_argument("--corpus", type=Path, help="an existing corpus (default: generate one under --work)")
    parser.add_argument("--work", type=Path, default=Path("runs/data_bench"))
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--out", type=Path, default=Path("data_bench.json"))
    args = parser.parse_args()
    corpus = args.corpus or args.work / f"corpus-{args.pairs}"
    if not (corpus / "train.src").is_file() and not args.corpus:
        subprocess.run([sys.executable, str(REPO / "scripts/make_corpus.py"), str(corpus), "--pairs",
                        str(args.pairs)], check=True)  # fmt: skip
    cache = args.work / f"cache-{time.strftime('%Y%m%d-%H%M%S')}"
    result = {"pairs": args.pairs, "corpus": str(corpus), "cpu": platform.processor() or platform.machine(),
              "cores": len(os.sched_getaffinity(0)), "date": time.strftime("%Y-%m-%d")}  # fmt: skip

    prepare = ("from nmt.data.datamodule import TranslationDataModule as D; import resource, json; "
               f"D(data_dir='{corpus}', src_lang='src', tgt_lang='tgt', vocab_size={args.vocab_size}, "
               f"cache_dir='{cache}').prepare_data(); "
               "print(json.dumps(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))")  # fmt: skip
    start = time.time()
    done = subprocess.run([sys.executable, "-c", prepare], check=True, capture_output=True, text=True, cwd=REPO)
    result["first_preparation_s"] = time.time() - start
    result["first_preparation_peak_rss_mib"] = json.loads(done.stdout.strip().splitlines()[-1]) / 1024

    one = fit(corpus, cache, args.vocab_size, args.work, "one")[0]
    result["cached_start_to_first_batch_s"] = one["first_batch_s"]
    result["training_peak_rss_mib"] = one["peak_rss_kib"] / 1024
    result["one_process_pss_mib"] = one["pss_kib"]["pss"] / 1024
    result["one_process_pss_anon_file_mib"] = [one["pss_kib"].get(k, 0) / 1024 for k in ("anon", "file")]
    ddp = fit(corpus, cache, args.vocab_size, args.work, "ddp", "--trainer.accelerator", "cpu",
              "--trainer.devices", "2", "--trainer.strategy", "ddp")  # fmt: skip
    result["two_ranks_pss_mib"] = sum(r["pss_kib"]["pss"] for r in ddp) / 1024
    result["two_ranks_pss_anon_file_mib"] = [sum(r["pss_kib"].get(k, 0) for r in ddp) / 1024 for k in ("anon", "file")]
    result["two_ranks_over_one"] = result["two_ranks_pss_mib"] / result["one_process_pss_mib"]

    from nmt.data.datamodule import TranslationDataModule

    dm = TranslationDataModule(data_dir=str(corpus), src_lang="src", tgt_lang="tgt", vocab_size=args.vocab_size,
                               cache_dir=str(cache))  # fmt: skip
    dm.setup("fit")
    loader = dm.train_dataloader()
    batches_left, start, batches = iter(loader), time.time(), 0
    while time.time() - start < 10:
        if next(batches_left, None) is None:  # a small corpus: the next epoch
            batches_left = iter(loader)
            continue
        batches += 1
    result["loader_batches_per_s"] = batches / (time.time() - start)

    rows = [("first preparation", f"{result['first_preparation_s']:.0f} s, peak RSS "
             f"{result['first_preparation_peak_rss_mib']:,.0f} MiB"),
            ("cached start to the first training batch", f"{result['cached_start_to_first_batch_s']:.1f} s"),
            ("peak RSS of a training process", f"{result['training_peak_rss_mib']:,.0f} MiB"),
            ("PSS of one process / two DDP ranks", f"{result['one_process_pss_mib']:,.0f} / "
             f"{result['two_ranks_pss_mib']:,.0f} MiB ({result['two_ranks_over_one']:.2f}x)"),
            ("  of which anonymous (heap) / mapped files", "{:,.0f} + {:,.0f} / {:,.0f} + {:,.0f} MiB".format(
                *result["one_process_pss_anon_file_mib"], *result["two_ranks_pss_anon_file_mib"])),
            ("loader", f"{result['loader_batches_per_s']:,.0f} batches/s")]  # fmt: skip
    print(f"\n{args.pairs:,} pairs, {result['cores']} cores")
    for name, value in rows:
        print(f"{name:<44}{value}")
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
