"""``nmt compare``: the model families side by side on the same data and budget, in one report.

    nmt compare --out runs/compare --models gru bahdanau luong transformer --trainer.max_steps 1200
    nmt compare --out runs/compare --config configs/data/multi30k.yaml --data.data_dir PATH \
                --trainer.max_time 00:00:30:00
    nmt compare --out runs/compare --ckpts a.ckpt b.ckpt c.ckpt          # evaluate trained models only

Each model is trained with ``nmt fit --config configs/<model>.yaml`` (``--model-configs`` for another
folder, e.g. ``configs/multi30k``) plus every option of this
command that is not its own (``--config``, ``--data.*``, ``--trainer.*``, ``--model.*``), into
``OUT/runs/<model>``; a model already trained there is not trained again. Then every model is
evaluated on the test split of that data (``nmt.compare.evaluate``) and ``OUT/report.{html,json,md}``
and ``OUT/figures/*.png`` are written; with a W&B logger configured the table and figures go there too.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import time
from pathlib import Path

from nmt.errors import NmtError

log = logging.getLogger(__name__)

CONFIGS = Path(__file__).resolve().parents[1] / "configs"  # shipped with the package (configs/ in a checkout)
MODELS = ("gru", "bahdanau", "luong", "transformer")
RECURRENT = ("gru", "bahdanau", "luong")
BUDGET = ("--trainer.max_steps", "--trainer.max_time", "--trainer.max_epochs")
PASSED_ON = ("--config", "--data.", "--trainer.", "--model.", "--seed_everything", "--samples.")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="nmt compare",
        description="Train the model families on the same data and budget (or take checkpoints), evaluate them "
        "on the test split and write a report. Other options (--config, --data.*, --trainer.*, --model.*) go to "
        "`nmt fit` for every model; --config and --data.* also choose the test set.",
    )
    p.add_argument("--out", required=True, type=Path, help="folder for the runs and the report")
    p.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS), help="the models to train")
    p.add_argument("--model-configs", type=Path, default=CONFIGS,
                   help="folder of <model>.yaml files (default: nmt's own configs/; configs/multi30k/ for Multi30k's "
                   "sizes)")  # fmt: skip
    p.add_argument("--cells", nargs="+", choices=("rnn", "gru", "lstm"), default=[],
                   help="also train each recurrent model with these cells (rnn: Elman)")  # fmt: skip
    p.add_argument("--ckpts", nargs="+", type=Path, help="evaluate these checkpoints instead of training")
    p.add_argument("--gold-alignments", type=Path, help="gold word alignments of the test split, one line a pair: "
                   "i-j (sure) and ipj (possible) links between source and target word positions")  # fmt: skip
    p.add_argument("--gold-base", type=int, choices=(0, 1), default=0, help="the first word's position in the file")
    p.add_argument("--beam", type=int, default=5)
    p.add_argument("--bucket-width", type=int, default=None, help="words per source-length group (default: the "
                   "widest up to 10 that gives 4 groups of 20 test sentences)")  # fmt: skip
    p.add_argument("--force", action="store_true", help="replace a report already in --out")
    p.add_argument("--show", type=int, nargs="*", default=[0, 1, 2], help="test sentences to plot attention for")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if there is one)")
    return p


def _fit_args(extra: list[str]) -> list[str]:
    flags = [a for a in extra if a.startswith("-")]
    unknown = [a for a in flags if not a.startswith(PASSED_ON)]
    if unknown:
        raise NmtError(f"nmt compare: unknown option {unknown[0]}; see nmt compare --help.")
    if not any(a.split("=")[0] in BUDGET for a in flags):
        log.info("no --trainer.max_steps / max_time given: every model trains for 1200 steps")
        return [*extra, "--trainer.max_steps", "1200"]
    return extra


def _train(name: str, config: Path, cell: str | None, fit_args: list[str], out: Path) -> dict:
    """Train one model into ``out/runs/name`` (or find it trained there); its checkpoint and training time."""
    folder = out / "runs" / name
    record = folder / "fit.json"
    if not record.is_file():
        last = folder / "checkpoints" / "last.ckpt"
        resume = ["--ckpt_path", "last"] if last.is_file() else []
        cmd = [sys.executable, "-m", "nmt", "fit", "--config", str(config), *fit_args,
               *(["--model.net.cell", cell] if cell else []), "--trainer.default_root_dir", str(folder),
               "--trainer.enable_progress_bar", "false", *resume]  # fmt: skip
        log.info("training %s: %s", name, " ".join(cmd[3:]))
        start = time.time()
        if subprocess.run(cmd).returncode:
            raise NmtError(f"training {name} failed (its messages are above); fix the options and run again.")
        folder.mkdir(parents=True, exist_ok=True)
        record.write_text(json.dumps({"train_seconds": round(time.time() - start, 1), "command": cmd[3:]}))
    # The model at the end of the budget (last.ckpt), not the one validation liked best: the same budget for all.
    return {"checkpoint": folder / "checkpoints" / "last.ckpt", **json.loads(record.read_text())}


def _runs(args, fit_args: list[str]) -> dict[str, dict]:
    if args.ckpts:
        from nmt.checkpoint import Checkpoint

        runs = {}
        for path in args.ckpts:
            name = Checkpoint.read(path).network_name.removesuffix("Net").lower()
            name = name if name not in runs else f"{name}-{len(runs) + 1}"
            runs[name] = {"checkpoint": path, "train_seconds": None}
        return runs
    runs = {}
    for model in args.models:
        config = args.model_configs / f"{model}.yaml"
        if not config.is_file():
            raise NmtError(f"--model-configs {args.model_configs} has no {model}.yaml.")
        runs[model] = _train(model, config, None, fit_args, args.out)
        for cell in args.cells if model in RECURRENT else []:
            if cell != "gru":  # the configs' own cell
                runs[f"{model}-{cell}"] = _train(f"{model}-{cell}", config, cell, fit_args, args.out)
    return runs


def _gold(args, dm, sentences: int):
    """The test split's gold alignments (parsed) and a note saying where they came from."""
    from nmt.compare.measures import parse_gold

    hp = dm.hparams
    path, swap = args.gold_alignments, False
    if path is None and not hp.data_dir and not hp.hf_dataset:  # the embedded corpus knows its alignments
        path, swap = dm.synthetic_dir() / f"{hp.test_split}.align", hp.src_lang == "de"
    elif path is None and hp.data_dir and (Path(hp.data_dir) / f"{hp.test_split}.align").is_file():
        path = Path(hp.data_dir) / f"{hp.test_split}.align"
    if path is None:
        return None, "no gold alignments for this test set (give them with --gold-alignments FILE)"
    if not path.is_file():
        raise NmtError(f"--gold-alignments {path}: no such file.")
    lines = path.read_text(encoding="utf-8").splitlines()
    if len(lines) != sentences:
        raise NmtError(f"{path} has {len(lines)} lines but the test split {hp.test_split} has {sentences} pairs.")
    base = 0 if args.gold_alignments is None else args.gold_base
    try:
        gold = [parse_gold(line, base, swap, str(path), n) for n, line in enumerate(lines, start=1)]
    except ValueError as err:
        raise NmtError(f"{err}.") from None
    return gold, f"attention against the gold word alignments of {path}"


