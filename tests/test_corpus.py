import json
from collections import Counter

import pytest

from nmt.data import corpus
from nmt.data.datamodule import TranslationDataModule
from nmt.errors import NmtError


def write(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def test_aligned_files(tmp_path):
    write(tmp_path / "train.en", ["a b", "c"])
    write(tmp_path / "train.de", ["x y", "z"])
    text = corpus.read_split(tmp_path, "train", "en", "de")
    assert (text.src, text.tgt) == (["a b", "c"], ["x y", "z"])


def test_different_line_counts_name_both_files_and_counts(tmp_path):
    write(tmp_path / "train.en", ["a"] * 9)
    write(tmp_path / "train.de", ["b"] * 10)
    with pytest.raises(NmtError) as err:
        corpus.read_split(tmp_path, "train", "en", "de")
    msg = str(err.value)
    assert "train.en" in msg and "train.de" in msg and "9 lines" in msg and "10" in msg


def test_missing_file_is_named_and_folder_listed(tmp_path):
    write(tmp_path / "train.en", ["a"])
    with pytest.raises(NmtError) as err:
        corpus.read_split(tmp_path, "train", "en", "de")
    assert "train.de" in str(err.value) and "holds: train.en" in str(err.value)
    with pytest.raises(NmtError, match="No 'dev' split"):
        corpus.read_split(tmp_path, "dev", "en", "de")


def test_invalid_utf8_names_file_and_line(tmp_path):
    (tmp_path / "train.en").write_bytes(b"fine\nalso fine\nbad \xe9 byte\n")
    write(tmp_path / "train.de", ["a", "b", "c"])
    with pytest.raises(NmtError, match=r"train\.en, line 3: not valid UTF-8"):
        corpus.read_split(tmp_path, "train", "en", "de")


def test_tsv_with_and_without_header(tmp_path):
    write(tmp_path / "train.tsv", ["de\ten", "Hallo\tHello", "Welt\tWorld"])
    text = corpus.read_split(tmp_path, "train", "en", "de")
    assert (text.src, text.tgt) == (["Hello", "World"], ["Hallo", "Welt"])
    write(tmp_path / "val.tsv", ["Hello\tHallo", "oops"])
    with pytest.raises(NmtError, match=r"val\.tsv, line 2: expected 2 tab-separated columns .* found 1"):
        corpus.read_split(tmp_path, "val", "en", "de")


def test_jsonl_flat_and_translation_records(tmp_path):
    rows = [{"en": "Hello", "de": "Hallo"}, {"translation": {"en": "World", "de": "Welt"}}]
    write(tmp_path / "train.jsonl", [json.dumps(r) for r in rows])
    text = corpus.read_split(tmp_path, "train", "en", "de")
    assert (text.src, text.tgt) == (["Hello", "World"], ["Hallo", "Welt"])
    write(tmp_path / "val.jsonl", ['{"en": "x", "fr": "y"}'])
    with pytest.raises(NmtError, match=r"val\.jsonl, line 1"):
        corpus.read_split(tmp_path, "val", "en", "de")


def test_hugging_face_path_with_a_local_dataset(tmp_path):
    folder = tmp_path / "hf"
    folder.mkdir()
    write(folder / "train.jsonl", [json.dumps({"translation": {"en": f"s{i}", "de": f"t{i}"}}) for i in range(3)])
    text = corpus.read_hf(str(folder), "train", "en", "de")
    assert text.src == ["s0", "s1", "s2"] and text.tgt == ["t0", "t1", "t2"]
    with pytest.raises(NmtError, match="no 'en'/'fr' text"):
        corpus.read_hf(str(folder), "train", "en", "fr")


def test_clean_normalises_and_counts_dropped_empty_pairs():
    raw = corpus.ParallelText(["a\x07b", "  ", "ok  fine "], ["x", "y", "z"], "mem")
    out = corpus.clean(raw, drop_empty=True)
    assert out.src == ["a b", "ok fine"] and out.tgt == ["x", "z"]
    assert out.dropped == Counter(empty=1) and out.cleaned == 3


def test_length_filter_counts_reasons():
    keep, dropped = corpus.length_filter([3, 50, 2, 4], [3, 3, 9, 5], max_length=20, max_ratio=3.0)
    assert keep == [0, 3] and dropped == Counter(too_long=1, length_ratio=1)


def test_empty_after_filtering_says_which_filter(tmp_path):
    write(tmp_path / "train.en", ["one two three four five six seven eight nine ten"] * 30)
    write(tmp_path / "train.de", ["eins zwei drei vier fünf sechs sieben acht neun zehn"] * 30)
    for split in ("val", "test"):
        write(tmp_path / f"{split}.en", ["one"])
        write(tmp_path / f"{split}.de", ["eins"])
    dm = TranslationDataModule(data_dir=str(tmp_path), vocab_size=40, max_length=3)
    with pytest.raises(NmtError) as err:
        dm.prepare_data()
    assert "empty after filtering" in str(err.value) and "too_long" in str(err.value)
    assert "--data.max_length" in str(err.value)
