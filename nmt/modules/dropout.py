"""Dropout that is cheap on CPU.

``F.dropout`` on CPU draws one Mersenne-Twister number per element through ``bernoulli_``:
in a profile of the d256 benchmark Transformer that single op took about a third of the
training step. Here each 64-bit draw of the same generator gives four 16-bit lanes, and a
lane keeps its element when it is at or above ``round(p * 65536)``. The keep probability is
therefore ``1 - k / 65536`` (``p`` rounded to 1/65536) and kept values are scaled by its
inverse, so the expected output equals the input exactly. The draws come from torch's default
CPU generator: ``torch.manual_seed`` and checkpointed RNG state govern them as before.

On other devices (CUDA's fused Philox dropout is fast) and in eval mode this is ``F.dropout``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_LANES = 65536


def keep_mask(numel: int, p: float, device: torch.device | str = "cpu") -> tuple[torch.Tensor, float]:
    """A flat boolean keep-mask of ``numel`` elements and the probability that an element is kept."""
    drop = round(p * _LANES)
    words = torch.empty((numel + 3) // 4, dtype=torch.int64, device=device).random_(-(2**63), 2**63 - 1)
    lanes = words.view(torch.int16)[:numel]  # uniform over -32768..32767
    return lanes >= drop - _LANES // 2, (_LANES - drop) / _LANES


class _MaskedScale(torch.autograd.Function):
    """``where(mask, x, 0) * scale``, saving only the boolean mask for the backward pass."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, mask: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.save_for_backward(mask)
        ctx.scale = scale
        return torch.where(mask, x, 0.0).mul_(scale)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (mask,) = ctx.saved_tensors
        return torch.where(mask, grad, 0.0).mul_(ctx.scale), None, None


def dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """Drop elements of ``x`` with probability ``p`` and scale the rest by 1 / (1 - p)."""
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu" or p >= 1.0 or not x.is_floating_point():
        return F.dropout(x, p, training)
    mask, keep = keep_mask(x.numel(), p)
    # A Python-float scale is applied in float32 even to bfloat16 tensors (1 / 0.9 is not exact in bf16).
    return _MaskedScale.apply(x, mask.view(x.shape), 1.0 / keep)


class Dropout(nn.Dropout):
    """``nn.Dropout`` with the fast CPU path of :func:`dropout`; same argument, same state dict."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)
