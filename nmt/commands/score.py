"""``nmt score``: the log-probability a model gives each target of a parallel text (n-best rescoring,
filtering back-translations), with the computation the search does."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from nmt.commands.io import output, refuse_overwriting
from nmt.data.corpus import normalize, read_lines
from nmt.engines import ENGINES, DecodeOptions, engine_class, open_engine
from nmt.errors import NmtError
from nmt.hardware import parse_device

log = logging.getLogger(__name__)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="nmt score",
        description="Score given translations: per line, the log-probability of the target given the source "
        "(text: sum TAB per token TAB unknown pieces; jsonl: with each token's).",
    )
    p.add_argument("--ckpt", required=True, nargs="+", help="checkpoint written by `nmt fit`; several: an ensemble")
    p.add_argument("--source", required=True, help="source file, one sentence a line")
    p.add_argument("--target", required=True, help="target file, line i translating source line i")
    p.add_argument("--output", "-o", default="-", help="output file (default: stdout)")
    p.add_argument("--format", choices=["text", "jsonl"], default="text")
    p.add_argument("--max-tokens", type=int, default=4096, help="source tokens per batch")
    p.add_argument("--engine", choices=ENGINES, default="nmt",
                   help="ctranslate2: --ckpt is a folder written by `nmt export`")  # fmt: skip
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda if there is one)")
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    engine_class(args.engine).refuse(DecodeOptions(max_tokens=args.max_tokens).check(), members=len(args.ckpt))
    refuse_overwriting(args.output, {"--source": args.source, "--target": args.target})
    engine = open_engine(args.engine, args.ckpt, parse_device(args.device))
    sources, targets = read_lines(Path(args.source)), read_lines(Path(args.target))
    if len(sources) != len(targets):
        raise NmtError(f"{args.source} has {len(sources)} lines but {args.target} has {len(targets)}; "
                       "line i of the target must translate line i of the source.")  # fmt: skip
    sources, targets = [normalize(s) for s in sources], [normalize(t) for t in targets]
    tok = engine.tokenizer
    ids = tok.encode_tgt(targets)
    pieces = [tok.tgt_pieces(seq[1:-1]) + ["</s>"] for seq in ids]
    unknown = [seq.count(tok.specials.unk) for seq in ids]
    with output(args.output) as out:
        scored = engine.score(sources, targets, args.max_tokens)
        for source, target, tokens, scores, unk in zip(sources, targets, pieces, scored, unknown):
            total, mean = sum(scores), sum(scores) / len(scores)
            if args.format == "jsonl":
                record = {"source": source, "target": target, "score": total, "score_per_token": mean,
                          "tokens": tokens, "token_scores": scores, "unknown_pieces": unk}  # fmt: skip
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
            else:
                out.write(f"{total:.4f}\t{mean:.4f}\t{unk}\n")
    lines = [n for n, unk in enumerate(unknown, 1) if unk]
    if lines:
        first = lines[0]
        log.warning(
            "%d target line(s) hold text the vocabulary lacks (first: line %d, %s); each such part is scored as one "
            "<unk>, so those scores do not compare with others' (the count is the last column).",
            len(lines), first, ", ".join(repr(p) for p in tok.unknown(targets[first - 1])),
        )  # fmt: skip
