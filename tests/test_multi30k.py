"""Integration with the real Multi30k corpus; skipped where ../shared/data/multi30k is absent."""

import pytest

from nmt.data.datamodule import TranslationDataModule
from tests.conftest import MULTI30K, REPO, checkpoint, run_nmt

pytestmark = pytest.mark.skipif(not (MULTI30K / "train.de").is_file(), reason="Multi30k not found")


def test_multi30k_reads_all_splits_de_en():
    dm = TranslationDataModule(
        data_dir=str(MULTI30K), src_lang="de", tgt_lang="en", test_split="test_2016_flickr", vocab_size=8000
    )
    dm.setup(None)
    assert (
        len(dm.datasets["train"]) >= 28_990
        and len(dm.datasets["val"]) == 1014
        and len(dm.datasets["test_2016_flickr"]) == 1000
    )
    assert dm.text("validate").tgt[0].startswith("A group of men")
    assert dm.tokenizer.src_vocab_size == 8000


def test_fit_with_the_multi30k_config(tmp_path):
    result = run_nmt(
        "fit",
        "--config", str(REPO / "configs/transformer.yaml"),
        "--config", str(REPO / "configs/data/multi30k.yaml"),
        "--data.data_dir", str(MULTI30K),
        "--trainer.max_steps", "3",
        "--trainer.limit_val_batches", "2",
        "--trainer.enable_progress_bar", "false",
        "--trainer.default_root_dir", str(tmp_path),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "test_2016_flickr: 1000 of 1000 pairs kept" not in result.stderr  # fit reads train + val only
    assert "train: 2899" in result.stderr
    assert checkpoint(tmp_path, "last.ckpt").is_file()
