"""``Ensemble``: several networks decoding as one (``nmt translate --ckpt a.ckpt b.ckpt``).

At every step each member scores the next token and the ensemble takes the average of their
log-probabilities (a geometric mean of the members' distributions, as Marian and Sockeye offer;
fairseq averages probabilities instead). Any mix of architectures works, as long as the members
share the tokenizer (the loader checks it): the search sees one model with the networks' interface.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from nmt.data.batching import Batch
from nmt.networks.base import Seq2SeqNet
from nmt.networks.state import DecoderState


@dataclass(kw_only=True)
class EnsembleState(DecoderState):
    """The members' own states, moved together."""

    states: list[DecoderState] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return self.states[0].rows

    def expand(self, beam: int) -> EnsembleState:
        return EnsembleState(states=[s.expand(beam) for s in self.states], group=self.group * beam)

    def reorder(self, index: torch.Tensor) -> EnsembleState:
        return EnsembleState(states=[s.reorder(index) for s in self.states], group=self.group)


class Ensemble(nn.Module):
    """Networks trained with one tokenizer, decoding together; the first one's search defaults apply.

    Args:
        members: the networks (e.g. from :func:`nmt.networks.loading.load`).
    """

    def __init__(self, members: list[Seq2SeqNet]):
        super().__init__()
        first = members[0]
        self.members = nn.ModuleList(members)
        self.max_len_a, self.max_len_b, self.length_penalty = first.max_len_a, first.max_len_b, first.length_penalty
        self.pad_id, self.bos_id, self.eos_id = first.pad_id, first.bos_id, first.eos_id
        self.max_source_positions = min(m.max_source_positions for m in members)
        self.max_target_positions = min(m.max_target_positions for m in members)
        self.has_attention = any(m.has_attention for m in members)

    @property
    def device(self) -> torch.device:
        return self.members[0].device

    def forward(self, batch: Batch) -> torch.Tensor:
        """The average of the members' log-probabilities under teacher forcing (B, T, V)."""
        return torch.stack([torch.log_softmax(m(batch).float(), -1) for m in self.members]).mean(0)

    def encode(self, src: torch.Tensor, src_mask: torch.Tensor, attention: bool = True) -> EnsembleState:
        return EnsembleState(states=[m.encode(src, src_mask, attention) for m in self.members])

    def decode_step(self, prev_tokens: torch.Tensor, state: EnsembleState):
        steps = [m.decode_step(prev_tokens, s) for m, s in zip(self.members, state.states)]
        log_probs = torch.stack([lp.float() for lp, _, _ in steps]).mean(0)
        attention = [a for _, _, a in steps if a is not None]
        new_state = EnsembleState(states=[s for _, s, _ in steps], group=state.group)
        return log_probs, new_state, torch.stack(attention).mean(0) if attention else None
