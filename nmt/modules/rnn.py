"""Recurrent building blocks shared by the GRU, Bahdanau and Luong models.

The cell is ``gru`` (Cho et al. 2014), ``lstm`` (Hochreiter & Schmidhuber 1997) or ``rnn``
(Elman, tanh), so the same model can be compared across cells. Hidden states travel
batch-first, ``(B, L, H)`` (a pair of them for the LSTM), so generic beam search can reorder
them along dimension 0; :func:`to_torch` / :func:`from_torch` convert at the cell boundary.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from nmt.modules.dropout import Dropout

CELLS = {"gru": nn.GRU, "lstm": nn.LSTM, "rnn": nn.RNN}

Hidden = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


def make_rnn(cell: str, input_size: int, hidden_size: int, num_layers: int, dropout: float,
             bidirectional: bool = False) -> nn.RNNBase:  # fmt: skip
    if cell not in CELLS:
        raise ValueError(f"cell must be one of {sorted(CELLS)}, got '{cell}'")
    extra = {"nonlinearity": "tanh"} if cell == "rnn" else {}
    return CELLS[cell](
        input_size,
        hidden_size,
        num_layers,
        batch_first=True,
        dropout=dropout if num_layers > 1 else 0.0,
        bidirectional=bidirectional,
        **extra,
    )


def to_torch(hidden: Hidden) -> Hidden:
    """(B, L, H) -> (L, B, H), what ``nn.GRU`` etc. take."""
    if isinstance(hidden, tuple):
        return tuple(h.transpose(0, 1).contiguous() for h in hidden)
    return hidden.transpose(0, 1).contiguous()


def from_torch(hidden: Hidden) -> Hidden:
    """(L, B, H) -> (B, L, H)."""
    if isinstance(hidden, tuple):
        return tuple(h.transpose(0, 1) for h in hidden)
    return hidden.transpose(0, 1)


def top(hidden: Hidden) -> torch.Tensor:
    """The top layer's hidden state (B, H) (for the LSTM, h rather than the cell c)."""
    return (hidden[0] if isinstance(hidden, tuple) else hidden)[:, -1]


class RNNEncoder(nn.Module):
    """Recurrent encoder over packed sequences, so padding never reaches a state.

    With ``bidirectional`` each direction has ``hidden_size // 2`` units, so outputs and final
    states are ``hidden_size`` wide either way (forward and backward concatenated).
    """

    def __init__(self, cell: str, input_size: int, hidden_size: int, num_layers: int, dropout: float,
                 bidirectional: bool):  # fmt: skip
        super().__init__()
        if bidirectional and hidden_size % 2:
            raise ValueError(f"a bidirectional encoder needs an even hidden_size, got {hidden_size}")
        self.bidirectional = bidirectional
        per_direction = hidden_size // 2 if bidirectional else hidden_size
        self.rnn = make_rnn(cell, input_size, per_direction, num_layers, dropout, bidirectional)
        self.dropout = Dropout(dropout)

    def forward(self, embedded: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, Hidden]:
        """embedded (B, S, E), lengths (B,) -> outputs (B, S, H), final state (B, L, H)."""
        packed = pack_padded_sequence(self.dropout(embedded), lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, final = self.rnn(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=embedded.size(1))
        return self.dropout(out), self._merge(final)

    def _merge(self, final: Hidden) -> Hidden:
        if isinstance(final, tuple):
            return tuple(self._merge(f) for f in final)
        if self.bidirectional:  # (L * 2, B, H/2) -> (L, B, H): forward and backward side by side
            final = torch.cat([final[0::2], final[1::2]], dim=-1)
        return from_torch(final)


class Bridge(nn.Module):
    """Initial decoder state from the encoder's final state: s_0 = tanh(W h_final) (per layer)."""

    def __init__(self, size: int):
        super().__init__()
        self.proj = nn.Linear(size, size)

    def forward(self, final: Hidden) -> Hidden:
        if isinstance(final, tuple):
            return tuple(torch.tanh(self.proj(f)) for f in final)
        return torch.tanh(self.proj(final))


class Readout(nn.Module):
    """Vocabulary logits from a decoder feature, optionally tied to the target embedding.

    When tied and the feature is wider than the embedding, a linear map brings it down first.
    """

    def __init__(self, in_size: int, vocab_size: int, embedding: nn.Embedding | None):
        super().__init__()
        self.embedding = embedding
        if embedding is None:
            self.proj = nn.Linear(in_size, vocab_size)
        else:
            dim = embedding.embedding_dim
            self.proj = nn.Linear(in_size, dim, bias=False) if in_size != dim else nn.Identity()

    def forward(self, feature: torch.Tensor) -> torch.Tensor:  # (B, F) -> (B, V)
        if self.embedding is None:
            return self.proj(feature)
        return self.proj(feature) @ self.embedding.weight.t()
