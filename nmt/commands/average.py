"""``nmt average``: average the weights of checkpoints into a new checkpoint."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from nmt.average import average
from nmt.errors import NmtError
from nmt.files import atomic_write


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="nmt average", description="Average the weights of checkpoints.")
    parser.add_argument("--ckpts", nargs="+", required=True, help="checkpoints of one run (e.g. the last N)")
    parser.add_argument("--out", required=True, help="where to write the averaged checkpoint (not one of --ckpts)")
    parser.add_argument("--force", action="store_true", help="average checkpoints of different training runs too")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if any(out.resolve() == Path(p).resolve() for p in args.ckpts):
        raise NmtError(f"--out {out} is one of the checkpoints to average; write the average to a new file.")
    averaged = average(args.ckpts, other_runs=args.force)
    try:
        atomic_write(out, lambda tmp: torch.save(averaged, tmp))
    except OSError as err:
        raise NmtError(f"Cannot write {out}: {err.strerror}. Choose a writable path.") from None
    print(f"averaged {len(args.ckpts)} checkpoints into {out}")
