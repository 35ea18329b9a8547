"""The step guard: a step with a non-finite gradient is skipped on the device and training stops after it;
nmt's own gradient clipping (which replaces Lightning's) clips by norm and by value."""

import copy

import lightning as L
import pytest
import torch

from nmt.data.datamodule import TranslationDataModule
from nmt.errors import NmtError
from tests.conftest import assert_clean_error, fit_args, run_nmt, state_dict, tiny_system

TINY = dict(d_model=32, n_heads=2, d_ff=64, encoder_layers=1, decoder_layers=1)


def tiny(tiny_corpus):
    torch.manual_seed(0)
    dm = TranslationDataModule(data_dir=str(tiny_corpus), vocab_size=120, max_tokens=1024)
    dm.prepare_data()
    dm.setup("fit")
    return dm, tiny_system(dm.src_vocab_size, TINY, warmup_steps=10)


def fit(dm, model, callback, precision="32-true", steps=6, **trainer_args):
    trainer = L.Trainer(
        max_steps=steps, precision=precision, limit_val_batches=0, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, use_distributed_sampler=False,
        callbacks=[callback], **trainer_args,
    )  # fmt: skip
    trainer.fit(model, datamodule=dm)
    return trainer


class PoisonStep(L.Callback):
    """Makes one gradient NaN after the backward pass of update ``at``; keeps the weights from just before it."""

    def __init__(self, at: int):
        self.at, self.before, self.steps_seen = at, None, []

    def on_after_backward(self, trainer, model):
        if trainer.global_step == self.at:
            next(model.parameters()).grad[0, 0] = float("nan")
            self.before = copy.deepcopy(model.state_dict())

    def on_train_batch_end(self, trainer, model, outputs, batch, batch_idx):
        self.steps_seen.append(trainer.global_step)


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_a_non_finite_gradient_skips_the_step_and_stops_training(tiny_corpus, precision):
    dm, model = tiny(tiny_corpus)
    poison = PoisonStep(at=3)
    with pytest.raises(NmtError, match=r"Training stopped at step 3: the gradient norm is nan.*--ckpt_path last"):
        fit(dm, model, poison, precision)
    assert poison.steps_seen == [1, 2, 3, 4]  # the poisoned update counted, then training stopped
    after = model.state_dict()
    assert all(torch.equal(after[k], poison.before[k]) for k in after), "the skipped step changed weights"
    state = model.trainer.optimizers[0].state
    assert {float(s["step"]) for s in state.values()} == {3.0}  # nor the optimizer's moments and step count
    assert all(torch.isfinite(s["exp_avg"]).all() for s in state.values())


class GradientSizes(L.Callback):
    def __init__(self):
        self.norms, self.maxima = [], []

    def on_train_batch_end(self, trainer, model, outputs, batch, batch_idx):  # gradients as the step used them
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        self.norms.append(float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))))
        self.maxima.append(max(float(g.abs().max()) for g in grads))


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_clipping_by_norm_and_by_value(tiny_corpus, precision):
    by_norm = GradientSizes()
    fit(*tiny(tiny_corpus), by_norm, precision, steps=3, gradient_clip_val=0.05)
    assert by_norm.norms == pytest.approx([0.05] * 3, rel=1e-4)  # unclipped they are about 1-10
    by_value = GradientSizes()
    fit(*tiny(tiny_corpus), by_value, precision, steps=3, gradient_clip_val=1e-4, gradient_clip_algorithm="value")
    assert max(by_value.maxima) == pytest.approx(1e-4)


def test_the_guard_reads_gpu_values_only_once_the_device_is_done():
    """The CUDA path, with a stand-in for the event: polling never waits, waiting at the end does."""
    from nmt.step_guard import StepGuard

    class Event:
        def __init__(self):
            self.done, self.waited = False, False

        def query(self):
            return self.done

        def synchronize(self):
            self.waited = True

    guard, finite, bad = StepGuard(lr=1e-3), Event(), Event()
    guard._pending.extend([(torch.tensor([2.5, 1.0]), finite, 7), (torch.tensor([float("inf"), 1.0]), bad, 8)])
    guard.poll()  # neither is done: nothing read, nothing raised
    assert len(guard._pending) == 2 and not finite.waited
    finite.done = True
    guard.poll()  # step 7 read and fine; step 8 still on its way
    assert len(guard._pending) == 1
    with pytest.raises(NmtError, match="step 8: the loss is inf"):
        guard.poll(wait=True)  # the end of training waits for the last ones
    assert bad.waited


def test_non_finite_loss_stops_with_advice_and_keeps_good_weights(tiny_runs, tmp_path):
    result = run_nmt(*fit_args(tiny_runs, tmp_path, "--model.lr", "1e30", "--model.warmup_steps",
                               "1", "--last_checkpoint.every_n_train_steps", "1"))  # fmt: skip
    assert_clean_error(result, "Training stopped at step", "--model.lr", "--ckpt_path last")
    last = state_dict(tmp_path / "checkpoints/last.ckpt")
    assert all(torch.isfinite(v).all() for v in last.values() if v.is_floating_point())


@pytest.mark.parametrize("skip", [1.0, 0.0])
def test_fused_adamw_honours_the_flag_handed_to_its_step(skip):
    """The one handshake with PyTorch that has no public spelling (nmt.step_guard.skip_step_on_device): a release
    that stops honouring it fails here, not silently in training."""
    from nmt.step_guard import can_skip_on_device, skip_step_on_device

    weight = torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.AdamW([weight], lr=0.1, fused=True)
    weight.grad = torch.ones(3)
    assert can_skip_on_device(optimizer)
    skip_step_on_device(optimizer, torch.tensor(skip))
    optimizer.step()
    skip_step_on_device(optimizer, None)
    assert torch.equal(weight.detach(), torch.ones(3)) == bool(skip)
    assert not hasattr(optimizer, "found_inf")  # withdrawn: a later step is not skipped
