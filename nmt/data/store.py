"""The encoded store: a split's token ids on disk, memory-mapped by every process that trains on it.

A store is a folder ``STORE_DIR/{split}-{key}/`` with, per side, the ids of all pairs end to end
(``src.ids``, ``tgt.ids``: raw uint16 when the vocabulary fits, else uint32) and where each pair
starts (``src.offsets.npy``, ``tgt.offsets.npy``: int64, one more than the pairs), plus
``meta.json`` (dtype, pair count, the filter report). Source ids end with EOS, target ids are
BOS ... EOS. Processes open the files with ``numpy.memmap``: nothing is loaded until read, and DDP
ranks on one machine share the pages through the page cache.

It is written once, by streaming: the split is read in chunks of raw lines, and each chunk is
parsed, normalised, filtered and encoded by a pool of worker processes (all cores), in order,
so memory holds a few chunks rather than the corpus. The key is the content of the files (a
checksum computed while counting their lines, remembered per path, size and modification time,
so a later start only looks at the files' sizes and times) and the settings; an edited file gets a
new key. A store is written under a temporary name and renamed when complete, so a killed
preparation leaves nothing under the real name; leftovers of dead processes are removed.

Why not Hugging Face ``datasets`` (Arrow)? Both memory-map; these flat arrays are what the
sampler and the collate function need (lengths are one ``numpy.diff``), open in milliseconds, and
need no fingerprinting or cache bookkeeping of their own (see docs/design.md).
"""

from __future__ import annotations

import json
import logging
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from nmt.data import corpus, sources
from nmt.data.encoding import Settings, encode_chunk, use_tokenizer
from nmt.data.parallel import ordered_map
from nmt.data.tokenizer import Tokenizer
from nmt.files import atomic_folder, remove_stale

log = logging.getLogger(__name__)

FORMAT = 2  # 2: meta.json records each file's size and sampled checksum
FILES = ("src.ids", "tgt.ids", "src.offsets.npy", "tgt.offsets.npy")
POOL_THRESHOLD = 50_000  # pairs; smaller splits are encoded in the calling process (no start-up cost)


HINTS = {
    "empty": "pairs with an empty side after cleaning",
    "too_long": "raise --data.max_length",
    "length_ratio": "raise --data.max_length_ratio",
}


