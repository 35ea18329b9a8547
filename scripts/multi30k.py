#!/usr/bin/env python
"""Train and score nmt models on Multi30k test_2016_flickr: the README's results table.

    python scripts/multi30k.py --data-dir ../shared/data/multi30k --out runs/multi30k
    python scripts/multi30k.py --models transformer --directions de-en -- --trainer.max_time 00:00:09:00

For every model (``configs/multi30k/<model>.yaml``) and direction it runs ``nmt fit`` with
``configs/data/multi30k.yaml`` (arguments after ``--`` go to every fit), translates the test
source with ``nmt translate --beam 5`` and scores the detokenised, cased output with sacreBLEU
(BLEU and chrF, signatures kept). The checkpoint and length penalty are chosen on the validation
split: it is translated, with the same beam, from ``best.ckpt`` (the best validation BLEU of
training's greedy decoding) and from ``last.ckpt`` when that is a later step, with each of
``--length-penalties``, and the test set is translated with the pair that scored best there.
Writes ``OUT/results.json`` and ``OUT/results.md`` and prints the table. Finished steps are
kept, so an interrupted sweep continues where it stopped: a run folder with ``score.json`` is
done, one with ``fit.json`` is trained (delete its ``score.json`` to decode it again, e.g.
with other length penalties), and a fit that was interrupted resumes from its ``last.ckpt``.
``--train-more`` trains finished runs further from their ``last.ckpt`` when the fit arguments
differ from their last session's (give a larger ``--trainer.max_time`` or ``--trainer.max_steps``:
both count what was already trained) and scores them again; the training time in the table is
the sum over all sessions.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import sacrebleu

REPO = Path(__file__).resolve().parents[1]
MODELS = ("transformer", "bahdanau", "luong", "gru")


def run(cmd: list[str]) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=REPO)


def score(ref: Path, hyp: Path) -> dict:
    refs = [ref.read_text(encoding="utf-8").splitlines()]
    hyps = hyp.read_text(encoding="utf-8").splitlines()
    bleu, chrf = sacrebleu.metrics.BLEU(), sacrebleu.metrics.CHRF()
    b, c = bleu.corpus_score(hyps, refs), chrf.corpus_score(hyps, refs)
    return {"bleu": round(b.score, 2), "chrf": round(c.score, 2),
            "bleu_signature": str(bleu.get_signature()), "chrf_signature": str(chrf.get_signature())}  # fmt: skip


def count_parameters(state_dict: dict) -> int:
    """Weights in a state dict, each shared (tied) tensor once."""
    unique = {(v.untyped_storage().data_ptr(), v.storage_offset(), v.shape): v.numel() for v in state_dict.values()}
    return sum(unique.values())


def decode(ckpt: Path, source: Path, hyp: Path, beam: int, alpha: float) -> None:
    run([sys.executable, "-m", "nmt", "translate", "--ckpt", str(ckpt), "--beam", str(beam),
         "--length-penalty", str(alpha), "--input", str(source), "--output", str(hyp)])  # fmt: skip


def pick_decoding(folder: Path, src: str, tgt: str, args) -> tuple[Path, float, dict]:
    """The checkpoint (``best.ckpt``, or a later ``last.ckpt``) and length penalty with the best beam-search
    BLEU on the validation split (the first of equals), and every pair's BLEU: {checkpoint: {alpha: BLEU}}."""
    ckpts = [c for c in (folder / "checkpoints" / "best.ckpt", folder / "checkpoints" / "last.ckpt") if c.is_file()]
    if not ckpts:
        sys.exit(f"{folder / 'checkpoints'} has neither best.ckpt nor last.ckpt: delete {folder / 'fit.json'} "
                 "to train this run again.")  # fmt: skip
    if len(ckpts) == 2 and global_step(ckpts[0]) >= global_step(ckpts[1]):  # no training after the best step
        ckpts = ckpts[:1]
    if len(ckpts) * len(args.length_penalties) == 1:
        return ckpts[0], args.length_penalties[0], {}
    val_bleu: dict[str, dict[str, float]] = {}
    for ckpt in ckpts:
        val_bleu[ckpt.name] = {}
        for alpha in args.length_penalties:
            hyp = folder / f"{args.val_split}.hyp.{tgt}.{ckpt.stem}.lp{alpha}"
            decode(ckpt, args.data_dir / f"{args.val_split}.{src}", hyp, args.beam, alpha)
            val_bleu[ckpt.name][str(alpha)] = score(args.data_dir / f"{args.val_split}.{tgt}", hyp)["bleu"]
    pairs = [(ckpt, alpha) for ckpt in ckpts for alpha in args.length_penalties]
    ckpt, alpha = max(pairs, key=lambda pair: val_bleu[pair[0].name][str(pair[1])])
    return ckpt, alpha, val_bleu


def global_step(ckpt: Path) -> int:
    import torch

    return torch.load(ckpt, map_location="cpu", weights_only=True)["global_step"]


