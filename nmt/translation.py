"""Translate text with a network: the library behind ``nmt translate``, the plots and the training samples.

One result per input line, always: an empty (or all-white-space) line gets no hypotheses.
Lines are batched by length under a token budget and returned in input order.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from nmt.data.batching import TokenBudgetBatchSampler, pad
from nmt.data.corpus import normalize
from nmt.data.tokenizer import EOS_ID, PAD_ID
from nmt.networks.base import Seq2SeqNet
from nmt.search import Sampling

log = logging.getLogger(__name__)


@dataclass
class Translation:
    """One hypothesis: detokenised text, its (length-normalised) score, and per-token detail."""

    text: str
    score: float
    tokens: list[str]  # target subwords, EOS excluded
    token_scores: list[float]  # log-probability of each subword (and of EOS, last)
    attention: list[list[float]] | None  # (target subwords + EOS) x source subwords (+ EOS)


def translate_full(
    model: Seq2SeqNet,
    lines: list[str],
    beam: int = 1,
    nbest: int = 1,
    length_penalty: float | None = None,
    max_tokens: int = 4096,
    attention: bool = True,
    prefixes: list[str] | None = None,
    sampling: Sampling | None = None,
) -> list[list[Translation]]:
    """``nbest`` translations of each line, best first; batched by length, returned in input order.

    ``model``: a network (:func:`nmt.checkpoint.load_network`, an :class:`~nmt.ensemble.Ensemble`, or a
    training system's ``.net``). ``attention=False`` leaves ``Translation.attention`` None and skips the
    work behind it. ``prefixes``: one target prefix per line ("" for none) that its translations start
    with. ``sampling``: ``nbest`` random translations instead of the search's (``beam`` is not used).
    An empty (or all-white-space) line gets no hypotheses. Sources longer than the model's
    ``max_source_positions`` are truncated to fit, with a warning naming the first such line.
    """
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
    out: list[list[Translation]] = [[] for _ in lines]
    todo = [i for i, t in enumerate(texts) if t]
    forced = [tok.tgt.encode(normalize(p)) for p in prefixes] if prefixes is not None else None
    budget = max(max_tokens // nbest, 1) if sampling is not None else max_tokens  # samples are rows of their own
    sampler = TokenBudgetBatchSampler([len(src[i]) for i in todo], budget, shuffle=False)
    for batch in sampler:
        rows = [todo[j] for j in batch]
        ids = pad([src[i] for i in rows]).to(model.device)
        prefix = None
        if forced is not None and any(forced[i] for i in rows):
            prefix = pad([forced[i] or [PAD_ID] for i in rows]).to(model.device)
        hyps = model.translate_batch(ids, ids != PAD_ID, beam, nbest, length_penalty, attention, prefix, sampling)
        lengths = hyps.lengths().tolist()
        for rank in range(nbest):
            texts_out = tok.decode_tgt(hyps.token_lists(rank))
            for j, i in enumerate(rows):
                n = lengths[j][rank]
                ids_out = hyps.tokens[j, rank, :n].tolist()
                attention = None
                if hyps.attention is not None:
                    attention = hyps.attention[j, rank, :n, : len(src[i])].tolist()
                out[i].append(
                    Translation(
                        text=texts_out[j],
                        score=float(hyps.score[j, rank]),
                        tokens=tok.tgt_pieces([t for t in ids_out if t != EOS_ID]),
                        token_scores=hyps.token_scores[j, rank, :n].tolist(),
                        attention=attention,
                    )
                )
    return out


def translate(model: Seq2SeqNet, lines: list[str], beam: int = 1, max_tokens: int = 4096) -> list[str]:
    """The best translation of each line (an empty string for an empty line)."""
    results = translate_full(model, lines, beam, 1, None, max_tokens, attention=False)
    return [hyps[0].text if hyps else "" for hyps in results]