def main(argv: list[str] | None = None) -> None:
    args, extra = parser().parse_known_args(argv)
    if args.bucket_width is not None and args.bucket_width < 1:
        raise NmtError(f"--bucket-width must be 1 or more words, got {args.bucket_width}.")
    fit_args = [] if args.ckpts else _fit_args(extra)
    if (args.out / "report.json").is_file() and not args.force:
        raise NmtError(f"--out {args.out} already holds a report; nmt compare would replace it. Add --force to "
                       "replace it (models trained there are not trained again), or choose another --out.")  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    from lightning.pytorch.loggers import WandbLogger

    from nmt.compare import report as reporting
    from nmt.compare.evaluate import TestSet, evaluate
    from nmt.compare.measures import default_width
    from nmt.hardware import parse_device
    from nmt.lightning_cli import build_cli
    from nmt.networks import loading

    runs = _runs(args, fit_args)
    cli = build_cli([*extra, "--trainer.default_root_dir", str(args.out)], run=False)  # the data, and any logger
    dm = cli.datamodule
    text = dm.text("test")
    gold, note = _gold(args, dm, len(text))
    test = TestSet(text.src, text.tgt, gold)
    width = args.bucket_width or default_width(text.src)
    device = parse_device(args.device)
    report = {"test": {"split": dm.hparams.test_split, "sentences": len(text), "alignment_note": note},
              "beam": args.beam, "bucket_width": width, "models": {}, "signatures": {}}  # fmt: skip
    reliability, attention = {}, {i: {} for i in args.show if 0 <= i < len(text)}
    for name, run in runs.items():
        log.info("evaluating %s (%s)", name, run["checkpoint"])
        model = loading.load(run["checkpoint"], device)
        result = evaluate(model.net, model.tokenizer, test, args.beam, width, tuple(attention))
        report["models"][name] = {"checkpoint": str(run["checkpoint"]), "steps": model.checkpoint.step,
                                  "train_seconds": run["train_seconds"], **result.row}  # fmt: skip
        report["signatures"] = result.signatures
        reliability[name] = result.reliability
        for i, example in result.attention.items():
            attention[i][name] = example
    figures = reporting.write(args.out, report, reliability, attention)
    for logger in cli.trainer.loggers:
        if isinstance(logger, WandbLogger):
            import wandb

            rows = reporting.table_rows(report)
            logger.experiment.log({"compare/table": wandb.Table(columns=["model", *(h for _, h in reporting.COLUMNS)],
                                                                data=rows),
                                   **{f"compare/{p.stem}": wandb.Image(str(p)) for p in figures}})  # fmt: skip
    print((args.out / "report.md").read_text(encoding="utf-8"))
    log.info("wrote %s", args.out / "report.html")
