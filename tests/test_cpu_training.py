"""Training on a CPU: bf16 mixed precision, the torch.compile fallback, fused AdamW."""

import logging
from types import SimpleNamespace

import pytest
import torch

from tests.conftest import metrics, run_nmt


def test_bf16_mixed_on_cpu_loss_falls(tiny_runs, tmp_path):
    result = run_nmt(
        "fit", *tiny_runs.args("transformer"), "--trainer.precision", "bf16-mixed",
        "--trainer.max_steps", "40", "--trainer.val_check_interval", "40", "--trainer.log_every_n_steps", "1",
        "--samples.num_sentences", "0", "--trainer.default_root_dir", str(tmp_path),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    losses = [float(r["train/loss"]) for r in metrics(tmp_path) if r.get("train/loss")]
    assert len(losses) == 40
    assert sum(losses[-5:]) / 5 < 0.85 * sum(losses[:5]) / 5  # 5.5 -> 4.1 when measured


@pytest.mark.parametrize(
    ("precision", "flags", "warned"),
    [("bf16-mixed", "fpu avx2 avx512f", True), ("bf16-mixed", "fpu avx512f avx512_bf16", False),
     ("bf16-mixed", "fpu amx_bf16 amx_tile", False), ("32-true", "fpu avx2", False)],
)  # fmt: skip
def test_bf16_on_a_cpu_without_bf16_instructions_warns(monkeypatch, caplog, tmp_path, precision, flags, warned):
    from nmt import hardware
    from tests.conftest import tiny_system

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: {flags}\n\nprocessor\t: 1\n")
    assert hardware.cpu_flags(cpuinfo) == set(flags.split())
    monkeypatch.setattr("platform.machine", lambda: "x86_64")
    monkeypatch.setattr(hardware, "cpu_flags", lambda: set(flags.split()))
    model = tiny_system(30)
    model.trainer = SimpleNamespace(precision=precision, is_global_zero=True)
    with caplog.at_level(logging.WARNING, logger="nmt"):
        model.on_fit_start()
    assert ("emulated here and training runs about 2x slower" in caplog.text) == warned


def test_compile_falls_back_when_unsupported(monkeypatch, caplog):
    from nmt.data.batching import Batch
    from tests.conftest import tiny_system

    def broken(fn, **kwargs):
        def run(*a, **k):
            raise RuntimeError("no compiler here")

        return run

    monkeypatch.setattr(torch, "compile", broken)
    model = tiny_system(compile=True)
    batch = Batch.collate([(0, [5, 6, 3], [2, 7, 3])])
    with caplog.at_level("WARNING", logger="nmt"):
        logits = model.train_forward(batch)
    assert logits.shape == (1, 2, 20) and model._compiled is None
    assert "torch.compile failed (RuntimeError: no compiler here)" in caplog.text


def test_fused_adamw_on_cpu_decays_only_matrices():
    from tests.conftest import tiny_system

    model = tiny_system(weight_decay=0.01)
    opt = model.configure_optimizers()["optimizer"]
    assert isinstance(opt, torch.optim.AdamW) and opt.defaults["fused"] is True  # one kernel, CPU too
    model._trainer = SimpleNamespace(precision="bf16-mixed")  # nmt clips for it (Lightning would refuse)
    assert model.configure_optimizers()["optimizer"].defaults["fused"]
    model._trainer = SimpleNamespace(precision="16-mixed")  # the gradient scaler unscales before clipping
    assert not model.configure_optimizers()["optimizer"].defaults["fused"]
    model._trainer = None
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.01 and all(p.dim() >= 2 for p in decay["params"])
    assert no_decay["weight_decay"] == 0.0 and all(p.dim() == 1 for p in no_decay["params"])
    # It takes the same step as the plain (for-loop) implementation.
    clones = [[p.detach().clone().requires_grad_() for p in g["params"]] for g in opt.param_groups]
    groups = [{"params": c, "weight_decay": g["weight_decay"]} for c, g in zip(clones, opt.param_groups)]
    reference = torch.optim.AdamW(groups, lr=opt.param_groups[0]["lr"], betas=opt.defaults["betas"], foreach=False)
    torch.manual_seed(0)
    for g, c in zip(opt.param_groups, clones):
        for p, q in zip(g["params"], c):
            p.grad = torch.randn_like(p)
            q.grad = p.grad.clone()
    before = [p.detach().clone() for g in opt.param_groups for p in g["params"]]
    opt.step()
    reference.step()
    after = [p.detach() for g in opt.param_groups for p in g["params"]]
    assert all(not torch.equal(a, b) for a, b in zip(before, after))
    assert all(torch.allclose(p, q, atol=1e-6) for p, q in zip(after, [q for c in clones for q in c]))
