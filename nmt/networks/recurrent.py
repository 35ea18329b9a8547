"""``RecurrentNet``: what the GRU, Bahdanau and Luong networks share.

Embeddings, the packed recurrent encoder, the bridge to the decoder's first state, and the
teacher-forced ``forward`` written as a loop over the model's own ``step``, so training and
search run exactly the same computation. With ``teacher_forcing_ratio < 1`` training feeds
back the model's own previous prediction at random steps (scheduled sampling, Bengio et al. 2015).
Subclasses implement ``init_state`` and ``step``.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from nmt.data.batching import Batch
from nmt.modules.dropout import Dropout
from nmt.modules.rnn import Bridge, Hidden, Readout, RNNEncoder, make_rnn
from nmt.networks.base import Seq2SeqNet
from nmt.networks.state import DecoderState, row_field, source_field


@dataclass(kw_only=True)
class RecurrentState(DecoderState):
    """A recurrent decoder between steps: the hidden state (R, L, H) (a pair for the LSTM), one row per hypothesis."""

    hidden: Hidden = row_field()


@dataclass(kw_only=True)
class AttentionState(RecurrentState):
    """A recurrent decoder with attention: ``keys`` (N, S, A), ``values`` (N, S, H) and ``src_mask`` (N, S)
    have one row per sentence, read by its ``group`` beams at once (the attention groups the queries);
    ``feed`` is Luong's attentional vector h~_{t-1} (R, H) with input feeding, else None."""

    keys: torch.Tensor = source_field()
    values: torch.Tensor = source_field()
    src_mask: torch.Tensor = source_field()
    feed: torch.Tensor | None = row_field(None)


class RecurrentNet(Seq2SeqNet):
    """Shared options of the recurrent models.

    Args:
        emb_size: embedding size.
        hidden_size: encoder output and decoder state size.
        num_layers: recurrent layers of the encoder and of the decoder.
        dropout: dropout on embeddings, outputs and between layers.
        cell: ``gru``, ``lstm`` or ``rnn`` (Elman, tanh).
        bidirectional: bidirectional encoder (each direction gets ``hidden_size // 2`` units).
        share_embeddings: one embedding for source and target (needs a joint vocabulary; linked
            from ``data.joint_vocab`` by the CLI).
        tie_output: the output layer reuses the target embedding.
        teacher_forcing_ratio: probability of feeding the reference token during training (1 = always;
            below 1: scheduled sampling).
        **kwargs: vocabulary sizes and search defaults, see :class:`~nmt.networks.base.Seq2SeqNet`.
    """

    def __init__(
        self,
        emb_size: int = 128,
        hidden_size: int = 256,
        num_layers: int = 1,
        dropout: float = 0.2,
        cell: str = "gru",
        bidirectional: bool = True,
        share_embeddings: bool = True,
        tie_output: bool = True,
        teacher_forcing_ratio: float = 1.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if share_embeddings and self.src_vocab_size != self.tgt_vocab_size:
            raise ValueError("share_embeddings needs one vocabulary; use --data.joint_vocab true or turn it off")
        self.emb_size, self.hidden_size, self.num_layers, self.cell = emb_size, hidden_size, num_layers, cell
        self.tie_output, self.teacher_forcing_ratio = tie_output, teacher_forcing_ratio
        self.src_embed = nn.Embedding(self.src_vocab_size, emb_size, padding_idx=self.pad_id)
        self.tgt_embed = self.src_embed if share_embeddings else nn.Embedding(self.tgt_vocab_size, emb_size,
                                                                              self.pad_id)  # fmt: skip
        self.encoder = RNNEncoder(cell, emb_size, hidden_size, num_layers, dropout, bidirectional)
        self.bridge = Bridge(hidden_size)
        self.dropout = Dropout(dropout)

    def make_decoder(self, input_size: int) -> nn.RNNBase:
        """The decoder's recurrent stack (unidirectional, ``num_layers`` x ``hidden_size``)."""
        return make_rnn(self.cell, input_size, self.hidden_size, self.num_layers, self.dropout.p)

    def make_readout(self, in_size: int) -> Readout:
        return Readout(in_size, self.tgt_vocab_size, self.tgt_embed if self.tie_output else None)

    @abc.abstractmethod
    def init_state(self, outputs: torch.Tensor, final: Hidden, src_mask: torch.Tensor) -> RecurrentState:
        """Decoder state from encoder outputs (B, S, H) and final state (B, L, H)."""

    @abc.abstractmethod
    def step(self, prev_tokens: torch.Tensor, state: RecurrentState):
        """prev_tokens (B,) -> (logits (B, V), new state, attention (B, S) or None)."""

    def encode(self, src: torch.Tensor, src_mask: torch.Tensor, attention: bool = True) -> RecurrentState:
        # Attention weights are part of the computation here; a search that needs none drops them.
        outputs, final = self.encoder(self.src_embed(src), src_mask.sum(1))
        return self.init_state(outputs, final, src_mask)

    def decode_step(self, prev_tokens: torch.Tensor, state: RecurrentState):
        logits, state, attention = self.step(prev_tokens, state)
        return F.log_softmax(logits.float(), dim=-1), state, attention

    def forward(self, batch: Batch) -> torch.Tensor:
        state = self.encode(batch.src, batch.src_mask)
        ratio = self.teacher_forcing_ratio
        logits: list[torch.Tensor] = []
        for t in range(batch.tgt_in.size(1)):
            prev = batch.tgt_in[:, t]
            if self.training and ratio < 1.0 and t > 0:
                own = logits[-1].detach().argmax(-1)
                use_own = torch.rand(prev.shape, device=prev.device) >= ratio
                prev = torch.where(use_own, own, prev)
            step_logits, state, _ = self.step(prev, state)
            logits.append(step_logits)
        return torch.stack(logits, 1)  # (B, T, V)
