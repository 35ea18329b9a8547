#!/usr/bin/env python
"""How CTranslate2 should use a CPU's cores: threads within one batch (``intra_threads``) or batches side
by side with one thread each (``inter_threads``).

    python scripts/ct2_threads_benchmark.py --model EXPORT_DIR --source SRC [--lines 500] [--beam 5]

For each setting (1 x 1, 1 x cores, cores x 1): milliseconds per batch of 8 sentences, as a server sends
them one after another, and seconds for all lines at once in batches of 4,096 and 1,024 tokens.
"""

from __future__ import annotations

import argparse
import os
import time

import ctranslate2
import sentencepiece as spm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a folder written by nmt export")
    parser.add_argument("--source", required=True)
    parser.add_argument("--lines", type=int, default=500)
    parser.add_argument("--beam", type=int, default=5)
    args = parser.parse_args()
    sp = spm.SentencePieceProcessor(model_file=os.path.join(args.model, "source.spm"))
    with open(args.source, encoding="utf-8") as f:
        lines = f.read().splitlines()[: args.lines]
    src = [sp.encode(line, out_type=str) + ["</s>"] for line in lines]
    cores = len(os.sched_getaffinity(0))
    for inter, intra in ((1, 1), (1, cores), (cores, 1)):
        translator = ctranslate2.Translator(args.model, inter_threads=inter, intra_threads=intra)
        translator.translate_batch(src[:8], beam_size=args.beam)  # warm-up
        start = time.perf_counter()
        rounds = len(src) // 8
        for i in range(rounds):
            translator.translate_batch(src[8 * i : 8 * i + 8], beam_size=args.beam)
        per_batch = (time.perf_counter() - start) / rounds * 1000
        whole = []
        for tokens in (4096, 1024):
            start = time.perf_counter()
            translator.translate_batch(src, beam_size=args.beam, max_batch_size=tokens, batch_type="tokens")
            whole.append(time.perf_counter() - start)
        print(f"inter_threads {inter} x intra_threads {intra}: {per_batch:6.1f} ms per batch of 8; all {len(src)} "
              f"lines {whole[0]:.2f} s (4,096-token batches), {whole[1]:.2f} s (1,024)")  # fmt: skip
        del translator


if __name__ == "__main__":
    main()
