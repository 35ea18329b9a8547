"""Read parallel corpora, validate them, normalise the text and filter pairs.

Supported sources (all give a :class:`ParallelText`):

- aligned plain text ``DATA_DIR/{split}.{lang}`` (the Multi30k / fairseq layout),
- ``DATA_DIR/{split}.tsv``: source TAB target, optionally a header line naming the languages,
- ``DATA_DIR/{split}.jsonl``: ``{"en": ..., "de": ...}`` or ``{"translation": {"en": ..., "de": ...}}``,
- a Hugging Face dataset by name or local path (``datasets.load_dataset``, no remote code).

Every problem a user can fix raises :class:`~nmt.errors.NmtError` naming the file and line.
"""

from __future__ import annotations

import json
import logging
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from nmt.errors import NmtError

log = logging.getLogger(__name__)

_SPACE = re.compile(r"\s+")
_LANGUAGE_CODE = re.compile(r"^[a-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})?$")  # en, deu, pt_BR, zh-Hans: a TSV header


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


def _listing(folder: Path) -> str:
    if not folder.is_dir():
        return f"the folder {folder} does not exist"
    names = sorted(p.name for p in folder.iterdir())
    shown = ", ".join(names[:20]) + (f", ... ({len(names)} in all)" if len(names) > 20 else "")
    return f"{folder} holds: {shown or 'nothing'}"


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
    if path.is_dir():
        raise NmtError(f"{path} is a folder, not a text file. Give the file inside it ({_listing(path)}).")
    if not path.is_file():
        raise NmtError(f"Corpus file not found: {path}. {_listing(path.parent)}.")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise NmtError(f"Cannot read {path}: {err.strerror}. Check its permissions.") from None
    return decode_lines(data, str(path), path.name)


def read_aligned(data_dir: Path, split: str, src_lang: str, tgt_lang: str) -> ParallelText:
    src_path, tgt_path = data_dir / f"{split}.{src_lang}", data_dir / f"{split}.{tgt_lang}"
    src, tgt = read_lines(src_path), read_lines(tgt_path)
    if len(src) != len(tgt):
        raise NmtError(
            f"Misaligned corpus: {src_path} has {len(src)} lines but {tgt_path} has {len(tgt)}. "
            "Line i of one file must translate line i of the other; fix or re-export the files."
        )
    return ParallelText(src, tgt, origin=f"{src_path} + {tgt_path}")


def read_tsv(path: Path, src_lang: str, tgt_lang: str) -> ParallelText:
    """Source TAB target, or any number of columns under a header line that names them."""
    lines = read_lines(path)
    columns, width, start = (0, 1), 2, 0
    head = lines[0].split("\t") if lines else []
    if src_lang in head and tgt_lang in head:
        columns, width, start = (head.index(src_lang), head.index(tgt_lang)), len(head), 1
    elif head and all(_LANGUAGE_CODE.match(name) for name in head):  # a header, of other languages
        raise NmtError(
            f"{path}, line 1: a header naming {', '.join(head)}, but the languages asked for are "
            f"'{src_lang}' -> '{tgt_lang}'. Set --data.src_lang/--data.tgt_lang to the header's names."
        )
    layout = "the header's" if start else "source TAB target:"
    src, tgt = [], []
    for number, line in enumerate(lines[start:], start=start + 1):
        fields = line.split("\t")
        if len(fields) != width:
            raise NmtError(
                f"{path}, line {number}: expected {width} tab-separated columns ({layout} {width}), found "
                f"{len(fields)}. Fix the line (a TAB inside a sentence?) or remove it; a header line naming "
                f"'{src_lang}' and '{tgt_lang}' lets a file have more columns."
            )
        src.append(fields[columns[0]])
        tgt.append(fields[columns[1]])
    return ParallelText(src, tgt, origin=str(path))


def _pick(record: dict, src_lang: str, tgt_lang: str) -> tuple[str, str] | None:
    pair = record.get("translation", record)
    if isinstance(pair, dict) and isinstance(pair.get(src_lang), str) and isinstance(pair.get(tgt_lang), str):
        return pair[src_lang], pair[tgt_lang]
    return None


def read_jsonl(path: Path, src_lang: str, tgt_lang: str) -> ParallelText:
    src, tgt = [], []
    for number, line in enumerate(read_lines(path), start=1):
        if not line.strip():
            src.append("")
            tgt.append("")
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise NmtError(f"{path}, line {number}: invalid JSON ({err.msg}). Fix or remove the line.") from None
        pair = _pick(record, src_lang, tgt_lang) if isinstance(record, dict) else None
        if pair is None:
            raise NmtError(
                f'{path}, line {number}: expected {{"{src_lang}": "...", "{tgt_lang}": "..."}} or '
                f'{{"translation": {{"{src_lang}": ..., "{tgt_lang}": ...}}}}. '
                "Check --data.src_lang / --data.tgt_lang against the keys in the file."
            )
        src.append(pair[0])
        tgt.append(pair[1])
    return ParallelText(src, tgt, origin=str(path))


def read_split(data_dir: str | Path, split: str, src_lang: str, tgt_lang: str) -> ParallelText:
    """Read one split from a folder, in whichever supported layout is present."""
    folder = Path(data_dir)
    if folder.is_file():
        raise NmtError(f"--data.data_dir {folder} is a file; give the folder that holds the corpus ({folder.parent}).")
    if (folder / f"{split}.tsv").is_file():
        return read_tsv(folder / f"{split}.tsv", src_lang, tgt_lang)
    if (folder / f"{split}.jsonl").is_file():
        return read_jsonl(folder / f"{split}.jsonl", src_lang, tgt_lang)
    src_path, tgt_path = folder / f"{split}.{src_lang}", folder / f"{split}.{tgt_lang}"
    if not src_path.is_file() and not tgt_path.is_file():
        raise NmtError(
            f"No '{split}' split in {folder}: looked for {split}.{src_lang} + {split}.{tgt_lang}, "
            f"{split}.tsv and {split}.jsonl. {_listing(folder)}. "
            "Set --data.train_split/val_split/test_split or --data.src_lang/tgt_lang to match the files."
        )
    return read_aligned(folder, split, src_lang, tgt_lang)


def read_hf(name: str, split: str, src_lang: str, tgt_lang: str, config: str | None = None) -> ParallelText:
    """Read a split of a Hugging Face dataset (hub name or local folder); remote code never runs."""
    import datasets

    try:
        ds = datasets.load_dataset(name, config, split=split)
    except (FileNotFoundError, ValueError, ConnectionError) as err:
        raise NmtError(
            f"Could not load split '{split}' of the Hugging Face dataset '{name}': {err}. "
            "Check the name, the split (e.g. 'validation' rather than 'val') and your connection."
        ) from None
    src, tgt = [], []
    for number, record in enumerate(ds, start=1):
        pair = _pick(record, src_lang, tgt_lang)
        if pair is None:
            raise NmtError(
                f"Hugging Face dataset '{name}' split '{split}', record {number}: no '{src_lang}'/'{tgt_lang}' "
                f"text (columns: {', '.join(ds.column_names)}). Set --data.src_lang/tgt_lang to its columns."
            )
        src.append(pair[0])
        tgt.append(pair[1])
    return ParallelText(src, tgt, origin=f"hf:{name}/{split}")


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
