"""Decoding engines: one interface (:mod:`nmt.engines.base`), opened once by every command that translates."""

from __future__ import annotations

from pathlib import Path

import torch

from nmt.engines.base import DecodeOptions, Engine, OptionError, Prepared, Translation

__all__ = ["ENGINES", "DecodeOptions", "Engine", "OptionError", "Prepared", "Translation", "engine_class",
           "open_engine"]  # fmt: skip

#: ``--engine`` names.
ENGINES = ("nmt", "ctranslate2")


def engine_class(name: str) -> type[Engine]:
    """The class of ``--engine name`` (CTranslate2 itself is imported only when an export is opened)."""
    if name == "ctranslate2":
        from nmt.engines.ctranslate2 import CTranslate2Engine

        return CTranslate2Engine
    from nmt.engines.native import NmtEngine

    return NmtEngine


def open_engine(name: str, paths: list[str | Path], device: torch.device, precision: str = "32") -> Engine:
    """``--engine name`` on ``paths``: nmt checkpoints (several: an ensemble), or one CTranslate2 export folder."""
    cls = engine_class(name)
    if name == "ctranslate2":
        return cls(paths[0], device.type)
    return cls.load(paths, device, precision)
