"""Checkpoints that survive crashes and resume exactly.

- :class:`AtomicCheckpointIO` writes to a temporary file in the same folder, fsyncs it and
  renames it over the target, so a kill during a write never leaves a file that looks valid.
- :class:`ResumeState` stores the random number generators in each checkpoint and puts them
  back on resume; the data module stores the sampler position (see
  ``TranslationDataModule.state_dict``), so a resumed run sees the same batches.
- :func:`check_checkpoint` turns a wrong or damaged ``--ckpt_path`` into one clear sentence.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import torch
from lightning.pytorch import Callback
from lightning.pytorch.callbacks import ModelCheckpoint, Timer
from lightning.pytorch.plugins.io import TorchCheckpointIO

from nmt.errors import NmtError


class AtomicCheckpointIO(TorchCheckpointIO):
    """``torch.save`` to ``.name.tmp``, fsync, then ``os.replace`` onto the real name."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()


class ResumeState(Callback):
    """Save and restore the CPU/CUDA and Python RNG states with every checkpoint."""

    def state_dict(self) -> dict:
        version, internal, gauss = random.getstate()
        state = {"torch": torch.get_rng_state(), "python_version": version, "python": list(internal),
                 "python_gauss": gauss}  # fmt: skip
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state: dict) -> None:
        torch.set_rng_state(state["torch"])
        random.setstate((state["python_version"], tuple(state["python"]), state["python_gauss"]))
        if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(state["cuda"])


class FinalCheckpoint(Callback):
    """Save ``dirpath/last.ckpt`` after the last training step (``max_steps``, ``max_time``, the last
    epoch or a requested stop) and on Ctrl-C or an error (not before the first step), so a run
    continues (``--ckpt_path last``) from the step it stopped at.

    Lightning's ``ModelCheckpoint`` refreshes ``last.ckpt`` only with a top-k save or every N steps,
    so the steps after the last such save would be lost. The save happens in the last step's
    ``on_train_batch_end``, not in ``on_train_end``: by then Lightning counts a stopped epoch as
    finished, and a run continued from there would skip that epoch's remaining batches.
    Lightning's ``ModelCheckpoint(save_last=True)`` writes ``last.ckpt`` in ``on_train_end`` when it
    saved nothing during the fit (e.g. no new best validation score), with that wrong position; after
    this callback's save it is told the last checkpoint exists.
    ``OnExceptionCheckpoint`` is not used: it deletes its file after a normal finish, and its
    presence makes ``fit`` resume without being asked.
    """

    def __init__(self, dirpath: str, filename: str = "last"):
        self.path = Path(dirpath) / f"{filename}.ckpt"

    def _save(self, trainer) -> None:
        if trainer.global_step > 0 and trainer.state.fn == "fit" and not trainer.sanity_checking:
            trainer.save_checkpoint(self.path)
            # A ModelCheckpoint with save_last that has not saved during this fit writes last.ckpt again
            # in on_train_end, with the epoch counted as finished: it would replace this file. Tell it
            # that the last checkpoint is written.
            for callback in trainer.checkpoint_callbacks:
                if isinstance(callback, ModelCheckpoint) and callback.save_last and callback.dirpath is not None:
                    if Path(callback.dirpath) == self.path.parent:
                        callback._last_checkpoint_saved = str(self.path)

    @staticmethod
    def last_step(trainer) -> bool:
        """Whether the step that just ended is the last one of this fit."""
        if trainer.should_stop or 0 <= trainer.max_steps <= trainer.global_step:
            return True
        # --trainer.max_time: the Timer stops the run after this hook. Ranks' clocks differ and saving is
        # collective, so rank 0 decides for all (as the Timer does).
        timers = [cb for cb in trainer.callbacks if isinstance(cb, Timer) and cb.time_remaining("train") is not None]
        if timers and trainer.strategy.broadcast(any(t.time_remaining("train") <= 0 for t in timers)):
            return True
        last_epoch = trainer.max_epochs is not None and 0 <= trainer.max_epochs <= trainer.current_epoch + 1
        return last_epoch and trainer.fit_loop.epoch_loop.batch_progress.is_last_batch

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.last_step(trainer):
            self._save(trainer)

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        self._save(trainer)


def check_checkpoint(path: str, model) -> None:
    """Refuse, with advice, a checkpoint that is unreadable, not nmt's, or of another model/vocabulary."""
    from nmt.translate import nmt_meta, read_checkpoint

    ckpt = read_checkpoint(path)
    meta = nmt_meta(ckpt, path)
    cls = type(model)
    expected = f"{cls.__module__}.{cls.__qualname__}"
    if meta["model_class"] != expected:
        raise NmtError(
            f"{path} holds a {meta['model_class'].rsplit('.', 1)[-1]} but this command builds a {cls.__name__}. "
            "Pass the same --config (model) as for training."
        )
    theirs = ckpt.get("state_dict", {})
    for name, tensor in model.state_dict().items():
        if name in theirs and theirs[name].shape != tensor.shape:
            raise NmtError(
                f"{path} was trained with other sizes: '{name}' is {tuple(theirs[name].shape)} there and "
                f"{tuple(tensor.shape)} here (vocabulary or model size differ). Pass the same --config and "
                "--data/--model options as for training."
            )
