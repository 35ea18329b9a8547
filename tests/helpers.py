"""Small helpers shared by model tests."""

import torch

from nmt.data.batching import Batch
from nmt.models.base import label_smoothed_nll


def train_losses(model, batch: Batch, steps: int, lr: float, smoothing: float = 0.0) -> list[float]:
    """Train ``model`` on one batch with Adam; the per-token loss after each step."""
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        loss, _ = label_smoothed_nll(model(batch), batch.tgt_out, smoothing)
        (loss / batch.ntokens).backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item() / batch.ntokens)
    return losses
