"""``Seq2SeqNet``: the one interface every nmt network implements (plain ``nn.Module``, no Lightning).

A network is the model proper: its layers and the four methods of DESIGN.md,
``forward(batch) -> logits (B, T, V)``, ``encode``, ``decode_step`` and ``reorder_state``, plus
``expand_state`` (room for the beams, once per batch). The search (:mod:`nmt.search`),
``nmt translate`` and the plots need nothing else, so they load a network from a checkpoint
without importing Lightning (2.5 s less per command on a 2-core CPU).
Training, evaluation and checkpoints are the job of the LightningModule "systems" in
:mod:`nmt.models`, which hold a network as ``self.net``.
"""

from __future__ import annotations

import abc
import inspect

import torch
from torch import nn

from nmt import search
from nmt.data.batching import Batch
from nmt.data.tokenizer import Tokenizer


def reorder_tensors(state, index: torch.Tensor):
    """``index_select`` along dim 0 of every tensor inside nested dicts/lists/tuples."""
    if isinstance(state, torch.Tensor):
        return state.index_select(0, index)
    if isinstance(state, dict):
        return {k: reorder_tensors(v, index) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(reorder_tensors(v, index) for v in state)
    return state


def _batch_size(state) -> int:
    """Rows of the first tensor found in a nested state (-1: none)."""
    if isinstance(state, torch.Tensor):
        return state.size(0)
    values = state.values() if isinstance(state, dict) else state if isinstance(state, (list, tuple)) else ()
    return next((rows for rows in map(_batch_size, values) if rows >= 0), -1)


def init_arguments(cls: type) -> list[str]:
    """Names of the keyword arguments ``cls(...)`` accepts, its base classes' included."""
    names: list[str] = []
    for klass in cls.__mro__:
        if "__init__" not in vars(klass) or klass in (nn.Module, object):
            continue
        for p in inspect.signature(klass.__init__).parameters.values():
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self" and p.name not in names:
                names.append(p.name)
    return names


class Seq2SeqNet(nn.Module, abc.ABC):
    """Encoder-decoder network with the search interface.

    Besides its layers a network carries what translating needs: the ``tokenizer`` and the
    search defaults ``max_len_a``, ``max_len_b`` (outputs end after ``a * source_length + b``
    tokens) and ``length_penalty`` (GNMT alpha); its system or the checkpoint sets them.
    """

    max_source_positions = 1024  # longest source the network accepts; longer ones are truncated

    #: Entries of a dict state that depend only on the source sentence (encoder output, its
    #: projections, the mask): every beam of a sentence holds the same rows, so a reorder that
    #: stays within sentences can leave them alone.
    source_state: frozenset[str] = frozenset()
    #: True: in beam search the ``source_state`` entries keep one row per *sentence*, and the
    #: network reads them for the ``state["beam"]`` consecutive rows of that sentence's beams at
    #: once (its attention groups the queries), instead of holding a copy for every beam.
    shared_source: bool = False

    def __init__(self, src_vocab_size: int = 1000, tgt_vocab_size: int = 1000):
        super().__init__()
        self.src_vocab_size, self.tgt_vocab_size = src_vocab_size, tgt_vocab_size
        self.tokenizer: Tokenizer | None = None
        self.max_len_a, self.max_len_b, self.length_penalty = 1.5, 10, 1.0

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @abc.abstractmethod
    def forward(self, batch: Batch) -> torch.Tensor:
        """Teacher-forced logits (B, T, V)."""

    @abc.abstractmethod
    def encode(self, src: torch.Tensor, src_mask: torch.Tensor, attention: bool = True):
        """Run the encoder once per batch: src (B, S), src_mask (B, S) -> decoder state.

        ``attention=False``: the caller will not use attention weights, so a network that
        computes them only to report them (the Transformer) may skip that and return None.
        """

    @abc.abstractmethod
    def decode_step(self, prev_tokens: torch.Tensor, state):
        """One step: prev_tokens (B,) -> (log_probs (B, V), new state, attention (B, S) or None)."""

    def expand_state(self, state, beam: int):
        """Room for ``beam`` hypotheses per sentence: every row repeated ``beam`` times, consecutively
        (B -> B * beam rows; with ``shared_source`` the source entries stay at B rows and
        ``state["beam"]`` says how many rows share each). Beam search calls this once, after ``encode``."""
        if beam == 1:
            return state
        if not self.shared_source:
            return reorder_tensors(state, torch.arange(_batch_size(state), device=self.device).repeat_interleave(beam))
        rows = _batch_size({k: state[k] for k in self.source_state})
        index = torch.arange(rows, device=self.device).repeat_interleave(beam)
        expanded = {k: v if k in self.source_state else reorder_tensors(v, index) for k, v in state.items()}
        return {**expanded, "beam": state.get("beam", 1) * beam}

    def reorder_state(self, state, index: torch.Tensor, within_sentences: bool = False):
        """Select/reorder the batch rows of ``state`` (beam search); tensors are batch-first.

        ``within_sentences``: ``index`` only moves rows among the beams of each sentence, so
        the ``source_state`` entries are kept as they are.
        """
        if not isinstance(state, dict) or not self.source_state:
            return reorder_tensors(state, index)
        new = {k: v if k in self.source_state else reorder_tensors(v, index) for k, v in state.items()}
        return new if within_sentences else {**new, **self.source_rows(state, index)}

    def source_rows(self, state: dict, index: torch.Tensor) -> dict:
        """The ``source_state`` entries for the decoder rows ``index`` (sentences left the batch).

        With ``shared_source``, ``index`` moves whole groups of ``state["beam"]`` rows, and the
        source rows follow their groups."""
        if self.shared_source:
            group = state.get("beam", 1)
            index = index[::group] // group
        return {key: reorder_tensors(state[key], index) for key in self.source_state}

    def translate_batch(
        self,
        src: torch.Tensor,
        src_mask: torch.Tensor,
        beam: int = 1,
        nbest: int = 1,
        alpha: float | None = None,
        attention: bool = True,
    ) -> search.Hypotheses:
        """Beam search (``beam=1``: greedy) with this network's length limits and penalty;
        ``attention=False`` leaves the attention out of the result (faster)."""
        alpha = self.length_penalty if alpha is None else alpha
        if beam == 1:
            return search.greedy(self, src, src_mask, self.max_len_a, self.max_len_b, attention)
        return search.beam_search(self, src, src_mask, beam, nbest, alpha, self.max_len_a, self.max_len_b, attention)
