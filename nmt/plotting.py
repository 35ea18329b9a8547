"""Attention-alignment heatmaps (``nmt plot-attention``, the training samples, ``nmt compare``).

Source subwords run along the x axis, target subwords down the y axis; cell (t, s) is the
attention the model paid to source token s while producing target token t. For the
Transformer this is one decoder layer's cross-attention (the last by default, ``--layer``),
averaged over heads unless ``--head`` picks one.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
from matplotlib.figure import Figure  # noqa: E402


def attention_figure(attention: list[list[float]], src_tokens: list[str], tgt_tokens: list[str],
                     title: str = "") -> Figure:  # fmt: skip
    """Heatmap of ``attention`` (len(tgt_tokens) x len(src_tokens)), sized to stay readable at 40+ tokens."""
    rows, cols = len(tgt_tokens), len(src_tokens)
    if len(attention) != rows or any(len(r) != cols for r in attention):
        raise ValueError(f"attention is not {rows} x {cols}")
    fig = Figure(figsize=(max(4.0, 0.32 * cols + 2.0), max(3.0, 0.3 * rows + 1.8)), dpi=100)
    ax = fig.add_subplot()
    image = ax.imshow(attention, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto", interpolation="nearest")
    ax.set_xticks(range(cols), labels=src_tokens, rotation=90, fontsize=8)
    ax.set_yticks(range(rows), labels=tgt_tokens, fontsize=8)
    ax.set_xlabel("source")
    ax.set_ylabel("target")
    if title:
        ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.03, pad=0.02)
    fig.tight_layout()
    return fig
