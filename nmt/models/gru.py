"""``GRUSeq2Seq``: :class:`~nmt.networks.gru.GRUNet` as a trainable system."""

from __future__ import annotations

from nmt.models.recurrent import RecurrentSeq2Seq
from nmt.networks.gru import GRUNet


class GRUSeq2Seq(RecurrentSeq2Seq):
    """Encoder-decoder without attention (Cho et al. 2014), :class:`~nmt.networks.gru.GRUNet`;
    ``bidirectional`` defaults to False, as in the paper."""

    def __init__(self, bidirectional: bool = False, **kwargs):
        super().__init__(bidirectional=bidirectional, **kwargs)
        self.net = self.build(GRUNet)
