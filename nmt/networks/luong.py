"""``LuongNet``: global attention of Luong, Pham & Manning 2015.

"Effective Approaches to Attention-based Neural Machine Translation", sections 3.1 and 3.3.
The decoder attends from its *current* state h_t and combines context and state into an
attentional state, which makes the prediction and (input feeding) enters the next step:

    h_t = f(h_{t-1}, [E y_{t-1}; h~_{t-1}])           (input feeding; [E y_{t-1}] without it)
    a_t(s) = softmax(score(h_t, h_s)),  c_t = sum_s a_t(s) h_s
    score = h_t^T h_s (dot) | h_t^T W_a h_s (general) | v_a^T tanh(W_a [h_t; h_s]) (concat)
    h~_t = tanh(W_c [c_t; h_t])                       (eq. 5)
    p(y_t | ...) = softmax(W_s h~_t)                  (eq. 6)
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from nmt.modules.attention import LuongAttention
from nmt.modules.rnn import from_torch, to_torch
from nmt.networks.recurrent import AttentionState, RecurrentNet


class LuongNet(RecurrentNet):
    """Global attention from the current decoder state (Luong et al. 2015).

    Args:
        score: attention score, ``dot``, ``general`` or ``concat`` (section 3.1).
        input_feeding: feed the attentional vector h~_{t-1} into the next step (section 3.3).
        **kwargs: see :class:`~nmt.networks.recurrent.RecurrentNet`.
    """

    def __init__(self, score: str = "general", input_feeding: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.input_feeding = input_feeding
        h = self.hidden_size
        self.attention = LuongAttention(h, h, h, score)
        self.decoder = self.make_decoder(self.emb_size + (h if input_feeding else 0))
        self.combine = nn.Linear(2 * h, h, bias=False)  # W_c
        self.readout = self.make_readout(h)

    def init_state(self, outputs: torch.Tensor, final, src_mask: torch.Tensor) -> AttentionState:
        return AttentionState(
            hidden=self.bridge(final),  # (B, L, H)
            keys=self.attention.project_keys(outputs),  # (B, S, H), once per source
            values=outputs,
            src_mask=src_mask,
            feed=outputs.new_zeros(outputs.size(0), self.hidden_size),  # h~_0 (B, H)
        )

    def step(self, prev_tokens: torch.Tensor, state: AttentionState):
        emb = self.dropout(self.tgt_embed(prev_tokens))  # (R, E)
        x = torch.cat([emb, state.feed], -1) if self.input_feeding else emb
        out, hidden = self.decoder(x.unsqueeze(1), to_torch(state.hidden))
        h_t = out[:, 0]  # (R, H)
        context, weights = self.attention(h_t, state.keys, state.values, state.src_mask)
        attentional = torch.tanh(self.combine(torch.cat([context, h_t], -1)))  # h~_t
        logits = self.readout(self.dropout(attentional))
        return logits, replace(state, hidden=from_torch(hidden), feed=attentional), weights
