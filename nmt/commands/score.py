"""``nmt score``: the log-probability a model gives each target of a parallel text (n-best rescoring,
filtering back-translations), with the computation the search does."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from nmt.commands.io import load, output
from nmt.data.corpus import normalize, read_lines
from nmt.errors import NmtError
from nmt.hardware import parse_device
from nmt.scoring import score


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="nmt score",
        description="Score given translations: per line, the log-probability of the target given the source "
        "(text: sum TAB per token; jsonl: with each token's).",
    )
    p.add_argument("--ckpt", required=True, nargs="+", help="checkpoint written by `nmt fit`; several: an ensemble")
    p.add_argument("--source", required=True, help="source file, one sentence a line")
    p.add_argument("--target", required=True, help="target file, line i translating source line i")
    p.add_argument("--output", "-o", default="-", help="output file (default: stdout)")
    p.add_argument("--format", choices=["text", "jsonl"], default="text")
    p.add_argument("--max-tokens", type=int, default=4096, help="source tokens per batch")
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda if there is one)")
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    if args.max_tokens < 1:
        raise NmtError(f"--max-tokens must be a positive number of source tokens per batch, got {args.max_tokens}.")
    import torch

    model = load(args.ckpt, parse_device(args.device or ("cuda" if torch.cuda.is_available() else "cpu")))
    sources, targets = read_lines(Path(args.source)), read_lines(Path(args.target))
    if len(sources) != len(targets):
        raise NmtError(f"{args.source} has {len(sources)} lines but {args.target} has {len(targets)}; "
                       "line i of the target must translate line i of the source.")  # fmt: skip
    sources, targets = [normalize(s) for s in sources], [normalize(t) for t in targets]
    pieces = [model.tokenizer.tgt_pieces(ids[1:-1]) + ["</s>"] for ids in model.tokenizer.encode_tgt(targets)]
    with output(args.output) as out:
        for source, target, tokens, scores in zip(sources, targets, pieces, score(model, sources, targets,
                                                                                  args.max_tokens)):  # fmt: skip
            total, mean = sum(scores), sum(scores) / len(scores)
            if args.format == "jsonl":
                record = {"source": source, "target": target, "score": total, "score_per_token": mean,
                          "tokens": tokens, "token_scores": scores}  # fmt: skip
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
            else:
                out.write(f"{total:.4f}\t{mean:.4f}\n")
