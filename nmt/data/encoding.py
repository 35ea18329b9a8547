"""The work of one chunk of a split: parse, clean, filter (training) or truncate (evaluation), encode.

Run in the worker processes of :func:`nmt.data.parallel.ordered_map`; each worker builds its
tokenizer once (:func:`use_tokenizer`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from itertools import chain

import numpy as np

from nmt.data import corpus, sources
from nmt.data.tokenizer import Tokenizer

_TOKENIZER: Tokenizer | None = None


def use_tokenizer(data: dict) -> None:
    global _TOKENIZER
    _TOKENIZER = Tokenizer.from_dict(data)


@dataclass
class Settings:
    """How a split is encoded: training splits are filtered, evaluation sources truncated."""

    train: bool
    max_length: int
    max_length_ratio: float


@dataclass
class Encoded:
    """One chunk, encoded: ids end to end and their lengths, per side, and what cleaning did."""

    src: np.ndarray
    src_lengths: np.ndarray
    tgt: np.ndarray
    tgt_lengths: np.ndarray
    pairs_read: int
    cleaned: int
    dropped: Counter


def _flat(seqs: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.fromiter(map(len, seqs), dtype=np.int64, count=len(seqs))
    return np.fromiter(chain.from_iterable(seqs), dtype=np.uint32, count=int(lengths.sum())), lengths


def encode_chunk(job: tuple[sources.Chunk, Settings]) -> Encoded:
    chunk, settings = job
    src, tgt = sources.parse(chunk)
    text = corpus.clean(corpus.ParallelText(src, tgt, ""), drop_empty=settings.train)
    src_ids, tgt_ids = _TOKENIZER.encode_src(text.src), _TOKENIZER.encode_tgt(text.tgt)
    dropped = text.dropped
    limit = settings.max_length
    if settings.train:
        keep, too_long = corpus.length_filter(
            [len(s) - 1 for s in src_ids], [len(t) - 2 for t in tgt_ids], limit, settings.max_length_ratio
        )
        dropped.update(too_long)
        src_ids, tgt_ids = [src_ids[i] for i in keep], [tgt_ids[i] for i in keep]
    else:
        cut = sum(len(s) > limit for s in src_ids)
        if cut:
            dropped["truncated (kept)"] += cut
        src_ids = [s[: limit - 1] + [s[-1]] if len(s) > limit else s for s in src_ids]
    (s_flat, s_len), (t_flat, t_len) = _flat(src_ids), _flat(tgt_ids)
    return Encoded(s_flat, s_len, t_flat, t_len, len(chunk.lines), text.cleaned, dropped)


def clean_chunk(job: tuple[sources.Chunk, bool]) -> corpus.ParallelText:
    chunk, drop_empty = job
    src, tgt = sources.parse(chunk)
    return corpus.clean(corpus.ParallelText(src, tgt, ""), drop_empty)
