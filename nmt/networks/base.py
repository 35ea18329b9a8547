"""``Seq2SeqNet``: the one interface every nmt network implements (plain ``nn.Module``, no Lightning).

A network is the model proper: its layers and three methods, ``forward(batch) -> logits (B, T, V)``
(teacher forcing), ``encode(src, src_mask) -> state`` and ``decode_step(prev_tokens, state)``; the
state is a :class:`~nmt.networks.state.DecoderState` that the search expands and reorders. The
search (:mod:`nmt.search`), ``nmt translate`` and the plots need nothing else, so a network loads
from a checkpoint without importing Lightning. Training, evaluation and checkpoints are the job of
the LightningModule :class:`~nmt.system.Seq2SeqSystem`, which holds a network as ``self.net``.

A network remembers the arguments it was built with (:attr:`Seq2SeqNet.config`, in the
``class_path``/``init_args`` form of the command line); checkpoints store it, and
:func:`nmt.checkpoint.build_network` builds the same network again from it.
"""

from __future__ import annotations

import abc
import inspect

import torch
from torch import nn

from nmt import search
from nmt.data.batching import Batch
from nmt.data.tokenizer import Tokenizer
from nmt.networks.state import DecoderState


def constructor_arguments(obj: object) -> dict:
    """The named arguments of every ``__init__`` now running for ``obj`` (a subclass's over its base's):
    what it takes to build ``obj`` again. Reads the calling frames, as Lightning's ``save_hyperparameters`` does."""
    arguments: dict = {}
    frame = inspect.currentframe()
    while frame is not None:
        code = frame.f_code
        if code.co_name == "__init__" and frame.f_locals.get("self") is obj:
            names = code.co_varnames[1 : code.co_argcount + code.co_kwonlyargcount]
            arguments.update({name: frame.f_locals[name] for name in names})  # outer (subclass) frames come later
        frame = frame.f_back
    return arguments


class Seq2SeqNet(nn.Module, abc.ABC):
    """Encoder-decoder network with the search interface.

    Besides its layers a network carries what translating needs: the ``tokenizer`` (set by the
    training system or the checkpoint) and the search defaults below.

    Args:
        src_vocab_size: source vocabulary size (linked from the data module by the CLI).
        tgt_vocab_size: target vocabulary size (linked from the data module by the CLI).
        max_len_a: outputs end after ``max_len_a * source_length + max_len_b`` tokens.
        max_len_b: see ``max_len_a``.
        length_penalty: GNMT alpha of beam search (0 ranks by raw log-probability; see :mod:`nmt.search`).
    """

    max_source_positions = 1024  # longest source the network accepts; longer ones are truncated

    def __init__(
        self,
        src_vocab_size: int = 1000,
        tgt_vocab_size: int = 1000,
        max_len_a: float = 1.5,
        max_len_b: int = 10,
        length_penalty: float = 1.0,
    ):
        super().__init__()
        cls = type(self)
        self.config = {"class_path": f"{cls.__module__}.{cls.__qualname__}", "init_args": constructor_arguments(self)}
        self.src_vocab_size, self.tgt_vocab_size = src_vocab_size, tgt_vocab_size
        self.max_len_a, self.max_len_b, self.length_penalty = max_len_a, max_len_b, length_penalty
        self.tokenizer: Tokenizer | None = None

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @abc.abstractmethod
    def forward(self, batch: Batch) -> torch.Tensor:
        """Teacher-forced logits (B, T, V)."""

    @abc.abstractmethod
    def encode(self, src: torch.Tensor, src_mask: torch.Tensor, attention: bool = True) -> DecoderState:
        """Run the encoder once per batch: src (B, S), src_mask (B, S) -> the decoder's first state.

        ``attention=False``: the caller will not use attention weights, so a network that
        computes them only to report them (the Transformer) may skip that and return None.
        """

    @abc.abstractmethod
    def decode_step(self, prev_tokens: torch.Tensor, state: DecoderState):
        """One step: prev_tokens (R,) -> (log_probs (R, V), new state, attention (R, S) or None)."""

    def translate_batch(
        self,
        src: torch.Tensor,
        src_mask: torch.Tensor,
        beam: int = 1,
        nbest: int = 1,
        alpha: float | None = None,
        attention: bool = True,
        prefix: torch.Tensor | None = None,
        sampling: search.Sampling | None = None,
    ) -> search.Hypotheses:
        """Beam search (``beam=1``: greedy), or ``nbest`` samples with ``sampling``, with this network's
        length limits and penalty; ``attention=False`` leaves the attention out of the result (faster);
        ``prefix`` (B, P) target ids each output starts with (PAD-padded)."""
        a, b = self.max_len_a, self.max_len_b
        if sampling is not None:
            return search.sample(self, src, src_mask, sampling, nbest, a, b, attention, prefix)
        if beam == 1:
            return search.greedy(self, src, src_mask, a, b, attention, prefix)
        alpha = self.length_penalty if alpha is None else alpha
        return search.beam_search(self, src, src_mask, beam, nbest, alpha, a, b, attention, prefix)
