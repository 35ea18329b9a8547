"""Average the weights of several checkpoints of one run (fairseq/JoeyNMT style), for ``nmt average``.

The result is a normal, self-contained nmt checkpoint (first checkpoint's hyperparameters and
tokenizer, the mean of every floating-point weight), so it translates and tests like any other.
Optimizer state is dropped.
"""

from __future__ import annotations

from pathlib import Path

from nmt.checkpoint import Checkpoint
from nmt.errors import NmtError
from nmt.networks import loading


def average(paths: list[str | Path], other_runs: bool = False) -> dict:
    """The averaged checkpoint of ``paths``; checkpoints of different training runs only with ``other_runs``."""
    if not paths:
        raise NmtError("Give at least one checkpoint to average.")
    first = Checkpoint.read(paths[0])
    net = loading.build(first.network)
    first.check_fits(net)
    total = {k: v.double() if v.is_floating_point() else v for k, v in first.state_dict.items()}
    runs = {first.run}
    for path in paths[1:]:
        ckpt = Checkpoint.read(path)
        ckpt.check_fits(net)
        if ckpt.tokenizer != first.tokenizer:
            raise NmtError(f"{path} was trained with another vocabulary than {paths[0]}; average one run at a time.")
        runs.add(ckpt.run)
        if len(runs) > 1 and not other_runs:
            raise NmtError(
                f"{path} and {paths[0]} come from different training runs; averaging the weights of separately "
                "trained models rarely gives a working model. Average the checkpoints of one run, or pass --force."
            )
        for k, v in ckpt.state_dict.items():
            if v.is_floating_point():
                total[k] += v.double()
    state = {k: (v / len(paths)).to(first.state_dict[k].dtype) if v.is_floating_point() else v
             for k, v in total.items()}  # fmt: skip
    note = {"averaged_from": [str(p) for p in paths], **({"run": None} if len(runs) > 1 else {})}
    return first.with_weights(state, **note)
