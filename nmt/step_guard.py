"""``StepGuard``: stop on a non-finite loss or gradient without making the host wait every step.

Reading ``torch.isfinite(loss)`` on the host each step would make the CPU wait for the GPU to
finish the forward pass before it could queue the backward pass. Instead the guard hands a 0/1
flag on the device to the fused AdamW step (its ``found_inf``, the way ``torch.amp.GradScaler``
skips steps), which leaves the weights and the optimizer state as they were when the flag is set.
Loss and gradient norm are copied to the host without blocking and read once the device has got
there, usually by the end of the next step; training then stops with :class:`NmtError`, the
weights untouched by the bad step. An optimizer that cannot skip a step itself is checked at once.
"""

from __future__ import annotations

import math
from collections import deque

import torch

from nmt.errors import NmtError


def can_skip_on_device(optimizer: torch.optim.Optimizer) -> bool:
    """Whether ``optimizer.step()`` honours a ``found_inf`` flag: PyTorch's fused Adam, AdamW and SGD do."""
    fused = isinstance(optimizer, (torch.optim.Adam, torch.optim.AdamW, torch.optim.SGD))
    return fused and bool(optimizer.defaults.get("fused"))


def skip_step_on_device(optimizer: torch.optim.Optimizer, flag: torch.Tensor | None) -> None:
    """Hand ``flag`` (a 0/1 tensor on the device; 1: skip) to the optimizer's next ``step()``, or withdraw it (None).

    PyTorch's fused Adam, AdamW and SGD read ``optimizer.found_inf`` in ``step()``: the handshake
    ``torch.amp.GradScaler`` uses to skip a step on the device. It has no public spelling, so nmt
    uses it here only; tests/test_step_guard.py fails loudly if a release stops honouring it.
    """
    if flag is not None:
        optimizer.found_inf = flag
    elif hasattr(optimizer, "found_inf"):
        del optimizer.found_inf  # a later step outside the guard must not reuse the flag


class StepGuard:
    def __init__(self, lr: float):
        self.lr = lr  # for the advice
        self._pending: deque[tuple[torch.Tensor, torch.cuda.Event | None, int]] = deque()
        self._armed: torch.optim.Optimizer | None = None

    def before_step(self, optimizer: torch.optim.Optimizer, loss: torch.Tensor, grad_norm: torch.Tensor, step: int):
        """Called after backward and clipping, before ``optimizer.step()`` of update ``step``."""
        values = torch.stack([loss.detach().float().reshape(()), grad_norm.detach().float().reshape(())])
        if not can_skip_on_device(optimizer):
            self._check(values.tolist(), step)  # waits for the device, raises before the step
            return
        skip_step_on_device(optimizer, (~torch.isfinite(values)).any().float())  # 1: the step changes nothing
        self._armed = optimizer
        event = None
        if values.is_cuda:
            host = torch.empty(2, pin_memory=True)
            host.copy_(values, non_blocking=True)
            event = torch.cuda.Event()
            event.record()
            values = host
        self._pending.append((values, event, step))

    def after_step(self) -> None:
        if self._armed is not None:
            skip_step_on_device(self._armed, None)
        self._armed = None

    def poll(self, wait: bool = False) -> None:
        """Read the values the device has finished (all of them with ``wait``); raise on a non-finite one."""
        while self._pending:
            values, event, step = self._pending[0]
            if event is not None:
                if not (wait or event.query()):
                    return
                event.synchronize()
            self._pending.popleft()
            self._check(values.tolist(), step)

    def check_now(self, loss: torch.Tensor, step: int) -> None:
        self._check([float(loss), 0.0], step)

    def _check(self, values: list[float], step: int) -> None:
        loss, grad_norm = values
        if math.isfinite(loss) and math.isfinite(grad_norm):
            return
        self._pending.clear()
        what = f"the loss is {loss}" if not math.isfinite(loss) else f"the gradient norm is {grad_norm}"
        raise NmtError(
            f"Training stopped at step {step}: {what}. The weights are untouched by that step "
            f"and saved as last.ckpt. Try a lower --model.lr (now {self.lr}), a smaller "
            "--trainer.gradient_clip_val, bf16-mixed instead of 16-mixed precision, or look for broken "
            "lines in the corpus; then resume with --ckpt_path last."
        )
