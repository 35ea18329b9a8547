"""``GRUNet``: the RNN encoder-decoder of Cho et al. 2014, without attention.

"Learning Phrase Representations using RNN Encoder-Decoder for Statistical Machine
Translation", section 2.2 and appendix A. The encoder's final state is the summary c of the
whole source; it initialises the decoder, s_0 = tanh(V' c), and is fed to every step:

    s_t = f(s_{t-1}, y_{t-1}, c)                 (the recurrent input is [E y_{t-1}; c])
    p(y_t | ...) = softmax(W_o tanh(W [s_t; E y_{t-1}; c]))   (deep output; maxout in the paper)

Every source word has to pass through the single vector c: the bottleneck attention removed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

from nmt.modules.rnn import from_torch, to_torch, top
from nmt.networks.recurrent import RecurrentNet, RecurrentState
from nmt.networks.state import sentence_field


@dataclass(kw_only=True)
class GRUState(RecurrentState):
    """The hidden state and the summary c (R, H), the same for all beams of a sentence."""

    context: torch.Tensor = sentence_field()


class GRUNet(RecurrentNet):
    """Encoder-decoder without attention (Cho et al. 2014).

    Args:
        bidirectional: bidirectional encoder (False by default, as in the paper).
        **kwargs: see :class:`~nmt.networks.recurrent.RecurrentNet`.
    """

    has_attention = False

    def __init__(self, bidirectional: bool = False, **kwargs):
        super().__init__(bidirectional=bidirectional, **kwargs)
        self.decoder = self.make_decoder(self.emb_size + self.hidden_size)
        self.deep_output = nn.Linear(2 * self.hidden_size + self.emb_size, self.hidden_size)
        self.readout = self.make_readout(self.hidden_size)

    def init_state(self, outputs: torch.Tensor, final, src_mask: torch.Tensor) -> GRUState:
        return GRUState(hidden=self.bridge(final), context=top(final))  # (B, L, H), c (B, H)

    def step(self, prev_tokens: torch.Tensor, state: GRUState):
        emb = self.dropout(self.tgt_embed(prev_tokens))  # (R, E)
        context = state.context
        out, hidden = self.decoder(torch.cat([emb, context], -1).unsqueeze(1), to_torch(state.hidden))
        feature = torch.tanh(self.deep_output(torch.cat([out[:, 0], emb, context], -1)))
        logits = self.readout(self.dropout(feature))
        return logits, replace(state, hidden=from_torch(hidden)), None
