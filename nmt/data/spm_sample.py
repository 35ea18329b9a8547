"""The sample of a training split SentencePiece learns from: every pair, or a seeded draw from the whole split."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import numpy as np

from nmt.data import corpus, sources
from nmt.data.encoding import clean_chunk
from nmt.data.parallel import ordered_map
from nmt.data.store import POOL_THRESHOLD

SPM_SEED = 0  # the sample SentencePiece learns from is drawn with this seed: the same corpus, the same model


def spm_sample(source: sources.Source, pairs: int, workers: int) -> corpus.ParallelText:
    """The cleaned training pairs SentencePiece learns from: all of them, or ``pairs`` drawn at random
    (seed :data:`SPM_SEED`) from the whole split when it has more, in corpus order."""
    total = source.count()
    chosen = None if total <= pairs else np.sort(np.random.default_rng(SPM_SEED).choice(total, pairs, replace=False))

    def jobs() -> Iterator[tuple[sources.Chunk, bool]]:
        start = 0
        for chunk in source.chunks():
            end = start + len(chunk.lines)
            if chosen is None:
                yield chunk, True
            else:
                rows = chosen[np.searchsorted(chosen, start) : np.searchsorted(chosen, end)] - start
                yield chunk.select(rows.tolist()), True
            start = end

    source.check_aligned()
    src: list[str] = []
    tgt: list[str] = []
    dropped: Counter = Counter()
    for part in ordered_map(clean_chunk, jobs(), workers if total > POOL_THRESHOLD else 1):
        src += part.src
        tgt += part.tgt
        dropped.update(part.dropped)
    return corpus.ParallelText(src, tgt, source.origin, dropped=dropped)
