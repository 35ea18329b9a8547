"""``Seq2SeqNet``: the one interface every nmt network implements (plain ``nn.Module``, no Lightning).

A network is the model proper: its layers and three methods, ``forward(batch) -> logits (B, T, V)``
(teacher forcing), ``encode(src, src_mask) -> state`` and ``decode_step(prev_tokens, state)``; the
state is a :class:`~nmt.networks.state.DecoderState` that the search expands and reorders. The
search (:mod:`nmt.search`, above the networks) needs nothing else, so a network loads from a
checkpoint without importing Lightning. Training, evaluation and checkpoints are the job of the
LightningModule :class:`~nmt.system.Seq2SeqSystem`, which holds a network as ``self.net``; the
tokenizer travels beside the network, never inside it.

A network remembers the arguments it was built with (:attr:`Seq2SeqNet.config`, in the
``class_path``/``init_args`` form of the command line); checkpoints store it, and
:func:`nmt.networks.loading.build` builds the same network again from it.
"""

from __future__ import annotations

import abc
import inspect

import torch
from torch import nn

from nmt.data.batching import Batch
from nmt.data.tokenizer import BOS_ID, EOS_ID, PAD_ID
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


def count_parameters(module: nn.Module) -> int:
    """The number of weights, each shared (tied) tensor once."""
    return sum(p.numel() for p in {id(p): p for p in module.parameters()}.values())


class Seq2SeqNet(nn.Module, abc.ABC):
    """Encoder-decoder network with the search interface.

    Besides its layers a network carries the search defaults below (the search reads them).

    Args:
        src_vocab_size: source vocabulary size (linked from the data module by the CLI).
        tgt_vocab_size: target vocabulary size (linked from the data module by the CLI).
        max_len_a: outputs end after ``max_len_a * source_length + max_len_b`` tokens.
        max_len_b: see ``max_len_a``.
        length_penalty: GNMT alpha of beam search (0 ranks by raw log-probability; see :mod:`nmt.search`).
        pad_id: the vocabulary's padding id (linked from the data module's tokenizer by the CLI; an imported
            model's is its own).
        bos_id: the decoder's first input (nmt's ``<s>``; an imported MarianMT model starts from its padding id).
        eos_id: the id that ends a sentence.
    """

    max_source_positions = 1024  # longest source the network accepts; longer ones are truncated
    max_target_positions = 1 << 30  # longest output it can produce (a Transformer's position table)
    has_attention = True  # decode_step reports attention over the source (the GRU's bottleneck has none)

    def __init__(
        self,
        src_vocab_size: int = 1000,
        tgt_vocab_size: int = 1000,
        max_len_a: float = 1.5,
        max_len_b: int = 10,
        length_penalty: float = 1.0,
        pad_id: int = PAD_ID,
        bos_id: int = BOS_ID,
        eos_id: int = EOS_ID,
    ):
        super().__init__()
        cls = type(self)
        self.config = {"class_path": f"{cls.__module__}.{cls.__qualname__}", "init_args": constructor_arguments(self)}
        self.src_vocab_size, self.tgt_vocab_size = src_vocab_size, tgt_vocab_size
        self.max_len_a, self.max_len_b, self.length_penalty = max_len_a, max_len_b, length_penalty
        self.pad_id, self.bos_id, self.eos_id = pad_id, bos_id, eos_id

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
