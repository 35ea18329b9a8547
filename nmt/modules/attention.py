"""Attention for recurrent decoders: Bahdanau (additive) and Luong (dot / general / concat).

Both are called the same way::

    keys = attention.project_keys(encoder_outputs)      # once per source sentence
    context, weights = attention(query, keys, values, mask)

query (B, Q), keys (B, S, K') as returned by ``project_keys``, values (B, S, V), mask (B, S)
True at real tokens -> context (B, V), weights (B, S) summing to 1, exactly 0 at padding.
The query may have g times as many rows as the keys (beam search: the g consecutive beams of
a sentence attend to one copy of its keys and values); context and weights then have B * g rows.
"""

from __future__ import annotations

import torch
from torch import nn


def _group(query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """(B * g, Q) -> (B, g, Q): the query rows of each key row."""
    return query.view(keys.size(0), -1, query.size(-1))


def _attend(scores: torch.Tensor, values: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    weights = scores.masked_fill(~mask.unsqueeze(1), float("-inf")).softmax(-1)  # (B, g, S)
    return torch.bmm(weights, values).flatten(0, 1), weights.flatten(0, 1)  # (B * g, V), (B * g, S)


class BahdanauAttention(nn.Module):
    """Additive attention, Bahdanau et al. 2015 (eq. 6 and appendix A.1.2):

    e_ij = v_a^T tanh(W_a s_{i-1} + U_a h_j). ``U_a h_j`` is computed once per source.
    """

    def __init__(self, query_size: int, key_size: int, hidden_size: int):
        super().__init__()
        self.query_proj = nn.Linear(query_size, hidden_size, bias=False)
        self.key_proj = nn.Linear(key_size, hidden_size, bias=False)
        self.v = nn.Linear(hidden_size, 1, bias=False)

    def project_keys(self, keys: torch.Tensor) -> torch.Tensor:  # (B, S, K) -> (B, S, A)
        return self.key_proj(keys)

    def forward(self, query, keys, values, mask) -> tuple[torch.Tensor, torch.Tensor]:
        query = _group(self.query_proj(query), keys).unsqueeze(2)  # (B, g, 1, A)
        scores = self.v(torch.tanh(query + keys.unsqueeze(1))).squeeze(-1)  # (B, g, S)
        return _attend(scores, values, mask)


class LuongAttention(nn.Module):
    """Global attention, Luong et al. 2015 (section 3.1, eq. 8):

    score(h_t, h_s) = h_t^T h_s (dot) | h_t^T W_a h_s (general) | v_a^T tanh(W_a [h_t; h_s]) (concat).
    ``W_a h_s`` (general) and the source half of ``W_a [h_t; h_s]`` (concat) are computed once per source.
    """

    SCORES = ("dot", "general", "concat")

    def __init__(self, query_size: int, key_size: int, hidden_size: int | None = None, score: str = "general"):
        super().__init__()
        if score not in self.SCORES:
            raise ValueError(f"score must be one of {self.SCORES}, got '{score}'")
        if score == "dot" and query_size != key_size:
            raise ValueError(f"dot attention needs equal query and key sizes, got {query_size} and {key_size}")
        self.score = score
        if score == "general":
            self.key_proj = nn.Linear(key_size, query_size, bias=False)
        elif score == "concat":
            hidden_size = hidden_size or query_size
            self.query_proj = nn.Linear(query_size, hidden_size, bias=False)
            self.key_proj = nn.Linear(key_size, hidden_size, bias=False)
            self.v = nn.Linear(hidden_size, 1, bias=False)

    def project_keys(self, keys: torch.Tensor) -> torch.Tensor:
        return keys if self.score == "dot" else self.key_proj(keys)

    def forward(self, query, keys, values, mask) -> tuple[torch.Tensor, torch.Tensor]:
        if self.score == "concat":
            query = _group(self.query_proj(query), keys).unsqueeze(2)  # (B, g, 1, A)
            scores = self.v(torch.tanh(query + keys.unsqueeze(1))).squeeze(-1)
        else:
            scores = torch.bmm(_group(query, keys), keys.transpose(1, 2))  # (B, g, S)
        return _attend(scores, values, mask)
