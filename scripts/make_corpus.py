#!/usr/bin/env python
"""Write a large synthetic parallel corpus for scale tests and benchmarks (never committed).

    python scripts/make_corpus.py OUT --pairs 1000000 [--shards 4] [--seed 0]

The "source language" has a Zipf-distributed vocabulary of made-up words (syllables joined, as
real words are, so SentencePiece finds real subwords); each sentence is 3-40 words long, in
clauses. The "target" translates every word by a fixed mapping to another made-up word, swaps
adjacent word pairs inside clauses and moves the last word of long clauses to the front, so
alignments are not monotonic. Writes ``train.src/train.tgt`` (or ``train-NN.*`` shards),
``val.*`` and ``test.*`` (2,000 pairs each); ``--data.src_lang src --data.tgt_lang tgt`` reads them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

SYLLABLES = [c + v for c in "bdfgklmnprstvz" for v in ("a", "e", "i", "o", "u", "ai", "ou")]


def vocabulary(rng: np.random.Generator, size: int) -> list[str]:
    words, seen = [], set()
    while len(words) < size:
        word = "".join(rng.choice(SYLLABLES, size=rng.integers(1, 5)))
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


def sentences(rng: np.random.Generator, count: int, src: list[str], tgt: list[str]):
    """``count`` (source, target) pairs."""
    ranks = np.arange(1, len(src) + 1)
    weights = 1.0 / ranks**1.07
    weights /= weights.sum()
    lengths = np.clip(rng.gamma(3.0, 5.0, size=count).astype(int), 3, 40)
    words = rng.choice(len(src), size=int(lengths.sum()), p=weights)
    start = 0
    for n in lengths:
        ids = words[start : start + n]
        start += n
        source = " ".join(src[i] for i in ids) + "."
        out = [tgt[i] for i in ids]
        for j in range(0, n - 1, 2):
            out[j], out[j + 1] = out[j + 1], out[j]
        if n > 8:
            out = [out[-1], *out[:-1]]
        yield source.capitalize(), " ".join(out).capitalize() + "."


def write(path_src: Path, path_tgt: Path, pairs) -> None:
    with open(path_src, "w", encoding="utf-8") as fs, open(path_tgt, "w", encoding="utf-8") as ft:
        for s, t in pairs:
            fs.write(s + "\n")
            ft.write(t + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--pairs", type=int, default=1_000_000, help="training pairs")
    parser.add_argument("--shards", type=int, default=1, help="split the training pairs over this many files")
    parser.add_argument("--vocabulary", type=int, default=40_000, help="made-up words per language")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    src, tgt = vocabulary(rng, args.vocabulary), vocabulary(rng, args.vocabulary)
    args.out.mkdir(parents=True, exist_ok=True)
    per_shard = -(-args.pairs // args.shards)
    for shard in range(args.shards):
        count = min(per_shard, args.pairs - shard * per_shard)
        stem = "train" if args.shards == 1 else f"train-{shard:02d}"
        write(args.out / f"{stem}.src", args.out / f"{stem}.tgt", sentences(rng, count, src, tgt))
    for split in ("val", "test"):
        write(args.out / f"{split}.src", args.out / f"{split}.tgt", sentences(rng, 2000, src, tgt))
    print(f"wrote {args.pairs} training pairs ({args.shards} file(s)) and 2,000 val/test pairs to {args.out}")


if __name__ == "__main__":
    main()
