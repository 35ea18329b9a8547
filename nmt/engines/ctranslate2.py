"""``--engine ctranslate2``: a CTranslate2 export (``nmt export``) decoding as nmt's own search does.

The same prepared sources, token-budget batches, length limits (:func:`nmt.search.length_limits`)
and ranking as :class:`~nmt.engines.native.NmtEngine`, so the outputs are nmt's. Batches are handed
to CTranslate2 asynchronously: on a CPU it decodes as many side by side as it has threads, one
thread each (``inter_threads``), its setting for throughput (threads sharing one batch wait on
each other at every step).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from nmt import search
from nmt.engines.base import DecodeOptions, Engine, OptionError, Prepared, Translation, flag
from nmt.errors import NmtError
from nmt.export import open_export

# CTranslate2's own length penalty in beam search: not 0, which changes when its search stops, and too small
# to change its ranking before nmt's replaces it.
OWN_PENALTY = 1e-6


class CTranslate2Engine(Engine):
    """A folder written by :func:`nmt.export.export_ctranslate2`.

    Args:
        folder: the export.
        device: ``cpu`` or ``cuda``.
        threads: CPU cores to use (0: as many as PyTorch uses, ``torch.get_num_threads()``, which
            follows ``OMP_NUM_THREADS``).
    """

    name = "ctranslate2"

    def __init__(self, folder: str | Path, device: str = "cpu", threads: int = 0):
        try:
            import ctranslate2
        except ImportError:
            raise NmtError("--engine ctranslate2 needs CTranslate2: pip install 'nmt[export]'.") from None
        export = open_export(folder)
        self.folder, self.settings, self.tokenizer = export.folder, export.settings, export.tokenizer
        self.max_source_positions = self.settings["max_positions"]
        specials = self.tokenizer.specials
        self._never = [[p] for p in dict.fromkeys(self.tokenizer.tgt_pieces([specials.pad, specials.bos]))]
        if device == "cpu":
            cores = threads or torch.get_num_threads()
            self.translator = ctranslate2.Translator(str(folder), device, inter_threads=cores, intra_threads=1)
        else:
            self.translator = ctranslate2.Translator(str(folder), device)

    def defaults(self) -> dict:
        return {name: self.settings[name] for name in ("max_len_a", "max_len_b", "length_penalty")}

    @classmethod
    def refuse(cls, options: DecodeOptions, members: int = 1, precision: str = "32", spell=flag) -> None:
        reasons = [
            ("sample", options.sample, "nmt does not sample with CTranslate2: its random generator is not nmt's, "
             "so a --seed could not give nmt's samples"),
            ("attention", options.attention, "an export returns no attention weights"),
            ("precision", precision != "32", "the export's weights have the type chosen at export (nmt export "
             "--quantization)"),
            ("ckpt", members > 1, "an export holds one model, not an ensemble"),
        ]  # fmt: skip
        for option, given, why in reasons:
            if given:
                raise OptionError(option, f"--engine ctranslate2 does not take {spell(option)}: {why}. "
                                  "Use --engine nmt with the checkpoint.")  # fmt: skip

    def run(self, prepared: Prepared, options: DecodeOptions) -> list[list[Translation]]:
        tok, s = self.tokenizer, self.defaults()
        a = s["max_len_a"] if options.max_len_a is None else options.max_len_a
        b = s["max_len_b"] if options.max_len_b is None else options.max_len_b
        alpha = s["length_penalty"] if options.length_penalty is None else options.length_penalty
        beam = options.beam
        # CTranslate2 divides a hypothesis's log-probability by length ** alpha, nmt by GNMT's
        # ((5 + length) / 6) ** alpha. CTranslate2 gets a negligible penalty of its own, undone below (with
        # none at all it also waits for its best beam to finish, and searches longer than nmt), and all
        # the beam's finished hypotheses are ranked as nmt's search ranks them.
        own = OWN_PENALTY if beam > 1 else 0.0
        pending = []
        for rows in self.batches(prepared, options):
            sources = [tok.src_pieces(prepared.src[i][:-1]) for i in rows]  # CTranslate2 adds the EOS
            lengths = torch.tensor([len(prepared.src[i]) for i in rows])
            limits = search.length_limits(lengths, a, b, self.max_source_positions).tolist()
            prefix = None
            if prepared.prefixes is not None:
                prefix = [tok.tgt_pieces(prepared.prefixes[i]) or None for i in rows]
            results = self.translator.translate_batch(
                sources, prefix, max_batch_size=0, beam_size=beam, num_hypotheses=beam, length_penalty=own,
                return_scores=True, max_decoding_length=max(limits) + 1, min_decoding_length=0,
                max_input_length=0, suppress_sequences=self._never,  # as nmt's search: never padding or BOS
                asynchronous=True,
            )  # fmt: skip
            pending.append((rows, sources, limits, results))
        out: list[list[Translation]] = [[] for _ in prepared.texts]
        for rows, sources, limits, results in pending:
            for i, source, cap, result in zip(rows, sources, limits, results):
                result = result.result()
                ranked = []
                for pieces, score in zip(result.hypotheses, result.scores):
                    # The log-probability: 0 ** penalty made an empty output's -inf, so score that one again.
                    raw = score * len(pieces) ** own if pieces else sum(self._log_probs([source], [[]])[0])
                    pieces = pieces[:cap]  # nmt ends an output at its length limit
                    penalty = search.length_penalty(torch.tensor(len(pieces) + 1), alpha if beam > 1 else 0.0)
                    ranked.append((raw / penalty.item(), pieces))
                ranked.sort(key=lambda hyp: -hyp[0])
                out[i] = [Translation(tok.decode_tgt([[tok.tgt_id(p) for p in pieces]])[0], score, pieces,
                                      [], None) for score, pieces in ranked[: options.nbest]]  # fmt: skip
        if options.scores:
            self._score_again(prepared, out, alpha if beam > 1 else 0.0, options.max_tokens)
        return out

    def _score_again(self, prepared: Prepared, out: list[list[Translation]], alpha: float, max_tokens: int) -> None:
        """nmt's own scores of the hypotheses: CTranslate2's search leaves <pad> and <s> out of each step's
        softmax (nmt's only never picks them), so its log-probabilities are slightly higher; teacher forcing
        gives nmt's, token by token."""
        tok = self.tokenizer
        hyps = [(i, h) for i, found in enumerate(out) for h in found]
        sources = [tok.src_pieces(prepared.src[i][:-1]) for i, _ in hyps]
        for (_, h), scores in zip(hyps, self._log_probs(sources, [h.tokens for _, h in hyps], max_tokens)):
            h.token_scores = scores
            h.score = sum(scores) / search.length_penalty(torch.tensor(len(scores)), alpha).item()

    def _log_probs(self, sources: list[list[str]], targets: list[list[str]], max_tokens: int = 0) -> list[list[float]]:
        """Each target token's log-probability (and EOS's, last), from CTranslate2's teacher forcing."""
        if not sources:
            return []
        results = self.translator.score_batch(sources, targets, max_batch_size=max_tokens, batch_type="tokens")
        return [list(r.log_probs) for r in results]

    def describe(self) -> dict:
        model = self.settings.get("model", {})  # what the export recorded of its checkpoint (older exports: nothing)
        network = model.get("network", "TransformerNet")
        return {"engine": self.name, "network": f"{network} (CTranslate2, {self.settings['quantization']})",
                "parameters": model.get("parameters"), "steps": model.get("steps"),
                "languages": model.get("languages"), "layers": None, "heads": None,
                "features": {"attention": False, "alternatives": False, "sampling": False}}  # fmt: skip

    def details(self, prepared: Prepared, results: list[list[Translation]], alternatives: int = 0,
                attention: bool = False, max_tokens: int = 4096) -> list[list[dict]]:  # fmt: skip
        if alternatives or attention:
            why = "a CTranslate2 export gives no alternatives or attention, only each token's probability"
            raise OptionError("alternatives" if alternatives else "attention", why)
        tok = self.tokenizer
        rows = [(i, h) for i, hyps in enumerate(results) for h in hyps]
        sources = [tok.src_pieces(prepared.src[i][:-1]) for i, _ in rows]
        scores = self._log_probs(sources, [h.tokens for _, h in rows], max_tokens)
        out: list[list[dict]] = [[] for _ in results]
        for (i, h), source, logp in zip(rows, sources, scores):
            out[i].append({"tokens": h.tokens, "source_tokens": [*source, tok.tgt_pieces([tok.specials.eos])[0]],
                           "probabilities": [round(math.exp(v), 4) for v in logp]})  # fmt: skip
        return out

    def score(self, sources: list[str], targets: list[str], max_tokens: int = 4096) -> list[list[float]]:
        prepared = self.prepare(sources)
        tok = self.tokenizer
        pieces = [tok.src_pieces(ids[:-1]) for ids in prepared.src]
        return self._log_probs(pieces, [tok.tgt_pieces(ids[1:-1]) for ids in tok.encode_tgt(targets)], max_tokens)
