"""``TransformerNet``: the Transformer of Vaswani et al. 2017 as an nmt network.

The network is only wiring: ``decode(encode(src), tgt_in)``. Blocks live in
:mod:`nmt.modules.transformer`. Decoder input and output embeddings are tied
(Press & Wolf 2017); with a joint vocabulary the encoder shares them too.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nmt.data.batching import Batch
from nmt.data.tokenizer import PAD_ID
from nmt.modules.transformer import Embedding, TransformerDecoder, TransformerEncoder
from nmt.networks.base import Seq2SeqNet


class TransformerNet(Seq2SeqNet):
    """Encoder-decoder Transformer. The defaults are a small model that learns the embedded
    corpus on a CPU in minutes; ``configs/`` holds larger ones (Transformer-base: d_model 512,
    8 heads, d_ff 2048, 6 + 6 layers).

    Args:
        d_model: model width. n_heads: attention heads. d_ff: feed-forward width.
        encoder_layers, decoder_layers: stack depths.
        dropout: residual/embedding dropout. attention_dropout: dropout on attention weights.
        activation_dropout: dropout on the feed-forward ReLU output (fairseq's ``activation_dropout``;
            off by default as in fairseq; JoeyNMT and tensor2tensor use the residual rate here).
        pre_norm: LayerNorm before each sublayer (stable without long warm-up); False gives the
            original post-norm.
        share_embeddings: share source and target embeddings (needs a joint vocabulary;
            linked from ``data.joint_vocab`` by the CLI).
        tie_output: tie the output projection to the target embedding.
        max_positions: longest sequence the positional table covers.
        attention_layer: decoder layer whose cross-attention ``decode_step`` returns (-1 = last).
        attention_head: the head to return (None = the average over heads).
        src_vocab_size, tgt_vocab_size: see :class:`~nmt.networks.base.Seq2SeqNet`.
    """

    source_state = frozenset({"cross_kv", "src_mask"})
    shared_source = True  # cross-attention lets a sentence's beams share its keys/values (5x less to read)

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
        if share_embeddings and self.src_vocab_size != self.tgt_vocab_size:
            raise ValueError(
                f"share_embeddings needs one vocabulary, got {self.src_vocab_size} source and "
                f"{self.tgt_vocab_size} target pieces; use --data.joint_vocab true or share_embeddings false"
            )
        self.src_embed = Embedding(self.src_vocab_size, d_model, PAD_ID, max_positions, dropout)
        self.tgt_embed = self.src_embed if share_embeddings else Embedding(
            self.tgt_vocab_size, d_model, PAD_ID, max_positions, dropout
        )  # fmt: skip
        layer_args = (d_model, n_heads, d_ff, dropout, attention_dropout, pre_norm, activation_dropout)
        self.encoder = TransformerEncoder(encoder_layers, *layer_args)
        self.decoder = TransformerDecoder(decoder_layers, *layer_args)
        self.output = nn.Linear(d_model, self.tgt_vocab_size, bias=False)
        if tie_output:
            self.output.weight = self.tgt_embed.tokens.weight
        self.max_source_positions = max_positions
        self.n_heads, self.decoder_layers = n_heads, decoder_layers
        self.attention_layer, self.attention_head = attention_layer, attention_head

    def forward(self, batch: Batch) -> torch.Tensor:
        memory = self.encoder(self.src_embed(batch.src), batch.src_mask)  # (B, S, D)
        hidden, _, _ = self.decoder(self.tgt_embed(batch.tgt_in), self.decoder.cross_kv(memory), batch.src_mask)
        return self.output(hidden)  # (B, T, V)

    def encode(self, src: torch.Tensor, src_mask: torch.Tensor, attention: bool = True) -> dict:
        memory = self.encoder(self.src_embed(src), src_mask)
        return {
            "cross_kv": self.decoder.cross_kv(memory),
            "src_mask": src_mask,
            "caches": None,
            "step": 0,
            "weights_layer": self.attention_layer if attention else None,  # None: no weights computed
            "beam": 1,  # decoder rows per source row (beam search: the K beams of each sentence)
            "order": None,  # a reorder of the caches not applied yet: batch row -> cache row
        }

    def reorder_state(self, state: dict, index: torch.Tensor, within_sentences: bool = False) -> dict:
        # The caches are reordered lazily: the next decode_step gathers them while appending to them.
        pending = state["order"]
        new = {**state, "order": None if state["caches"] is None else index if pending is None else pending[index]}
        return new if within_sentences else {**new, **self.source_rows(state, index)}

    def decode_step(self, prev_tokens: torch.Tensor, state: dict):
        step = state["step"]
        x = self.tgt_embed(prev_tokens[:, None], offset=step)  # (B, 1, D)
        hidden, caches, weights = self.decoder(
            x, state["cross_kv"], state["src_mask"], state["caches"], state["weights_layer"], state["order"]
        )
        log_probs = F.log_softmax(self.output(hidden[:, 0]).float(), dim=-1)  # (B, V)
        new_state = {**state, "caches": caches, "step": step + 1, "order": None}
        if weights is None:
            return log_probs, new_state, None
        head = self.attention_head
        attention = weights[:, :, 0].mean(1) if head is None else weights[:, head, 0]  # (B, S)
        return log_probs, new_state, attention

    def select_attention(self, layer: int | None = None, head: int | None = None) -> None:
        """Which cross-attention ``decode_step`` reports (plots, alignments): a layer, and a head or the mean."""
        if layer is not None:
            if not -self.decoder_layers <= layer < self.decoder_layers:
                raise ValueError(f"layer {layer} is outside this model's {self.decoder_layers} decoder layers")
            self.attention_layer = layer
        if head is not None and not 0 <= head < self.n_heads:
            raise ValueError(f"head {head} is outside this model's {self.n_heads} heads")
        self.attention_head = head
