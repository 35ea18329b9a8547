"""``nmt export``: a Transformer checkpoint as a CTranslate2 model folder (optionally quantized) or a Hugging Face
folder (``--format huggingface``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from nmt.errors import NmtError
from nmt.export import QUANTIZATIONS, export_ctranslate2
from nmt.files import check_destination
from nmt.networks import loading


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="nmt export",
        description="Export a Transformer checkpoint for CTranslate2 (pip install 'nmt[export]'; the folder "
        "translates with `nmt translate --engine ctranslate2 --ckpt DIR` and serves with `nmt serve`) or as a "
        "Hugging Face folder (--format huggingface, pip install 'nmt[hf]') that pipeline('translation') loads.",
    )
    parser.add_argument("--ckpt", required=True, help="checkpoint written by `nmt fit`")
    parser.add_argument("--format", choices=["ctranslate2", "huggingface"], default="ctranslate2")
    parser.add_argument("--out", required=True, type=Path,
                        help="folder to write; an earlier export there is replaced once the new one is "
                        "complete")  # fmt: skip
    parser.add_argument("--force", action="store_true", help="replace an --out folder that holds other files")
    parser.add_argument("--quantization", choices=QUANTIZATIONS, default=None,
                        help="weight type: int8 for fast CPU inference, float16/bfloat16 for GPUs "
                        "(default: float32)")  # fmt: skip
    args = parser.parse_args(argv)
    if args.format == "huggingface" and args.quantization:
        raise NmtError("--quantization is CTranslate2's; a Hugging Face export keeps float32 weights.")
    check_destination(args.out, args.force, keep=[Path(args.ckpt)])
    model = loading.load(args.ckpt)
    if args.format == "huggingface":
        from nmt.hf.exporting import export_huggingface

        kind = export_huggingface(model.net, model.tokenizer, args.out, str(args.ckpt))
        print(f"exported {args.ckpt} to {args.out} ({'MarianMT' if kind == 'marian' else 'M2M100'})")
        return
    out = export_ctranslate2(model.net, model.tokenizer, args.out, args.quantization, model.checkpoint.step,
                             model.checkpoint.languages)  # fmt: skip
    print(f"exported {args.ckpt} to {out} ({args.quantization or 'float32'})")
