"""``nmt plot-attention``: translate one sentence and draw the attention behind it."""

from __future__ import annotations

import argparse
import logging

import matplotlib.pyplot as plt

from nmt.checkpoint import load_network
from nmt.errors import NmtError
from nmt.hardware import parse_device
from nmt.plotting import translation_figure

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="nmt plot-attention", description="Plot the attention of one translation.")
    parser.add_argument("--ckpt", required=True)
    parser.add_argument("--text", required=True, help="source sentence")
    parser.add_argument("--out", required=True, help="image file (.png, .pdf, .svg)")
    parser.add_argument("--beam", type=int, default=1)
    parser.add_argument("--layer", type=int, default=None, help="Transformer decoder layer (default: the last, -1)")
    parser.add_argument("--head", type=int, default=None, help="Transformer head (default: average over heads)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    model = load_network(args.ckpt, parse_device(args.device))
    if args.layer is not None or args.head is not None:
        if not hasattr(model, "select_attention"):
            raise NmtError(f"--layer/--head apply to the Transformer; {type(model).__name__} has one attention.")
        try:
            model.select_attention(args.layer, args.head)
        except ValueError as err:
            raise NmtError(f"{err}.") from None
    try:
        fig, translation = translation_figure(model, args.text, args.beam)
    except ValueError as err:
        raise NmtError(str(err)) from None
    try:
        fig.savefig(args.out, dpi=120)
    except OSError as err:
        raise NmtError(f"Cannot write {args.out}: {err.strerror}. Choose a writable path.") from None
    plt.close("all")
    print(translation)
    log.info("wrote %s", args.out)
