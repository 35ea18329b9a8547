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

from nmt.commands.io import load, output
from nmt.data.corpus import decode_lines, read_lines
from nmt.errors import NmtError
from nmt.hardware import PRECISIONS, autocast, parse_device
from nmt.search import Sampling
from nmt.translation import Translation, translate_full


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
    p.add_argument("--engine", choices=["nmt", "ctranslate2"], default="nmt",
                   help="ctranslate2: --ckpt is a folder written by `nmt export`")  # fmt: skip
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda if there is one)")
    p.add_argument("--precision", choices=sorted(PRECISIONS), default="32", help="autocast dtype")
    return p


def check_options(args: argparse.Namespace) -> None:
    """Refuse impossible option values before any work is done."""
    if args.beam < 1:
        raise NmtError(f"--beam must be 1 (greedy) or more, got {args.beam}.")
    if args.sample:
        if args.beam > 1:
            raise NmtError("--sample draws translations instead of searching: give --sample or --beam, not both.")
        if args.nbest < 1:
            raise NmtError(f"--nbest must be 1 or more, got {args.nbest}.")
        if args.topk < 0 or not 0 < args.topp <= 1 or args.temperature <= 0:
            raise NmtError("--topk must be 0 or more, --topp in (0, 1] and --temperature above 0.")
    elif not 1 <= args.nbest <= args.beam:
        raise NmtError(f"--nbest must be between 1 and --beam ({args.beam}), got {args.nbest}.")
    elif (args.topk, args.topp, args.temperature) != (0, 1.0, 1.0):
        raise NmtError("--topk, --topp and --temperature apply to --sample; add --sample.")
    if args.engine == "ctranslate2":
        options = (("--sample", args.sample), ("--alignments", args.alignments),
                   ("--precision", args.precision != "32"), ("several --ckpt", len(args.ckpt) > 1))  # fmt: skip
        unsupported = [flag for flag, given in options if given]
        if unsupported:
            raise NmtError(f"--engine ctranslate2 does not take {unsupported[0]} (the export fixes the weights' type: "
                           "nmt export --quantization); use --engine nmt.")  # fmt: skip
    if (args.max_len_a is not None and args.max_len_a < 0) or (args.max_len_b is not None and args.max_len_b < 0):
        raise NmtError("--max-len-a and --max-len-b must be 0 or more (outputs end after a * source length + b).")
    if args.max_tokens < 1:
        raise NmtError(f"--max-tokens must be a positive number of source tokens per batch, got {args.max_tokens}.")


def exported(folder: str, device: str):
    """A CTranslate2 export (``nmt export``), for ``--engine ctranslate2``."""
    from nmt.export import Exported

    if not Path(folder).is_dir():
        raise NmtError(f"--engine ctranslate2 takes the folder written by nmt export as --ckpt, not {folder}.")
    try:
        return Exported(folder, device)
    except ImportError:
        raise NmtError("--engine ctranslate2 needs CTranslate2: pip install 'nmt[export]'.") from None


def read_input(name: str) -> list[str]:
    if name == "-":
        return decode_lines(sys.stdin.buffer.read(), "standard input", "input.txt")
    return read_lines(Path(name))


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    check_options(args)
    import torch

    device = parse_device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model = load(args.ckpt, device) if args.engine == "nmt" else exported(args.ckpt[0], device.type)
    # torch's and the model's objects live as long as the process: moving them out of the garbage
    # collector's reach keeps its full collections (tens of ms each, during decoding) cheap.
    gc.freeze()
    limits = {k: v for k, v in (("max_len_a", args.max_len_a), ("max_len_b", args.max_len_b)) if v is not None}
    if args.engine == "nmt":  # in place of the network's own limits, or of the export's
        vars(model).update(limits)
    else:
        model.settings.update(limits)
    lines = read_input(args.input)
    prefixes = None
    if args.prefix:
        prefixes = read_lines(Path(args.prefix))
        if len(prefixes) != len(lines):
            raise NmtError(f"--prefix {args.prefix} has {len(prefixes)} lines but the input has {len(lines)}; "
                           "give one prefix per input line (an empty line for none).")  # fmt: skip
    sampling = None
    if args.sample:
        generator = torch.Generator(device=device).manual_seed(args.seed)
        sampling = Sampling(args.topk, args.topp, args.temperature, generator)
    with output(args.output) as out, autocast(device.type, args.precision):
        if args.engine == "nmt":
            results = translate_full(model, lines, args.beam, args.nbest, args.length_penalty, args.max_tokens,
                                     args.alignments, prefixes, sampling)  # fmt: skip
        else:
            results = model.translate(lines, args.beam, args.nbest, args.length_penalty, args.max_tokens, prefixes)
        for source, hyps in zip(lines, results):
            out.writelines(line + "\n" for line in format_hypotheses(args, source, hyps))
