"""What a corpus's content is, cheaply: checksums of its files, remembered per path, size and modification time.

The caches (tokenizers, encoded stores) are keyed by :func:`key` of these checksums and the
settings, so an edited file gets a new key, and a file that was only touched does not.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from pathlib import Path

from nmt.data import sources
from nmt.files import atomic_write


def key(*parts: object) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(json.dumps(part, sort_keys=True, default=str).encode())
        h.update(b"\0")
    return h.hexdigest()[:20]


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
        return [file_checksum(p, cache_dir) for p in files] or [records_checksum(source.dataset)]
    return [file_checksum(p, cache_dir) for p in source.paths()]


def records_checksum(dataset) -> str:
    """CRC-32 of an in-memory dataset's records (one without cache files, e.g. built from a dict)."""
    crc = 0
    for batch in dataset.iter(batch_size=1000):
        crc = zlib.crc32(json.dumps(batch, sort_keys=True, default=str).encode(), crc)
    return f"{crc:08x}-{len(dataset)}"
