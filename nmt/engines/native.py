"""``--engine nmt``: nmt's own search (:mod:`nmt.search`) on a network or an ensemble, in PyTorch."""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch

from nmt import search
from nmt.data.batching import pad
from nmt.data.tokenizer import Tokenizer
from nmt.engines.base import DecodeOptions, Engine, Prepared, Translation
from nmt.ensemble import Ensemble
from nmt.errors import NmtError
from nmt.hardware import PRECISIONS, autocast
from nmt.networks import loading
from nmt.networks.base import Seq2SeqNet
from nmt.scoring import token_log_probs


class NmtEngine(Engine):
    """A network (or :class:`~nmt.ensemble.Ensemble`) and its tokenizer, decoding with nmt's search.

    Args:
        net: the network, in eval mode on its device.
        tokenizer: the tokenizer it was trained with.
        precision: autocast dtype of decoding (``32``: none; see :data:`nmt.hardware.PRECISIONS`).
        checkpoints: where it was loaded from (``nmt serve`` describes the model with them).
    """

    name = "nmt"

    def __init__(self, net: Seq2SeqNet | Ensemble, tokenizer: Tokenizer, precision: str = "32",
                 checkpoints: list | None = None):  # fmt: skip
        self.net, self.tokenizer, self.precision = net, tokenizer, precision
        self.max_source_positions = net.max_source_positions
        self.checkpoints = checkpoints or []

    @classmethod
    def load(cls, paths: list[str | Path], device: str | torch.device = "cpu", precision: str = "32") -> NmtEngine:
        """The network of one checkpoint, or the ensemble of several (which must share the tokenizer)."""
        models = [loading.load(path, device) for path in paths]
        if len({m.tokenizer.digest() for m in models}) > 1:
            raise NmtError(f"--ckpt {' '.join(map(str, paths))}: the checkpoints were trained with different "
                           "vocabularies; an ensemble needs one.")  # fmt: skip
        net = models[0].net if len(models) == 1 else Ensemble([m.net for m in models])
        return cls(net, models[0].tokenizer, precision, [m.checkpoint for m in models])

    def defaults(self) -> dict:
        net = self.net
        return {"max_len_a": net.max_len_a, "max_len_b": net.max_len_b, "length_penalty": net.length_penalty}

    def _precision(self):
        """The autocast of ``precision``; none at all for float32 (an autocast another caller set stays)."""
        if PRECISIONS[self.precision] is None:
            return contextlib.nullcontext()
        return autocast(self.net.device.type, self.precision)

    def run(self, prepared: Prepared, options: DecodeOptions) -> list[list[Translation]]:
        net, tok, device = self.net, self.tokenizer, self.net.device
        sampling = None
        if options.sample:
            generator = torch.Generator(device=device).manual_seed(options.seed)
            sampling = search.Sampling(options.topk, options.topp, options.temperature, generator)
        out: list[list[Translation]] = [[] for _ in prepared.texts]
        with self._precision():
            for rows in self.batches(prepared, options):
                ids = pad([prepared.src[i] for i in rows], net.pad_id).to(device)
                prefix = None
                if prepared.prefixes is not None and any(prepared.prefixes[i] for i in rows):
                    prefix = pad([prepared.prefixes[i] or [net.pad_id] for i in rows], net.pad_id).to(device)
                o = options
                hyps = search.decode_batch(net, ids, ids != net.pad_id, o.beam, o.nbest, o.length_penalty, o.attention,
                                           prefix, sampling, o.max_len_a, o.max_len_b)  # fmt: skip
                lengths = hyps.lengths().tolist()
                for rank in range(options.nbest):
                    texts = tok.decode_tgt(hyps.token_lists(rank))
                    for j, i in enumerate(rows):
                        n = lengths[j][rank]
                        ids_out = hyps.tokens[j, rank, :n].tolist()
                        attention = None
                        if hyps.attention is not None:
                            attention = hyps.attention[j, rank, :n, : len(prepared.src[i])].tolist()
                        out[i].append(Translation(
                            text=texts[j],
                            score=float(hyps.score[j, rank]),
                            tokens=tok.tgt_pieces([t for t in ids_out if t != net.eos_id]),
                            token_scores=hyps.token_scores[j, rank, :n].tolist(),
                            attention=attention,
                        ))  # fmt: skip
        return out

    def score(self, sources: list[str], targets: list[str], max_tokens: int = 4096) -> list[list[float]]:
        tok = self.tokenizer
        with self._precision():
            return token_log_probs(self.net, tok.encode_src(sources), tok.encode_tgt(targets), max_tokens)
