"""Parallel text: normalising it, the filters, and what they report; reading a split into memory.

The files and their layouts are :mod:`nmt.data.sources`; large training splits are streamed
into an encoded store (:mod:`nmt.data.store`) rather than read whole. Every problem a user can fix
raises :class:`~nmt.errors.NmtError` naming the file and line.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from nmt.data import sources
from nmt.errors import NmtError

log = logging.getLogger(__name__)

_SPACE = re.compile(r"\s+")


@dataclass
class ParallelText:
    """Aligned sentence pairs of one split, with where they came from and what cleaning did."""

    src: list[str]
    tgt: list[str]
    origin: str
    cleaned: int = 0
    dropped: Counter = field(default_factory=Counter)

    def __len__(self) -> int:
        return len(self.src)


def normalize(text: str) -> str:
    """NFC, control characters removed, runs of white space folded to one space, stripped."""
    text = unicodedata.normalize("NFC", text)
    text = "".join(" " if unicodedata.category(c) == "Cc" else c for c in text)
    return _SPACE.sub(" ", text).strip()


def decode_lines(data: bytes, origin: str, file_name: str = "FILE") -> list[str]:
    """UTF-8 bytes as lines: split at ``\n`` only (a ``\r`` before it is dropped, other line breaks
    such as U+2028 stay inside their line), a leading byte-order mark removed; ``origin`` names the
    source in the error for bytes that are not UTF-8."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        start = err.start + (3 if data.startswith(b"\xef\xbb\xbf") else 0)
        line = data.count(b"\n", 0, start) + 1
        raise NmtError(
            f"{origin}, line {line}: not valid UTF-8 (byte {data[start]:#04x}). Convert it to UTF-8, "
            f"e.g. `iconv -f latin1 -t utf-8 {file_name}`, or fix that line."
        ) from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def read_lines(path: Path) -> list[str]:
    """Read a UTF-8 text file as lines (without newlines); clear errors for the usual faults."""
    sources.check_file(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise NmtError(f"Cannot read {path}: {err.strerror}. Check its permissions.") from None
    return decode_lines(data, str(path), path.name)


def read(source: sources.Source) -> ParallelText:
    """All the pairs of a source, in memory (for evaluation splits and tests; training splits are streamed)."""
    source.check_aligned()
    src: list[str] = []
    tgt: list[str] = []
    for chunk in source.chunks():
        s, t = sources.parse(chunk)
        src += s
        tgt += t
    return ParallelText(src, tgt, origin=source.origin)


def read_split(data_dir: str | Path, split: str | list[str], src_lang: str, tgt_lang: str) -> ParallelText:
    """Read one split from a folder, in whichever supported layout is present."""
    return read(sources.find_source(data_dir, split, src_lang, tgt_lang))


def read_hf(name: str, split: str, src_lang: str, tgt_lang: str, config: str | None = None) -> ParallelText:
    """Read a split of a Hugging Face dataset (hub name or local folder); remote code never runs."""
    return read(sources.hf_source(name, split, src_lang, tgt_lang, config))


def clean(text: ParallelText, drop_empty: bool) -> ParallelText:
    """Normalise every line; with ``drop_empty``, drop pairs with an empty side (counted)."""
    src, tgt = [], []
    cleaned = 0
    dropped: Counter = Counter()
    for s, t in zip(text.src, text.tgt):
        ns, nt = normalize(s), normalize(t)
        cleaned += (ns != s) + (nt != t)
        if drop_empty and (not ns or not nt):
            dropped["empty"] += 1
            continue
        src.append(ns)
        tgt.append(nt)
    return ParallelText(src, tgt, text.origin, cleaned, dropped)


def length_filter(
    src_lengths: list[int], tgt_lengths: list[int], max_length: int, max_ratio: float
) -> tuple[list[int], Counter]:
    """Indices of pairs within ``max_length`` tokens a side and ``max_ratio`` between sides."""
    keep: list[int] = []
    dropped: Counter = Counter()
    for i, (s, t) in enumerate(zip(src_lengths, tgt_lengths)):
        if s > max_length or t > max_length:
            dropped["too_long"] += 1
        elif max(s, t) > max_ratio * max(1, min(s, t)):
            dropped["length_ratio"] += 1
        else:
            keep.append(i)
    return keep, dropped


def report(split: str, origin: str, total: int, kept: int, cleaned: int, dropped: Counter) -> str:
    """One log line saying what was read, cleaned and dropped, and why."""
    reasons = ", ".join(f"{n} {why}" for why, n in sorted(dropped.items())) or "none"
    return f"{split}: {kept} of {total} pairs kept from {origin}; dropped: {reasons}; lines cleaned: {cleaned}"


def raise_empty(split: str, origin: str, total: int, dropped: Counter, hints: dict[str, str]) -> None:
    """Raise the error for a split with no pairs left, naming each filter and how to relax it."""
    if total == 0:
        raise NmtError(f"The {split} split from {origin} is empty. Point --data.data_dir at a corpus with text.")
    reasons = "; ".join(f"{n} by {why} ({hints.get(why, '')})" for why, n in sorted(dropped.items()))
    raise NmtError(f"The {split} split from {origin} is empty after filtering: all {total} pairs removed: {reasons}.")
