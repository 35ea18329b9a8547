"""Where the small commands write: standard output, or a file replaced only once it is complete."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from nmt.errors import NmtError
from nmt.files import atomic_text


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
    with atomic_text(path) as handle:
        yield handle


def refuse_overwriting(output: str, inputs: dict[str, str | None]) -> None:
    """Refuse an ``--output`` that is one of the ``inputs`` (flag -> path), also through a link or another
    spelling of the path: the translation would replace its own source."""
    if output == "-":
        return
    out = Path(output)
    for flag, name in inputs.items():
        if name in (None, "-"):
            continue
        source = Path(name)
        same = out.resolve() == source.resolve()
        if not same and out.exists() and source.exists():
            same = os.path.samefile(out, source)
        if same:
            raise NmtError(f"--output {output} is the {flag} file {name}: writing it would replace what is read. "
                           "Choose another output file.")  # fmt: skip
