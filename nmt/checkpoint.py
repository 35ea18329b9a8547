"""The checkpoint file: reading it safely, checking it is nmt's, and building its network.

An nmt checkpoint is Lightning's (``state_dict``, ``hyper_parameters``, loop and optimizer
state) plus an ``nmt`` entry: ``{"format": FORMAT, "tokenizer": {...}}``. The network's
constructor arguments are ``hyper_parameters["net"]`` (``class_path`` and ``init_args``), so a
checkpoint alone rebuilds the network, and the tokenizer bytes inside make it enough to translate.
Everything here works without importing Lightning (``nmt translate`` starts faster for it), and
every checkpoint nmt reads goes through :func:`read_checkpoint`: ``torch.load`` with
``weights_only=True``, so no pickled code ever runs.
"""

from __future__ import annotations

import importlib
import pickle
import zipfile
from pathlib import Path

import torch

from nmt.data.tokenizer import Tokenizer
from nmt.errors import NmtError
from nmt.networks.base import Seq2SeqNet

#: 3: one system class holding any network, whose arguments are ``hyper_parameters["net"]``.
#: 2: one LightningModule class per architecture. 1: networks inside the systems.
FORMAT = 3


def read_checkpoint(path: str | Path) -> dict:
    """``torch.load(path, weights_only=True)`` on the CPU, with one clear sentence for every way it can fail."""
    path = Path(path)
    if path.is_dir():
        raise NmtError(
            f"{path} is a folder, not a checkpoint file; give a .ckpt file inside it, e.g. {path}/last.ckpt."
        )
    if not path.is_file():
        near = sorted(p.name for p in path.parent.glob("*.ckpt")) if path.parent.is_dir() else []
        hint = f" Checkpoints in {path.parent}: {', '.join(near)}." if near else ""
        raise NmtError(f"Checkpoint not found: {path}.{hint}")
    if path.stat().st_size == 0:
        raise NmtError(f"{path} is empty (0 bytes): a run stopped before writing it. Use another checkpoint.")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except PermissionError:
        raise NmtError(f"{path} cannot be read: permission denied. Check the file's permissions (ls -l).") from None
    except pickle.UnpicklingError as err:
        if "weights only" in str(err).lower():  # torch refused objects other than tensors and plain data
            raise NmtError(
                f"{path} holds Python objects or code that nmt does not load (checkpoints are read with "
                "weights_only=True, so that opening one can never run code). It was not written by nmt fit, "
                "or was changed since; use a checkpoint written by nmt."
            ) from None
        raise NmtError(_unreadable(path, err)) from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as err:
        raise NmtError(_unreadable(path, err)) from None


def _unreadable(path: Path, err: Exception) -> str:
    detail = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
    return (
        f"{path} is not a readable checkpoint ({type(err).__name__}: {detail}). It may be truncated (a run "
        "killed while writing it) or corrupted; use another checkpoint, e.g. last.ckpt or an earlier one."
    )


def checked(ckpt: object, path: str | Path) -> dict:
    """``ckpt`` (from :func:`read_checkpoint`) if it is an nmt checkpoint of this format; else a clear error."""
    meta = ckpt.get("nmt") if isinstance(ckpt, dict) else None
    if not isinstance(meta, dict) or "state_dict" not in ckpt:
        raise NmtError(f"{path} is not an nmt checkpoint (no nmt entry or weights inside; another program's?).")
    if meta.get("format") != FORMAT or "net" not in ckpt.get("hyper_parameters", {}):
        raise NmtError(
            f"{path} was written by an older nmt (checkpoint format {meta.get('format')}; this version reads "
            f"format {FORMAT}, where the network's settings are stored apart from training's). Train a new one."
        )
    return ckpt


def network_class(name: str) -> type[Seq2SeqNet]:
    """The network class named ``name``; only nmt's own networks (``nmt.networks.*``) are imported."""
    module, _, attr = name.rpartition(".")
    cls = getattr(importlib.import_module(module), attr, None) if module.startswith("nmt.networks") else None
    if not (isinstance(cls, type) and issubclass(cls, Seq2SeqNet)):
        raise NmtError(f"The checkpoint names an unknown network class '{name}'; it was not written by this nmt.")
    return cls


def build_network(config: dict) -> Seq2SeqNet:
    """The network of ``config`` (``{"class_path": ..., "init_args": {...}}``, as ``Seq2SeqNet.config``), untrained."""
    return network_class(config["class_path"])(**config.get("init_args", {}))


def load_weights(path: str | Path, net: Seq2SeqNet) -> int:
    """Put a checkpoint's trained weights into ``net`` (built from a config) and return the checkpoint's step;
    a checkpoint of another network or size is refused, naming the difference."""
    ckpt = checked(read_checkpoint(path), path)
    theirs, ours = ckpt["hyper_parameters"]["net"]["class_path"].rsplit(".", 1)[-1], type(net).__name__
    if theirs != ours:
        raise NmtError(f"{path} holds a {theirs} but the config builds a {ours}; give the model config the checkpoint "
                       "was trained with (--config).")  # fmt: skip
    weights = {k.removeprefix("net."): v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}
    own = net.state_dict()
    missing, unexpected = sorted(own.keys() - weights.keys()), sorted(weights.keys() - own.keys())
    if missing or unexpected:
        raise NmtError(f"{path} has other layers than this {ours}: {(missing or unexpected)[0]!r} is only "
                       f"{'here' if missing else 'there'}. Use the model options of the checkpoint.")  # fmt: skip
    for name, tensor in own.items():
        if weights[name].shape != tensor.shape:
            raise NmtError(f"{path} has other sizes: {name!r} is {tuple(weights[name].shape)} there and "
                           f"{tuple(tensor.shape)} here. Use the model options of the checkpoint.")  # fmt: skip
    net.load_state_dict(weights)
    return int(ckpt.get("global_step", 0))


def load_network(path: str | Path, device: str | torch.device = "cpu") -> Seq2SeqNet:
    """A ready-to-translate network from a checkpoint alone: trained weights, tokenizer, eval mode, on ``device``."""
    ckpt = checked(read_checkpoint(path), path)
    net = build_network(ckpt["hyper_parameters"]["net"])
    weights = {k.removeprefix("net."): v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}
    try:
        net.load_state_dict(weights)
    except RuntimeError as err:
        raise NmtError(
            f"{path}: the weights do not fit a {type(net).__name__} with its own settings ({err})."
        ) from None
    net.tokenizer = Tokenizer.from_dict(ckpt["nmt"]["tokenizer"], origin=str(path))
    return net.eval().to(device)
