"""Fine-tuning from a checkpoint (--init_from) and early stopping, through the real command."""

import torch

from tests.conftest import assert_clean_error, checkpoint, losses, run_nmt


def test_fine_tuning_starts_from_the_trained_model(tiny_runs, tmp_path):
    trained = checkpoint(tiny_runs["transformer"], "last.ckpt")
    one_step = ["--trainer.max_steps", "1", "--trainer.log_every_n_steps", "1", "--trainer.limit_val_batches", "0"]
    fresh = run_nmt("fit", *tiny_runs.args("transformer"), *one_step, "--trainer.default_root_dir", str(tmp_path / "f"))
    tuned = run_nmt("fit", *tiny_runs.args("transformer"), *one_step, "--init_from", str(trained),
                    "--data.vocab_size", "200", "--trainer.default_root_dir", str(tmp_path / "t"))  # fmt: skip
    assert fresh.returncode == tuned.returncode == 0, tuned.stderr[-3000:]
    start, fresh_start, trained_end = (
        losses(tmp_path / "t")[0],
        losses(tmp_path / "f")[0],
        losses(trained.parents[1])[-1],
    )
    assert abs(start - trained_end) < 0.25 and start < fresh_start - 0.5  # where training left off, not from scratch
    assert f"starting from the weights of {trained} (step 12)" in tuned.stderr
    new = torch.load(tmp_path / "t" / "checkpoints" / "last.ckpt", weights_only=True)
    old = torch.load(trained, weights_only=True)
    assert new["global_step"] == 1  # a fresh step count (and optimizer and schedule)
    assert new["nmt"]["tokenizer"]["sha256"] == old["nmt"]["tokenizer"]["sha256"]  # not a 200-piece vocabulary
    assert new["hyper_parameters"]["net"]["init_args"]["src_vocab_size"] == 120


def test_fine_tuning_from_another_network_or_size_is_refused(tiny_runs, tmp_path):
    trained = str(checkpoint(tiny_runs["transformer"]))
    gru = run_nmt("fit", *tiny_runs.args("gru"), "--init_from", trained, "--trainer.default_root_dir", str(tmp_path))
    assert_clean_error(gru, "it holds a TransformerNet, not a GRUNet")
    wider = run_nmt("fit", *tiny_runs.args("transformer"), "--model.net.d_ff", "128", "--init_from", trained,
                    "--trainer.default_root_dir", str(tmp_path))  # fmt: skip
    assert_clean_error(wider, "does not fit the network", "is (64, 32) and this TransformerNet's (128, 32)")
    both = run_nmt("fit", *tiny_runs.args("transformer"), "--init_from", trained, "--ckpt_path", trained,
                   "--trainer.default_root_dir", str(tmp_path))  # fmt: skip
    assert_clean_error(both, "give one of them")


def test_early_stopping_when_validation_bleu_stops_improving(tiny_runs, tmp_path):
    still = ["--model.lr", "1e-12", "--model.warmup_steps", "1", "--trainer.max_steps", "40",
             "--trainer.val_check_interval", "2", "--early_stopping.patience", "2"]  # fmt: skip
    result = run_nmt("fit", *tiny_runs.args("transformer"), *still, "--trainer.default_root_dir", str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "did not improve in the last 2 records" in result.stderr
    assert torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 6  # 3 validations
