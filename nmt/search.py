"""Greedy and batched beam search, written once for every model.

A model provides ``encode(src, src_mask) -> state``, ``decode_step(prev (B,), state) ->
(log_probs (B, V), state, attention (B, S) | None)`` and ``reorder_state(state, index)``.
Nothing here asks which architecture it holds; the whole batch moves together (no Python
loop over sentences).

Length penalty (Wu et al. 2016, GNMT): a finished hypothesis y is ranked by
``log P(y | x) / lp(y)`` with ``lp(y) = ((5 + |y|) / 6) ** alpha`` (|y| counts EOS).
``alpha = 0`` ranks by raw log-probability, which favours short outputs; ``alpha > 0``
(1.0 by default) offsets that and favours longer outputs as it grows; ``alpha < 0`` favours
shorter ones still.

Stopping: only EOS candidates that rank among the top ``beam`` of a step are finished
(fairseq's rule); a sentence is done once it holds ``nbest`` finished hypotheses and the best
open one, normalised at its current length, scores below the worst of them (Hugging Face's
``early_stopping=False`` rule). Every hypothesis ends at ``max_len_a * source_length +
max_len_b`` tokens. With ``beam=1`` this is exactly greedy search.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from nmt.data.tokenizer import BOS_ID, EOS_ID, PAD_ID

NEG_INF = float("-inf")


@dataclass
class Hypotheses:
    """Search output for B sentences with N hypotheses each (best first).

    ``tokens`` (B, N, T): output ids, EOS kept where generated, PAD after it.
    ``token_scores`` (B, N, T): log-probability of each token (0 at padding).
    ``score`` (B, N): sum of token scores divided by the length penalty (greedy: alpha = 0).
    ``attention`` (B, N, T, S): attention over the source used for each output token, or None.
    """

    tokens: torch.Tensor
    token_scores: torch.Tensor
    score: torch.Tensor
    attention: torch.Tensor | None

    def token_lists(self, rank: int = 0) -> list[list[int]]:
        """Output ids of the ``rank``-th hypothesis of each sentence, without EOS and padding."""
        out = []
        for row in self.tokens[:, rank].tolist():
            out.append(row[: row.index(EOS_ID)] if EOS_ID in row else [t for t in row if t != PAD_ID])
        return out

    def lengths(self) -> torch.Tensor:
        """(B, N) tokens up to and including EOS."""
        return (self.tokens != PAD_ID).sum(-1)


def max_lengths(src_mask: torch.Tensor, a: float, b: int) -> torch.Tensor:
    """Output length limit per sentence, ``a * source_length + b`` (B,)."""
    return (src_mask.sum(1).float() * a + b).long().clamp(min=1)


def length_penalty(length: torch.Tensor, alpha: float) -> torch.Tensor:
    return ((5.0 + length.float()) / 6.0) ** alpha


@torch.inference_mode()
def greedy(model, src: torch.Tensor, src_mask: torch.Tensor, max_len_a: float = 1.5, max_len_b: int = 10) -> Hypotheses:
    """The most probable token at each step, for the whole batch at once (scores: alpha = 0)."""
    batch = src.size(0)
    limit = max_lengths(src_mask, max_len_a, max_len_b)
    state = model.encode(src, src_mask)
    prev = torch.full((batch,), BOS_ID, dtype=torch.long, device=src.device)
    finished = torch.zeros(batch, dtype=torch.bool, device=src.device)
    tokens, scores, attentions = [], [], []
    for t in range(int(limit.max()) + 1):
        log_probs, state, attn = model.decode_step(prev, state)  # (B, V), (B, S)
        log_probs = log_probs.float()
        log_probs[:, PAD_ID] = NEG_INF
        log_probs[:, BOS_ID] = NEG_INF
        step_score, nxt = log_probs.max(-1)
        at_limit = limit <= t  # forced EOS at the length limit
        nxt = torch.where(at_limit, torch.full_like(nxt, EOS_ID), nxt)
        step_score = torch.where(at_limit, log_probs[:, EOS_ID], step_score)
        nxt = nxt.masked_fill(finished, PAD_ID)
        tokens.append(nxt)
        scores.append(step_score.masked_fill(finished, 0.0))
        if attn is not None:
            attentions.append(attn.float().masked_fill(finished[:, None], 0.0))
        finished |= nxt == EOS_ID
        prev = nxt
        if bool(finished.all()):
            break
    token_scores = torch.stack(scores, 1)[:, None]  # (B, 1, T)
    return Hypotheses(
        tokens=torch.stack(tokens, 1)[:, None],
        token_scores=token_scores,
        score=token_scores.sum(-1),
        attention=torch.stack(attentions, 1)[:, None] if attentions else None,
    )


def _extend(history: torch.Tensor, flat: torch.Tensor, t: int, value: torch.Tensor) -> torch.Tensor:
    """Histories (B, K, T, ...) of the rows ``flat`` (B * C,) extend, with ``value`` (B, C, ...) at step t."""
    B = history.size(0)
    out = history.flatten(0, 1)[flat].view(B, -1, *history.shape[2:])
    out[:, :, t] = value
    return out


@torch.inference_mode()
def beam_search(
    model,
    src: torch.Tensor,  # (B, S)
    src_mask: torch.Tensor,  # (B, S)
    beam: int = 5,
    nbest: int = 1,
    alpha: float = 1.0,
    max_len_a: float = 1.5,
    max_len_b: int = 10,
) -> Hypotheses:
    """Batched beam search; see the module docstring for scoring and stopping."""
    if not 1 <= nbest <= beam:
        raise ValueError(f"nbest must be between 1 and beam={beam}, got {nbest}")
    device, B, K, S = src.device, src.size(0), beam, src.size(1)
    limit = max_lengths(src_mask, max_len_a, max_len_b)  # (B,)
    steps = int(limit.max()) + 1
    rows = torch.arange(B, device=device)

    state = model.encode(src, src_mask)
    state = model.reorder_state(state, rows.repeat_interleave(K))  # B*K rows
    scores = torch.full((B, K), NEG_INF, device=device)
    scores[:, 0] = 0.0  # one live hypothesis per sentence to start with
    alive_tokens = torch.full((B, K, steps), PAD_ID, dtype=torch.long, device=device)
    alive_tok_scores = torch.zeros(B, K, steps, device=device)
    alive_attn: torch.Tensor | None = None
    fin_tokens = torch.full((B, nbest, steps), PAD_ID, dtype=torch.long, device=device)
    fin_tok_scores = torch.zeros(B, nbest, steps, device=device)
    fin_attn: torch.Tensor | None = None
    fin_scores = torch.full((B, nbest), NEG_INF, device=device)
    done = torch.zeros(B, dtype=torch.bool, device=device)
    prev = torch.full((B * K,), BOS_ID, dtype=torch.long, device=device)

    for t in range(steps):
        log_probs, state, attn = model.decode_step(prev, state)  # (B*K, V), (B*K, S)
        log_probs = log_probs.float().view(B, K, -1)
        V = log_probs.size(-1)
        at_limit = (limit <= t)[:, None, None]  # forced EOS at the length limit
        eos_only = torch.full_like(log_probs, NEG_INF)
        eos_only[..., EOS_ID] = log_probs[..., EOS_ID]
        log_probs = torch.where(at_limit, eos_only, log_probs)
        log_probs[..., PAD_ID] = NEG_INF
        log_probs[..., BOS_ID] = NEG_INF

        cand = (scores.unsqueeze(-1) + log_probs).view(B, K * V)
        cand_scores, cand_idx = cand.topk(min(2 * K, K * V), dim=1)  # (B, 2K), best first
        cand_beam, cand_tok = cand_idx // V, cand_idx % V
        cand_step = cand_scores - scores.gather(1, cand_beam)  # this token's log-probability
        flat = (rows[:, None] * K + cand_beam).view(-1)  # rows of B*K the candidates extend

        cand_tokens = _extend(alive_tokens, flat, t, cand_tok)
        cand_tok_scores = _extend(alive_tok_scores, flat, t, cand_step)
        cand_attn = None
        if attn is not None:
            if alive_attn is None:
                alive_attn = torch.zeros(B, K, steps, S, device=device)
                fin_attn = torch.zeros(B, nbest, steps, S, device=device)
            cand_attn = _extend(alive_attn, flat, t, attn.float().view(B, K, S)[rows[:, None], cand_beam])

        # Finish EOS candidates that rank among the top K (and are real, of sentences not done).
        is_eos = cand_tok == EOS_ID
        finishing = is_eos & (torch.arange(cand_tok.size(1), device=device) < K) & ~done[:, None]
        finishing &= cand_scores > NEG_INF
        normed = cand_scores / length_penalty(torch.full_like(cand_scores, t + 1), alpha)
        pool = torch.cat([fin_scores, normed.masked_fill(~finishing, NEG_INF)], dim=1)
        fin_scores, pick = pool.topk(nbest, dim=1)
        fin_tokens = torch.cat([fin_tokens, cand_tokens], 1).gather(1, pick[..., None].expand(-1, -1, steps))
        fin_tok_scores = torch.cat([fin_tok_scores, cand_tok_scores], 1).gather(
            1, pick[..., None].expand(-1, -1, steps)
        )
        if cand_attn is not None:
            index = pick[..., None, None].expand(-1, -1, steps, S)
            fin_attn = torch.cat([fin_attn, cand_attn], 1).gather(1, index)

        # The best K candidates that did not end become the open hypotheses.
        open_scores = cand_scores.masked_fill(is_eos, NEG_INF)
        scores, keep = open_scores.topk(K, dim=1)  # (B, K)
        alive_tokens = cand_tokens.gather(1, keep[..., None].expand(-1, -1, steps))
        alive_tok_scores = cand_tok_scores.gather(1, keep[..., None].expand(-1, -1, steps))
        if cand_attn is not None:
            alive_attn = cand_attn.gather(1, keep[..., None, None].expand(-1, -1, steps, S))
        prev = alive_tokens[:, :, t].reshape(-1)

        best_open = scores[:, 0] / length_penalty(torch.full_like(scores[:, 0], t + 1), alpha)
        done |= (fin_scores[:, -1] > NEG_INF) & (best_open < fin_scores[:, -1])
        done |= scores[:, 0] == NEG_INF  # nothing open is left
        if bool(done.all()):
            break
        scores = scores.masked_fill(done[:, None], NEG_INF)
        state = model.reorder_state(state, (rows[:, None] * K + cand_beam.gather(1, keep)).view(-1))

    length = int((fin_tokens != PAD_ID).sum(-1).max())
    return Hypotheses(
        tokens=fin_tokens[..., :length],
        token_scores=fin_tok_scores[..., :length],
        score=fin_scores,
        attention=None if fin_attn is None else fin_attn[:, :, :length],
    )
