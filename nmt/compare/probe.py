"""What ``nmt compare`` asks of a trained network: its attention and token probabilities on the
references (teacher forcing), and how strongly its last output depends on each source word.

Both go through the interface every network has (``encode``/``decode_step``, ``forward``), so they
work for any architecture; a network without attention (the GRU) gives no attention.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from nmt.data.batching import Batch, TokenBudgetBatchSampler
from nmt.networks.base import Seq2SeqNet
from nmt.scoring import teacher_forcing


@dataclass
class Forced:
    """One reference decoded under teacher forcing. Rows are the target pieces and then EOS."""

    confidence: np.ndarray  # (T,) the model's highest probability at each step
    correct: np.ndarray  # (T,) whether that most probable token is the reference's
    attention: np.ndarray | None  # (T, S) over the source pieces and EOS, or None without attention


def _batches(src: list[list[int]], max_tokens: int) -> TokenBudgetBatchSampler:
    return TokenBudgetBatchSampler([len(s) for s in src], max_tokens, shuffle=False)


def teacher_forced(net: Seq2SeqNet, src: list[list[int]], tgt: list[list[int]], max_tokens: int = 4096) -> list[Forced]:
    """``src`` ids (ending with EOS) and ``tgt`` ids (BOS ... EOS) -> one :class:`Forced` per pair, in order."""
    out: list[Forced | None] = [None] * len(src)
    for batch in teacher_forcing(net, src, tgt, max_tokens):
        top, which = batch.log_probs.max(-1)
        best, correct = top.exp().cpu().numpy(), (which == batch.labels).cpu().numpy()
        weights = None if batch.attention is None else batch.attention.cpu().numpy()
        for j, i in enumerate(batch.rows):
            n, m = len(tgt[i]) - 1, len(src[i])
            out[i] = Forced(best[j, :n], correct[j, :n], None if weights is None else weights[j, :n, :m])
    return out


def gradient_by_distance(net: Seq2SeqNet, src: list[list[int]], tgt: list[list[int]], max_tokens: int = 2048,
                         min_sentences: int = 5) -> list[float]:  # fmt: skip
    """The norm of the gradient of log p(last target word | ...) with respect to each source embedding,
    averaged over sentences, by distance from the end of the source (0: the last word before EOS).
    Distances reached by fewer than ``min_sentences`` sentences are left out (noise)."""
    sums: dict[int, float] = {}
    counts: dict[int, int] = {}
    captured: list[torch.Tensor] = []

    def keep_first(module, inputs, output):  # the source embedding: the first call of a forward pass
        if not captured:
            output.retain_grad()
            captured.append(output)

    was_training = net.training
    net.eval()  # no dropout: the same function for every sentence
    handle = net.src_embed.register_forward_hook(keep_first)
    try:
        for rows in _batches(src, max_tokens):
            captured.clear()
            batch = Batch.collate([(i, src[i], tgt[i]) for i in rows], net.pad_id).to(net.device)
            with torch.enable_grad():
                log_probs = torch.log_softmax(net(batch).float(), -1)  # (B, T, V)
                last = batch.tgt_mask.sum(1) - 2  # the last word's position (before EOS)
                picked = log_probs[torch.arange(len(rows)), last, batch.tgt_out[torch.arange(len(rows)), last]]
                net.zero_grad(set_to_none=True)
                picked.sum().backward()
            norms = captured[0].grad.norm(dim=-1).cpu().numpy()  # (B, S)
            for j, i in enumerate(rows):
                words = len(src[i]) - 1  # without EOS
                for position in range(words):
                    distance = words - 1 - position
                    sums[distance] = sums.get(distance, 0.0) + float(norms[j, position])
                    counts[distance] = counts.get(distance, 0) + 1
    finally:
        handle.remove()
        net.zero_grad(set_to_none=True)
        net.train(was_training)
    reach = [d for d in sorted(counts) if counts[d] >= min_sentences]
    return [sums[d] / counts[d] for d in range(max(reach) + 1)] if reach else []
