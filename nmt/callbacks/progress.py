"""``DeviceAwareProgressBar``: Lightning's TQDM bar, refreshed less often when training on a GPU.

Every refresh reads the logged training loss back from the device, which makes the host wait for
the GPU to finish all the work queued so far. On a CPU that costs nothing and the bar moves every
step; on a GPU it refreshes every ``accelerator_refresh_rate`` steps so that the host can stay ahead.
``nmt fit`` uses it unless the trainer's callbacks already hold a progress bar or the bar is off.
"""

from __future__ import annotations

from lightning.pytorch.callbacks import TQDMProgressBar


class DeviceAwareProgressBar(TQDMProgressBar):
    """Refreshes every step on a CPU and every ``accelerator_refresh_rate`` steps on an accelerator."""

    def __init__(self, accelerator_refresh_rate: int = 20):
        super().__init__(refresh_rate=1)
        self.accelerator_refresh_rate = accelerator_refresh_rate
        self.on_cpu = True

    def setup(self, trainer, pl_module, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        self.on_cpu = trainer.strategy.root_device.type == "cpu"

    @property
    def refresh_rate(self) -> int:
        return super().refresh_rate if self.on_cpu else self.accelerator_refresh_rate
