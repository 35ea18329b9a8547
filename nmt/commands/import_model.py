"""``nmt import``: a Hugging Face MarianMT model (OPUS-MT) as an nmt checkpoint, and a config to fine-tune it."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import yaml

from nmt.checkpoint import new
from nmt.errors import NmtError
from nmt.files import atomic_write
from nmt.hf.importing import read_marian
from nmt.networks import loading

#: Arguments the command line links from the data module's tokenizer: a config may not set them.
LINKED = ("src_vocab_size", "tgt_vocab_size", "share_embeddings", "pad_id", "bos_id", "eos_id")


def fine_tuning_config(network: dict, ckpt: Path, source: str, langs: tuple[str | None, str | None]) -> str:
    """A config for ``nmt fit --config X --init_from CKPT``: the imported network, its tokenizer, gentle training."""
    net = {"class_path": "nmt.networks.TransformerNet",
           "init_args": {k: v for k, v in network["init_args"].items() if k not in LINKED}}  # fmt: skip
    data = {"tokenizer": str(ckpt), "max_length": min(network["init_args"]["max_positions"], 256)}
    data.update({key: lang for key, lang in zip(("src_lang", "tgt_lang"), langs) if lang})
    config = {"model": {"net": net, "lr": 0.0001, "warmup_steps": 100, "label_smoothing": 0.1}, "data": data}
    command = f"nmt fit --config {ckpt.with_suffix('.yaml')} --init_from {ckpt} --data.data_dir YOUR_DATA"
    header = f"# {source}, imported by nmt import. Fine-tune it on your corpus:\n#   {command}\n"
    return header + yaml.safe_dump(config, sort_keys=False)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="nmt import",
        description="Import a Hugging Face MarianMT model (an OPUS-MT folder, or a hub name when online) as an nmt "
        "checkpoint, with a config beside it (OUT.yaml) to fine-tune it with nmt fit.",
    )
    parser.add_argument("--model", required=True, help="a MarianMT folder, or a hub name: Helsinki-NLP/opus-mt-de-en")
    parser.add_argument("--out", required=True, type=Path, help="the checkpoint to write, e.g. opus-de-en.ckpt")
    args = parser.parse_args(argv)
    if args.out.is_dir():
        raise NmtError(f"--out {args.out} is a folder; give a file name, e.g. {args.out}/imported.ckpt.")
    imported = read_marian(args.model)
    note = {"imported_from": args.model, "languages": list(imported.languages)}
    contents = new(imported.network, imported.weights, imported.tokenizer.to_dict(), note)
    net = loading.build(imported.network)  # the network nmt will build from the checkpoint takes these weights
    net.load_state_dict(imported.weights)
    langs = imported.languages
    try:
        atomic_write(args.out, lambda tmp: torch.save(contents, tmp))
        atomic_write(args.out.with_suffix(".yaml"), lambda tmp: tmp.write_text(
            fine_tuning_config(imported.network, args.out, args.model, langs), encoding="utf-8"))  # fmt: skip
    except OSError as err:
        raise NmtError(f"Cannot write {args.out}: {err.strerror}. Choose a writable path.") from None
    params = sum(p.numel() for p in {id(p): p for p in net.parameters()}.values())
    print(f"imported {args.model} ({params / 1e6:.1f} M parameters) into {args.out}; fine-tune with "
          f"nmt fit --config {args.out.with_suffix('.yaml')} --init_from {args.out} --data.data_dir DATA")  # fmt: skip
