"""One trained network on one test set: every number of its row in the ``nmt compare`` report."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from nmt import metrics
from nmt.compare import measures, probe
from nmt.data.tokenizer import Tokenizer
from nmt.engines import DecodeOptions
from nmt.engines.native import NmtEngine
from nmt.networks.base import Seq2SeqNet


@dataclass
class TestSet:
    """Sources and references of the test split, and their gold word alignments if there are any."""

    sources: list[str]
    references: list[str]
    gold: list[measures.Gold] | None = None


@dataclass
class Evaluation:
    """A model's report entry (``row``) and what the figures need besides it."""

    row: dict
    reliability: dict[str, list[dict]]  # "teacher forcing" / "beam search" -> the bins
    attention: dict[int, tuple[np.ndarray, list[str], list[str]]]  # sentence -> (weights, source, target pieces)
    signatures: dict[str, str]


def parameters(net: Seq2SeqNet) -> int:
    """Weights in the network, each shared (tied) tensor once."""
    return sum(p.numel() for p in {id(p): p for p in net.parameters()}.values())


def evaluate(net: Seq2SeqNet, tok: Tokenizer, test: TestSet, beam: int = 5, bucket_width: int = 10,
             show: tuple[int, ...] = (), max_tokens: int = 4096) -> Evaluation:  # fmt: skip
    names = ("bleu", "chrf")
    engine = NmtEngine(net, tok)
    greedy = [h[0].text if h else "" for h in engine.translate(test.sources, DecodeOptions(max_tokens=max_tokens))]
    start = time.perf_counter()
    searched = engine.translate(test.sources, DecodeOptions(beam=beam, max_tokens=max_tokens))
    seconds = time.perf_counter() - start
    hyps = [h[0].text if h else "" for h in searched]
    scores = metrics.corpus_scores(hyps, test.references, names)
    greedy_scores = metrics.corpus_scores(greedy, test.references, names)

    src = tok.encode_src(test.sources)
    tgt = tok.encode_tgt(test.references)
    forced = probe.teacher_forced(net, src, tgt, max_tokens)
    teacher = measures.calibration(np.concatenate([f.confidence for f in forced]),
                                   np.concatenate([f.correct for f in forced]))  # fmt: skip
    confidence, correct = [], []
    for hyp, reference in zip(searched, tgt):
        if hyp:
            confidence.append(np.exp(hyp[0].token_scores[: len(hyp[0].tokens)]))
            correct.append(measures.matched(hyp[0].tokens, tok.tgt_pieces(reference[1:-1])))
    inference = measures.calibration(np.concatenate(confidence), np.concatenate(correct))

    has_attention = forced[0].attention is not None
    aer, aligned = None, 0
    if has_attention and test.gold is not None:
        predicted, gold = [], []
        for i, f in enumerate(forced):
            src_words = measures.word_starts(tok.src_pieces(src[i][:-1]))
            tgt_words = measures.word_starts(tok.tgt_pieces(tgt[i][1:-1]))
            if src_words[-1] + 1 != len(test.sources[i].split()) or tgt_words[-1] + 1 != len(
                test.references[i].split()
            ):
                continue  # SentencePiece split the words otherwise than white space: no fair comparison
            predicted.append(measures.word_alignment(f.attention[:-1, :-1], src_words, tgt_words))
            gold.append(test.gold[i])
        aer, aligned = round(measures.aer(predicted, gold), 4), len(gold)
    row = {
        "network": type(net).__name__,
        "parameters": parameters(net),
        "bleu": round(scores["bleu"], 2),
        "chrf": round(scores["chrf"], 2),
        "bleu_greedy": round(greedy_scores["bleu"], 2),
        "chrf_greedy": round(greedy_scores["chrf"], 2),
        "sentences_per_s": round(len(test.sources) / seconds, 1),
        "bleu_by_source_length": measures.bleu_by_bucket(test.sources, hyps, test.references, bucket_width),
        "attention": has_attention,
        "aer": aer,
        "aer_sentences": aligned,
        "ece": round(teacher.ece, 4),
        "inference_ece": round(inference.ece, 4),
        "gradient_by_source_distance": [float(f"{g:.4g}") for g in probe.gradient_by_distance(net, src, tgt)],
    }
    attention = {}
    for i in show if has_attention else ():
        attention[i] = (forced[i].attention, tok.src_pieces(src[i]), [*tok.tgt_pieces(tgt[i][1:-1]), "</s>"])
    signatures = {name: scores[f"{name}_signature"] for name in names}
    return Evaluation(row, {"teacher forcing": teacher.bins, "beam search": inference.bins}, attention, signatures)
