"""Load a self-contained checkpoint safely and translate text with it.

``nmt translate --ckpt C < src > hyp`` and ``scripts/translate.py`` both call :func:`main`.
One output line per input line, always: an empty input line gives an empty output line.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import pickle
import sys
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from nmt.data.batching import TokenBudgetBatchSampler, pad
from nmt.data.corpus import normalize, read_lines
from nmt.data.tokenizer import EOS_ID, PAD_ID, Tokenizer
from nmt.errors import NmtError
from nmt.networks.base import Seq2SeqNet, init_arguments

log = logging.getLogger(__name__)


def _network_class(name: str) -> type[Seq2SeqNet]:
    module, _, attr = name.rpartition(".")
    cls = getattr(importlib.import_module(module), attr, None) if module.startswith("nmt.networks.") else None
    if not (isinstance(cls, type) and issubclass(cls, Seq2SeqNet)):
        raise NmtError(f"The checkpoint names an unknown network class '{name}'; it was not written by this nmt.")
    return cls


def read_checkpoint(path: str | Path) -> dict:
    """``torch.load`` with ``weights_only=True`` (no pickled code runs); clear errors for bad files."""
    path = Path(path)
    if not path.is_file():
        near = sorted(p.name for p in path.parent.glob("*.ckpt")) if path.parent.is_dir() else []
        hint = f" Checkpoints in {path.parent}: {', '.join(near)}." if near else ""
        raise NmtError(f"Checkpoint not found: {path}.{hint}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError) as err:
        raise NmtError(
            f"{path} is not a readable checkpoint ({type(err).__name__}: {str(err).splitlines()[0][:200]}). "
            "It may be truncated (a run killed while writing it) or corrupted; use another checkpoint, "
            "e.g. last.ckpt or an earlier one in the same folder."
        ) from None


def nmt_meta(ckpt, path: str | Path) -> dict:
    """The ``nmt`` entry of a checkpoint read by :func:`read_checkpoint`; clear errors if it is not ours."""
    meta = ckpt.get("nmt") if isinstance(ckpt, dict) else None
    if not meta or "state_dict" not in ckpt:
        raise NmtError(f"{path} is not an nmt checkpoint (no model class or tokenizer inside; another program's?).")
    if "network_class" not in meta:
        raise NmtError(
            f"{path} was written by an older nmt (checkpoint format {meta.get('format')}, before the networks "
            "were split from the Lightning systems); train a new one with this version."
        )
    return meta


def load_model(path: str | Path, device: str = "cpu") -> Seq2SeqNet:
    """A ready-to-translate network (eval mode, on ``device``) from a checkpoint alone, without Lightning."""
    ckpt = read_checkpoint(path)
    meta = nmt_meta(ckpt, path)
    cls = _network_class(meta["network_class"])
    hparams = ckpt.get("hyper_parameters", {})
    net = cls(**{name: hparams[name] for name in init_arguments(cls) if name in hparams})
    weights = {k.removeprefix("net."): v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}
    try:
        net.load_state_dict(weights)
    except RuntimeError as err:
        raise NmtError(f"{path}: the weights do not fit a {cls.__name__} with its own settings ({err}).") from None
    for name in ("max_len_a", "max_len_b", "length_penalty"):
        if name in hparams:
            setattr(net, name, hparams[name])
    net.tokenizer = Tokenizer.from_dict(meta["tokenizer"], origin=str(path))
    return net.eval().to(device)


@dataclass
class Translation:
    """One hypothesis: detokenised text, its (length-normalised) score, and per-token detail."""

    text: str
    score: float
    tokens: list[str]  # target subwords, EOS excluded
    token_scores: list[float]  # log-probability of each subword (and of EOS, last)
    attention: list[list[float]] | None  # (target subwords + EOS) x source subwords (+ EOS)


def translate_full(
    model: Seq2SeqNet,
    lines: list[str],
    beam: int = 1,
    nbest: int = 1,
    length_penalty: float | None = None,
    max_tokens: int = 4096,
    attention: bool = True,
) -> list[list[Translation]]:
    """``nbest`` translations of each line, best first; batched by length, returned in input order.

    ``model``: a network (:func:`load_model`, or a training system's ``.net``).
    ``attention=False`` leaves ``Translation.attention`` None and skips the work behind it.
    An empty (or all-white-space) line gets no hypotheses. Sources longer than the model's
    ``max_source_positions`` are truncated to fit, with a warning naming the first such line.
    """
    tok = model.tokenizer
    texts = [normalize(line) for line in lines]
    src = tok.encode_src(texts)
    limit = model.max_source_positions
    too_long = [i for i, s in enumerate(src) if len(s) > limit]
    if too_long:
        log.warning(
            "%d input line(s) exceed the model's %d source tokens (first: line %d); they are truncated to fit.",
            len(too_long), limit, too_long[0] + 1,
        )  # fmt: skip
        src = [s[: limit - 1] + [s[-1]] if len(s) > limit else s for s in src]
    out: list[list[Translation]] = [[] for _ in lines]
    todo = [i for i, t in enumerate(texts) if t]
    sampler = TokenBudgetBatchSampler([len(src[i]) for i in todo], max_tokens, shuffle=False)
    for batch in sampler:
        rows = [todo[j] for j in batch]
        ids = pad([src[i] for i in rows]).to(model.device)
        hyps = model.translate_batch(ids, ids != PAD_ID, beam, nbest, length_penalty, attention)
        lengths = hyps.lengths().tolist()
        for rank in range(nbest):
            texts_out = tok.decode_tgt(hyps.token_lists(rank))
            for j, i in enumerate(rows):
                n = lengths[j][rank]
                ids_out = hyps.tokens[j, rank, :n].tolist()
                attention = None
                if hyps.attention is not None:
                    attention = hyps.attention[j, rank, :n, : len(src[i])].tolist()
                out[i].append(
                    Translation(
                        text=texts_out[j],
                        score=float(hyps.score[j, rank]),
                        tokens=tok.tgt_pieces([t for t in ids_out if t != EOS_ID]),
                        token_scores=hyps.token_scores[j, rank, :n].tolist(),
                        attention=attention,
                    )
                )
    return out


def translate(model: Seq2SeqNet, lines: list[str], beam: int = 1, max_tokens: int = 4096) -> list[str]:
    """The best translation of each line (an empty string for an empty line)."""
    results = translate_full(model, lines, beam, 1, None, max_tokens, attention=False)
    return [hyps[0].text if hyps else "" for hyps in results]


def alignment(attention: list[list[float]] | None) -> str:
    """Pharaoh-style ``src-tgt`` pairs: each target subword aligned to its most attended source subword."""
    if not attention:
        return ""
    return " ".join(f"{max(range(len(row)), key=row.__getitem__)}-{t}" for t, row in enumerate(attention))


def _format(args, source: str, hyps: list[Translation]) -> list[str]:
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


PRECISIONS = {"32": None, "fp32": None, "bf16": torch.bfloat16, "16": torch.float16, "fp16": torch.float16}


def autocast(device_type: str, precision: str) -> torch.autocast:
    """The autocast context of ``--precision`` (``32``: none)."""
    dtype = PRECISIONS[precision]
    return torch.autocast(device_type, dtype=dtype, enabled=dtype is not None)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="nmt translate",
        description="Translate text with an nmt checkpoint: one output line per input line (text format).",
    )
    parser.add_argument("--ckpt", required=True, help="checkpoint written by `nmt fit`")
    parser.add_argument("--input", "-i", default="-", help="source file, one sentence a line (default: stdin)")
    parser.add_argument("--output", "-o", default="-", help="output file (default: stdout)")
    parser.add_argument("--beam", type=int, default=1, help="beam size (1 = greedy)")
    parser.add_argument("--nbest", type=int, default=1, help="hypotheses per input (<= beam); text: N lines each")
    parser.add_argument("--length-penalty", type=float, default=None, help="GNMT alpha (default: the model's, 1.0)")
    parser.add_argument("--max-tokens", type=int, default=4096, help="source tokens per batch")
    parser.add_argument("--scores", action="store_true", help="text format: add a TAB column with the score")
    parser.add_argument("--alignments", action="store_true", help="add src-tgt subword alignments from attention")
    parser.add_argument("--format", choices=["text", "jsonl"], default="text", help="jsonl: one JSON object a line")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", choices=sorted(PRECISIONS), default="32", help="autocast dtype")
    args = parser.parse_args(argv)
    if not 1 <= args.nbest <= args.beam:
        raise NmtError(f"--nbest must be between 1 and --beam ({args.beam}), got {args.nbest}.")
    device = _device(args.device)
    model = load_model(args.ckpt, device)
    if args.input == "-":
        lines = sys.stdin.read().splitlines()
    else:
        lines = read_lines(Path(args.input))
    with autocast(device.type, args.precision):
        results = translate_full(
            model, lines, args.beam, args.nbest, args.length_penalty, args.max_tokens, attention=args.alignments
        )
    text = "".join(line + "\n" for src, hyps in zip(lines, results) for line in _format(args, src, hyps))
    if args.output == "-":
        sys.stdout.write(text)
        return
    try:
        Path(args.output).write_text(text, encoding="utf-8")
    except OSError as err:
        raise NmtError(f"Cannot write {args.output}: {err.strerror}. Choose a writable path.") from None


def _device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except RuntimeError:
        raise NmtError(f"--device '{name}' is not a device name; use cpu, cuda or cuda:N.") from None
    if device.type == "cuda" and (not torch.cuda.is_available() or (device.index or 0) >= torch.cuda.device_count()):
        raise NmtError(
            f"--device {name}: no such CUDA device here ({torch.cuda.device_count()} found). Use --device cpu."
        )
    return device
