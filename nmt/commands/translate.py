"""``nmt translate``: source lines in, translations out, with a checkpoint alone (or an ensemble).

One output line per input line in text format, always: an empty input line gives an empty
output line, and only ``\\n`` ends a line (a carriage return or U+2028 inside a line stays in it).
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
from dataclasses import asdict
from pathlib import Path

from nmt.commands.io import output, refuse_overwriting
from nmt.data.corpus import decode_lines, read_lines
from nmt.engines import ENGINES, DecodeOptions, Translation, engine_class, open_engine
from nmt.engines.base import flag
from nmt.errors import NmtError
from nmt.hardware import PRECISIONS, parse_device


def alignment(attention: list[list[float]] | None) -> str:
    """Pharaoh-style ``src-tgt`` pairs: each target subword aligned to its most attended source subword."""
    if not attention:
        return ""
    return " ".join(f"{max(range(len(row)), key=row.__getitem__)}-{t}" for t, row in enumerate(attention))


def format_hypotheses(args: argparse.Namespace, source: str, hyps: list[Translation]) -> list[str]:
    """The output lines of one input line in ``--format`` (text: ``--nbest`` lines; jsonl: one)."""
    if args.format == "jsonl":
        record = {"source": source, "hypotheses": [asdict(h) for h in hyps]}
        if not args.alignments:
            for h in record["hypotheses"]:
                h.pop("attention")
        return [json.dumps(record, ensure_ascii=False)]
    if not hyps:
        return [""] * args.nbest
    lines = []
    for h in hyps:
        fields = [h.text]
        if args.scores:
            fields.append(f"{h.score:.4f}")
        if args.alignments:
            fields.append(alignment(h.attention))
        lines.append("\t".join(fields))
    return lines


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="nmt translate",
        description="Translate text with an nmt checkpoint: one output line per input line (text format).",
    )
    p.add_argument("--ckpt", required=True, nargs="+", help="checkpoint written by `nmt fit`; several: an ensemble")
    p.add_argument("--input", "-i", default="-", help="source file, one sentence a line (default: stdin)")
    p.add_argument("--output", "-o", default="-", help="output file (default: stdout)")
    p.add_argument("--beam", type=int, default=1, help="beam size (1 = greedy)")
    p.add_argument("--nbest", type=int, default=1, help="hypotheses per input (<= beam); text: N lines each")
    p.add_argument("--length-penalty", type=float, default=None, help="GNMT alpha (default: the model's, 1.0)")
    p.add_argument("--max-tokens", type=int, default=4096, help="source tokens per batch")
    p.add_argument("--max-len-a", type=float, default=None,
                   help="outputs end after a * source length + b subwords; a (default: the model's, 1.5)")  # fmt: skip
    p.add_argument("--max-len-b", type=int, default=None, help="b of --max-len-a (default: the model's, 10)")
    p.add_argument("--scores", action="store_true", help="text format: add a TAB column with the score")
    p.add_argument("--alignments", action="store_true", help="add src-tgt subword alignments from attention")
    p.add_argument("--format", choices=["text", "jsonl"], default="text", help="jsonl: one JSON object a line")
    p.add_argument("--prefix", help="file of target prefixes, one per input line (empty: none): each "
                   "translation starts with its prefix")  # fmt: skip
    p.add_argument("--sample", action="store_true", help="draw --nbest random translations instead of searching")
    p.add_argument("--topk", type=int, default=0, help="--sample: from the k most probable tokens (0: all)")
    p.add_argument("--topp", type=float, default=1.0, help="--sample: from the smallest set holding this probability")
    p.add_argument("--temperature", type=float, default=1.0, help="--sample: divide the log-probabilities by this")
    p.add_argument("--seed", type=int, default=0, help="--sample: the same seed gives the same samples")
    p.add_argument("--engine", choices=ENGINES, default="nmt",
                   help="ctranslate2: --ckpt is a folder written by `nmt export`")  # fmt: skip
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda if there is one)")
    p.add_argument("--precision", choices=sorted(PRECISIONS), default="32", help="autocast dtype")
    return p


def spell(option: str) -> str:
    """How this command names a decoding option."""
    return {"attention": "--alignments", "ckpt": "several --ckpt"}.get(option, flag(option))


def decode_options(args: argparse.Namespace) -> DecodeOptions:
    """The decoding options of the command line, checked (with the engine's own refusals) before any work."""
    names = set(DecodeOptions.names()) & set(vars(args))
    shown = args.scores or args.format == "jsonl"
    options = DecodeOptions(**{name: getattr(args, name) for name in names if name != "scores"},
                            attention=args.alignments, scores=shown).check(spell)  # fmt: skip
    engine_class(args.engine).refuse(options, members=len(args.ckpt), precision=args.precision, spell=spell)
    return options


def read_input(name: str) -> list[str]:
    if name == "-":
        return decode_lines(sys.stdin.buffer.read(), "standard input", "input.txt")
    return read_lines(Path(name))


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    options = decode_options(args)
    refuse_overwriting(args.output, {"--input": args.input, "--prefix": args.prefix})
    engine = open_engine(args.engine, args.ckpt, parse_device(args.device), args.precision)
    # torch's and the model's objects live as long as the process: moving them out of the garbage
    # collector's reach keeps its full collections (tens of ms each, during decoding) cheap.
    gc.freeze()
    lines = read_input(args.input)
    prefixes = None
    if args.prefix:
        prefixes = read_lines(Path(args.prefix))
        if len(prefixes) != len(lines):
            raise NmtError(f"--prefix {args.prefix} has {len(prefixes)} lines but the input has {len(lines)}; "
                           "give one prefix per input line (an empty line for none).")  # fmt: skip
    with output(args.output) as out:
        results = engine.translate(lines, options, prefixes)
        for source, hyps in zip(lines, results):
            out.writelines(line + "\n" for line in format_hypotheses(args, source, hyps))
