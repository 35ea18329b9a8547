"""Callbacks for the DDP tests: record which rows each rank trained and validated on; poison one rank's gradient."""

import json
from pathlib import Path

from lightning.pytorch import Callback


class RecordBatches(Callback):
    def __init__(self, out_dir: str):
        self.out_dir, self.train, self.val = Path(out_dir), [], []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.train.append(batch.index.tolist())

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.losses = [*getattr(self, "losses", []), float(outputs["loss"])]

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        if not trainer.sanity_checking:
            self.val.append(batch.index.tolist())

    def on_fit_end(self, trainer, pl_module):
        self.out_dir.mkdir(parents=True, exist_ok=True)
        dm = trainer.datamodule
        store = dm.datasets[dm.train_name]
        losses = getattr(self, "losses", [])
        record = {"train": self.train, "val": self.val, "world": trainer.world_size, "store": str(store.src.filename),
                  "memory_mapped": type(store.src).__name__ == "memmap", "losses": losses}  # fmt: skip
        (self.out_dir / f"rank{trainer.global_rank}.json").write_text(json.dumps(record))


class NanGradientOnOneRank(Callback):
    """Rank ``rank`` gets a NaN gradient in the backward pass of update ``at`` (before DDP averages gradients,
    as a NaN from the data or an overflow would)."""

    def __init__(self, rank: int = 1, at: int = 3):
        self.rank, self.at = rank, at

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_rank == self.rank and trainer.global_step == self.at:
            weight = next(pl_module.parameters())
            handle = weight.register_hook(lambda grad: (handle.remove(), grad * float("nan"))[1])
