"""Small helpers shared by model tests."""

import torch

from nmt.data.batching import Batch
from nmt.networks import TransformerNet
from nmt.system import Seq2SeqSystem, label_smoothed_nll

TINY_TRANSFORMER = dict(d_model=16, n_heads=2, d_ff=32, encoder_layers=1, decoder_layers=1)


def tiny_system(vocab_size: int = 20, net_args: dict | None = None, **system_args) -> Seq2SeqSystem:
    """A tiny Transformer system, built as the command line builds one."""
    net = TransformerNet(
        src_vocab_size=vocab_size, tgt_vocab_size=vocab_size, **{**TINY_TRANSFORMER, **(net_args or {})}
    )
    return Seq2SeqSystem(net, **system_args)


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
