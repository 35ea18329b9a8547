"""``BahdanauNet``: RNNsearch of Bahdanau, Cho & Bengio 2015 (additive attention).

"Neural Machine Translation by Jointly Learning to Align and Translate", section 3 and
appendix A. A bidirectional encoder gives annotations h_j; the decoder attends from its
*previous* state, and the context enters both the recurrence and the output:

    e_tj = v_a^T tanh(W_a s_{t-1} + U_a h_j),   a_t = softmax(e_t),   c_t = sum_j a_tj h_j
    s_t = f(s_{t-1}, [E y_{t-1}; c_t])
    p(y_t | ...) = softmax(W_o tanh(W [s_t; E y_{t-1}; c_t]))   (deep output; maxout in the paper)
    s_0 = tanh(W_s h_final)                                    (the bridge)
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from nmt.modules.attention import BahdanauAttention
from nmt.modules.rnn import from_torch, to_torch, top
from nmt.networks.recurrent import AttentionState, RecurrentNet


class BahdanauNet(RecurrentNet):
    """Attention from the previous decoder state (Bahdanau et al. 2015).

    Args:
        attention_size: width of the additive scorer (default: ``hidden_size``).
        **kwargs: see :class:`~nmt.networks.recurrent.RecurrentNet`.
    """

    def __init__(self, attention_size: int | None = None, **kwargs):
        super().__init__(**kwargs)
        h = self.hidden_size
        self.attention = BahdanauAttention(h, h, attention_size or h)
        self.decoder = self.make_decoder(self.emb_size + h)
        self.deep_output = nn.Linear(2 * h + self.emb_size, h)
        self.readout = self.make_readout(h)

    def init_state(self, outputs: torch.Tensor, final, src_mask: torch.Tensor) -> AttentionState:
        return AttentionState(
            hidden=self.bridge(final),  # (B, L, H)
            keys=self.attention.project_keys(outputs),  # (B, S, A), once per source
            values=outputs,  # (B, S, H)
            src_mask=src_mask,
        )

    def step(self, prev_tokens: torch.Tensor, state: AttentionState):
        emb = self.dropout(self.tgt_embed(prev_tokens))  # (R, E)
        context, weights = self.attention(top(state.hidden), state.keys, state.values, state.src_mask)
        out, hidden = self.decoder(torch.cat([emb, context], -1).unsqueeze(1), to_torch(state.hidden))
        feature = torch.tanh(self.deep_output(torch.cat([out[:, 0], emb, context], -1)))
        logits = self.readout(self.dropout(feature))
        return logits, replace(state, hidden=from_torch(hidden)), weights
