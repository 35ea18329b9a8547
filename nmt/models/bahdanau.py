"""``BahdanauSeq2Seq``: :class:`~nmt.networks.bahdanau.BahdanauNet` as a trainable system."""

from __future__ import annotations

from nmt.models.recurrent import RecurrentSeq2Seq
from nmt.networks.bahdanau import BahdanauNet


class BahdanauSeq2Seq(RecurrentSeq2Seq):
    """Additive attention from the previous decoder state (Bahdanau et al. 2015),
    :class:`~nmt.networks.bahdanau.BahdanauNet`."""

    def __init__(self, attention_size: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.net = self.build(BahdanauNet)
