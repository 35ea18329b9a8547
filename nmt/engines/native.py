"""``--engine nmt``: nmt's own search (:mod:`nmt.search`) on a network or an ensemble, in PyTorch."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
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
from nmt.networks.base import Seq2SeqNet, count_parameters
from nmt.scoring import pairs_by_length, teacher_forcing, token_log_probs

Forced = tuple[list[int], torch.Tensor, torch.Tensor, "torch.Tensor | None"]  # rows, labels, log-probs, attention


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

    def describe(self) -> dict:
        net = self.net
        members = net.members if isinstance(net, Ensemble) else [net]
        name = " + ".join(type(m).__name__ for m in members)
        layers = heads = None
        if net.has_attention:
            transformer = isinstance(net, Seq2SeqNet) and hasattr(net, "teacher_forced")
            layers, heads = (net.decoder_layers, net.n_heads) if transformer else (1, 1)
        first = self.checkpoints[0] if self.checkpoints else None
        return {
            "engine": self.name,
            "network": name if len(members) == 1 else f"ensemble of {name}",
            "parameters": count_parameters(net),
            "steps": first.step if first else None,
            "languages": first.languages if first else None,
            "layers": layers,
            "heads": heads,
            "features": {"attention": net.has_attention, "alternatives": True, "sampling": True},
        }

    def details(self, prepared: Prepared, results: list[list[Translation]], alternatives: int = 0,
                attention: bool = False, max_tokens: int = 4096) -> list[list[dict]]:  # fmt: skip
        net, tok = self.net, self.tokenizer
        rows = [(i, h) for i, hyps in enumerate(results) for h in hyps]
        src = [prepared.src[i] for i, _ in rows]
        tgt = [[net.bos_id, *(tok.tgt_id(p) for p in h.tokens), net.eos_id] for _, h in rows]
        found: list[dict] = [{} for _ in rows]
        with self._precision():
            for batch_rows, labels, log_probs, maps in self._forced(src, tgt, max_tokens, attention):
                probabilities = log_probs.gather(-1, labels.unsqueeze(-1)).squeeze(-1).exp()
                shown = log_probs.clone()
                shown[..., [net.pad_id, net.bos_id]] = float("-inf")  # the search never picks them
                top = shown.topk(alternatives, dim=-1) if alternatives else None
                for j, r in enumerate(batch_rows):
                    n, s = len(tgt[r]) - 1, len(src[r])
                    record = {"tokens": rows[r][1].tokens, "source_tokens": tok.src_pieces(src[r]),
                              "probabilities": _rounded(probabilities[j, :n])}  # fmt: skip
                    if top is not None:
                        pieces = [tok.tgt_pieces(ids) for ids in top.indices[j, :n].tolist()]
                        record["alternatives"] = [[[p, round(v, 4)] for p, v in zip(step, values)] for step, values in
                                                  zip(pieces, top.values[j, :n].exp().tolist())]  # fmt: skip
                    if maps is not None:
                        record["attention"] = _rounded(maps[j, :, :, :n, :s])
                    found[r] = record
        out: list[list[dict]] = [[] for _ in results]
        for (i, _), record in zip(rows, found):
            out[i].append(record)
        return out

    def _forced(self, src: list[list[int]], tgt: list[list[int]], max_tokens: int, attention: bool) -> Iterator[Forced]:
        """Teacher forcing for :meth:`details`, batched by length: rows, labels (b, T), log-probabilities
        (b, T, V) and, when asked, attention (b, layers, heads, T, S). A Transformer does it in one parallel pass
        with every layer and head; other networks and ensembles step by step, as the search does."""
        net = self.net
        if not hasattr(net, "teacher_forced"):
            for batch in teacher_forcing(net, src, tgt, max_tokens):
                maps = batch.attention[:, None, None] if attention and batch.attention is not None else None
                yield batch.rows, batch.labels, batch.log_probs, maps
            return
        for rows, s, t in pairs_by_length(net, src, tgt, max_tokens):
            with torch.inference_mode():
                log_probs, maps = net.teacher_forced(s, s != net.pad_id, t[:, :-1])
            yield rows, t[:, 1:], log_probs, maps.float() if attention else None

    def score(self, sources: list[str], targets: list[str], max_tokens: int = 4096) -> list[list[float]]:
        tok = self.tokenizer
        with self._precision():
            return token_log_probs(self.net, tok.encode_src(sources), tok.encode_tgt(targets), max_tokens)


def _rounded(values: torch.Tensor) -> list:
    """Nested lists of 4-decimal floats: what a page needs, a quarter of the bytes."""
    return torch.round(values.double().cpu(), decimals=4).tolist()
