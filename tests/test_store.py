"""The encoded store: what it holds, when it is rebuilt, how preparation survives kills and bad lines."""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from nmt.data import corpus, store
from nmt.data.datamodule import TranslationDataModule
from nmt.data.tokenizer import Tokenizer
from nmt.errors import NmtError
from tests.conftest import REPO, together


def module(path, cache, **options) -> TranslationDataModule:
    return TranslationDataModule(data_dir=str(path), vocab_size=120, cache_dir=str(cache), **options)


def write_pairs(folder, stem, pairs):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{stem}.en").write_text("".join(s + "\n" for s, _ in pairs), encoding="utf-8")
    (folder / f"{stem}.de").write_text("".join(t + "\n" for _, t in pairs), encoding="utf-8")


def test_the_store_holds_exactly_what_sentencepiece_gives(tiny_corpus, tmp_path):
    dm = module(tiny_corpus, tmp_path)
    dm.setup(None)
    tok = dm.tokenizer
    for split in ("train", "val", "test"):
        ds = dm.datasets[split]
        text = corpus.clean(corpus.read_split(tiny_corpus, split, "en", "de"), drop_empty=split == "train")
        assert len(ds) == len(text) and ds.src.dtype == np.uint16 and isinstance(ds.src, np.memmap)
        assert [ds[i][1] for i in range(len(ds))] == tok.encode_src(text.src)
        assert [ds[i][2] for i in range(len(ds))] == tok.encode_tgt(text.tgt)
        src_lengths = [len(s) for s in tok.encode_src(text.src)]
        tgt_lengths = [len(t) for t in tok.encode_tgt(text.tgt)]
        assert ds.lengths().tolist() == [max(s, t - 1) for s, t in zip(src_lengths, tgt_lengths)]
        assert f"{split}: {len(text)} of {len(text)} pairs kept" in ds.report


def test_worker_processes_write_the_same_store_as_one_process(tiny_corpus, tmp_path, monkeypatch):
    monkeypatch.setattr(store, "POOL_THRESHOLD", 0)  # use the pool even for the tiny corpus
    one = module(tiny_corpus, tmp_path / "one", prepare_workers=1)
    two = module(tiny_corpus, tmp_path / "two", prepare_workers=2)
    one.setup("fit")
    two.setup("fit")
    assert one.tokenizer.digest() == two.tokenizer.digest()
    for name in ("src.ids", "tgt.ids", "src.offsets.npy", "tgt.offsets.npy", "meta.json"):
        a, b = one.datasets["train"].folder / name, two.datasets["train"].folder / name
        assert a.read_bytes() == b.read_bytes(), name


