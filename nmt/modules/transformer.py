"""Transformer encoder-decoder blocks (Vaswani et al. 2017, "Attention Is All You Need").

Attention runs through ``F.scaled_dot_product_attention`` (flash / memory-efficient kernels
on GPU) except when attention weights are asked for (alignment plots) and in bfloat16 on CPU,
where the same softmax(QK^T / sqrt(d_k)) V (eq. 1) is written out, scores and softmax in
float32. Decoding one step at a time keeps each layer's self-attention keys/values in a cache
(beam search's reordering of it is applied lazily, in the same pass that appends the new step)
and projects the encoder memory into cross-attention keys/values once per sentence.

Masks are boolean and True where a position may be attended to.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from nmt.modules.dropout import Dropout, dropout

#: Position tables: "vaswani" (nmt's: sin and cos interleaved, from position 0), "marian" (the same frequencies,
#: sines in the first half of the dimensions and cosines in the second, from 0: MarianMT), "fairseq" (sines then
#: cosines with frequencies 10000^(-i / (d/2 - 1)), the first position being pad_id + 1: fairseq, M2M100).
POSITIONS = ("vaswani", "marian", "fairseq")


def sinusoidal_positions(max_positions: int, d_model: int, layout: str = "vaswani", pad_id: int = 0) -> torch.Tensor:
    """PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(...) (section 3.5), laid out as ``layout``
    (see :data:`POSITIONS`). -> (P, D)"""
    if layout not in POSITIONS:
        raise ValueError(f"positions must be one of {', '.join(POSITIONS)}, not '{layout}'")
    half = d_model // 2
    if layout == "fairseq":
        freq = torch.exp(torch.arange(half, dtype=torch.float32) * -(math.log(10000.0) / (half - 1)))
        pos = torch.arange(pad_id + 1, pad_id + 1 + max_positions, dtype=torch.float32).unsqueeze(1)
        table = torch.cat([torch.sin(pos * freq), torch.cos(pos * freq)], dim=1)
        return torch.cat([table, torch.zeros(max_positions, d_model - 2 * half)], dim=1)
    pos = torch.arange(max_positions, dtype=torch.float32).unsqueeze(1)
    freq = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
    sines, cosines = torch.sin(pos * freq), torch.cos(pos * freq)[:, : d_model // 2]
    if layout == "marian":
        return torch.cat([sines, cosines], dim=1)
    table = torch.zeros(max_positions, d_model)
    table[:, 0::2] = sines
    table[:, 1::2] = cosines
    return table


def _written_out_is_faster(q: torch.Tensor) -> bool:
    """bfloat16 on CPU, where PyTorch's fused kernel is several times slower than the written-out product
    (docs/benchmarks.md, "Where the time goes")."""
    return q.device.type == "cpu" and q.dtype == torch.bfloat16


def _attention(q, k, v, attn_mask, causal: bool, p: float) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(QK^T / sqrt(d_k)) V written out (eq. 1), the scores and softmax in float32. -> output, weights"""
    with torch.autocast(q.device.type, enabled=False):  # autocast would make the scores bfloat16 again
        scores = q.float() @ k.float().transpose(-2, -1) / math.sqrt(q.size(-1))  # (B, H, Lq, Lk)
    if attn_mask is not None:
        scores = scores.masked_fill(~attn_mask, float("-inf"))
    if causal:
        n_q, n_k = scores.shape[-2:]
        future = torch.ones(n_q, n_k, dtype=torch.bool, device=q.device).triu(n_k - n_q + 1)
        scores = scores.masked_fill(future, float("-inf"))
    weights = scores.softmax(-1).to(v.dtype)
    return dropout(weights, p) @ v, weights


