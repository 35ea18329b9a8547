"""A callback for the DDP test: record which rows each rank trained and validated on."""

import json
from pathlib import Path

from lightning.pytorch import Callback


class RecordBatches(Callback):
    def __init__(self, out_dir: str):
        self.out_dir, self.train, self.val = Path(out_dir), [], []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.train.append(batch.index.tolist())

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        if not trainer.sanity_checking:
            self.val.append(batch.index.tolist())

    def on_fit_end(self, trainer, pl_module):
        self.out_dir.mkdir(parents=True, exist_ok=True)
        record = {"train": self.train, "val": self.val, "world": trainer.world_size}
        (self.out_dir / f"rank{trainer.global_rank}.json").write_text(json.dumps(record))
