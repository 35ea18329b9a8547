"""``nmt plot-attention``: translate one sentence and draw the attention behind it."""

from __future__ import annotations

import argparse
import logging

import matplotlib.pyplot as plt

from nmt.engines import DecodeOptions
from nmt.engines.native import NmtEngine
from nmt.errors import NmtError
from nmt.hardware import parse_device
from nmt.networks import loading
from nmt.plotting import attention_figure

log = logging.getLogger(__name__)


def translation_figure(net, tok, text: str, beam: int = 1):
    """Translate ``text`` with ``net`` and its tokenizer ``tok`` and plot the attention behind it.
    -> (figure, translation)."""
    hyps = NmtEngine(net, tok).translate([text], DecodeOptions(beam=beam, attention=True))[0]
    if not hyps:
        raise ValueError("nothing to translate: the text is empty")
    best = hyps[0]
    if best.attention is None:
        raise ValueError(f"{type(net).__name__} has no attention to plot (it encodes the source into one vector)")
    src_tokens = tok.src_pieces(tok.encode_src([text])[0][: len(best.attention[0])])
    tgt_tokens = (best.tokens + ["</s>"])[: len(best.attention)]
    return attention_figure(best.attention, src_tokens, tgt_tokens, best.text), best.text


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
    model = loading.load(args.ckpt, parse_device(args.device))
    net = model.net
    if args.layer is not None or args.head is not None:
        if not hasattr(net, "select_attention"):
            raise NmtError(f"--layer/--head apply to the Transformer; {type(net).__name__} has one attention.")
        try:
            net.select_attention(args.layer, args.head)
        except ValueError as err:
            raise NmtError(f"{err}.") from None
    try:
        fig, translation = translation_figure(net, model.tokenizer, args.text, args.beam)
    except ValueError as err:
        raise NmtError(str(err)) from None
    try:
        fig.savefig(args.out, dpi=120)
    except OSError as err:
        raise NmtError(f"Cannot write {args.out}: {err.strerror}. Choose a writable path.") from None
    plt.close("all")
    print(translation)
    log.info("wrote %s", args.out)
