"""Token-budget bucketing and the :class:`Batch` every model consumes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields

import numpy as np
import torch
from torch.utils.data import Sampler

from nmt.data.tokenizer import PAD_ID


def pad(seqs: list[list[int]], pad_id: int = PAD_ID) -> torch.Tensor:
    """Right-pad id lists with ``pad_id`` into a (N, L) long tensor."""
    out = torch.full((len(seqs), max(len(s) for s in seqs)), pad_id, dtype=torch.long)
    for row, seq in enumerate(seqs):
        out[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
    return out


@dataclass
class Batch:
    """A padded batch. Masks are True at real tokens.

    ``tgt`` ids are ``BOS y1 .. yn EOS``; the batch owns the shift:
    ``tgt_in = BOS y1 .. yn`` (decoder input) and ``tgt_out = y1 .. yn EOS`` (labels).
    """

    src: torch.Tensor  # (B, S)
    src_lengths: torch.Tensor  # (B,)
    src_mask: torch.Tensor  # (B, S) bool
    tgt_in: torch.Tensor  # (B, T)
    tgt_out: torch.Tensor  # (B, T)
    tgt_mask: torch.Tensor  # (B, T) bool
    index: torch.Tensor  # (B,) rows of the dataset
    ntokens: int  # real target tokens (labels that count in the loss)

    @classmethod
    def collate(cls, items: list[tuple[int, list[int], list[int]]], pad_id: int = PAD_ID) -> Batch:
        index, src, tgt = zip(*items)
        src_t, tgt_t = pad(list(src), pad_id), pad(list(tgt), pad_id)
        tgt_in, tgt_out = tgt_t[:, :-1], tgt_t[:, 1:]
        tgt_mask = tgt_out != pad_id
        return cls(
            src=src_t,
            src_lengths=torch.tensor([len(s) for s in src], dtype=torch.long),
            src_mask=src_t != pad_id,
            tgt_in=tgt_in.contiguous(),
            tgt_out=tgt_out.contiguous(),
            tgt_mask=tgt_mask,
            index=torch.tensor(index, dtype=torch.long),
            ntokens=int(tgt_mask.sum()),
        )

    def __len__(self) -> int:
        return self.src.size(0)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        """Move every tensor (Lightning calls this to place the batch on the model's device)."""
        moved = {
            f.name: (v.to(device, non_blocking=non_blocking) if isinstance(v, torch.Tensor) else v)
            for f in fields(self)
            for v in [getattr(self, f.name)]
        }
        return Batch(**moved)

    def pin_memory(self) -> Batch:
        return Batch(**{f.name: _pin(getattr(self, f.name)) for f in fields(self)})


def _pin(value):
    return value.pin_memory() if isinstance(value, torch.Tensor) else value


class TokenBudgetBatchSampler(Sampler[list[int]]):
    """Batches of similar length whose padded size stays within ``max_tokens``.

    Each epoch sorts by length, then by ``secondary`` (the target length, as
    fairseq does, so one batch also shares its decoder length), with a seeded random tie-break, cuts
    batches greedily under the budget and shuffles their order. With several DDP ranks,
    rank ``r`` takes batches ``r, r + world, ...``. For training (``shuffle=True``) the few
    batches left over are dropped so every rank gets the same number of disjoint batches;
    for evaluation nothing is dropped, so every sentence is decoded exactly once.
    """

    def __init__(
        self,
        lengths: list[int],
        max_tokens: int,
        shuffle: bool = True,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
        secondary: list[int] | None = None,
        resume: tuple[int, int] | None = None,
        epoch_source: Callable[[], int] | None = None,
    ):
        if max_tokens <= 0:
            raise ValueError(f"max_tokens must be positive, got {max_tokens}")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is outside 0..{num_replicas - 1}")
        self.lengths = torch.as_tensor(np.asarray(lengths), dtype=torch.long)
        if secondary is not None and len(secondary) != len(lengths):
            raise ValueError(f"secondary has {len(secondary)} entries for {len(lengths)} lengths")
        self.secondary = None if secondary is None else torch.as_tensor(np.asarray(secondary), dtype=torch.long)
        self.max_tokens = max_tokens
        self.shuffle, self.seed = shuffle, seed
        self.num_replicas, self.rank = num_replicas, rank
        self.epoch = 0
        self.resume = resume  # (epoch, batches already done) of a restarted run: its first iterator continues there
        # Under Lightning, the trainer's epoch, read when an epoch's iterator is created; outside Lightning,
        # ``set_epoch`` says which epoch comes next.
        self.epoch_source = epoch_source
        self._cache: tuple[int, tuple[np.ndarray, list[tuple[int, int]]]] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _epoch(self) -> tuple[np.ndarray, list[tuple[int, int]]]:
        """This rank's batches of the current epoch: the dataset order, and each batch as a slice of it."""
        gen = torch.Generator().manual_seed(self.seed + self.epoch)
        # Random order first (when shuffling), then stable sorts: secondary key, then length.
        order = torch.randperm(len(self.lengths), generator=gen) if self.shuffle else torch.arange(len(self.lengths))
        if self.secondary is not None:
            order = order[torch.sort(self.secondary[order], stable=True).indices]
        order = order[torch.sort(self.lengths[order], stable=True).indices]
        bounds = _cut(self.lengths[order].numpy(), self.max_tokens)
        if self.shuffle:
            bounds = [bounds[j] for j in torch.randperm(len(bounds), generator=gen).tolist()]
            bounds = bounds[: len(bounds) - len(bounds) % self.num_replicas] or bounds
        return order.numpy(), bounds[self.rank :: self.num_replicas]

    def _cached(self) -> tuple[np.ndarray, list[tuple[int, int]]]:
        if self._cache is None or self._cache[0] != self.epoch:
            self._cache = (self.epoch, self._epoch())
        return self._cache[1]

    def batches(self) -> list[list[int]]:
        """This rank's batches for the current epoch, as lists of dataset indices."""
        order, bounds = self._cached()
        return [order[a:b].tolist() for a, b in bounds]

    def __iter__(self):
        done = 0
        if self.resume is not None:
            # A resumed run's first iterator: the epoch comes from the checkpoint, and the batches
            # already trained on are skipped.
            self.epoch, done = self.resume
            self.resume = None
        elif self.epoch_source is not None:
            self.epoch = self.epoch_source()
        order, bounds = self._cached()
        return (order[a:b].tolist() for a, b in bounds[done:])

    def __len__(self) -> int:
        return len(self._cached()[1])


def _cut(lengths: np.ndarray, max_tokens: int) -> list[tuple[int, int]]:
    """Greedy batches over ``lengths`` sorted ascending: each takes items while (its count) x (its longest,
    which is its last) stays within ``max_tokens``, and at least one. The end of each batch is found by
    binary search (the condition only turns false once), so the loop runs once per batch, not per item."""
    bounds, start, n = [], 0, len(lengths)
    while start < n:
        lo, hi = start + 1, n  # the first item that would not fit, or n
        while lo < hi:
            mid = (lo + hi) // 2
            if int(lengths[mid]) * (mid - start + 1) > max_tokens:
                hi = mid
            else:
                lo = mid + 1
        bounds.append((start, lo))
        start = lo
    return bounds
