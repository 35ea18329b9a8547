"""``nmt average``: average the weights of several checkpoints of one run (fairseq/JoeyNMT style).

The result is a normal, self-contained nmt checkpoint (first checkpoint's hyperparameters and
tokenizer, the mean of every floating-point weight), so it translates and tests like any other.
Optimizer state is dropped.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from nmt.errors import NmtError
from nmt.translate import read_checkpoint


def average(paths: list[str | Path]) -> dict:
    if not paths:
        raise NmtError("Give at least one checkpoint to average.")
    first = read_checkpoint(paths[0])
    if "nmt" not in first:
        raise NmtError(f"{paths[0]} is not an nmt checkpoint.")
    total = {k: v.double() if v.is_floating_point() else v for k, v in first["state_dict"].items()}
    for path in paths[1:]:
        ckpt = read_checkpoint(path)
        if (
            ckpt.get("nmt", {}).get("tokenizer") != first["nmt"]["tokenizer"]
            or ckpt["state_dict"].keys() != total.keys()
        ):
            raise NmtError(
                f"{path} is not from the same model and vocabulary as {paths[0]}; average one run at a time."
            )
        for k, v in ckpt["state_dict"].items():
            if v.is_floating_point():
                total[k] += v.double()
    state = {k: (v / len(paths)).to(first["state_dict"][k].dtype) if v.is_floating_point() else v
             for k, v in total.items()}  # fmt: skip
    keep = ("nmt", "hyper_parameters", "epoch", "global_step", "pytorch-lightning_version")
    out = {k: first[k] for k in keep if k in first}
    out["state_dict"] = state
    out["nmt"] = {**first["nmt"], "averaged_from": [str(p) for p in paths]}
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="nmt average", description="Average the weights of checkpoints.")
    parser.add_argument("--ckpts", nargs="+", required=True, help="checkpoints of one run (e.g. the last N)")
    parser.add_argument("--out", required=True, help="where to write the averaged checkpoint")
    args = parser.parse_args(argv)
    averaged = average(args.ckpts)
    out = Path(args.out)
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        torch.save(averaged, tmp)
        tmp.replace(out)
    except OSError as err:
        raise NmtError(f"Cannot write {out}: {err.strerror}. Choose a writable path.") from None
    print(f"averaged {len(args.ckpts)} checkpoints into {out}")