class MultiHeadAttention(nn.Module):
    """Multi-head attention (section 3.2.2) with keys/values projected separately from queries."""

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model {d_model} is not divisible by n_heads {n_heads}")
        self.n_heads, self.d_head, self.dropout = n_heads, d_model // n_heads, dropout
        self.q_proj = nn.Linear(d_model, d_model)
        self.kv_proj = nn.Linear(d_model, 2 * d_model)
        self.out_proj = nn.Linear(d_model, d_model)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, D) -> (B, H, L, Dh)
        return x.unflatten(-1, (self.n_heads, self.d_head)).transpose(1, 2)

    def project_kv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values of ``x`` (B, L, D), each (B, H, L, Dh)."""
        k, v = self.kv_proj(x).chunk(2, dim=-1)
        return self._heads(k), self._heads(v)

    def forward(
        self,
        x: torch.Tensor,  # (B, Lq, D) queries
        k: torch.Tensor,  # (B, H, Lk, Dh)
        v: torch.Tensor,  # (B, H, Lk, Dh)
        mask: torch.Tensor | None = None,  # (B, Lk) key padding, or None
        causal: bool = False,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """-> output (B, Lq, D), weights (B, H, Lq, Lk) when ``need_weights``.

        Keys/values may have fewer rows than the queries, B = g * Bk (beam search: g beams per
        sentence, consecutive): then each key row serves its g query rows, as g * Lq queries.
        """
        rows, lq = x.shape[:2]
        group = rows // k.size(0)
        if group > 1:
            x = x.reshape(k.size(0), group * lq, -1)
        q = self._heads(self.q_proj(x))
        attn_mask = None if mask is None else mask[:, None, None, :]  # (B, 1, 1, Lk)
        p, weights = (self.dropout if self.training else 0.0), None
        if need_weights or _written_out_is_faster(q):
            out, all_weights = _attention(q, k, v, attn_mask, causal, p)
            weights = all_weights if need_weights else None
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=p, is_causal=causal)
        out = self.out_proj(out.transpose(1, 2).flatten(2))
        if group > 1:
            out = out.reshape(rows, lq, -1)
            if weights is not None:  # (Bk, H, g * Lq, Lk) -> (B, H, Lq, Lk)
                weights = weights.unflatten(2, (group, lq)).transpose(1, 2).flatten(0, 1)
        return out, weights


def extend_cache(cache: torch.Tensor, new: torch.Tensor, order: torch.Tensor | None) -> torch.Tensor:
    """The rows ``order`` (B,) of ``cache`` (Bc, H, t, Dh) (all of them if None), with ``new`` (B, H, 1, Dh)
    appended along time -> (B, H, t + 1, Dh); one pass over the cache, written in place of a gather + concat."""
    t = cache.size(2)
    out = new.new_empty(new.size(0), new.size(1), t + new.size(2), new.size(3))
    if order is None:
        out[:, :, :t] = cache
    else:
        torch.index_select(cache, 0, order, out=out[:, :, :t])
    out[:, :, t:] = new
    return out


#: The feed-forward block's activation: ReLU (eq. 2), GELU (exact) or swish (SiLU, MarianMT's).
ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "swish": nn.SiLU}


class FeedForward(nn.Sequential):
    """FFN(x) = max(0, x W1 + b1) W2 + b2 (eq. 2; another activation if asked), with optional dropout on the
    activation's output."""

    def __init__(self, d_model: int, d_ff: int, activation_dropout: float, activation: str = "relu"):
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, not '{activation}'")
        super().__init__(nn.Linear(d_model, d_ff), ACTIVATIONS[activation](), Dropout(activation_dropout),
                         nn.Linear(d_ff, d_model))  # fmt: skip


class _Sublayer(nn.Module):
    """Residual + LayerNorm around a sublayer: pre-norm x + f(LN(x)) or post-norm LN(x + f(x))."""

    def __init__(self, d_model: int, dropout: float, pre_norm: bool):
        super().__init__()
        self.norm, self.drop, self.pre_norm = nn.LayerNorm(d_model), Dropout(dropout), pre_norm

    def forward(self, x: torch.Tensor, fn) -> tuple[torch.Tensor, object]:
        out, extra = fn(self.norm(x) if self.pre_norm else x)
        x = x + self.drop(out)
        return (x if self.pre_norm else self.norm(x)), extra


class EncoderLayer(nn.Module):
    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float, attn_dropout: float, pre_norm: bool,
                 act_dropout: float = 0.0, activation: str = "relu"):  # fmt: skip
        super().__init__()
        self.attn = MultiHeadAttention(d_model, n_heads, attn_dropout)
        self.ff = FeedForward(d_model, d_ff, act_dropout, activation)
        self.sub_attn = _Sublayer(d_model, dropout, pre_norm)
        self.sub_ff = _Sublayer(d_model, dropout, pre_norm)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # (B, S, D)
        x, _ = self.sub_attn(x, lambda h: self.attn(h, *self.attn.project_kv(h), mask))
        x, _ = self.sub_ff(x, lambda h: (self.ff(h), None))
        return x


