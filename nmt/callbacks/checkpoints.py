"""Checkpoints that survive crashes and resume exactly.

- :class:`AtomicCheckpointIO` writes to a temporary file in the same folder, fsyncs it and
  renames it over the target (:func:`nmt.files.atomic_write`), so a kill during a write never
  leaves a file that looks valid; it reads every checkpoint through :func:`nmt.checkpoint.read_file`
  (weights only).
- :class:`LastCheckpoint` keeps ``last.ckpt`` up to date: every N steps, after each validation,
  after the last step and when a run stops on Ctrl-C or an error.
- :class:`ResumeState` stores the random number generators and the position in the epoch with
  each checkpoint and puts them back on resume, so a resumed run sees the same batches.
"""

from __future__ import annotations

import errno
import logging
import random
import shutil
from pathlib import Path

import torch
from lightning.pytorch.callbacks import Callback, Checkpoint, Timer
from lightning.pytorch.plugins.io import TorchCheckpointIO

from nmt.checkpoint import read_file
from nmt.errors import NmtError
from nmt.files import atomic_write

log = logging.getLogger(__name__)


def _tensor_bytes(value) -> int:
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, dict):
        return sum(map(_tensor_bytes, value.values()))
    if isinstance(value, (list, tuple)):
        return sum(map(_tensor_bytes, value))
    return 0


class AtomicCheckpointIO(TorchCheckpointIO):
    """``torch.save`` to a temporary name, fsync, then rename onto the real name; reads weights only.

    A full disk stops training with one sentence naming the folder and the space needed; the
    checkpoint already under the real name stays as it was.
    """

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        path = Path(path)
        try:
            atomic_write(path, lambda tmp: torch.save(checkpoint, tmp), sync=True)
        except (OSError, RuntimeError) as err:  # torch reports a failed write as a RuntimeError
            need, free = _tensor_bytes(checkpoint), shutil.disk_usage(path.parent).free
            if getattr(err, "errno", None) not in (errno.ENOSPC, errno.EDQUOT) and free >= need:
                raise
            kept = f"; {path} is unchanged" if path.exists() else ""
            raise NmtError(
                f"No space left in {path.parent} to write {path.name}: it needs about {need / 2**20:.1f} MiB and "
                f"{free / 2**20:.1f} MiB are free. Free some space or choose another --trainer.default_root_dir"
                f"{kept}."
            ) from None

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict:
        return read_file(path)  # weights_only=True whatever is asked: nmt checkpoints need no pickled code


class LastCheckpoint(Checkpoint):
    """Keep ``dirpath/last.ckpt``, the checkpoint a run continues from with ``--ckpt_path last``.

    It is written every ``every_n_train_steps`` steps, after each validation, after the last
    training step (``max_steps``, ``max_time``, the last epoch or a requested stop) and when a run
    stops on Ctrl-C or an error (not before the first step, and never in a ``fast_dev_run``). The
    save after the last step happens in that step's ``on_train_batch_end``: by ``on_train_end``
    Lightning counts a stopped epoch as finished, and a run continued from there would skip its
    remaining batches.

    Args:
        every_n_train_steps: write it every this many optimizer steps (0: only at the moments above).
        keep_every: also keep the weights of every this many steps as ``stepNNNNNNN.ckpt`` beside it, for
            ``nmt average`` (0: none).
        dirpath: its folder (default: ``<default_root_dir>/checkpoints``, set by the command line).
    """

    def __init__(self, every_n_train_steps: int = 100, keep_every: int = 0, dirpath: str | None = None):
        if every_n_train_steps < 0 or keep_every < 0:
            raise NmtError("--last_checkpoint.every_n_train_steps and --last_checkpoint.keep_every must be 0 (off) "
                           f"or more, got {every_n_train_steps} and {keep_every}.")  # fmt: skip
        self.every_n_train_steps, self.keep_every, self.dirpath = every_n_train_steps, keep_every, dirpath

    @property
    def path(self) -> Path:
        return Path(self.dirpath or "checkpoints") / "last.ckpt"

    def _save(self, trainer) -> None:
        # A debugging run (fast_dev_run) must never replace a real run's resume point.
        debugging = trainer.sanity_checking or trainer.fast_dev_run
        if trainer.global_step > 0 and trainer.state.fn == "fit" and not debugging:
            trainer.save_checkpoint(self.path, weights_only=False)  # the whole state, to resume from

    @staticmethod
    def last_step(trainer, batch_idx: int) -> bool:
        """Whether the step that just ended (batch ``batch_idx`` of the epoch) is the last one of this fit."""
        if trainer.should_stop or 0 <= trainer.max_steps <= trainer.global_step:
            return True
        # --trainer.max_time: the Timer stops the run after this hook. Ranks' clocks differ and saving is
        # collective, so rank 0 decides for all (as the Timer does).
        timers = [cb for cb in trainer.callbacks if isinstance(cb, Timer) and cb.time_remaining("train") is not None]
        if timers and trainer.strategy.broadcast(any(t.time_remaining("train") <= 0 for t in timers)):
            return True
        last_epoch = trainer.max_epochs is not None and 0 <= trainer.max_epochs <= trainer.current_epoch + 1
        return last_epoch and batch_idx + 1 >= trainer.num_training_batches

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        every, step = self.every_n_train_steps, trainer.global_step
        if self.last_step(trainer, batch_idx) or (every > 0 and step % every == 0):
            self._save(trainer)
        if self.keep_every > 0 and step % self.keep_every == 0 and not trainer.fast_dev_run:
            trainer.save_checkpoint(self.path.with_name(f"step{step:07d}.ckpt"), weights_only=True)

    def on_validation_end(self, trainer, pl_module) -> None:
        self._save(trainer)

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        try:
            self._save(trainer)
        except NmtError as err:  # e.g. the disk that stopped training is still full: the first error is the news
            log.warning("last.ckpt could not be written either: %s", err)


class ResumeState(Callback):
    """Save and restore the CPU/CUDA and Python RNG states with every checkpoint, and keep the data
    module's ``position`` (epoch, batches of it done) current, which it saves with the checkpoint."""

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

    @staticmethod
    def _position(trainer, epoch: int, batches_done: int) -> None:
        datamodule = getattr(trainer, "datamodule", None)
        if datamodule is not None and hasattr(datamodule, "position"):
            datamodule.position = {"epoch": epoch, "batches_done": batches_done}

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._position(trainer, trainer.current_epoch, 0)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        epoch, done = trainer.current_epoch, batch_idx + 1  # batch_idx counts from the epoch's start, resumed or not
        if done >= trainer.num_training_batches:
            # After the epoch's last batch, before the epoch ends: on resume Lightning counts the epoch as
            # finished and starts the next one with the first iterator.
            epoch, done = epoch + 1, 0
        self._position(trainer, epoch, done)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        # Saved here (ModelCheckpoint(save_on_train_epoch_end=True)), Lightning resumes inside this epoch, at its end.
        self._position(trainer, trainer.current_epoch, trainer.num_training_batches)
