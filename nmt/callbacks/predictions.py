"""``PredictionWriter``: where ``nmt predict`` puts its translations.

``nmt predict`` decodes the data module's test split (``--data.test_split``) with the model's
``test_beam`` on every device the trainer has, gathers the hypotheses from all ranks and writes
them as one file in corpus order, one line per source line (``nmt translate`` is the command for
a file of source sentences alone; this one reuses a run's data configuration and its devices).
"""

from __future__ import annotations

import logging
from pathlib import Path

from lightning.pytorch import Callback

from nmt.files import atomic_write
from nmt.system import gather_by_index

log = logging.getLogger(__name__)


class PredictionWriter(Callback):
    """Write ``nmt predict``'s translations.

    Args:
        output: the file to write; by default ``<default_root_dir>/<test_split>.hyp.<tgt_lang>``.
    """

    def __init__(self, output: str | None = None):
        self.output = output
        self._pairs: list[tuple[int, str]] = []

    def on_predict_start(self, trainer, pl_module) -> None:
        self._pairs = []

    def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._pairs.extend(outputs)

    def on_predict_end(self, trainer, pl_module) -> None:
        pairs = gather_by_index(self._pairs)
        self._pairs = []
        if not trainer.is_global_zero:
            return
        dm = trainer.datamodule
        split = dm.evaluation_split("predict")
        path = Path(self.output or Path(trainer.default_root_dir) / f"{split}.hyp.{dm.hparams.tgt_lang}")
        expected = len(dm.references("predict"))
        if [i for i, _ in pairs] != list(range(expected)):  # every line decoded once, or the file would misalign
            raise RuntimeError(f"predict decoded {len(pairs)} of the {expected} sentences of {split}")
        text = "".join(hyp + "\n" for _, hyp in pairs)
        atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
        log.info("wrote %d translations of %s to %s", len(pairs), split, path)
