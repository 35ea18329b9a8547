"""Greedy and batched beam search, written once for every model.

A model provides ``encode(src, src_mask) -> state`` and ``decode_step(prev (R,), state) ->
(log_probs (R, V), state, attention (R, S) | None)``, and its search defaults (``max_len_a``,
``max_len_b``, ``length_penalty``) and special ids (``pad_id``, ``bos_id``: the decoder's first input,
``eos_id``); the state (:class:`~nmt.networks.state.DecoderState`) provides
``expand(beam)`` and ``reorder(index)``. The search sits above the networks and imports none of them.
Nothing here asks which architecture it holds; the whole batch moves together (no Python
loop over sentences).

Length penalty (Wu et al. 2016, GNMT): a finished hypothesis y is ranked by
``log P(y | x) / lp(y)`` with ``lp(y) = ((5 + |y|) / 6) ** alpha`` (|y| counts EOS).
``alpha = 0`` ranks by raw log-probability, which favours short outputs; ``alpha > 0``
(1.0 by default) offsets that and favours longer outputs as it grows; ``alpha < 0`` favours
shorter ones still.

Stopping (fairseq's and CTranslate2's rule): only EOS candidates that rank among the top ``beam``
of a step are finished, and a sentence is done once it holds ``beam`` finished hypotheses; the
``nbest`` best of them are its result. (Stopping as soon as the best open hypothesis, normalised at
its current length, falls below the finished ones is a search error when ``alpha > 0``: a longer
hypothesis divides by a larger penalty and can still overtake them.) Every hypothesis ends at
``max_len_a * source_length + max_len_b`` tokens. With ``beam=1`` this is exactly greedy search.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from nmt.data.tokenizer import EOS_ID, PAD_ID

NEG_INF = float("-inf")


@dataclass
class Hypotheses:
    """Search output for B sentences with N hypotheses each (best first).

    ``tokens`` (B, N, T): output ids, EOS kept where generated, PAD after it.
    ``token_scores`` (B, N, T): log-probability of each token (0 at padding).
    ``score`` (B, N): sum of token scores divided by the length penalty (greedy: alpha = 0).
    ``attention`` (B, N, T, S): attention over the source used for each output token, or None.
    ``pad``, ``eos``: the model's padding and end ids.
    """

    tokens: torch.Tensor
    token_scores: torch.Tensor
    score: torch.Tensor
    attention: torch.Tensor | None
    pad: int = PAD_ID
    eos: int = EOS_ID

    def token_lists(self, rank: int = 0) -> list[list[int]]:
        """Output ids of the ``rank``-th hypothesis of each sentence, without EOS and padding."""
        out = []
        for row in self.tokens[:, rank].tolist():
            out.append(row[: row.index(self.eos)] if self.eos in row else [t for t in row if t != self.pad])
        return out

    def lengths(self) -> torch.Tensor:
        """(B, N) tokens up to and including EOS."""
        return (self.tokens != self.pad).sum(-1)


def length_limits(source_lengths: torch.Tensor, a: float, b: int, most: int = 1 << 30) -> torch.Tensor:
    """Where an output is ended: after ``a * source_length + b`` tokens (EOS counted in the source), at least 1,
    and at most ``most - 1`` (the model's ``max_target_positions``: with EOS, its whole position table).
    The one rule every engine follows."""
    return (source_lengths.float() * a + b).long().clamp(min=1, max=most - 1)


def max_lengths(src_mask: torch.Tensor, a: float, b: int, most: int = 1 << 30) -> torch.Tensor:
    """:func:`length_limits` of a padded batch (B,)."""
    return length_limits(src_mask.sum(1), a, b, most)


def length_penalty(length: torch.Tensor, alpha: float) -> torch.Tensor:
    return ((5.0 + length.float()) / 6.0) ** alpha


def prefix_lengths(prefix: torch.Tensor | None, rows: int, device, pad: int = PAD_ID) -> torch.Tensor:
    """Tokens of each row's forced prefix (0 without one)."""
    return torch.zeros(rows, dtype=torch.long, device=device) if prefix is None else (prefix != pad).sum(1)


def force_prefix(log_probs: torch.Tensor, prefix: torch.Tensor | None, t: int, pad: int = PAD_ID) -> torch.Tensor:
    """At step ``t``, rows whose prefix (R, P; ``pad`` after its end) is not over may take only its token
    (scored with its own log-probability); the other rows are left as they are."""
    if prefix is None or t >= prefix.size(1):
        return log_probs
    forced = prefix[:, t]
    active = forced != pad
    if not bool(active.any()):
        return log_probs
    only = torch.full_like(log_probs, NEG_INF).scatter_(1, forced[:, None], log_probs.gather(1, forced[:, None]))
    return torch.where(active[:, None], only, log_probs)


@dataclass
class Sampling:
    """How ``sample`` draws each token: from the ``topk`` most probable (0: all), within the smallest set
    whose probability reaches ``topp`` (1: all), with the log-probabilities divided by ``temperature``."""

    topk: int = 0
    topp: float = 1.0
    temperature: float = 1.0
    generator: torch.Generator | None = None

    def __call__(self, log_probs: torch.Tensor) -> torch.Tensor:
        """log_probs (R, V) -> the drawn token of each row (R,)."""
        logits = log_probs / self.temperature
        if self.topk:
            kth = logits.topk(min(self.topk, logits.size(-1)), dim=-1).values[:, -1:]
            logits = logits.masked_fill(logits < kth, NEG_INF)
        if self.topp < 1.0:
            ordered, order = logits.sort(-1, descending=True)
            mass = ordered.softmax(-1).cumsum(-1)
            drop = mass - ordered.softmax(-1) >= self.topp  # keep tokens until the mass before them reaches topp
            logits = logits.scatter(-1, order, ordered.masked_fill(drop, NEG_INF))
        return torch.multinomial(logits.softmax(-1), 1, generator=self.generator).squeeze(1)


def _row_by_row(model, src, src_mask, max_len_a, max_len_b, attention, prefix, choose) -> Hypotheses:
    """One hypothesis per source row, its token at each step chosen by ``choose(log_probs)`` (None: the most
    probable); a row leaves the batch at its EOS. Scores are the model's log-probabilities (alpha = 0)."""
    device, B, S = src.device, src.size(0), src.size(1)
    pad, bos, eos = model.pad_id, model.bos_id, model.eos_id
    most = getattr(model, "max_target_positions", 1 << 30)
    limit = torch.maximum(max_lengths(src_mask, max_len_a, max_len_b, most), prefix_lengths(prefix, B, device, pad))
    steps = int(limit.max()) + 1
    tokens = torch.full((B, steps), pad, dtype=torch.long, device=device)
    token_scores = torch.zeros(B, steps, device=device)
    out_attn: torch.Tensor | None = None
    ids = torch.arange(B, device=device)  # the sentences still decoding
    state = model.encode(src, src_mask, attention)
    prev = torch.full((B,), bos, dtype=torch.long, device=device)
    for t in range(steps):
        log_probs, state, attn = model.decode_step(prev, state)  # (b, V), (b, S)
        attn = attn if attention else None
        log_probs = log_probs.float()
        log_probs[:, pad] = NEG_INF
        log_probs[:, bos] = NEG_INF
        log_probs = force_prefix(log_probs, None if prefix is None else prefix[ids], t, pad)
        if choose is None:
            step_score, nxt = log_probs.max(-1)
        else:
            nxt = choose(log_probs)
            step_score = log_probs.gather(1, nxt[:, None]).squeeze(1)
        at_limit = limit <= t  # forced EOS at the length limit
        nxt = torch.where(at_limit, torch.full_like(nxt, eos), nxt)
        step_score = torch.where(at_limit, log_probs[:, eos], step_score)
        tokens[ids, t] = nxt
        token_scores[ids, t] = step_score
        if attn is not None:
            if out_attn is None:
                out_attn = torch.zeros(B, steps, S, device=device)
            out_attn[ids, t] = attn.float()
        going = nxt != eos
        if not bool(going.all()):
            if not bool(going.any()):
                break
            ids, limit, nxt = ids[going], limit[going], nxt[going]
            state = state.reorder(going.nonzero().squeeze(1))
        prev = nxt
    length = int((tokens != pad).sum(-1).max())
    token_scores = token_scores[:, None, :length]  # (B, 1, T)
    return Hypotheses(
        tokens=tokens[:, None, :length],
        token_scores=token_scores,
        score=token_scores.sum(-1),
        attention=None if out_attn is None else out_attn[:, None, :length],
        pad=pad,
        eos=eos,
    )


@torch.inference_mode()
def greedy(
    model,
    src: torch.Tensor,
    src_mask: torch.Tensor,
    max_len_a: float = 1.5,
    max_len_b: int = 10,
    attention: bool = True,
    prefix: torch.Tensor | None = None,
) -> Hypotheses:
    """The most probable token at each step (scores: alpha = 0); finished sentences leave the batch.

    ``attention=False``: the result has no attention (the model may skip computing it).
    ``prefix`` (B, P): target ids each output must start with (PAD after a shorter prefix), or None.
    """
    return _row_by_row(model, src, src_mask, max_len_a, max_len_b, attention, prefix, None)


@torch.inference_mode()
def sample(
    model,
    src: torch.Tensor,
    src_mask: torch.Tensor,
    sampling: Sampling,
    nbest: int = 1,
    max_len_a: float = 1.5,
    max_len_b: int = 10,
    attention: bool = True,
    prefix: torch.Tensor | None = None,
) -> Hypotheses:
    """``nbest`` random translations of each sentence, each token drawn by ``sampling`` (back-translation),
    best score first. Each sample is decoded as its own row, so the batch is ``nbest`` times larger."""
    rows = torch.arange(src.size(0), device=src.device).repeat_interleave(nbest)
    hyps = _row_by_row(model, src[rows], src_mask[rows], max_len_a, max_len_b, attention,
                       None if prefix is None else prefix[rows], sampling)  # fmt: skip
    B = src.size(0)
    order = hyps.score.view(B, nbest).argsort(-1, descending=True)  # (B, N)

    def per_sentence(x: torch.Tensor | None) -> torch.Tensor | None:
        if x is None:
            return None
        x = x.view(B, nbest, *x.shape[2:])
        return x.gather(1, order.view(B, nbest, *[1] * (x.dim() - 2)).expand_as(x))

    return Hypotheses(per_sentence(hyps.tokens), per_sentence(hyps.token_scores), per_sentence(hyps.score[:, :1]),
                      per_sentence(hyps.attention), hyps.pad, hyps.eos)  # fmt: skip


def _extend(history: torch.Tensor, flat: torch.Tensor, t: int, value: torch.Tensor) -> torch.Tensor:
    """Histories (B, K, T, ...) of the rows ``flat`` (B * C,) extend, with ``value`` (B, C, ...) at step t."""
    B = history.size(0)
    out = history.flatten(0, 1)[flat].view(B, -1, *history.shape[2:])
    out[:, :, t] = value
    return out


def _compact(keep: torch.Tensor, *tensors: torch.Tensor | None) -> list[torch.Tensor | None]:
    """The rows ``keep`` (a boolean mask over sentences) of each tensor (None stays None)."""
    return [None if x is None else x[keep] for x in tensors]


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
    attention: bool = True,
    prefix: torch.Tensor | None = None,
) -> Hypotheses:
    """Batched beam search; see the module docstring for scoring and stopping.

    ``attention=False``: the result has no attention (the model may skip computing it).
    ``prefix`` (B, P): target ids each output must start with (PAD after a shorter prefix), or None.

    Sentences that are done leave the batch (as in fairseq), so the decoder only runs for the
    ones still searching. Every reorder either moves rows among each sentence's own beams or
    drops whole sentences (the contract of ``DecoderState.reorder``).
    """
    if not 1 <= nbest <= beam:
        raise ValueError(f"nbest must be between 1 and beam={beam}, got {nbest}")
    device, B, K, S = src.device, src.size(0), beam, src.size(1)
    pad, bos, eos = model.pad_id, model.bos_id, model.eos_id
    most = getattr(model, "max_target_positions", 1 << 30)
    limit = torch.maximum(max_lengths(src_mask, max_len_a, max_len_b, most), prefix_lengths(prefix, B, device, pad))
    steps = int(limit.max()) + 1
    # The results of all B sentences, filled in as sentences finish.
    out_tokens = torch.full((B, nbest, steps), pad, dtype=torch.long, device=device)
    out_tok_scores = torch.zeros(B, nbest, steps, device=device)
    out_scores = torch.full((B, nbest), NEG_INF, device=device)
    out_attn: torch.Tensor | None = None

    # The sentences still searching (b of them; ``ids`` are their rows in the output).
    ids = torch.arange(B, device=device)
    state = model.encode(src, src_mask, attention)
    state = state.expand(K)  # B*K rows: the K beams of a sentence are consecutive
    scores = torch.full((B, K), NEG_INF, device=device)
    scores[:, 0] = 0.0  # one live hypothesis per sentence to start with
    alive_tokens = torch.full((B, K, steps), pad, dtype=torch.long, device=device)
    alive_tok_scores = torch.zeros(B, K, steps, device=device)
    alive_attn: torch.Tensor | None = None
    # The K best finished hypotheses of each sentence, best first; the search of a sentence ends when it holds K.
    fin_tokens = torch.full((B, K, steps), pad, dtype=torch.long, device=device)
    fin_tok_scores = torch.zeros(B, K, steps, device=device)
    fin_attn: torch.Tensor | None = None
    fin_scores = torch.full((B, K), NEG_INF, device=device)
    prev = torch.full((B * K,), bos, dtype=torch.long, device=device)
    first_limit = int(limit.min())  # no sentence is at its length limit before this step

    for t in range(steps):
        b = ids.size(0)
        rows = torch.arange(b, device=device)
        log_probs, state, attn = model.decode_step(prev, state)  # (b*K, V), (b*K, S)
        attn = attn if attention else None
        log_probs = log_probs.float().view(b, K, -1)
        V = log_probs.size(-1)
        if t >= first_limit:  # forced EOS at the length limit, touching only those sentences' rows
            at_limit = (limit <= t).nonzero().squeeze(1)
            end = log_probs[at_limit, :, eos]
            log_probs[at_limit] = NEG_INF
            log_probs[at_limit, :, eos] = end
        log_probs[..., pad] = NEG_INF
        log_probs[..., bos] = NEG_INF
        if prefix is not None and t < prefix.size(1):
            forced = prefix[ids].repeat_interleave(K, 0)
            log_probs = force_prefix(log_probs.view(b * K, V), forced, t, pad).view(b, K, V)

        cand = (scores.unsqueeze(-1) + log_probs).view(b, K * V)
        cand_scores, cand_idx = cand.topk(min(2 * K, K * V), dim=1)  # (b, 2K), best first
        cand_beam, cand_tok = cand_idx // V, cand_idx % V
        cand_step = cand_scores - scores.gather(1, cand_beam)  # this token's log-probability
        flat = (rows[:, None] * K + cand_beam).view(-1)  # rows of b*K the candidates extend

        cand_tokens = _extend(alive_tokens, flat, t, cand_tok)
        cand_tok_scores = _extend(alive_tok_scores, flat, t, cand_step)
        cand_attn = None
        if attn is not None:
            if alive_attn is None:
                alive_attn = torch.zeros(b, K, steps, S, device=device)
                fin_attn = torch.zeros(b, K, steps, S, device=device)
                out_attn = torch.zeros(B, nbest, steps, S, device=device)
            cand_attn = _extend(alive_attn, flat, t, attn.float().view(b, K, S)[rows[:, None], cand_beam])

        # Finish EOS candidates that rank among the top K (and are real).
        is_eos = cand_tok == eos
        finishing = is_eos & (torch.arange(cand_tok.size(1), device=device) < K) & (cand_scores > NEG_INF)
        normed = cand_scores / length_penalty(torch.full_like(cand_scores, t + 1), alpha)
        pool = torch.cat([fin_scores, normed.masked_fill(~finishing, NEG_INF)], dim=1)
        fin_scores, pick = pool.topk(K, dim=1)
        fin_tokens = torch.cat([fin_tokens, cand_tokens], 1).gather(1, pick[..., None].expand(-1, -1, steps))
        fin_tok_scores = torch.cat([fin_tok_scores, cand_tok_scores], 1).gather(
            1, pick[..., None].expand(-1, -1, steps)
        )
        if cand_attn is not None:
            index = pick[..., None, None].expand(-1, -1, steps, S)
            fin_attn = torch.cat([fin_attn, cand_attn], 1).gather(1, index)

        # The best K candidates that did not end become the open hypotheses.
        open_scores = cand_scores.masked_fill(is_eos, NEG_INF)
        scores, keep = open_scores.topk(K, dim=1)  # (b, K)
        alive_tokens = cand_tokens.gather(1, keep[..., None].expand(-1, -1, steps))
        alive_tok_scores = cand_tok_scores.gather(1, keep[..., None].expand(-1, -1, steps))
        if cand_attn is not None:
            alive_attn = cand_attn.gather(1, keep[..., None, None].expand(-1, -1, steps, S))
        prev = alive_tokens[:, :, t].reshape(-1)
        parents = (rows[:, None] * K + cand_beam.gather(1, keep)).view(-1)  # (b*K,) rows of the state

        done = (fin_scores[:, -1] > NEG_INF) | (scores[:, 0] == NEG_INF)  # K finished, or nothing open is left
        if bool(done.any()):  # done sentences hand in their nbest best and leave the batch
            out_tokens[ids[done]] = fin_tokens[done, :nbest]
            out_tok_scores[ids[done]] = fin_tok_scores[done, :nbest]
            out_scores[ids[done]] = fin_scores[done, :nbest]
            if out_attn is not None:
                out_attn[ids[done]] = fin_attn[done, :nbest]
            if bool(done.all()):
                break
            going = ~done
            ids, limit, scores, alive_tokens, alive_tok_scores, alive_attn = _compact(
                going, ids, limit, scores, alive_tokens, alive_tok_scores, alive_attn
            )
            fin_tokens, fin_tok_scores, fin_scores, fin_attn = _compact(
                going, fin_tokens, fin_tok_scores, fin_scores, fin_attn
            )
            parents = parents.view(b, K)[going].view(-1)
            prev = prev.view(b, K)[going].view(-1)
        state = state.reorder(parents)

    length = int((out_tokens != pad).sum(-1).max())
    return Hypotheses(
        tokens=out_tokens[..., :length],
        token_scores=out_tok_scores[..., :length],
        score=out_scores,
        attention=None if out_attn is None else out_attn[:, :, :length],
        pad=pad,
        eos=eos,
    )


def decode_batch(
    model,
    src: torch.Tensor,
    src_mask: torch.Tensor,
    beam: int = 1,
    nbest: int = 1,
    alpha: float | None = None,
    attention: bool = True,
    prefix: torch.Tensor | None = None,
    sampling: Sampling | None = None,
    max_len_a: float | None = None,
    max_len_b: int | None = None,
) -> Hypotheses:
    """Beam search (``beam=1``: greedy), or ``nbest`` samples with ``sampling``, of a padded batch.

    The length limits and penalty are the model's own (``max_len_a``, ``max_len_b``,
    ``length_penalty``) unless given. ``attention=False`` leaves the attention out of the result
    (faster); ``prefix`` (B, P): target ids each output starts with (PAD-padded).
    """
    a = model.max_len_a if max_len_a is None else max_len_a
    b = model.max_len_b if max_len_b is None else max_len_b
    if sampling is not None:
        return sample(model, src, src_mask, sampling, nbest, a, b, attention, prefix)
    if beam == 1:
        return greedy(model, src, src_mask, a, b, attention, prefix)
    alpha = model.length_penalty if alpha is None else alpha
    return beam_search(model, src, src_mask, beam, nbest, alpha, a, b, attention, prefix)
