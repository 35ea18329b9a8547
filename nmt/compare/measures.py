"""The numbers of ``nmt compare``: alignment error rate, calibration error, BLEU by source length.

Plain functions of plain data (lists, arrays), each tested against small hand-computed examples.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sacrebleu.metrics import BLEU

# --------------------------------------------------------------------------- alignments
_LINK = re.compile(r"^(\d+)([-p])(\d+)$")


@dataclass
class Gold:
    """Gold word alignment of one sentence pair: ``sure`` links, and ``possible`` ones (which include the sure)."""

    sure: set[tuple[int, int]]
    possible: set[tuple[int, int]]


def parse_gold(line: str, base: int = 0, swap: bool = False, origin: str = "alignment", number: int = 1) -> Gold:
    """``i-j`` (sure) and ``ipj`` (possible) links between source word i and target word j, counted from
    ``base``; ``swap`` reads them as target-source (a corpus aligned in the other direction)."""
    sure, possible = set(), set()
    for token in line.split():
        match = _LINK.match(token)
        if not match:
            raise ValueError(f"{origin}, line {number}: '{token}' is not a link like 3-4 (sure) or 3p4 (possible)")
        i, j = int(match.group(1)) - base, int(match.group(3)) - base
        if i < 0 or j < 0:
            raise ValueError(f"{origin}, line {number}: '{token}' is below {base}; are the links 0-based?")
        link = (j, i) if swap else (i, j)
        possible.add(link)
        if match.group(2) == "-":
            sure.add(link)
    return Gold(sure, possible)


def aer(predicted: Sequence[set[tuple[int, int]]], gold: Sequence[Gold]) -> float:
    """Alignment error rate over a corpus (Och & Ney 2003): 1 - (|A & S| + |A & P|) / (|A| + |S|), the
    counts summed over the sentences (P includes S)."""
    hits_sure = hits_possible = size_a = size_s = 0
    for a, g in zip(predicted, gold):
        hits_sure += len(a & g.sure)
        hits_possible += len(a & g.possible)
        size_a += len(a)
        size_s += len(g.sure)
    return 1.0 - (hits_sure + hits_possible) / max(size_a + size_s, 1)


def word_starts(pieces: Sequence[str]) -> list[int]:
    """The word of each SentencePiece piece: a piece starting with U+2581 starts a new word."""
    words, current = [], -1
    for piece in pieces:
        if piece.startswith("\u2581") or current < 0:
            current += 1
        words.append(current)
    return words


def word_alignment(attention: np.ndarray, src_words: Sequence[int], tgt_words: Sequence[int]) -> set[tuple[int, int]]:
    """Links (source word, target word) from subword attention (target pieces x source pieces, special
    tokens removed): attention summed over the pieces of each word, every target word linked to the
    source word it attends to most."""
    n_src, n_tgt = max(src_words) + 1, max(tgt_words) + 1
    by_word = np.zeros((n_tgt, n_src))
    np.add.at(by_word, (np.asarray(tgt_words)[:, None], np.asarray(src_words)[None, :]), attention)
    return {(int(by_word[t].argmax()), t) for t in range(n_tgt)}


# --------------------------------------------------------------------------- calibration
@dataclass
class Calibration:
    """Expected calibration error and the reliability diagram's bins (equal width over [0, 1])."""

    ece: float
    bins: list[dict]  # {"lower", "upper", "count", "confidence", "accuracy"}


def calibration(confidence: np.ndarray, correct: np.ndarray, bins: int = 10) -> Calibration:
    """ECE = sum over bins of (tokens in bin / all tokens) x |accuracy - mean confidence| (Guo et al. 2017)."""
    confidence, correct = np.asarray(confidence, dtype=float), np.asarray(correct, dtype=float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, confidence, side="right") - 1, 0, bins - 1)  # 1.0 goes to the top bin
    table, ece = [], 0.0
    for b in range(bins):
        mask = which == b
        count = int(mask.sum())
        conf = float(confidence[mask].mean()) if count else 0.0
        acc = float(correct[mask].mean()) if count else 0.0
        ece += count / max(len(confidence), 1) * abs(acc - conf)
        table.append({"lower": float(edges[b]), "upper": float(edges[b + 1]), "count": count, "confidence": conf,
                      "accuracy": acc})  # fmt: skip
    return Calibration(ece, table)


def matched(hypothesis: Sequence, reference: Sequence) -> list[bool]:
    """For each hypothesis token, whether a minimum edit-distance alignment to the reference matches it to
    an equal token (TER's alignment without shifts; how Wang et al. 2020 label inference tokens)."""
    n, m = len(hypothesis), len(reference)
    cost = np.zeros((n + 1, m + 1), dtype=np.int64)
    cost[:, 0], cost[0, :] = np.arange(n + 1), np.arange(m + 1)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            same = hypothesis[i - 1] == reference[j - 1]
            cost[i, j] = min(cost[i - 1, j - 1] + (0 if same else 1), cost[i - 1, j] + 1, cost[i, j - 1] + 1)
    labels, i, j = [False] * n, n, m
    while i > 0 and j > 0:  # back along a cheapest path, taking a match whenever one is on it
        if hypothesis[i - 1] == reference[j - 1] and cost[i, j] == cost[i - 1, j - 1]:
            labels[i - 1] = True
            i, j = i - 1, j - 1
        elif cost[i, j] == cost[i - 1, j] + 1:
            i -= 1
        elif cost[i, j] == cost[i, j - 1] + 1:
            j -= 1
        else:
            i, j = i - 1, j - 1
    return labels


# --------------------------------------------------------------------------- length
def length_buckets(sources: Sequence[str], width: int) -> list[str]:
    """The bucket of each source sentence by its length in words: "1-10", "11-20", ..."""
    out = []
    for text in sources:
        k = max(len(text.split()) - 1, 0) // width
        out.append(f"{k * width + 1}-{(k + 1) * width}")
    return out


def default_width(sources: Sequence[str], groups: int = 4, at_least: int = 20) -> int:
    """The widest length group (in words, up to 10) that still gives ``groups`` groups of ``at_least`` sentences;
    on a test set too small for that, the width giving most such groups."""

    def full(width: int) -> int:
        counts: dict[str, int] = {}
        for bucket in length_buckets(sources, width):
            counts[bucket] = counts.get(bucket, 0) + 1
        return sum(n >= at_least for n in counts.values())

    widths = range(10, 0, -1)
    return next((w for w in widths if full(w) >= groups), max(widths, key=full))


def bleu_by_bucket(sources: Sequence[str], hypotheses: Sequence[str], references: Sequence[str],
                   width: int) -> list[dict]:  # fmt: skip
    """Corpus BLEU of each length bucket: ``[{"bucket", "sentences", "bleu"}]`` in length order."""
    buckets = length_buckets(sources, width)
    out = []
    for name in sorted(set(buckets), key=lambda b: int(b.split("-")[0])):
        rows = [i for i, b in enumerate(buckets) if b == name]
        score = BLEU().corpus_score([hypotheses[i] for i in rows], [[references[i] for i in rows]]).score
        out.append({"bucket": name, "sentences": len(rows), "bleu": round(score, 2)})
    return out
