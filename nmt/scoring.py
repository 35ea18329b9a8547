"""Teacher forcing through the search interface, and the log-probabilities of given targets (``nmt score``).

Decoding a given target one step at a time with ``encode``/``decode_step`` (rather than ``forward``)
is the computation the search does, so a hypothesis scores here exactly what the search gave it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from nmt.data.batching import TokenBudgetBatchSampler, pad
from nmt.networks.base import Seq2SeqNet


@dataclass
class ForcedBatch:
    """One batch decoded under teacher forcing: ``rows`` of the input, labels (b, T), the log-probabilities
    of every step (b, T, V) and the attention (b, T, S) or None."""

    rows: list[int]
    labels: torch.Tensor
    log_probs: torch.Tensor
    attention: torch.Tensor | None


def pairs_by_length(net: Seq2SeqNet, src: list[list[int]], tgt: list[list[int]],
                    max_tokens: int) -> Iterator[tuple[list[int], torch.Tensor, torch.Tensor]]:  # fmt: skip
    """``src`` ids (ending with EOS) and ``tgt`` ids (BOS ... EOS) in batches by length within ``max_tokens``:
    rows, padded sources (b, S) and padded targets (b, T) on the network's device."""
    for rows in TokenBudgetBatchSampler([len(s) for s in src], max_tokens, shuffle=False):
        s = pad([src[i] for i in rows], net.pad_id).to(net.device)
        yield rows, s, pad([tgt[i] for i in rows], net.pad_id).to(net.device)


@torch.inference_mode()
def teacher_forcing(net: Seq2SeqNet, src: list[list[int]], tgt: list[list[int]],
                    max_tokens: int = 4096) -> Iterator[ForcedBatch]:  # fmt: skip
    """``src`` ids (ending with EOS) and ``tgt`` ids (BOS ... EOS), batched by length."""
    for rows, s, t in pairs_by_length(net, src, tgt, max_tokens):
        state = net.encode(s, s != net.pad_id, attention=True)
        log_probs, attention = [], []
        for step in range(t.size(1) - 1):
            lp, state, attn = net.decode_step(t[:, step], state)
            log_probs.append(lp.float())
            attention.append(attn)
        weights = None if attention[0] is None else torch.stack(attention, 1).float()
        yield ForcedBatch(rows, t[:, 1:], torch.stack(log_probs, 1), weights)


def token_log_probs(net: Seq2SeqNet, src: list[list[int]], tgt: list[list[int]],
                    max_tokens: int = 4096) -> list[list[float]]:  # fmt: skip
    """The log-probability of each target token (and of EOS, last) given its source, per pair: ``src`` ids
    ending with EOS, ``tgt`` ids BOS ... EOS."""
    out: list[list[float]] = [[] for _ in src]
    for batch in teacher_forcing(net, src, tgt, max_tokens):
        picked = batch.log_probs.gather(-1, batch.labels.unsqueeze(-1)).squeeze(-1).cpu()
        for j, i in enumerate(batch.rows):
            out[i] = picked[j, : len(tgt[i]) - 1].tolist()
    return out
