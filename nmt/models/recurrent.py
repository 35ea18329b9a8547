"""``RecurrentSeq2Seq``: the options the GRU, Bahdanau and Luong systems share.

Each system declares its network's arguments (the config schema; their meaning is documented
on the network, :mod:`nmt.networks`) and builds it from its hyperparameters.
"""

from __future__ import annotations

from nmt.models.base import Seq2SeqSystem


class RecurrentSeq2Seq(Seq2SeqSystem):
    """The options every recurrent network takes, see :class:`~nmt.networks.recurrent.RecurrentNet`."""

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
