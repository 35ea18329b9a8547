"""Average the weights of several checkpoints of one run (fairseq/JoeyNMT style), for ``nmt average``.

The result is a normal, self-contained nmt checkpoint (first checkpoint's hyperparameters and
tokenizer, the mean of every floating-point weight), so it translates and tests like any other.
Optimizer state is dropped.
"""

from __future__ import annotations

from pathlib import Path

from nmt.checkpoint import checked, read_checkpoint
from nmt.errors import NmtError


def average(paths: list[str | Path], other_runs: bool = False) -> dict:
    """The averaged checkpoint of ``paths``; checkpoints of different training runs only with ``other_runs``."""
    if not paths:
        raise NmtError("Give at least one checkpoint to average.")
    first = checked(read_checkpoint(paths[0]), paths[0])
    total = {k: v.double() if v.is_floating_point() else v for k, v in first["state_dict"].items()}
    runs = {first["nmt"].get("run")}
    for path in paths[1:]:
        ckpt = checked(read_checkpoint(path), path)
        weights = ckpt["state_dict"]
        same_shapes = weights.keys() == total.keys() and all(weights[k].shape == total[k].shape for k in total)
        if ckpt["nmt"]["tokenizer"] != first["nmt"]["tokenizer"] or not same_shapes:
            raise NmtError(
                f"{path} is not from the same model and vocabulary as {paths[0]}; average one run at a time."
            )
        runs.add(ckpt["nmt"].get("run"))
        if len(runs) > 1 and not other_runs:
            raise NmtError(
                f"{path} and {paths[0]} come from different training runs; averaging the weights of separately "
                "trained models rarely gives a working model. Average the checkpoints of one run, or pass --force."
            )
        for k, v in weights.items():
            if v.is_floating_point():
                total[k] += v.double()
    state = {k: (v / len(paths)).to(first["state_dict"][k].dtype) if v.is_floating_point() else v
             for k, v in total.items()}  # fmt: skip
    keep = ("nmt", "hyper_parameters", "epoch", "global_step", "pytorch-lightning_version")
    out = {k: first[k] for k in keep if k in first}
    out["state_dict"] = state
    out["nmt"] = {**first["nmt"], "averaged_from": [str(p) for p in paths]}
    if len(runs) > 1:
        out["nmt"]["run"] = None
    return out
