"""A network from its description, or a trained one from its checkpoint (with the tokenizer beside it)."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

import torch

from nmt.checkpoint import Checkpoint
from nmt.data.tokenizer import Tokenizer
from nmt.errors import NmtError
from nmt.networks.base import Seq2SeqNet


def network_class(name: str) -> type[Seq2SeqNet]:
    """The network class named ``name``; only nmt's own networks (``nmt.networks.*``) are imported."""
    module, _, attr = name.rpartition(".")
    cls = getattr(importlib.import_module(module), attr, None) if module.startswith("nmt.networks") else None
    if not (isinstance(cls, type) and issubclass(cls, Seq2SeqNet)):
        raise NmtError(f"The checkpoint names an unknown network class '{name}'; it was not written by this nmt.")
    return cls


def build(config: dict) -> Seq2SeqNet:
    """The network of ``config`` (``{"class_path": ..., "init_args": {...}}``, as ``Seq2SeqNet.config``), untrained."""
    return network_class(config["class_path"])(**config.get("init_args", {}))


@dataclass
class Trained:
    """A trained network and the tokenizer it was trained with: what a checkpoint holds."""

    net: Seq2SeqNet
    tokenizer: Tokenizer
    checkpoint: Checkpoint


def load(path: str | Path, device: str | torch.device = "cpu") -> Trained:
    """The network of a checkpoint alone, with its trained weights, in eval mode on ``device``, and its tokenizer."""
    checkpoint = Checkpoint.read(path)
    net = build(checkpoint.network)
    checkpoint.fit_into(net)
    tokenizer = Tokenizer.from_dict(checkpoint.tokenizer, origin=str(path))
    return Trained(net.eval().to(device), tokenizer, checkpoint)
