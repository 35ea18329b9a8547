"""Where a split's pairs come from, read in chunks: the files (or dataset) and how to parse them.

Supported sources:

- aligned plain text ``DATA_DIR/{split}.{lang}`` (the Multi30k / fairseq layout),
- ``DATA_DIR/{split}.tsv``: source TAB target, or any columns under a header line naming the languages,
- ``DATA_DIR/{split}.jsonl``: ``{"en": ..., "de": ...}`` or ``{"translation": {"en": ..., "de": ...}}``,
- a Hugging Face dataset by name or local path (``datasets.load_dataset``, no remote code).

A split may be several files (shards): a list of names, or a glob such as ``train-*``, read in
sorted order. :meth:`Source.chunks` reads raw lines (bytes, nothing decoded yet) in chunks of
consecutive pairs, and :func:`parse` turns a chunk into text; parsing can run in other processes,
and every problem raises :class:`~nmt.errors.NmtError` naming the file and the line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import chain, islice
from pathlib import Path

from nmt.errors import NmtError

BOM = b"\xef\xbb\xbf"
_LANGUAGE_CODE = re.compile(r"^[a-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})?$")  # en, deu, pt_BR, zh-Hans: a TSV header


def listing(folder: Path) -> str:
    if not folder.is_dir():
        return f"the folder {folder} does not exist"
    names = sorted(p.name for p in folder.iterdir())
    shown = ", ".join(names[:20]) + (f", ... ({len(names)} in all)" if len(names) > 20 else "")
    return f"{folder} holds: {shown or 'nothing'}"


def check_file(path: Path) -> None:
    if path.is_dir():
        raise NmtError(f"{path} is a folder, not a text file. Give the file inside it ({listing(path)}).")
    if not path.is_file():
        raise NmtError(f"Corpus file not found: {path}. {listing(path.parent)}.")


def count_lines(path: Path) -> int:
    """Lines in a text file (a last line without a newline counts)."""
    lines, last = 0, b"\n"
    with open(path, "rb") as f:
        while block := f.read(1 << 24):
            lines += block.count(b"\n")
            last = block[-1:]
    return lines + (last != b"\n")


def _lines(path: Path) -> Iterator[bytes]:
    """A file's lines as bytes, without the newline (and a CR before it), the byte-order mark removed."""
    try:
        with open(path, "rb") as f:
            for number, line in enumerate(f):
                line = line[:-1] if line.endswith(b"\n") else line
                yield (line.removeprefix(BOM) if number == 0 else line).removesuffix(b"\r")
    except OSError as err:
        raise NmtError(f"Cannot read {path}: {err.strerror}. Check its permissions.") from None


