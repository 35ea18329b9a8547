"""Search, written once for every model against the interface of DESIGN.md.

A model provides ``encode(src, src_mask) -> state``, ``decode_step(prev (B,), state) ->
(log_probs (B, V), state, attention (B, S) | None)`` and ``reorder_state(state, index)``.
Nothing here asks which architecture it holds.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from nmt.data.tokenizer import BOS_ID, EOS_ID, PAD_ID


@dataclass
class Hypotheses:
    """Search output for a batch of B sentences.

    ``tokens`` (B, T) is padded with PAD after EOS (EOS itself kept when generated);
    ``token_scores`` (B, T) are per-token log-probabilities (0 at padding); ``score`` (B,)
    is their sum; ``attention`` (B, T, S) holds the attention used for each output token
    (or None when the model has none).
    """

    tokens: torch.Tensor
    token_scores: torch.Tensor
    score: torch.Tensor
    attention: torch.Tensor | None

    def token_lists(self) -> list[list[int]]:
        """Output ids per sentence, EOS and padding stripped."""
        out = []
        for row in self.tokens.tolist():
            out.append(row[: row.index(EOS_ID)] if EOS_ID in row else [t for t in row if t != PAD_ID])
        return out


def max_lengths(src_mask: torch.Tensor, a: float, b: int) -> torch.Tensor:
    """Output length limit per sentence, ``a * source_length + b`` (B,)."""
    return (src_mask.sum(1).float() * a + b).long().clamp(min=1)


@torch.inference_mode()
def greedy(model, src: torch.Tensor, src_mask: torch.Tensor, max_len_a: float = 1.5, max_len_b: int = 10) -> Hypotheses:
    """Pick the most probable token at each step, for the whole batch at once."""
    batch = src.size(0)
    limit = max_lengths(src_mask, max_len_a, max_len_b)
    state = model.encode(src, src_mask)
    prev = torch.full((batch,), BOS_ID, dtype=torch.long, device=src.device)
    finished = torch.zeros(batch, dtype=torch.bool, device=src.device)
    tokens, scores, attentions = [], [], []
    for t in range(int(limit.max())):
        log_probs, state, attn = model.decode_step(prev, state)  # (B, V), (B, S)
        step_score, nxt = log_probs.float().max(-1)
        nxt = torch.where(limit <= t, torch.full_like(nxt, EOS_ID), nxt)  # forced stop at the limit
        nxt = nxt.masked_fill(finished, PAD_ID)
        tokens.append(nxt)
        scores.append(step_score.masked_fill(finished, 0.0))
        if attn is not None:
            attentions.append(attn.float().masked_fill(finished[:, None], 0.0))
        finished |= nxt == EOS_ID
        prev = nxt
        if bool(finished.all()):
            break
    token_scores = torch.stack(scores, 1)
    return Hypotheses(
        tokens=torch.stack(tokens, 1),
        token_scores=token_scores,
        score=token_scores.sum(1),
        attention=torch.stack(attentions, 1) if attentions else None,
    )
