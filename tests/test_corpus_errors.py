"""Corpora with mistakes: every bad file or line is named, with the fix; nothing is dropped silently."""

import logging

import pytest

from nmt.data import corpus
from nmt.data.datamodule import TranslationDataModule
from nmt.errors import NmtError
from tests.conftest import assert_clean_error, checkpoint, run_nmt


def test_control_characters_and_blank_lines_are_counted(tmp_path, caplog):
    (tmp_path / "train.en").write_text("a\tb\x07c\n   \nfine line\n" * 20, encoding="utf-8")
    (tmp_path / "train.de").write_text("x\ny\nz\n" * 20, encoding="utf-8")
    for split in ("val", "test"):
        (tmp_path / f"{split}.en").write_text("a b\n", encoding="utf-8")
        (tmp_path / f"{split}.de").write_text("x\n", encoding="utf-8")
    dm = TranslationDataModule(data_dir=str(tmp_path), vocab_size=16, cache_dir=str(tmp_path / "c"))
    with caplog.at_level(logging.INFO, logger="nmt"):
        dm.setup("fit")
    assert [dm.tokenizer.src.decode(dm.datasets["train"][i][1]) for i in (0, 1)] == ["a b c", "fine line"]
    assert "train: 40 of 60 pairs kept" in caplog.text and "20 empty" in caplog.text
    assert "lines cleaned: 40" in caplog.text  # 20 control-character lines + 20 blank ones


def write_split(folder, split, pairs, layout="tsv", bom=False, header=None):
    folder.mkdir(parents=True, exist_ok=True)
    lines = ([header] if header else []) + ["\t".join(p) for p in pairs]
    data = "".join(line + "\n" for line in lines).encode()
    (folder / f"{split}.{layout}").write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)


PAIRS = [("Four people arrived.", "Vier Leute kamen an."), ("Anna saw two dogs.", "Anna sah zwei Hunde.")]


def test_a_byte_order_mark_neither_hides_a_header_nor_stays_in_a_sentence(tmp_path):
    write_split(tmp_path, "train", [(de, en) for en, de in PAIRS], bom=True, header="de\ten")
    swapped = corpus.read_split(tmp_path, "train", "en", "de")  # the header decides the direction
    assert swapped.src == [en for en, _ in PAIRS] and swapped.tgt == [de for _, de in PAIRS]
    (tmp_path / "val.en").write_bytes(b"\xef\xbb\xbfFour people arrived.\nAnna saw two dogs.\n")
    (tmp_path / "val.de").write_text("Vier Leute kamen an.\nAnna sah zwei Hunde.\n", encoding="utf-8")
    plain = corpus.read_split(tmp_path, "val", "en", "de")
    assert plain.src[0] == "Four people arrived."  # no U+FEFF left in the first sentence (or reference)


def test_a_tsv_line_with_a_third_column_is_named(tmp_path):
    write_split(tmp_path, "train", [PAIRS[0], (*PAIRS[1], "extra")])
    with pytest.raises(NmtError, match=r"train\.tsv, line 2: expected 2 tab-separated columns .* found 3"):
        corpus.read_split(tmp_path, "train", "en", "de")
    write_split(tmp_path, "val", [("id1", *PAIRS[0])], header="id\ten\tde")  # named columns may be more
    assert corpus.read_split(tmp_path, "val", "en", "de").tgt == [PAIRS[0][1]]


def test_a_folder_where_a_file_belongs(tiny_run, tmp_path):
    (tmp_path / "train.en").mkdir()
    (tmp_path / "train.de").write_text("x\n", encoding="utf-8")
    with pytest.raises(NmtError, match=r"train\.en is a folder, not a text file"):
        corpus.read_split(tmp_path, "train", "en", "de")
    result = run_nmt("translate", "--ckpt", str(checkpoint(tiny_run)), "--input", str(tmp_path))
    assert_clean_error(result, f"{tmp_path} is a folder, not a text file")
    assert_clean_error(run_nmt("translate", "--ckpt", str(tmp_path)), f"{tmp_path} is a folder, not a checkpoint")


def test_empty_training_files_are_named(tmp_path):
    for split in ("train", "val", "test"):
        (tmp_path / f"{split}.en").write_text("" if split == "train" else "a\n", encoding="utf-8")
        (tmp_path / f"{split}.de").write_text("" if split == "train" else "b\n", encoding="utf-8")
    dm = TranslationDataModule(data_dir=str(tmp_path), vocab_size=16, cache_dir=str(tmp_path / "c"))
    with pytest.raises(NmtError, match=r"The train split from .*train\.en \+ .*train\.de is empty\."):
        dm.setup("fit")


def test_a_header_of_other_languages_is_not_read_as_a_sentence(tmp_path):
    write_split(tmp_path, "train", PAIRS, header="en\tfr")
    with pytest.raises(NmtError, match=r"train\.tsv, line 1: a header naming en, fr, but .* 'en' -> 'de'"):
        corpus.read_split(tmp_path, "train", "en", "de")


def test_data_dir_that_is_a_file_and_a_cache_that_cannot_be_written(tmp_path):
    (tmp_path / "corpus.tsv").write_text("a\tb\n", encoding="utf-8")
    with pytest.raises(NmtError, match=r"--data.data_dir .*corpus\.tsv is a file; give the folder"):
        corpus.read_split(tmp_path / "corpus.tsv", "train", "en", "de")
    dm = TranslationDataModule(cache_dir="/proc/nmt-cache")
    with pytest.raises(NmtError, match=r"The cache folder /proc/nmt-cache cannot be written .* --data.cache_dir"):
        dm.prepare_data()


def test_a_missing_split_is_named_before_anything_is_learnt_or_encoded(tiny_corpus, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for f in tiny_corpus.iterdir():
        if f.name != "val.en":
            (data / f.name).write_bytes(f.read_bytes())
    cache = tmp_path / "cache"
    dm = TranslationDataModule(data_dir=str(data), vocab_size=50_000, cache_dir=str(cache))  # too many pieces, too
    with pytest.raises(NmtError, match=r"Corpus file not found: .*val\.en"):
        dm.prepare_data()
    assert not (cache / "tokenizers").exists() and not (cache / "stores").exists()


def test_training_needs_no_test_split(tiny_corpus, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for f in tiny_corpus.iterdir():
        if not f.name.startswith("test."):
            (data / f.name).write_bytes(f.read_bytes())
    result = run_nmt("fit", "--data.data_dir", str(data), "--data.vocab_size", "120", "--model.net.d_model", "16",
                     "--model.net.d_ff", "32", "--model.net.n_heads", "2", "--trainer.max_steps", "2",
                     "--trainer.val_check_interval", "2", "--trainer.enable_progress_bar", "false",
                     "--samples.num_sentences", "0", "--trainer.default_root_dir", str(tmp_path / "run"))  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    test = run_nmt("test", "--data.data_dir", str(data), "--data.vocab_size", "120", "--ckpt_path", str(last),
                   "--trainer.default_root_dir", str(tmp_path))  # fmt: skip
    assert_clean_error(test, "No 'test' split in")