def train(model: str, src: str, tgt: str, folder: Path, args, fit_args: list[str]) -> None:
    """Run ``nmt fit`` into ``folder``, resuming from its ``last.ckpt`` if it has one, and add the
    session (seconds, arguments, steps reached) to ``fit.json``.

    ``fit.started`` holds the start and arguments of a fit in progress: a fit that was killed is
    counted up to the time its ``last.ckpt`` was written (the training it kept) when it is resumed."""
    trained, started, last = folder / "fit.json", folder / "fit.started", folder / "checkpoints" / "last.ckpt"
    fit = json.loads(trained.read_text()) if trained.is_file() else {"train_seconds": 0, "sessions": []}
    fit.setdefault("sessions", [{"seconds": fit["train_seconds"], "fit_args": fit.get("fit_args", [])}])
    if started.is_file() and last.is_file():  # killed: keep what it trained until its last checkpoint
        killed = json.loads(started.read_text())
        seconds = round(last.stat().st_mtime - killed["start"])
        fit["sessions"].append({"seconds": seconds, "fit_args": killed["fit_args"], "steps": global_step(last),
                                "killed": True})  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    started.write_text(json.dumps({"start": time.time(), "fit_args": fit_args}))
    start = time.perf_counter()
    run([sys.executable, "-m", "nmt", "fit", "--config", f"configs/multi30k/{model}.yaml",
         "--config", "configs/data/multi30k.yaml", "--data.data_dir", str(args.data_dir),
         "--data.src_lang", src, "--data.tgt_lang", tgt, "--data.test_split", args.test_split,
         "--data.val_split", args.val_split, "--trainer.default_root_dir", str(folder),
         "--trainer.enable_progress_bar", "false", *fit_args,
         *(["--ckpt_path", "last"] if last.is_file() else [])])  # fmt: skip
    seconds = round(time.perf_counter() - start)
    fit["sessions"].append(
        {"seconds": seconds, "fit_args": fit_args, "steps": global_step(last) if last.is_file() else None}
    )
    fit.update(train_seconds=sum(s["seconds"] for s in fit["sessions"]), fit_args=fit_args)
    trained.write_text(json.dumps(fit, indent=2))
    started.unlink()


def one(model: str, src: str, tgt: str, args, fit_args: list[str]) -> dict:
    folder = args.out / f"{model}.{src}-{tgt}"
    done, trained = folder / "score.json", folder / "fit.json"
    if done.is_file() and not trained.is_file():  # scored before fit.json was written: recover it
        scored = json.loads(done.read_text())
        trained.write_text(json.dumps({"train_seconds": scored["train_seconds"], "fit_args": scored["fit_args"]}))
    killed = (folder / "fit.started").is_file()
    more = not killed and args.train_more and trained.is_file()
    more = more and json.loads(trained.read_text())["fit_args"] != fit_args  # trained with other arguments
    if more and done.is_file():  # keep the earlier score beside the new one
        done.rename(folder / f"score.step{json.loads(done.read_text())['steps']}.json")
    if done.is_file():
        return json.loads(done.read_text())
    if more or killed or not trained.is_file():
        train(model, src, tgt, folder, args, fit_args)
    fit = json.loads(trained.read_text())
    ckpt, alpha, val_bleu = pick_decoding(folder, src, tgt, args)
    hyp = folder / f"{args.test_split}.hyp.{tgt}"
    decode(ckpt, args.data_dir / f"{args.test_split}.{src}", hyp, args.beam, alpha)
    import torch

    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    result = {"model": model, "direction": f"{src}-{tgt}", "parameters": count_parameters(state["state_dict"]),
              "steps": state["global_step"], "train_seconds": fit["train_seconds"], "beam": args.beam,
              "checkpoint": ckpt.name, "length_penalty": alpha, "val_bleu_by_checkpoint": val_bleu,
              "fit_args": fit["fit_args"],
              "sessions": fit.get("sessions", []),
              **score(args.data_dir / f"{args.test_split}.{tgt}", hyp)}  # fmt: skip
    done.write_text(json.dumps(result, indent=2))
    return result


def table(results: list[dict]) -> str:
    lines = ["| model | direction | parameters | checkpoint | steps | training | length penalty | BLEU | chrF |",
             "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in results:
        lines.append(f"| {r['model']} | {r['direction']} | {r['parameters'] / 1e6:.1f} M | "
                     f"{r.get('checkpoint', 'best.ckpt')} | {r['steps']} | {r['train_seconds'] / 60:.0f} min | "
                     f"{r.get('length_penalty', 1.0)} | {r['bleu']:.1f} | {r['chrf']:.1f} |")  # fmt: skip
    if results:
        lines += ["", f"BLEU: `{results[0]['bleu_signature']}`", f"chrF: `{results[0]['chrf_signature']}`"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data" / "multi30k")
    parser.add_argument("--out", type=Path, default=Path("runs/multi30k"))
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--directions", nargs="+", default=["de-en", "en-de"], help="SRC-TGT pairs")
    parser.add_argument("--test-split", default="test_2016_flickr")
    parser.add_argument("--val-split", default="val")
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--length-penalties", type=float, nargs="+", default=[1.0], metavar="ALPHA",
                        help="several: choose the one with the best validation BLEU")  # fmt: skip
    parser.add_argument("--train-more", action="store_true",
                        help="train finished runs further from their last.ckpt when the fit arguments differ "
                        "from their last session's (a larger max_time or max_steps), and score them again")  # fmt: skip
    args, fit_args = parser.parse_known_args()
    fit_args = [a for a in fit_args if a != "--"]
    args.data_dir, args.out = args.data_dir.resolve(), args.out.resolve()
    for name in [f"train.{lang}" for d in args.directions for lang in d.split("-")]:
        if not (args.data_dir / name).is_file():
            sys.exit(f"{args.data_dir / name} not found: give --data-dir the folder with train/val/"
                     f"{args.test_split} .de/.en files (or train from the hub with nmt fit directly).")  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    results = []
    for direction in args.directions:
        src, tgt = direction.split("-")
        for model in args.models:
            results.append(one(model, src, tgt, args, fit_args))
            (args.out / "results.json").write_text(json.dumps(results, indent=2))
            (args.out / "results.md").write_text(table(results) + "\n")
    print(table(results))


if __name__ == "__main__":
    main()
