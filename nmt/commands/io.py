"""What the small commands share: loading one network or an ensemble, and writing output safely."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from nmt.checkpoint import load_network
from nmt.ensemble import Ensemble
from nmt.errors import NmtError
from nmt.networks.base import Seq2SeqNet


def load(paths: list[str], device) -> Seq2SeqNet:
    """The network of one checkpoint, or the ensemble of several."""
    nets = [load_network(path, device) for path in paths]
    if len(nets) == 1:
        return nets[0]
    try:
        return Ensemble(nets)
    except ValueError as err:
        raise NmtError(f"--ckpt {' '.join(map(str, paths))}: {err}.") from None


@contextmanager
def output(name: str) -> Iterator[TextIO]:
    """Standard output for ``-``; else a file written under a temporary name beside ``name``, opened at once
    (an unwritable path fails before any work) and renamed onto ``name`` only when everything is written."""
    if name == "-":
        yield sys.stdout
        return
    path = Path(name)
    if path.is_dir():
        raise NmtError(f"--output {name} is a folder; give a file name, e.g. {path}/hyp.txt.")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        handle = open(tmp, "w", encoding="utf-8")
    except OSError as err:
        raise NmtError(f"Cannot write {name}: {err.strerror}. Choose a writable path.") from None
    try:
        yield handle
        handle.close()
        os.replace(tmp, path)
    finally:
        handle.close()
        if tmp.exists():
            tmp.unlink()
