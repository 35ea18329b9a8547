"""Load a self-contained checkpoint safely and translate text with it.

``nmt translate --ckpt C < src > hyp`` and ``scripts/translate.py`` both call :func:`main`.
One output line per input line, always: an empty input line gives an empty output line.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pickle
import sys
import zipfile
from pathlib import Path

import torch

from nmt.data.batching import TokenBudgetBatchSampler, pad
from nmt.data.corpus import normalize
from nmt.data.tokenizer import Tokenizer
from nmt.errors import NmtError
from nmt.models.base import Seq2SeqSystem

log = logging.getLogger(__name__)


def _model_class(name: str) -> type[Seq2SeqSystem]:
    module, _, attr = name.rpartition(".")
    cls = getattr(importlib.import_module(module), attr, None) if module.startswith("nmt.") else None
    if not (isinstance(cls, type) and issubclass(cls, Seq2SeqSystem)):
        raise NmtError(f"The checkpoint names an unknown model class '{name}'; it was not written by this nmt.")
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


def load_model(path: str | Path, device: str = "cpu") -> Seq2SeqSystem:
    """A ready-to-translate model (eval mode, on ``device``) from a checkpoint alone."""
    ckpt = read_checkpoint(path)
    meta = ckpt.get("nmt") if isinstance(ckpt, dict) else None
    if not meta or "state_dict" not in ckpt:
        raise NmtError(f"{path} is not an nmt checkpoint (no model class or tokenizer inside).")
    cls = _model_class(meta["model_class"])
    hparams = {k: v for k, v in ckpt.get("hyper_parameters", {}).items() if not k.startswith("_")}
    model = cls(**hparams)
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as err:
        raise NmtError(f"{path}: the weights do not fit a {cls.__name__} with its own settings ({err}).") from None
    model.tokenizer = Tokenizer.from_dict(meta["tokenizer"], origin=str(path))
    return model.eval().to(device)


def translate(model: Seq2SeqSystem, lines: list[str], max_tokens: int = 4096) -> list[str]:
    """Translate ``lines`` in batches sorted by length; results come back in input order."""
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
    out = [""] * len(lines)
    todo = [i for i, t in enumerate(texts) if t]
    sampler = TokenBudgetBatchSampler([len(src[i]) for i in todo], max_tokens, shuffle=False)
    device = model.device
    for batch in sampler:
        rows = [todo[j] for j in batch]
        ids = pad([src[i] for i in rows]).to(device)
        hyps = model.translate_batch(ids, ids != 0)
        for i, text in zip(rows, tok.decode_tgt(hyps.token_lists())):
            out[i] = text
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="nmt translate", description="Translate text with an nmt checkpoint.")
    parser.add_argument("--ckpt", required=True, help="checkpoint written by `nmt fit`")
    parser.add_argument("--input", "-i", default="-", help="source file, one sentence a line (default: stdin)")
    parser.add_argument("--output", "-o", default="-", help="output file (default: stdout)")
    parser.add_argument("--max-tokens", type=int, default=4096, help="source tokens per batch")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    model = load_model(args.ckpt, args.device)
    if args.input == "-":
        lines = sys.stdin.read().splitlines()
    else:
        from nmt.data.corpus import read_lines

        lines = read_lines(Path(args.input))
    hyps = translate(model, lines, args.max_tokens)
    text = "".join(h + "\n" for h in hyps)
    if args.output == "-":
        sys.stdout.write(text)
    else:
        try:
            Path(args.output).write_text(text, encoding="utf-8")
        except OSError as err:
            raise NmtError(f"Cannot write {args.output}: {err.strerror}. Choose a writable path.") from None
