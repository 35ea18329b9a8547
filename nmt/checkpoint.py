"""The checkpoint file as one value: read safely, checked to be nmt's, and asked what it holds.

An nmt checkpoint is Lightning's (``state_dict``, ``hyper_parameters``, loop and optimizer
state) plus an ``nmt`` entry: ``{"format": FORMAT, "run": ..., "tokenizer": {...}}``. The network's
constructor arguments are ``hyper_parameters["net"]`` (``class_path`` and ``init_args``), so a
checkpoint alone rebuilds the network, and the tokenizer bytes inside make it enough to translate.

This module is the only one that knows that layout (:class:`Checkpoint` for reading,
:func:`stamp` for writing) and the only one that opens checkpoint files (:func:`read_file`:
``torch.load`` with ``weights_only=True``, so no pickled code ever runs). It imports nothing else
of nmt's: the networks (:func:`nmt.networks.loading.load`) and the data module build on it.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch
from torch import nn

from nmt.errors import NmtError

#: 3: one system class holding any network, whose arguments are ``hyper_parameters["net"]``.
#: 2: one LightningModule class per architecture. 1: networks inside the systems.
FORMAT = 3
PREFIX = "net."  # the network's weights inside the system's state_dict


def read_file(path: str | Path) -> dict:
    """``torch.load(path, weights_only=True)`` on the CPU, with one clear sentence for every way it can fail."""
    path = Path(path)
    if path.is_dir():
        if (path / "model.bin").is_file() and (path / "nmt.json").is_file():
            raise NmtError(
                f"{path} is a CTranslate2 export (written by nmt export), not a checkpoint: use it with "
                f"--engine ctranslate2 --ckpt {path}."
            )
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
        with open(path, "rb") as f:
            head = f.read(4)
    except PermissionError:
        raise NmtError(f"{path} cannot be read: permission denied. Check the file's permissions (ls -l).") from None
    if head != b"PK\x03\x04":  # torch.save writes zip archives
        raise NmtError(_not_a_checkpoint(path))
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
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError, IndexError, KeyError) as err:
        raise NmtError(_unreadable(path, err)) from None


def _not_a_checkpoint(path: Path) -> str:
    with open(path, "rb") as f:
        head = f.read(512)
    kind = "a text file" if head and all(b >= 9 for b in head.replace(b"\r", b"")[:200]) else "not a checkpoint"
    return (
        f"{path} is {kind}, not a checkpoint written by nmt fit (those are PyTorch zip archives, e.g. "
        "runs/checkpoints/best.ckpt). Give the path of a .ckpt file."
    )


def _unreadable(path: Path, err: Exception) -> str:
    detail = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
    return (
        f"{path} is not a readable checkpoint ({type(err).__name__}: {detail}). It may be truncated (a run "
        "killed while writing it) or corrupted; use another checkpoint, e.g. last.ckpt or an earlier one."
    )


def stamp(contents: dict, run: str | None, tokenizer: dict | None) -> None:
    """Add nmt's entry to a checkpoint Lightning is writing (the network's arguments are in its hyperparameters)."""
    contents["nmt"] = {"format": FORMAT, "run": run, "tokenizer": tokenizer}


def new(network: dict, weights: dict[str, torch.Tensor], tokenizer: dict, note: dict | None = None) -> dict:
    """The contents of a checkpoint written without training (``nmt import``): a network's arguments and weights
    and its tokenizer, at step 0, in the layout Lightning reads back (``nmt test --ckpt_path``)."""
    from importlib.metadata import version

    contents = {"state_dict": {PREFIX + name: tensor for name, tensor in weights.items()},
                "hyper_parameters": {"net": network}, "epoch": 0, "global_step": 0,
                "pytorch-lightning_version": version("lightning")}  # fmt: skip
    stamp(contents, None, tokenizer)
    contents["nmt"].update(note or {})
    return contents


class Checkpoint:
    """An nmt checkpoint of this format, read: what it holds, and whether its weights fit a network."""

    def __init__(self, contents: object, path: str | Path = "the checkpoint"):
        meta = contents.get("nmt") if isinstance(contents, dict) else None
        if not isinstance(meta, dict) or "state_dict" not in contents:
            raise NmtError(f"{path} is not an nmt checkpoint (no nmt entry or weights inside; another program's?).")
        if meta.get("format") != FORMAT or "net" not in contents.get("hyper_parameters", {}):
            raise NmtError(
                f"{path} was written by an older nmt (checkpoint format {meta.get('format')}; this version reads "
                f"format {FORMAT}, where the network's settings are stored apart from training's). Train a new one."
            )
        self.path, self.contents = str(path), contents

    @classmethod
    def read(cls, path: str | Path) -> Checkpoint:
        return cls(read_file(path), path)

    @property
    def network(self) -> dict:
        """The network's constructor: ``{"class_path": ..., "init_args": {...}}``."""
        return self.contents["hyper_parameters"]["net"]

    @property
    def network_name(self) -> str:
        """The network's class name, e.g. ``TransformerNet``."""
        return self.network["class_path"].rsplit(".", 1)[-1]

    @property
    def step(self) -> int:
        return int(self.contents.get("global_step") or 0)

    @property
    def run(self) -> str | None:
        """The training run that wrote it (checkpoints of one run share it)."""
        return self.contents["nmt"].get("run")

    @property
    def tokenizer(self) -> dict | None:
        """The tokenizer as stored (:meth:`nmt.data.tokenizer.Tokenizer.from_dict` reads it)."""
        return self.contents["nmt"].get("tokenizer")

    @property
    def languages(self) -> list[str] | None:
        """The source and target languages it was trained on (the data module's, or an import's), if known."""
        data = self.contents.get("datamodule_hyper_parameters") or {}
        langs = [data.get("src_lang"), data.get("tgt_lang")] if data else self.contents["nmt"].get("languages")
        return langs if langs and all(langs) else None

    @property
    def state_dict(self) -> dict[str, torch.Tensor]:
        """The training system's weights (the network's under ``net.``)."""
        return self.contents["state_dict"]

    @property
    def weights(self) -> dict[str, torch.Tensor]:
        """The network's weights, named as in the network."""
        return {k.removeprefix(PREFIX): v for k, v in self.state_dict.items() if k.startswith(PREFIX)}

    def with_weights(self, state_dict: dict[str, torch.Tensor], **note) -> dict:
        """A new checkpoint: this one's network, tokenizer and step with other weights (no optimizer state), and
        ``note`` added to nmt's entry (e.g. ``averaged_from``)."""
        keep = ("hyper_parameters", "epoch", "global_step", "pytorch-lightning_version")
        out = {k: self.contents[k] for k in keep if k in self.contents}
        out["state_dict"] = state_dict
        out["nmt"] = {**self.contents["nmt"], **note}
        return out

    def mismatch(self, net: nn.Module) -> str | None:
        """Why these weights do not fit ``net`` (another network, other layers or sizes), or None."""
        ours = type(net).__name__
        if self.network_name != ours:
            return f"it holds a {self.network_name}, not a {ours}"
        weights, own = self.weights, net.state_dict()
        missing, unexpected = sorted(own.keys() - weights.keys()), sorted(weights.keys() - own.keys())
        if missing or unexpected:
            return f"it has other layers than this {ours} ({(missing or unexpected)[0]!r} is only "\
                   f"{'here' if missing else 'in the checkpoint'})"  # fmt: skip
        for name, tensor in own.items():
            if weights[name].shape != tensor.shape:
                return f"its {name!r} is {tuple(weights[name].shape)} and this {ours}'s {tuple(tensor.shape)}"
        return None

    def check_fits(self, net: nn.Module) -> None:
        """Refuse, in one sentence with the fix, weights that do not fit ``net``."""
        why = self.mismatch(net)
        if why:
            raise NmtError(
                f"{self.path} does not fit the network: {why}. Use the network settings it was trained with "
                "(the same --config, --model.net.* and --data vocabulary options)."
            )

    def fit_into(self, net: nn.Module) -> None:
        """Load the weights into ``net``, or refuse as :meth:`check_fits` does."""
        self.check_fits(net)
        net.load_state_dict(self.weights)
