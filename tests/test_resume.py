"""Interrupted runs resume exactly: kill -9, Ctrl-C, SIGTERM, the end of an epoch, the last step."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from tests.conftest import fit_args, run_nmt, state_dict

RESUME = ["--trainer.max_steps", "40", "--trainer.val_check_interval", "20", "--last_checkpoint.every_n_train_steps",
          "5", "--trainer.deterministic", "true", "--samples.num_sentences", "0"]  # fmt: skip


@pytest.fixture(scope="module")
def straight_run(tiny_runs, tmp_path_factory):
    root = tmp_path_factory.mktemp("straight")
    # Also keeps the checkpoints saved in on_train_epoch_end (test_resuming_from_a_checkpoint_saved_at_epoch_end).
    epoch_end = ["--trainer.callbacks+=lightning.pytorch.callbacks.ModelCheckpoint",
                 "--trainer.callbacks.every_n_epochs=1", "--trainer.callbacks.save_on_train_epoch_end=true",
                 "--trainer.callbacks.save_top_k=-1", f"--trainer.callbacks.dirpath={root / 'epochs'}"]  # fmt: skip
    result = run_nmt(*fit_args(tiny_runs, root, *RESUME, *epoch_end))
    assert result.returncode == 0, result.stderr[-3000:]
    return root


def test_same_seed_same_checkpoint_and_translations(tiny_runs, straight_run, tmp_path):
    again = run_nmt(*fit_args(tiny_runs, tmp_path, *RESUME))
    assert again.returncode == 0, again.stderr[-3000:]
    a, b = state_dict(straight_run / "checkpoints/last.ckpt"), state_dict(tmp_path / "checkpoints/last.ckpt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    line = "On Monday, Anna saw thirty-two dogs.\n"
    first = run_nmt("translate", "--ckpt", str(straight_run / "checkpoints/last.ckpt"), stdin=line)
    second = run_nmt("translate", "--ckpt", str(tmp_path / "checkpoints/last.ckpt"), stdin=line)
    assert first.stdout == second.stdout and first.returncode == second.returncode == 0


def _start(tiny_runs, root):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "nmt", *fit_args(tiny_runs, root, *RESUME)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)


def _wait_for(path, proc, timeout=300):
    start = time.time()
    while not path.exists():
        assert proc.poll() is None, "the run ended before it could be interrupted"
        assert time.time() - start < timeout
        time.sleep(0.02)


def test_kill_9_then_resume_gives_the_same_weights(tiny_runs, straight_run, tmp_path):
    proc = _start(tiny_runs, tmp_path)
    _wait_for(tmp_path / "checkpoints/last.ckpt", proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = torch.load(tmp_path / "checkpoints/last.ckpt", weights_only=True)["global_step"]
    assert 0 < killed_at < 40
    resumed = run_nmt(*fit_args(tiny_runs, tmp_path, *RESUME), "--ckpt_path", "last")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "unreliable results" not in resumed.stderr  # Lightning's warning does not apply: the position is kept
    final = torch.load(tmp_path / "checkpoints/last.ckpt", weights_only=True)
    assert final["global_step"] == 40
    a, b = state_dict(straight_run / "checkpoints/last.ckpt"), final["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a), f"weights differ after resuming from step {killed_at}"


def test_last_checkpoint_holds_the_final_step(tiny_runs, straight_run, tmp_path):
    # 33 steps without validation, so no best.ckpt is saved (Lightning would then write last.ckpt once
    # more at the end, with the epoch counted as finished); the last periodic save is step 30.
    short = run_nmt(*fit_args(tiny_runs, tmp_path, *RESUME, "--trainer.max_steps", "33",
                              "--trainer.limit_val_batches", "0"))  # fmt: skip
    assert short.returncode == 0, short.stderr[-3000:]
    last = torch.load(tmp_path / "checkpoints/last.ckpt", weights_only=True)
    assert last["global_step"] == 33
    # 17 batches an epoch: step 33 is the 16th of the second epoch, and a run continued from here goes on there.
    assert last["TranslationDataModule"] == {"epoch": 1, "batches_done": 16}
    more = run_nmt(*fit_args(tiny_runs, tmp_path, *RESUME), "--ckpt_path", "last")  # trained further to 40
    assert more.returncode == 0, more.stderr[-3000:]
    assert "Restored all states" in more.stderr + more.stdout
    final = torch.load(tmp_path / "checkpoints/last.ckpt", weights_only=True)
    assert final["global_step"] == 40
    # The same batches in the same order as 40 steps straight (the second epoch's last one included).
    a, b = state_dict(straight_run / "checkpoints/last.ckpt"), final["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a), "weights differ after resuming in the second epoch"


def test_resuming_after_the_last_batch_of_an_epoch_starts_the_next_one(tiny_runs, straight_run, tmp_path):
    # Step 34 is the second epoch's last batch: max_steps saves it in on_train_batch_end.
    short = run_nmt(*fit_args(tiny_runs, tmp_path, *RESUME, "--trainer.max_steps", "34"))
    assert short.returncode == 0, short.stderr[-3000:]
    last = torch.load(tmp_path / "checkpoints/last.ckpt", weights_only=True)
    assert last["TranslationDataModule"] == {"epoch": 2, "batches_done": 0}  # Lightning starts epoch 2 on resume
    more = run_nmt(*fit_args(tiny_runs, tmp_path, *RESUME), "--ckpt_path", "last")
    assert more.returncode == 0, more.stderr[-3000:]
    a, b = state_dict(straight_run / "checkpoints/last.ckpt"), state_dict(tmp_path / "checkpoints/last.ckpt")
    assert all(torch.equal(a[k], b[k]) for k in a), "weights differ after resuming at an epoch's end"


def test_resuming_from_a_checkpoint_saved_at_epoch_end(tiny_runs, straight_run, tmp_path):
    # Saved in on_train_epoch_end after step 34; Lightning then passes set_epoch one too many.
    (saved,) = (straight_run / "epochs").glob("epoch=1-step=34*.ckpt")
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints/last.ckpt").write_bytes(saved.read_bytes())
    more = run_nmt(*fit_args(tiny_runs, tmp_path, *RESUME), "--ckpt_path", "last")
    assert more.returncode == 0, more.stderr[-3000:]
    assert torch.load(tmp_path / "checkpoints/last.ckpt", weights_only=True)["global_step"] == 40
    a, b = state_dict(straight_run / "checkpoints/last.ckpt"), state_dict(tmp_path / "checkpoints/last.ckpt")
    assert all(torch.equal(a[k], b[k]) for k in a), "weights differ after resuming from an epoch-end checkpoint"


def test_ctrl_c_stops_cleanly_and_leaves_a_resumable_checkpoint(tiny_runs, tmp_path):
    proc = _start(tiny_runs, tmp_path)
    _wait_for(tmp_path / "checkpoints/last.ckpt", proc)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert "Traceback" not in stderr
    step = torch.load(tmp_path / "checkpoints/last.ckpt", weights_only=True)["global_step"]
    assert 0 < step <= 40
    resumed = run_nmt(*fit_args(tiny_runs, tmp_path, *RESUME), "--ckpt_path", "last")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert torch.load(tmp_path / "checkpoints/last.ckpt", weights_only=True)["global_step"] == 40


def test_sigterm_stops_training_with_a_resumable_checkpoint_and_says_so(tiny_runs, tmp_path):
    import signal
    import time

    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    args = fit_args(tiny_runs, tmp_path, "--trainer.max_steps", "400", "--last_checkpoint.every_n_train_steps", "2")
    proc = subprocess.Popen([sys.executable, "-m", "nmt", *args], stderr=subprocess.PIPE, text=True, env=env)
    last, start = tmp_path / "checkpoints" / "last.ckpt", time.time()
    while not last.exists() and time.time() - start < 300:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 2 and "Traceback" not in stderr
    step = torch.load(last, weights_only=True)["global_step"]
    assert 0 < step < 400 and "Stopped by SIGTERM; last.ckpt holds the last step trained" in stderr
    resumed = run_nmt(*args, "--trainer.max_steps", str(step + 2), "--ckpt_path", "last")
    assert resumed.returncode == 0 and torch.load(last, weights_only=True)["global_step"] == step + 2
