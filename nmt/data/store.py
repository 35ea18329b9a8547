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

import hashlib
import json
import logging
import os
import shutil
import uuid
import zlib
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from itertools import chain
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from nmt.data import corpus, sources
from nmt.data.tokenizer import Tokenizer

log = logging.getLogger(__name__)

FORMAT = 1
SPM_SEED = 0  # the sample SentencePiece learns from is drawn with this seed: the same corpus, the same model
POOL_THRESHOLD = 50_000  # pairs; smaller splits are encoded in the calling process (no start-up cost)


def key(*parts: object) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(json.dumps(part, sort_keys=True, default=str).encode())
        h.update(b"\0")
    return h.hexdigest()[:20]


# ------------------------------------------------------------------ identity of the input
def file_checksum(path: Path, cache_dir: Path) -> str:
    """CRC-32 and size of a file's bytes, remembered by path, size and modification time."""
    stat = path.stat()
    record = cache_dir / "files" / f"{key(str(path.resolve()), stat.st_size, stat.st_mtime_ns)}.json"
    if record.is_file():
        return json.loads(record.read_text())["checksum"]
    crc = 0
    with open(path, "rb") as f:
        while block := f.read(1 << 24):
            crc = zlib.crc32(block, crc)
    checksum = f"{crc:08x}-{stat.st_size}"
    atomic_write(record, lambda tmp: tmp.write_text(json.dumps({"path": str(path), "checksum": checksum})))
    return checksum


def source_identity(source: sources.Source, cache_dir: Path) -> list[str]:
    """What a source's content is, cheaply: its files' checksums (a dataset's Arrow files for Hugging Face)."""
    if source.layout == "records":
        files = [Path(f["filename"]) for f in source.dataset.cache_files]
        return [file_checksum(p, cache_dir) for p in files] or [source.dataset._fingerprint]
    return [file_checksum(p, cache_dir) for p in source.paths()]


# --------------------------------------------------------------------- writing safely
def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Call ``write(tmp_path)`` then rename onto ``path``: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _remove_leftovers(folder: Path) -> None:
    """Delete temporary stores of processes that no longer run (a preparation killed with -9)."""
    for tmp in folder.glob(".*.tmp"):
        try:
            pid = int(tmp.name.split(".")[-3])
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(tmp, ignore_errors=True)
        except (ValueError, IndexError, PermissionError):
            continue


# ------------------------------------------------------------------ parallel, in order
def ordered_map(fn, items: Iterator, workers: int, initializer=None, initargs=()) -> Iterator:
    """``map(fn, items)`` on ``workers`` processes, in order, with at most 2 x workers items in flight
    (the input is streamed, never read ahead whole); in this process when ``workers`` is 1."""
    if workers <= 1:
        if initializer:
            initializer(*initargs)
        yield from map(fn, items)
        return
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=initializer,
                             initargs=initargs) as pool:  # fmt: skip
        pending: deque = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


# ------------------------------------------------------------------ the work of a chunk
_TOKENIZER: Tokenizer | None = None


def _use_tokenizer(data: dict) -> None:
    global _TOKENIZER
    _TOKENIZER = Tokenizer.from_dict(data)


@dataclass
class Settings:
    """How a split is encoded: training splits are filtered, evaluation sources truncated."""

    train: bool
    max_length: int
    max_length_ratio: float


@dataclass
class Encoded:
    """One chunk, encoded: ids end to end and their lengths, per side, and what cleaning did."""

    src: np.ndarray
    src_lengths: np.ndarray
    tgt: np.ndarray
    tgt_lengths: np.ndarray
    pairs_read: int
    cleaned: int
    dropped: Counter


def _flat(seqs: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.fromiter(map(len, seqs), dtype=np.int64, count=len(seqs))
    return np.fromiter(chain.from_iterable(seqs), dtype=np.uint32, count=int(lengths.sum())), lengths


def encode_chunk(job: tuple[sources.Chunk, Settings]) -> Encoded:
    chunk, settings = job
    src, tgt = sources.parse(chunk)
    text = corpus.clean(corpus.ParallelText(src, tgt, ""), drop_empty=settings.train)
    src_ids, tgt_ids = _TOKENIZER.encode_src(text.src), _TOKENIZER.encode_tgt(text.tgt)
    dropped = text.dropped
    limit = settings.max_length
    if settings.train:
        keep, too_long = corpus.length_filter(
            [len(s) - 1 for s in src_ids], [len(t) - 2 for t in tgt_ids], limit, settings.max_length_ratio
        )
        dropped.update(too_long)
        src_ids, tgt_ids = [src_ids[i] for i in keep], [tgt_ids[i] for i in keep]
    else:
        cut = sum(len(s) > limit for s in src_ids)
        if cut:
            dropped["truncated (kept)"] += cut
        src_ids = [s[: limit - 1] + [s[-1]] if len(s) > limit else s for s in src_ids]
    (s_flat, s_len), (t_flat, t_len) = _flat(src_ids), _flat(tgt_ids)
    return Encoded(s_flat, s_len, t_flat, t_len, len(chunk.lines), text.cleaned, dropped)


def clean_chunk(job: tuple[sources.Chunk, bool]) -> corpus.ParallelText:
    chunk, drop_empty = job
    src, tgt = sources.parse(chunk)
    return corpus.clean(corpus.ParallelText(src, tgt, ""), drop_empty)


# ------------------------------------------------------------------------ the store
HINTS = {
    "empty": "pairs with an empty side after cleaning",
    "too_long": "raise --data.max_length",
    "length_ratio": "raise --data.max_length_ratio",
}


def build(folder: Path, split: str, source: sources.Source, tokenizer: Tokenizer, settings: Settings,
          workers: int) -> None:  # fmt: skip
    """Encode ``source`` into the store ``folder`` (written under a temporary name, then renamed)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(folder.parent)
    tmp = folder.with_name(f".{folder.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.mkdir()
    try:
        _write(tmp, split, source, tokenizer, settings, workers)
        try:
            os.replace(tmp, folder)
        except OSError:  # another process finished the same store first: theirs is as good
            if not (folder / "meta.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


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
        for part in ordered_map(encode_chunk, jobs, workers, _use_tokenizer, (tokenizer.to_dict(),)):
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
    meta = {"format": FORMAT, "dtype": dtype.name, "pairs": kept, "report": report}
    (tmp / "meta.json").write_text(json.dumps(meta))


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


def spm_sample(source: sources.Source, pairs: int, workers: int) -> corpus.ParallelText:
    """The cleaned training pairs SentencePiece learns from: all of them, or ``pairs`` drawn at random
    (seed :data:`SPM_SEED`) from the whole split when it has more, in corpus order."""
    total = source.count()
    chosen = None if total <= pairs else np.sort(np.random.default_rng(SPM_SEED).choice(total, pairs, replace=False))

    def jobs() -> Iterator[tuple[sources.Chunk, bool]]:
        start = 0
        for chunk in source.chunks():
            end = start + len(chunk.lines)
            if chosen is None:
                yield chunk, True
            else:
                rows = chosen[np.searchsorted(chosen, start) : np.searchsorted(chosen, end)] - start
                yield chunk.select(rows.tolist()), True
            start = end

    source.check_aligned()
    src: list[str] = []
    tgt: list[str] = []
    dropped: Counter = Counter()
    for part in ordered_map(clean_chunk, jobs(), workers if total > POOL_THRESHOLD else 1):
        src += part.src
        tgt += part.tgt
        dropped.update(part.dropped)
    return corpus.ParallelText(src, tgt, source.origin, dropped=dropped)
