"""``EarlyStopping``: stop when validation BLEU stops improving (``--early_stopping.patience N``)."""

from __future__ import annotations

from lightning.pytorch.callbacks import EarlyStopping as LightningEarlyStopping

from nmt.errors import NmtError


class EarlyStopping(LightningEarlyStopping):
    """Lightning's early stopping, checked after every validation, and off until ``patience`` is given.

    Args:
        patience: validations without improvement after which training stops (null: never stop early).
        min_delta: the smallest change of ``monitor`` that counts as an improvement.
        monitor: the logged value to watch (``val/bleu``; ``val/loss`` with mode ``min``).
        mode: ``max`` when higher is better, ``min`` when lower is.
    """

    def __init__(self, patience: int | None = None, min_delta: float = 0.0, monitor: str = "val/bleu",
                 mode: str = "max"):  # fmt: skip
        if patience is not None and patience < 1:
            raise NmtError(f"--early_stopping.patience must be 1 or more validations (or null: never), got {patience}.")
        if mode not in ("min", "max"):
            raise NmtError(f"--early_stopping.mode must be min or max, not '{mode}'.")
        super().__init__(monitor=monitor, min_delta=min_delta, patience=patience or 0, mode=mode, verbose=True,
                         check_on_train_epoch_end=False)  # fmt: skip
        self.enabled = patience is not None