def test_an_edited_corpus_is_encoded_again_and_an_untouched_one_is_not(tiny_corpus, tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    for f in tiny_corpus.iterdir():
        (data / f.name).write_bytes(f.read_bytes())
    dm = module(data, tmp_path / "cache")
    dm.setup("fit")
    builds = []
    real_build = store.build
    monkeypatch.setattr(store, "build", lambda *a, **k: builds.append(a[1]) or real_build(*a, **k))
    os.utime(data / "val.de")  # touched, not changed: the checksum is the same, nothing is encoded again
    again = module(data, tmp_path / "cache")
    again.setup("fit")
    assert builds == [] and again.datasets["val"].folder == dm.datasets["val"].folder
    lines = (data / "val.de").read_text(encoding="utf-8").splitlines()
    lines[0] = "Ganz anders."
    (data / "val.de").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    edited = module(data, tmp_path / "cache")
    edited.setup("fit")
    assert builds == ["val"]  # only the edited split
    assert edited.tokenizer.decode_tgt([edited.datasets["val"][0][2]]) == ["Ganz anders."]


def test_shards_given_as_a_glob_or_a_list_are_read_in_order(tiny_corpus, tmp_path):
    text = corpus.read_split(tiny_corpus, "train", "en", "de")
    pairs = list(zip(text.src, text.tgt))
    data = tmp_path / "data"
    write_pairs(data, "train-01", pairs[200:])  # written first; read second (sorted names)
    write_pairs(data, "train-00", pairs[:200])
    for split in ("val", "test"):
        for lang in ("en", "de"):
            (data / f"{split}.{lang}").write_bytes((tiny_corpus / f"{split}.{lang}").read_bytes())
    whole = module(tiny_corpus, tmp_path / "c")
    whole.setup("fit")
    for train_split in ("train-*", ["train-00", "train-01"]):
        sharded = module(data, tmp_path / "c", train_split=train_split)
        sharded.setup("fit")
        ds = sharded.datasets["train-*" if isinstance(train_split, str) else "train-00+train-01"]
        assert len(ds) == 400 and "2 files" in ds.report
        assert ds.src.tobytes() == whole.datasets["train"].src.tobytes()  # the same pairs, the same order


def test_sentencepiece_learns_from_a_sample_of_the_whole_split(tiny_corpus, tmp_path, monkeypatch):
    seen = []
    real_train = Tokenizer.train.__func__
    monkeypatch.setattr(
        Tokenizer, "train", classmethod(lambda cls, src, *a: seen.append(src) or real_train(cls, src, *a))
    )
    for cache in ("a", "b"):
        module(tiny_corpus, tmp_path / cache, spm_sample=100).setup("fit")
    assert len(seen) == 2 and seen[0] == seen[1] and len(seen[0]) == 100  # the same sample each time
    everything = corpus.read_split(tiny_corpus, "train", "en", "de").src
    rows = [everything.index(s) for s in seen[0]]
    assert rows == sorted(rows) and max(rows) >= 300  # in corpus order, from all of it, not the first 100


def test_a_bad_line_deep_in_a_large_corpus_is_named(tmp_path):
    subprocess.run([sys.executable, "scripts/make_corpus.py", str(tmp_path), "--pairs", "60000"], cwd=REPO,
                   check=True, capture_output=True)  # fmt: skip
    lines = (tmp_path / "train.src").read_bytes().split(b"\n")
    lines[45_677] = b"Zw\xf6lf Leute."
    (tmp_path / "train.src").write_bytes(b"\n".join(lines))
    dm = TranslationDataModule(data_dir=str(tmp_path), src_lang="src", tgt_lang="tgt", vocab_size=2000,
                               cache_dir=str(tmp_path / "c"), prepare_workers=2)  # fmt: skip
    with pytest.raises(NmtError, match=r"train\.src, line 45678: not valid UTF-8 \(byte 0xf6\)"):
        dm.prepare_data()


def children(pid: int) -> list[int]:
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            found += [int(c) for c in f.read().split()]
    return found


def test_kill_9_during_preparation_leaves_no_store_no_workers_and_a_rerun_succeeds(tmp_path):
    subprocess.run([sys.executable, "scripts/make_corpus.py", str(tmp_path / "d"), "--pairs", "150000"], cwd=REPO,
                   check=True, capture_output=True)  # fmt: skip
    code = (
        "from nmt.data.datamodule import TranslationDataModule as D; "
        f"D(data_dir='{tmp_path / 'd'}', src_lang='src', tgt_lang='tgt', vocab_size=2000, "
        f"cache_dir='{tmp_path / 'c'}', prepare_workers=2).prepare_data()"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO)
    stores, start = tmp_path / "c" / "stores", time.time()
    while not list(stores.glob(".train-*.tmp")) and time.time() - start < 300:
        assert proc.poll() is None, "preparation ended before it could be killed"
        time.sleep(0.05)
    time.sleep(0.5)  # in the middle of writing
    helpers = children(proc.pid)  # the encoding workers and multiprocessing's resource tracker
    proc.kill()  # SIGKILL
    proc.wait()
    start = time.time()
    while [p for p in helpers if os.path.exists(f"/proc/{p}")] and time.time() - start < 10:
        time.sleep(0.1)
    assert helpers and not [p for p in helpers if os.path.exists(f"/proc/{p}")], "workers outlived a killed run"
    assert list(stores.glob(".train-*.tmp")) and not [p for p in stores.iterdir() if not p.name.startswith(".")]
    dm = TranslationDataModule(data_dir=str(tmp_path / "d"), src_lang="src", tgt_lang="tgt", vocab_size=2000,
                               cache_dir=str(tmp_path / "c"))  # fmt: skip
    dm.setup("fit")
    assert len(dm.datasets["train"]) > 140_000 and not list(stores.glob(".*.tmp"))  # the leftover is gone


def test_two_runs_sharing_a_cache(tiny_corpus, tmp_path):
    def prepare():
        dm = TranslationDataModule(data_dir=str(tiny_corpus), vocab_size=120, cache_dir=str(tmp_path))
        dm.setup("fit")
        return dm.tokenizer.digest()

    digests = together(prepare, [()] * 3)
    assert len(set(digests)) == 1 and len(digests) == 3
    assert not list(tmp_path.rglob("*.tmp"))


@pytest.mark.parametrize(
    "damage", ["cut src.ids in half", "zero tgt.ids", "cut src.offsets.npy", "drop meta.json files"]
)
def test_a_damaged_store_is_noticed_and_encoded_again(tiny_corpus, tmp_path, caplog, damage):
    first = module(tiny_corpus, tmp_path)
    first.setup("fit")
    folder = first.datasets["train"].folder
    expected = [first.datasets["train"][i] for i in range(len(first.datasets["train"]))]
    del first
    if damage == "cut src.ids in half":
        path = folder / "src.ids"
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "zero tgt.ids":
        path = folder / "tgt.ids"
        path.write_bytes(bytes(path.stat().st_size))  # the same size, all padding
    elif damage == "cut src.offsets.npy":
        path = folder / "src.offsets.npy"
        np.save(path, np.load(path)[:-5])
    else:
        meta = json.loads((folder / "meta.json").read_text())
        del meta["files"]
        (folder / "meta.json").write_text(json.dumps(meta))
    assert store.damage(folder) is not None
    again = module(tiny_corpus, tmp_path)
    with caplog.at_level("WARNING", logger="nmt"):
        again.setup("fit")
    assert f"the encoded store {folder} is damaged" in caplog.text and "encoding train again" in caplog.text
    assert store.damage(folder) is None
    assert [again.datasets["train"][i] for i in range(len(again.datasets["train"]))] == expected
