"""``TransformerSeq2Seq``: the Transformer network (:mod:`nmt.networks.transformer`) as a trainable system."""

from __future__ import annotations

from nmt.models.base import Seq2SeqSystem
from nmt.networks.transformer import TransformerNet


class TransformerSeq2Seq(Seq2SeqSystem):
    """Encoder-decoder Transformer (Vaswani et al. 2017).

    Args: the network's, see :class:`~nmt.networks.transformer.TransformerNet`; **kwargs: the
    shared training options, see :class:`~nmt.models.base.Seq2SeqSystem`.
    """

    def __init__(
        self,
        d_model: int = 128,
        n_heads: int = 4,
        d_ff: int = 512,
        encoder_layers: int = 2,
        decoder_layers: int = 2,
        dropout: float = 0.1,
        attention_dropout: float = 0.0,
        activation_dropout: float = 0.0,
        pre_norm: bool = True,
        share_embeddings: bool = True,
        tie_output: bool = True,
        max_positions: int = 1024,
        attention_layer: int = -1,
        attention_head: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.net = self.build(TransformerNet)
