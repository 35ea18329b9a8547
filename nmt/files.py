"""Writing files and folders so that no reader ever sees half of one.

Everything nmt writes (checkpoints, tokenizer caches, encoded stores, exports, translations) is
written under a temporary name beside its target (``.NAME.PID.RANDOM.tmp``, so the rename stays on
one file system) and renamed onto the target only when complete. A process killed while writing
leaves only a temporary, which :func:`remove_stale` deletes once its process is gone.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from nmt.errors import NmtError


def temporary(path: Path) -> Path:
    """A fresh temporary name beside ``path``, holding this process's id."""
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


def atomic_write(path: Path, write: Callable[[Path], object], sync: bool = False) -> None:
    """``write(tmp)`` then rename ``tmp`` onto ``path``; ``sync``: flush the bytes to disk before the rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary(path)
    try:
        write(tmp)
        if sync:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        _remove(tmp)


@contextmanager
def atomic_text(path: Path) -> Iterator[TextIO]:
    """A text file to write, opened at once (an unwritable path fails before any work) and renamed onto
    ``path`` when the block ends without an error; after an error ``path`` is left as it was."""
    path = Path(path)
    tmp = temporary(path)
    try:
        handle = open(tmp, "w", encoding="utf-8")
    except OSError as err:
        raise NmtError(f"Cannot write {path}: {err.strerror}. Choose a writable path.") from None
    try:
        yield handle
        handle.close()
        os.replace(tmp, path)
    finally:
        handle.close()
        _remove(tmp)


def atomic_folder(folder: Path, write: Callable[[Path], object], replace: bool = False) -> None:
    """``write(tmp)`` into a new temporary folder, then rename it onto ``folder``.

    ``replace``: an existing ``folder`` is swapped out and deleted only once the new one is complete.
    Without it, a ``folder`` that appeared meanwhile (another process wrote the same thing) is kept.
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary(folder)
    tmp.mkdir()
    old = None
    try:
        write(tmp)
        if replace and folder.exists():
            old = temporary(folder)
            os.replace(folder, old)
        try:
            os.replace(tmp, folder)
        except OSError:  # another process finished the same folder first: theirs is as good
            if replace or not folder.exists():
                raise
    finally:
        _remove(tmp)
        if old is not None:
            _remove(old)


def remove_stale(folder: Path) -> None:
    """Delete the temporaries in ``folder`` whose process no longer runs (a writer killed with -9)."""
    for tmp in Path(folder).glob(".*.tmp"):
        try:
            os.kill(int(tmp.name.split(".")[-3]), 0)
        except ProcessLookupError:
            _remove(tmp)
        except (ValueError, IndexError, PermissionError):
            continue


def check_destination(out: Path, force: bool = False, keep: list[Path] = ()) -> None:
    """Refuse an export folder ``out`` that would lose data: a file, a folder of other files (an earlier export
    holds ``nmt.json``; others only with ``force``), or a folder holding one of ``keep`` (the checkpoint being
    exported), even with ``force``."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NmtError(f"--out {out} is a file; give the name of a folder to write the export into.")
    for path in keep:
        if Path(path).resolve().is_relative_to(out.resolve()):
            raise NmtError(f"--out {out} holds {path}, the checkpoint being exported; write the export elsewhere, "
                           f"e.g. --out {out.parent / (out.name + '-ct2')}.")  # fmt: skip
    if out.is_dir() and any(out.iterdir()) and not (out / "nmt.json").is_file() and not force:
        raise NmtError(f"--out {out} is a folder that holds other files (not an earlier export); nmt export "
                       "replaces its --out folder whole. Choose a new folder, or add --force.")  # fmt: skip
