"""``TransformerNet``: the Transformer of Vaswani et al. 2017 as an nmt network.

The network is only wiring: ``decode(encode(src), tgt_in)``. Blocks live in
:mod:`nmt.modules.transformer`. Decoder input and output embeddings are tied
(Press & Wolf 2017); with a joint vocabulary the encoder shares them too.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from nmt.data.batching import Batch
from nmt.modules.transformer import Embedding, TransformerDecoder, TransformerEncoder
from nmt.networks.base import Seq2SeqNet
from nmt.networks.state import DecoderState, source_field


@dataclass(kw_only=True)
class TransformerState(DecoderState):
    """The Transformer decoder between steps.

    ``cross_kv`` (per layer, keys and values (N, H, S, Dh)) and ``src_mask`` (N, S) have one row per
    sentence, shared by its ``group`` beams (cross-attention groups their queries: 5x less to read
    at beam 5). The self-attention ``caches`` (per layer, (R', H, t, Dh)) are reordered lazily:
    ``order`` maps each decoder row to its cache row, and the next ``decode_step`` gathers the
    caches in the same pass that appends the new position.
    """

    cross_kv: list[tuple[torch.Tensor, torch.Tensor]] = source_field()
    src_mask: torch.Tensor = source_field()
    caches: list[tuple[torch.Tensor, torch.Tensor]] | None = None
    order: torch.Tensor | None = None
    step: int = 0
    weights_layer: int | None = None  # the layer whose cross-attention decode_step returns; None: none

    @property
    def rows(self) -> int:
        return self.src_mask.size(0) * self.group if self.order is None else self.order.numel()

    def moved(self, index: torch.Tensor, within: bool, shared: bool) -> dict:
        pending = None if self.caches is None else index if self.order is None else self.order[index]
        return {**super().moved(index, within, shared), "order": pending}


class TransformerNet(Seq2SeqNet):
    """Encoder-decoder Transformer (Vaswani et al. 2017). The defaults are a small model that learns
    the embedded corpus on a CPU in minutes; ``configs/`` holds larger ones (Transformer-base:
    d_model 512, 8 heads, d_ff 2048, 6 + 6 layers).

    Args:
        d_model: model width (embeddings, attention, residual stream).
        n_heads: attention heads per layer (must divide d_model).
        d_ff: width of the feed-forward block.
        encoder_layers: encoder depth.
        decoder_layers: decoder depth.
        dropout: dropout on embeddings and sublayer outputs (the residual branches).
        attention_dropout: dropout on the attention weights.
        activation_dropout: dropout on the feed-forward ReLU output (fairseq's; 0 as there, JoeyNMT
            and tensor2tensor use the residual rate).
        pre_norm: LayerNorm before each sublayer (trains without a long warm-up); false gives the
            original post-norm.
        share_embeddings: one embedding table for source and target (needs a joint vocabulary;
            linked from ``data.joint_vocab`` by the CLI).
        tie_output: the output projection reuses the target embedding (Press & Wolf 2017).
        output_bias: the output projection has a bias (MarianMT's ``final_logits_bias``).
        activation: the feed-forward activation: ``relu`` (the paper's), ``gelu`` or ``swish`` (MarianMT's).
        scale_embedding: multiply token embeddings by sqrt(d_model) (section 3.4).
        positions: the sinusoid table: ``vaswani`` (sin and cos interleaved, from position 0), ``marian`` (the
            same frequencies, sines then cosines) or ``fairseq`` (sines then cosines with fairseq's frequencies,
            from position pad_id + 1, as M2M100); a model exports to Hugging Face with marian (post-norm) or
            fairseq (pre-norm).
        max_positions: longest sequence the positional table covers (longer sources are truncated).
        attention_layer: decoder layer whose cross-attention is reported for plots and alignments (-1: the last).
        attention_head: head reported (None: the average over heads).
        **kwargs: vocabulary sizes, special ids and search defaults, see :class:`~nmt.networks.base.Seq2SeqNet`.
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
        output_bias: bool = False,
        activation: str = "relu",
        scale_embedding: bool = True,
        positions: str = "vaswani",
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
        embedding = (d_model, self.pad_id, max_positions, dropout, scale_embedding, positions)
        self.src_embed = Embedding(self.src_vocab_size, *embedding)
        self.tgt_embed = self.src_embed if share_embeddings else Embedding(self.tgt_vocab_size, *embedding)
        layer_args = (d_model, n_heads, d_ff, dropout, attention_dropout, pre_norm, activation_dropout, activation)
        self.encoder = TransformerEncoder(encoder_layers, *layer_args)
        self.decoder = TransformerDecoder(decoder_layers, *layer_args)
        self.output = nn.Linear(d_model, self.tgt_vocab_size, bias=output_bias)
        if output_bias:
            nn.init.zeros_(self.output.bias)
        if tie_output:
            self.output.weight = self.tgt_embed.tokens.weight
        self.max_source_positions = self.max_target_positions = max_positions
        self.n_heads, self.decoder_layers = n_heads, decoder_layers
        self.attention_layer, self.attention_head = attention_layer, attention_head

    def forward(self, batch: Batch) -> torch.Tensor:
        memory = self.encoder(self.src_embed(batch.src), batch.src_mask)  # (B, S, D)
        hidden, _, _ = self.decoder(self.tgt_embed(batch.tgt_in), self.decoder.cross_kv(memory), batch.src_mask)
        return self.output(hidden)  # (B, T, V)

    def encode(self, src: torch.Tensor, src_mask: torch.Tensor, attention: bool = True) -> TransformerState:
        memory = self.encoder(self.src_embed(src), src_mask)
        layer = self.attention_layer if attention else None
        return TransformerState(cross_kv=self.decoder.cross_kv(memory), src_mask=src_mask, weights_layer=layer)

    def decode_step(self, prev_tokens: torch.Tensor, state: TransformerState):
        x = self.tgt_embed(prev_tokens[:, None], offset=state.step)  # (R, 1, D)
        hidden, caches, weights = self.decoder(
            x, state.cross_kv, state.src_mask, state.caches, state.weights_layer, state.order
        )
        log_probs = F.log_softmax(self.output(hidden[:, 0]).float(), dim=-1)  # (R, V)
        new_state = replace(state, caches=caches, step=state.step + 1, order=None)
        if weights is None:
            return log_probs, new_state, None
        head = self.attention_head
        attention = weights[:, :, 0].mean(1) if head is None else weights[:, head, 0]  # (R, S)
        return log_probs, new_state, attention

    def teacher_forced(self, src: torch.Tensor, src_mask: torch.Tensor,
                       tgt_in: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        """The log-probabilities of every step (B, T, V) and every decoder layer's cross-attention, every head
        (B, layers, heads, T, S), teacher forced on ``tgt_in`` (B, T) in one parallel pass: what ``nmt serve``'s
        page shows (equal to the search's step by step computation up to float rounding)."""
        memory = self.encoder(self.src_embed(src), src_mask)
        x, maps = self.tgt_embed(tgt_in), []
        for layer, kv in zip(self.decoder.layers, self.decoder.cross_kv(memory)):
            x, _, weights = layer(x, kv, src_mask, need_weights=True)
            maps.append(weights)
        log_probs = F.log_softmax(self.output(self.decoder.norm(x)).float(), dim=-1)
        return log_probs, torch.stack(maps, 1)

    def select_attention(self, layer: int | None = None, head: int | None = None) -> None:
        """Which cross-attention ``decode_step`` reports (plots, alignments): a layer, and a head or the mean."""
        if layer is not None:
            if not -self.decoder_layers <= layer < self.decoder_layers:
                raise ValueError(f"layer {layer} is outside this model's {self.decoder_layers} decoder layers")
            self.attention_layer = layer
        if head is not None and not 0 <= head < self.n_heads:
            raise ValueError(f"head {head} is outside this model's {self.n_heads} heads")
        self.attention_head = head
