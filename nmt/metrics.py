"""Corpus-level scores from sacrebleu on detokenised text, with their signatures."""

from __future__ import annotations

from sacrebleu.metrics import BLEU, CHRF, TER

METRICS = {"bleu": BLEU, "chrf": CHRF, "ter": TER}


def corpus_scores(hyps: list[str], refs: list[str], names: tuple[str, ...] = ("bleu", "chrf"),
                  ) -> dict[str, float | str]:  # fmt: skip
    """``{"bleu": 41.2, "bleu_signature": "nrefs:1|case:mixed|...", ...}`` over the whole corpus.

    BLEU is a corpus statistic: call this once on every hypothesis, never average per batch.
    """
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses for {len(refs)} references")
    out: dict[str, float | str] = {}
    for name in names:
        metric = METRICS[name]()
        out[name] = metric.corpus_score(hyps, [refs]).score
        out[f"{name}_signature"] = str(metric.get_signature())
    return out
