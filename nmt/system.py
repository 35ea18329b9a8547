"""``Seq2SeqSystem``: the one LightningModule, around any network.

The system is handed its network (:mod:`nmt.networks`, plain ``nn.Module``s; chosen in the
config with ``model.net.class_path``) and owns everything that is the same for every
architecture: label-smoothed loss, AdamW with inverse-square-root warm-up, decoding of the
validation/test sets scored with sacreBLEU over hypotheses gathered from every rank, and a
self-contained checkpoint (the network's constructor arguments and the tokenizer bytes).
"""

from __future__ import annotations

import logging
import math
import uuid

import lightning as L
import torch
import torch.distributed as dist
import torch.nn.functional as F
from lightning.pytorch.strategies import DDPStrategy, SingleDeviceStrategy

from nmt import metrics, search
from nmt.checkpoint import Checkpoint, stamp
from nmt.data.batching import Batch
from nmt.data.tokenizer import PAD_ID, Tokenizer
from nmt.errors import NmtError
from nmt.hardware import cpu_lacks_bf16_matmul
from nmt.networks.base import Seq2SeqNet
from nmt.step_guard import StepGuard

log = logging.getLogger(__name__)


def gather_by_index(pairs: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """(dataset index, text) pairs from every rank, sorted by index, each sentence once."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        parts = [None] * dist.get_world_size()
        dist.all_gather_object(parts, pairs)
        pairs = [p for part in parts for p in part]
    return sorted(dict(pairs).items())


def label_smoothed_nll(
    logits: torch.Tensor, target: torch.Tensor, epsilon: float, ignore_index: int = PAD_ID
) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed label-smoothed loss and summed NLL over non-padding targets.

    loss = (1 - eps) * NLL + eps * mean over the vocabulary of -log p (Szegedy et al. 2016).
    logits (B, T, V), target (B, T) -> two scalars.
    """
    lprobs = F.log_softmax(logits.float(), dim=-1)
    mask = target != ignore_index
    nll = -lprobs.gather(-1, target.unsqueeze(-1)).squeeze(-1)
    smooth = -lprobs.mean(-1)
    nll_sum = nll.masked_fill(~mask, 0.0).sum()
    smooth_sum = smooth.masked_fill(~mask, 0.0).sum()
    return (1.0 - epsilon) * nll_sum + epsilon * smooth_sum, nll_sum


def inverse_sqrt(warmup_steps: int):
    """LR multiplier: linear warm-up to 1 at ``warmup_steps``, then sqrt(warmup / step)."""

    def factor(step: int) -> float:
        step = max(step, 1)
        return step / warmup_steps if step < warmup_steps else math.sqrt(warmup_steps / step)

    return factor


def attached_trainer(module: L.LightningModule) -> L.Trainer | None:
    """``module.trainer``, or None when no trainer holds the module (Lightning's public property raises then)."""
    try:
        return module.trainer
    except RuntimeError:
        return None


class Seq2SeqSystem(L.LightningModule):
    """Training and evaluation of a sequence-to-sequence network.

    Args:
        net: the network (``class_path`` and ``init_args``; its vocabulary sizes are linked from the data module).
        label_smoothing: epsilon of the label-smoothed cross-entropy.
        lr: peak learning rate, reached after ``warmup_steps``.
        warmup_steps: steps of linear warm-up; then the rate decays with 1/sqrt(step).
        weight_decay: AdamW decoupled weight decay (not applied to biases and norms).
        betas: AdamW betas.
        val_beam: beam size for validation decoding (1 = greedy).
        test_beam: beam size for ``nmt test`` and ``nmt predict``.
        compile: run the teacher-forced forward through ``torch.compile``; if compiling fails
            (no compiler, unsupported platform) training continues without it, with a warning.
    """

    def __init__(
        self,
        net: Seq2SeqNet,
        label_smoothing: float = 0.1,
        lr: float = 2e-3,
        warmup_steps: int = 300,
        weight_decay: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.98),
        val_beam: int = 1,
        test_beam: int = 5,
        compile: bool = False,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["net"])
        self.hparams["net"] = net.config  # what builds the same network again (nmt.checkpoint.build_network)
        self.net = net
        self.tokenizer: Tokenizer | None = None  # the data module's (setup), or the checkpoint's (on load)
        self._eval: dict[str, list] = {}
        self._compiled = torch.compile(net.forward, dynamic=True) if compile else None
        self._guard = StepGuard(lr)
        self._loss = torch.zeros(())
        self.run_id = uuid.uuid4().hex  # names the training run in its checkpoints (a resumed run keeps it)

    def forward(self, batch: Batch) -> torch.Tensor:
        """Teacher-forced logits (B, T, V)."""
        return self.net(batch)

    # ------------------------------------------------------------------ training
    def train_forward(self, batch: Batch) -> torch.Tensor:
        if self._compiled is not None:
            try:
                return self._compiled(batch)
            except Exception as err:  # any compiler failure: keep training, uncompiled
                log.warning("torch.compile failed (%s: %s); training continues without it", type(err).__name__, err)
                self._compiled = None
        return self(batch)

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        loss_sum, nll_sum = label_smoothed_nll(self.train_forward(batch), batch.tgt_out, self.hparams.label_smoothing,
                                               self.net.pad_id)  # fmt: skip
        loss = loss_sum / batch.ntokens
        self._loss = loss.detach()  # for the step guard, after backward
        self.log("train/loss", loss, prog_bar=True, batch_size=batch.ntokens)
        self.log("train/nll", nll_sum / batch.ntokens, batch_size=batch.ntokens)
        return loss

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        """Clip as Lightning would, and let the step guard skip a step whose loss or gradient norm is not finite.

        nmt clips itself (plain ``torch.nn.utils``, exact for one device and DDP) because Lightning
        refuses to clip for a fused optimizer under any mixed precision, though only fp16's gradient
        scaling needs that. fp16: the scaler skips non-finite steps; other strategies clip their own way.
        """
        precision, strategy = str(self.trainer.precision), self.trainer.strategy
        if precision == "16-mixed" or type(strategy) not in (SingleDeviceStrategy, DDPStrategy):
            super().configure_gradient_clipping(optimizer, gradient_clip_val, gradient_clip_algorithm)
            if precision != "16-mixed":
                self._guard.check_now(self._loss, self.global_step)
            return
        params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        by_value = gradient_clip_algorithm == "value"
        if gradient_clip_val and by_value:
            torch.nn.utils.clip_grad_value_(params, gradient_clip_val)
        max_norm = gradient_clip_val if gradient_clip_val and not by_value else math.inf  # inf: the norm only
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
        self._guard.before_step(optimizer, self._loss, norm, self.global_step)

    def optimizer_step(self, *args, **kwargs) -> None:
        try:
            super().optimizer_step(*args, **kwargs)
        finally:
            self._guard.after_step()

    def on_fit_start(self) -> None:
        bf16 = "bf16" in str(self.trainer.precision)
        if bf16 and self.device.type == "cpu" and self.trainer.is_global_zero and cpu_lacks_bf16_matmul():
            log.warning(
                "--trainer.precision %s on a CPU without avx512_bf16 or AMX: bfloat16 matrix multiplies are "
                "emulated here and training runs about 2x slower than with --trainer.precision 32-true.",
                self.trainer.precision,
            )

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        self._guard.poll()

    def on_train_end(self) -> None:
        self._guard.poll(wait=True)

    def configure_optimizers(self):
        decay, no_decay = [], []
        for p in self.parameters():
            if p.requires_grad:
                (decay if p.dim() >= 2 else no_decay).append(p)
        groups = [
            {"params": decay, "weight_decay": self.hparams.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]
        # Fused: one kernel for all tensors (CPU: 4x faster than foreach), and it can skip a step on the
        # device (StepGuard). Not with fp16's gradient scaler, which would then unscale inside the step,
        # after clipping.
        trainer = attached_trainer(self)
        precision = str(trainer.precision) if trainer is not None else "32-true"
        fused = self.device.type in ("cuda", "cpu") and precision != "16-mixed"
        opt = torch.optim.AdamW(groups, lr=self.hparams.lr, betas=tuple(self.hparams.betas), fused=fused)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, inverse_sqrt(self.hparams.warmup_steps))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # ---------------------------------------------------------------- evaluation
    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is not None and getattr(datamodule, "tokenizer", None) is not None:
            self.tokenizer = datamodule.tokenizer

    def _eval_step(self, batch: Batch, prefix: str) -> None:
        _, nll_sum = label_smoothed_nll(self(batch), batch.tgt_out, 0.0, self.net.pad_id)
        beam = self.hparams.val_beam if prefix == "val" else self.hparams.test_beam
        hyps = search.decode_batch(self.net, batch.src, batch.src_mask, beam=beam, attention=False)
        store = self._eval.setdefault(prefix, [torch.zeros(2, device=self.device), []])
        store[0] += torch.stack([nll_sum.detach(), torch.tensor(float(batch.ntokens), device=self.device)])
        store[1].extend(zip(batch.index.tolist(), self.tokenizer.decode_tgt(hyps.token_lists())))

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def predict_step(self, batch: Batch, batch_idx: int) -> list[tuple[int, str]]:
        hyps = search.decode_batch(self.net, batch.src, batch.src_mask, beam=self.hparams.test_beam, attention=False)
        return list(zip(batch.index.tolist(), self.tokenizer.decode_tgt(hyps.token_lists())))

    def _eval_epoch_end(self, prefix: str, stage: str, names: tuple[str, ...]) -> dict:
        sums, pairs = self._eval.pop(prefix, [torch.zeros(2, device=self.device), []])
        sums = self.trainer.strategy.reduce(sums, reduce_op="sum")
        pairs = gather_by_index(pairs)
        refs = self.trainer.datamodule.references(stage)
        scores = metrics.corpus_scores([h for _, h in pairs], [refs[i] for i, _ in pairs], names)
        loss = sums[0] / sums[1].clamp(min=1)
        values = {f"{prefix}/{k}": v for k, v in scores.items() if not k.endswith("signature")}
        values.update({f"{prefix}/loss": loss, f"{prefix}/ppl": loss.exp()})
        self.log_dict(values, sync_dist=False)  # identical on every rank already
        if self.trainer.is_global_zero and not self.trainer.sanity_checking:
            shown = "  ".join(f"{k.upper()} {scores[k]:.2f}" for k in names)
            log.info("%s at step %d: %s  loss %.3f  (%d sentences)", prefix, self.global_step, shown, loss, len(pairs))
            for i, hyp in pairs[:2]:
                log.info("%s example %d\n  ref: %s\n  hyp: %s", prefix, i, refs[i], hyp)
        return scores

    def on_validation_epoch_end(self) -> None:
        self._eval_epoch_end("val", "validate", ("bleu", "chrf"))

    def on_test_epoch_end(self) -> None:
        scores = self._eval_epoch_end("test", "test", ("bleu", "chrf", "ter"))
        if self.trainer.is_global_zero:
            for name in ("bleu", "chrf", "ter"):
                print(f"test {name.upper()} = {scores[name]:.2f}  ({scores[name + '_signature']})")

    # -------------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # With the network's arguments in the hyperparameters, this makes a checkpoint self-contained.
        stamp(checkpoint, self.run_id, self.tokenizer.to_dict() if self.tokenizer else None)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        saved = Checkpoint(checkpoint)
        self.run_id = saved.run or self.run_id
        if saved.tokenizer is None:
            return
        tokenizer = Tokenizer.from_dict(saved.tokenizer)
        datamodule = getattr(attached_trainer(self), "datamodule", None)
        ours = getattr(datamodule, "tokenizer", None)
        if ours is not None and ours.digest() != tokenizer.digest():
            raise NmtError(
                "The checkpoint was trained with another vocabulary than the one built from this corpus and "
                "these --data options; use the data options of the training run (same corpus, vocab_size, "
                "joint_vocab, model_type)."
            )
        self.tokenizer = tokenizer