def decode(raw: bytes, origin: str, line: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise NmtError(
            f"{origin}, line {line}: not valid UTF-8 (byte {raw[err.start]:#04x}). Convert it to UTF-8, "
            f"e.g. `iconv -f latin1 -t utf-8 {Path(origin).name}`, or fix that line."
        ) from None


@dataclass
class Chunk:
    """Consecutive raw pairs of one file (or file pair, or dataset), from ``first_line`` on (1-based)."""

    layout: str  # aligned | tsv | jsonl | records
    origin: tuple[str, ...]  # the file(s), for messages
    first_line: int
    lines: list  # aligned: (src bytes, tgt bytes); tsv, jsonl: bytes; records: dicts
    columns: tuple[int, int] = (0, 1)
    width: int = 2
    langs: tuple[str, str] = ("", "")
    header: bool = False  # TSV: the columns were named by a header line
    numbers: list[int] | None = None  # the lines' own numbers when they are not consecutive (a sample)

    def select(self, rows: list[int]) -> Chunk:
        """The pairs at ``rows`` (0-based, within this chunk), keeping their line numbers for messages."""
        numbers = [self.first_line + r for r in rows] if self.numbers is None else [self.numbers[r] for r in rows]
        lines = [self.lines[r] for r in rows]
        return Chunk(self.layout, self.origin, self.first_line, lines, self.columns, self.width, self.langs,
                     self.header, numbers)  # fmt: skip


def _pick(record: dict, src_lang: str, tgt_lang: str) -> tuple[str, str] | None:
    pair = record.get("translation", record)
    if isinstance(pair, dict) and isinstance(pair.get(src_lang), str) and isinstance(pair.get(tgt_lang), str):
        return pair[src_lang], pair[tgt_lang]
    return None


def parse(chunk: Chunk) -> tuple[list[str], list[str]]:
    """The source and target text of a chunk's pairs (not yet normalised)."""
    src, tgt = [], []
    origin, first = chunk.origin, chunk.first_line
    src_lang, tgt_lang = chunk.langs
    numbers = chunk.numbers or range(first, first + len(chunk.lines))
    for number, item in zip(numbers, chunk.lines):
        if chunk.layout == "aligned":
            s, t = decode(item[0], origin[0], number), decode(item[1], origin[1], number)
        elif chunk.layout == "tsv":
            fields = decode(item, origin[0], number).split("\t")
            if len(fields) != chunk.width:
                layout = "the header's" if chunk.header else "source TAB target:"
                raise NmtError(
                    f"{origin[0]}, line {number}: expected {chunk.width} tab-separated columns ({layout} "
                    f"{chunk.width}), found {len(fields)}. Fix the line (a TAB inside a sentence?) or remove it; "
                    f"a header line naming '{src_lang}' and '{tgt_lang}' lets a file have more columns."
                )
            s, t = fields[chunk.columns[0]], fields[chunk.columns[1]]
        elif chunk.layout == "jsonl":
            s, t = _json_pair(decode(item, origin[0], number), origin[0], number, src_lang, tgt_lang)
        else:
            pair = _pick(item, src_lang, tgt_lang)
            if pair is None:
                raise NmtError(
                    f"{origin[0]}, record {number}: no '{src_lang}'/'{tgt_lang}' text (columns: {', '.join(item)}). "
                    "Set --data.src_lang/tgt_lang to its columns."
                )
            s, t = pair
        src.append(s)
        tgt.append(t)
    return src, tgt


def _json_pair(line: str, origin: str, number: int, src_lang: str, tgt_lang: str) -> tuple[str, str]:
    if not line.strip():
        return "", ""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as err:
        raise NmtError(f"{origin}, line {number}: invalid JSON ({err.msg}). Fix or remove the line.") from None
    pair = _pick(record, src_lang, tgt_lang) if isinstance(record, dict) else None
    if pair is None:
        raise NmtError(
            f'{origin}, line {number}: expected {{"{src_lang}": "...", "{tgt_lang}": "..."}} or '
            f'{{"translation": {{"{src_lang}": ..., "{tgt_lang}": ...}}}}. '
            "Check --data.src_lang / --data.tgt_lang against the keys in the file."
        )
    return pair


@dataclass
class Source:
    """A split's files in one layout (or a Hugging Face dataset), in reading order."""

    layout: str
    files: list[tuple[Path, ...]]  # aligned: (src, tgt) per shard; tsv / jsonl: (path,) per shard
    langs: tuple[str, str]
    origin: str
    dataset: object = field(default=None, repr=False)  # a datasets.Dataset, for layout "records"

    def paths(self) -> list[Path]:
        return [p for group in self.files for p in group]

    def count(self) -> int:
        """Pairs in the source, header lines not counted (the files are read, not parsed)."""
        if self.layout == "records":
            return len(self.dataset)
        total = 0
        for group in self.files:
            header = self.layout == "tsv" and self._header(group[0], _lines(group[0]))[3] == 2
            total += count_lines(group[0]) - header
        return total

    def chunks(self, size: int = 20_000) -> Iterator[Chunk]:
        if self.layout == "records":
            yield from self._record_chunks(size)
            return
        for group in self.files:
            yield from self._file_chunks(group, size)

    def _record_chunks(self, size: int) -> Iterator[Chunk]:
        for start in range(0, len(self.dataset), size):
            records = self.dataset.select(range(start, min(start + size, len(self.dataset))))
            yield Chunk("records", (self.origin,), start + 1, list(records), langs=self.langs)

    def _file_chunks(self, group: tuple[Path, ...], size: int) -> Iterator[Chunk]:
        origin = tuple(str(p) for p in group)
        if self.layout == "aligned":
            lines, columns, width, first = zip(_lines(group[0]), _lines(group[1])), (0, 1), 2, 1
        else:
            lines, columns, width, first = self._header(group[0], _lines(group[0]))
        header = first == 2
        while batch := list(islice(lines, size)):
            yield Chunk(self.layout, origin, first, batch, columns, width, self.langs, header)
            first += len(batch)

    def _header(self, path: Path, lines: Iterator[bytes]) -> tuple[Iterator[bytes], tuple[int, int], int, int]:
        """The data lines, columns, width and first data line number of a TSV file, whose first line may
        be a header naming the languages; JSONL has no header."""
        first = next(lines, None) if self.layout == "tsv" else None
        if first is None:
            return lines, (0, 1), 2, 1
        head = decode(first, str(path), 1).split("\t")
        src_lang, tgt_lang = self.langs
        if src_lang in head and tgt_lang in head:
            return lines, (head.index(src_lang), head.index(tgt_lang)), len(head), 2
        if all(_LANGUAGE_CODE.match(name) for name in head):  # a header, of other languages
            raise NmtError(
                f"{path}, line 1: a header naming {', '.join(head)}, but the languages asked for are "
                f"'{src_lang}' -> '{tgt_lang}'. Set --data.src_lang/--data.tgt_lang to the header's names."
            )
        return chain([first], lines), (0, 1), 2, 1  # no header: the first line is a pair

    def check_aligned(self) -> None:
        """Aligned files must have the same number of lines (checked before any encoding)."""
        for src_path, tgt_path in self.files if self.layout == "aligned" else []:
            n_src, n_tgt = count_lines(src_path), count_lines(tgt_path)
            if n_src != n_tgt:
                raise NmtError(
                    f"Misaligned corpus: {src_path} has {n_src} lines but {tgt_path} has {n_tgt}. "
                    "Line i of one file must translate line i of the other; fix or re-export the files."
                )


def _stems(folder: Path, patterns: list[str], suffix: str) -> list[str]:
    stems: list[str] = []
    for pattern in patterns:
        found = sorted(p.name[: -len(suffix)] for p in folder.glob(pattern + suffix) if p.is_file())
        stems += [s for s in found if s not in stems]
    return stems


def find_source(data_dir: str | Path, split: str | list[str], src_lang: str, tgt_lang: str) -> Source:
    """The files of a split (a name, a glob of names, or a list of them) in whichever layout is present."""
    folder = Path(data_dir)
    if folder.is_file():
        raise NmtError(f"--data.data_dir {folder} is a file; give the folder that holds the corpus ({folder.parent}).")
    patterns = [split] if isinstance(split, str) else list(split)
    langs = (src_lang, tgt_lang)
    for layout, suffix in (("tsv", ".tsv"), ("jsonl", ".jsonl")):
        stems = _stems(folder, patterns, suffix)
        if stems:
            files = [(folder / f"{stem}{suffix}",) for stem in stems]
            return Source(layout, files, langs, _origin(files))
    stems = _stems(folder, patterns, f".{src_lang}") or _stems(folder, patterns, f".{tgt_lang}")
    if not stems:
        name = " ".join(patterns)
        raise NmtError(
            f"No '{name}' split in {folder}: looked for {name}.{src_lang} + {name}.{tgt_lang}, {name}.tsv and "
            f"{name}.jsonl. {listing(folder)}. "
            "Set --data.train_split/val_split/test_split or --data.src_lang/tgt_lang to match the files."
        )
    files = [(folder / f"{stem}.{src_lang}", folder / f"{stem}.{tgt_lang}") for stem in stems]
    for group in files:
        for path in group:
            check_file(path)
    return Source("aligned", files, langs, _origin(files))


def _origin(files: list[tuple[Path, ...]]) -> str:
    first = " + ".join(str(p) for p in files[0])
    return first if len(files) == 1 else f"{len(files)} files ({first}, ...)"


def hf_source(name: str, split: str, src_lang: str, tgt_lang: str, config: str | None = None) -> Source:
    """A split of a Hugging Face dataset (hub name or local folder); remote code never runs."""
    import datasets

    try:
        ds = datasets.load_dataset(name, config, split=split)
    except (FileNotFoundError, ValueError, ConnectionError) as err:
        raise NmtError(
            f"Could not load split '{split}' of the Hugging Face dataset '{name}': {err}. "
            "Check the name, the split (e.g. 'validation' rather than 'val') and your connection."
        ) from None
    origin = f"Hugging Face dataset '{name}' split '{split}'"
    return Source("records", [], (src_lang, tgt_lang), origin, dataset=ds)