class DecoderLayer(nn.Module):
    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float, attn_dropout: float, pre_norm: bool,
                 act_dropout: float = 0.0, activation: str = "relu"):  # fmt: skip
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, n_heads, attn_dropout)
        self.cross_attn = MultiHeadAttention(d_model, n_heads, attn_dropout)
        self.ff = FeedForward(d_model, d_ff, act_dropout, activation)
        self.sub_self = _Sublayer(d_model, dropout, pre_norm)
        self.sub_cross = _Sublayer(d_model, dropout, pre_norm)
        self.sub_ff = _Sublayer(d_model, dropout, pre_norm)

    def forward(
        self,
        x: torch.Tensor,  # (B, T, D): the whole prefix, or only the newest position with a cache
        cross_kv: tuple[torch.Tensor, torch.Tensor],  # (B, H, S, Dh) each
        src_mask: torch.Tensor,  # (B, S)
        cache: tuple[torch.Tensor, torch.Tensor] | None = None,  # earlier self-attention k, v
        need_weights: bool = False,
        order: torch.Tensor | None = None,  # (B,) the cache rows of the batch rows, if reordered
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor], torch.Tensor | None]:
        """-> x (B, T, D), self-attention (k, v) including x, cross-attention weights (B, H, T, S)."""
        kv: tuple[torch.Tensor, torch.Tensor] = (torch.empty(0), torch.empty(0))

        def self_attention(h: torch.Tensor):
            nonlocal kv
            k, v = self.self_attn.project_kv(h)
            if cache is not None:
                k, v = extend_cache(cache[0], k, order), extend_cache(cache[1], v, order)
            kv = (k, v)
            # With a cache the new query is the last position and may see every cached key.
            return self.self_attn(h, k, v, causal=cache is None)

        x, _ = self.sub_self(x, self_attention)
        x, weights = self.sub_cross(x, lambda h: self.cross_attn(h, *cross_kv, src_mask, need_weights=need_weights))
        x, _ = self.sub_ff(x, lambda h: (self.ff(h), None))
        return x, kv, weights


class Embedding(nn.Module):
    """Token embedding scaled by sqrt(d_model) (unless ``scale`` is off) plus sinusoidal positions (section
    3.4-3.5) laid out as ``positions`` (:data:`POSITIONS`)."""

    def __init__(self, vocab_size: int, d_model: int, pad_id: int, max_positions: int, dropout: float,
                 scale: bool = True, positions: str = "vaswani"):  # fmt: skip
        super().__init__()
        self.tokens = nn.Embedding(vocab_size, d_model, padding_idx=pad_id)
        nn.init.normal_(self.tokens.weight, std=d_model**-0.5)
        nn.init.zeros_(self.tokens.weight[pad_id])
        table = sinusoidal_positions(max_positions, d_model, positions, pad_id)
        self.register_buffer("positions", table, persistent=False)
        self.scale, self.drop = math.sqrt(d_model) if scale else 1.0, Dropout(dropout)

    def forward(self, ids: torch.Tensor, offset: int = 0) -> torch.Tensor:  # (B, L) -> (B, L, D)
        length = ids.size(1)
        if offset + length > self.positions.size(0):
            raise ValueError(f"sequence of {offset + length} tokens exceeds max_positions={self.positions.size(0)}")
        pos = self.positions[offset : offset + length]
        return self.drop(self.tokens(ids) * self.scale + pos.to(self.tokens.weight.dtype))


class TransformerEncoder(nn.Module):
    def __init__(self, n_layers: int, d_model: int, n_heads: int, d_ff: int, dropout: float, attn_dropout: float,
                 pre_norm: bool, act_dropout: float = 0.0, activation: str = "relu"):  # fmt: skip
        super().__init__()
        self.layers = nn.ModuleList(
            EncoderLayer(d_model, n_heads, d_ff, dropout, attn_dropout, pre_norm, act_dropout, activation)
            for _ in range(n_layers)
        )
        self.norm = nn.LayerNorm(d_model) if pre_norm else nn.Identity()

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # (B, S, D) -> (B, S, D)
        for layer in self.layers:
            x = layer(x, mask)
        return self.norm(x)


class TransformerDecoder(nn.Module):
    def __init__(self, n_layers: int, d_model: int, n_heads: int, d_ff: int, dropout: float, attn_dropout: float,
                 pre_norm: bool, act_dropout: float = 0.0, activation: str = "relu"):  # fmt: skip
        super().__init__()
        self.layers = nn.ModuleList(
            DecoderLayer(d_model, n_heads, d_ff, dropout, attn_dropout, pre_norm, act_dropout, activation)
            for _ in range(n_layers)
        )
        self.norm = nn.LayerNorm(d_model) if pre_norm else nn.Identity()

    def cross_kv(self, memory: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Every layer's cross-attention keys/values of the encoder output, computed once."""
        return [layer.cross_attn.project_kv(memory) for layer in self.layers]

    def forward(
        self,
        x: torch.Tensor,  # (B, T, D) embedded target prefix (or newest position, with caches)
        cross_kv: list[tuple[torch.Tensor, torch.Tensor]],
        src_mask: torch.Tensor,  # (B, S)
        caches: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
        weights_layer: int | None = None,
        order: torch.Tensor | None = None,  # (B,) rows of the caches to continue, if reordered
    ) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]], torch.Tensor | None]:
        """-> hidden (B, T, D), new caches, cross-attention (B, H, T, S) of ``weights_layer``."""
        new_caches, weights = [], None
        for i, layer in enumerate(self.layers):
            want = weights_layer is not None and i == weights_layer % len(self.layers)
            x, kv, w = layer(x, cross_kv[i], src_mask, None if caches is None else caches[i], want, order)
            new_caches.append(kv)
            weights = w if want else weights
        return self.norm(x), new_caches, weights