def build(folder: Path, split: str, source: sources.Source, tokenizer: Tokenizer, settings: Settings,
          workers: int, replace: bool = False) -> None:  # fmt: skip
    """Encode ``source`` into the store ``folder`` (written under a temporary name, then renamed; ``replace``: in
    place of a damaged one)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(folder.parent)
    atomic_folder(folder, lambda tmp: _write(tmp, split, source, tokenizer, settings, workers), replace=replace)


def _write(tmp: Path, split: str, source: sources.Source, tokenizer: Tokenizer, settings: Settings,
           workers: int) -> None:  # fmt: skip
    source.check_aligned()
    big = max(tokenizer.src_vocab_size, tokenizer.tgt_vocab_size) > 65536
    dtype = np.dtype(np.uint32 if big else np.uint16)
    lengths: dict[str, list[np.ndarray]] = {"src": [], "tgt": []}
    total, cleaned, dropped = 0, 0, Counter()
    jobs = ((chunk, settings) for chunk in source.chunks())
    workers = workers if source.count() > POOL_THRESHOLD else 1
    with open(tmp / "src.ids", "wb") as src_file, open(tmp / "tgt.ids", "wb") as tgt_file:
        for part in ordered_map(encode_chunk, jobs, workers, use_tokenizer, (tokenizer.to_dict(),)):
            src_file.write(part.src.astype(dtype).tobytes())
            tgt_file.write(part.tgt.astype(dtype).tobytes())
            lengths["src"].append(part.src_lengths)
            lengths["tgt"].append(part.tgt_lengths)
            total, cleaned = total + part.pairs_read, cleaned + part.cleaned
            dropped.update(part.dropped)
            if total % 1_000_000 < 20_000 and total >= 1_000_000:
                log.info("%s: %d pairs encoded", split, total)
    kept = int(sum(len(x) for x in lengths["src"]))
    if not kept:
        corpus.raise_empty(split, source.origin, total if settings.train else 0, dropped, HINTS)
    for side in ("src", "tgt"):
        offsets = np.zeros(kept + 1, dtype=np.int64)
        np.cumsum(np.concatenate(lengths[side]), out=offsets[1:])
        np.save(tmp / f"{side}.offsets.npy", offsets)
    report = corpus.report(split, source.origin, total, kept, cleaned, dropped)
    files = {name: {"bytes": (tmp / name).stat().st_size, "crc": sampled_crc(tmp / name)} for name in FILES}
    meta = {"format": FORMAT, "dtype": dtype.name, "pairs": kept, "report": report, "files": files}
    (tmp / "meta.json").write_text(json.dumps(meta))


def sampled_crc(path: Path, blocks: int = 16, size: int = 1 << 16) -> str:
    """CRC-32 of ``blocks`` blocks of ``size`` bytes spread evenly over the file (the whole of a small file):
    a check of content that costs the same at any corpus size."""
    length = path.stat().st_size
    crc = 0
    with open(path, "rb") as f:
        starts = [0] if length <= blocks * size else [k * (length - size) // (blocks - 1) for k in range(blocks)]
        for start in starts:
            f.seek(start)
            crc = zlib.crc32(f.read(length if len(starts) == 1 else size), crc)
    return f"{crc:08x}"


def damage(folder: Path) -> str | None:
    """What is wrong with a store's files, against each other and its ``meta.json``; None when they agree."""
    try:
        meta = json.loads((folder / "meta.json").read_text())
        expected, pairs, dtype = meta["files"], int(meta["pairs"]), np.dtype(meta["dtype"])
    except (OSError, ValueError, KeyError, TypeError):
        return "meta.json is unreadable"
    for name in FILES:
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != expected[name]["bytes"]:
            return f"{name} has {path.stat().st_size:,} bytes where {expected[name]['bytes']:,} were written"
        if sampled_crc(path) != expected[name]["crc"]:
            return f"{name} has other bytes than were written (its checksum differs)"
    for side in ("src", "tgt"):
        offsets = np.load(folder / f"{side}.offsets.npy", mmap_mode="r")
        ids = (folder / f"{side}.ids").stat().st_size // dtype.itemsize
        if len(offsets) != pairs + 1 or offsets[0] != 0 or offsets[-1] != ids or not (np.diff(offsets) > 0).all():
            return f"{side}.offsets.npy does not describe {side}.ids ({pairs:,} pairs, {ids:,} ids)"
    return None


class EncodedSplit(Dataset):
    """A store opened for reading: item ``i`` is ``(i, src_ids, tgt_ids)``, read from the memory map."""

    def __init__(self, folder: Path):
        meta = json.loads((folder / "meta.json").read_text())
        dtype = np.dtype(meta["dtype"])
        self.folder, self.report, self.pairs = folder, meta["report"], meta["pairs"]
        self.src = np.memmap(folder / "src.ids", dtype=dtype, mode="r")
        self.tgt = np.memmap(folder / "tgt.ids", dtype=dtype, mode="r")
        self.src_offsets = np.load(folder / "src.offsets.npy", mmap_mode="r")
        self.tgt_offsets = np.load(folder / "tgt.offsets.npy", mmap_mode="r")

    def __len__(self) -> int:
        return self.pairs

    def __getitem__(self, i: int) -> tuple[int, list[int], list[int]]:
        s0, s1 = self.src_offsets[i], self.src_offsets[i + 1]
        t0, t1 = self.tgt_offsets[i], self.tgt_offsets[i + 1]
        return i, self.src[s0:s1].tolist(), self.tgt[t0:t1].tolist()

    def src_lengths(self) -> np.ndarray:
        return np.diff(self.src_offsets)

    def tgt_lengths(self) -> np.ndarray:
        return np.diff(self.tgt_offsets)

    def lengths(self) -> np.ndarray:
        """Padded cost of each pair: the longer side (the decoder sees ``len(tgt) - 1`` tokens)."""
        return np.maximum(self.src_lengths(), self.tgt_lengths() - 1)
