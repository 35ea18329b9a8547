"""``LuongSeq2Seq``: :class:`~nmt.networks.luong.LuongNet` as a trainable system."""

from __future__ import annotations

from nmt.models.recurrent import RecurrentSeq2Seq
from nmt.networks.luong import LuongNet


class LuongSeq2Seq(RecurrentSeq2Seq):
    """Global attention from the current decoder state (Luong et al. 2015), :class:`~nmt.networks.luong.LuongNet`;
    ``score``: dot, general or concat."""

    def __init__(self, score: str = "general", input_feeding: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.net = self.build(LuongNet)
