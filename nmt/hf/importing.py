"""A Hugging Face MarianMT folder (an OPUS-MT model) as an nmt Transformer and tokenizer.

The folder is what ``hf download Helsinki-NLP/opus-mt-de-en`` writes: ``config.json``,
the weights (``model.safetensors`` or ``pytorch_model.bin``, read as tensors only), ``source.spm``,
``target.spm``, ``vocab.json`` (and ``target_vocab.json`` with separate vocabularies) and
``tokenizer_config.json``. A hub name is downloaded first (``huggingface_hub``, with ``nmt[hf]``).
The M2M100 folders nmt export writes (pre-norm models) are read too. The network is a
:class:`~nmt.networks.TransformerNet` with MarianMT's settings (post-norm, its
embedding scale, sinusoid layout, activation, output bias, special ids and decoder start), computing
what the Marian model computes; the tokenizer numbers pieces by Marian's vocabulary.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from nmt.data.tokenizer import Tokenizer
from nmt.errors import NmtError
from nmt.hf.layout import from_hf

#: Hugging Face's activation names -> nmt's.
ACTIVATIONS = {"relu": "relu", "gelu": "gelu", "swish": "swish", "silu": "swish"}
FILES = ("config.json", "source.spm", "target.spm", "vocab.json")


@dataclass
class Imported:
    """What a MarianMT folder holds, in nmt's terms."""

    network: dict  # class_path and init_args of a TransformerNet
    weights: dict[str, torch.Tensor]  # its state_dict
    tokenizer: Tokenizer
    languages: tuple[str | None, str | None]  # tokenizer_config.json's source_lang and target_lang


def fetch(model: str) -> Path:
    """A local folder as it is; else a Hugging Face hub name, downloaded (needs the network and ``nmt[hf]``)."""
    path = Path(model)
    if path.is_dir():
        return path
    if path.exists() or model.count("/") != 1:
        raise NmtError(f"--model {model} is neither a folder nor a Hugging Face hub name such as "
                       "Helsinki-NLP/opus-mt-de-en.")  # fmt: skip
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise NmtError("Downloading from the Hugging Face hub needs huggingface_hub: pip install 'nmt[hf]'.") from None
    patterns = [*FILES, "target_vocab.json", "tokenizer_config.json", "generation_config.json", "*.safetensors",
                "pytorch_model.bin"]  # fmt: skip
    try:
        return Path(snapshot_download(model, allow_patterns=patterns))
    except Exception as err:  # the hub library's own errors: no connection, no such model, no access
        raise NmtError(
            f"Could not download {model} from the Hugging Face hub ({type(err).__name__}: {err}). "
            "Check the name and the connection, or download the folder and give its path."
        ) from None


def _read_weights(folder: Path) -> dict[str, torch.Tensor]:
    safetensors = sorted(folder.glob("*.safetensors"))
    if safetensors:
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise NmtError("Reading model.safetensors needs safetensors: pip install 'nmt[hf]'.") from None
        weights: dict[str, torch.Tensor] = {}
        for path in safetensors:
            weights.update(load_file(path))
        return weights
    if (folder / "pytorch_model.bin").is_file():
        return torch.load(folder / "pytorch_model.bin", map_location="cpu", weights_only=True)
    raise NmtError(f"{folder} holds no weights (model.safetensors or pytorch_model.bin).")


def _vocabulary(path: Path) -> list[str]:
    """A vocab.json (piece -> id) as the list of pieces by id; its ids must be 0 .. n-1."""
    ids = json.loads(path.read_text(encoding="utf-8"))
    pieces = [None] * len(ids)
    for piece, i in ids.items():
        if not (isinstance(i, int) and 0 <= i < len(ids)) or pieces[i] is not None:
            raise NmtError(f"{path} does not number its {len(ids)} pieces 0 to {len(ids) - 1} (id {i!r} of {piece!r}).")
        pieces[i] = piece
    return pieces


def _settings(folder: Path) -> dict:
    path = folder / "tokenizer_config.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def read_tokenizer(folder: Path, decoder_start: int | None = None) -> Tokenizer:
    """The folder's two SentencePiece models and vocabulary, numbering pieces as ``MarianTokenizer`` does;
    ``decoder_start``: the id the decoder starts from (config.json's; Marian's is its padding id)."""
    settings = _settings(folder)
    vocab = _vocabulary(folder / "vocab.json")
    target = _vocabulary(folder / "target_vocab.json") if settings.get("separate_vocabs") else None
    start = "<pad>" if decoder_start is None else (target or vocab)[decoder_start]
    src, tgt = (folder / "source.spm").read_bytes(), (folder / "target.spm").read_bytes()
    try:
        return Tokenizer(src, tgt, target is None, vocab, target, start)
    except RuntimeError as err:
        raise NmtError(f"{folder}: source.spm or target.spm is not a SentencePiece model ({err}).") from None


#: What each Hugging Face class is in nmt's terms: post-norm with Marian's sinusoids and output bias, or pre-norm
#: with fairseq's sinusoids (M2M100, as nmt export writes it).
KINDS = {
    "marian": {"pre_norm": False, "positions": "marian", "output_bias": True, "activation": "swish"},
    "m2m_100": {"pre_norm": True, "positions": "fairseq", "output_bias": False, "activation": "relu"},
}


def _network(config: dict, tok: Tokenizer, weights: dict[str, torch.Tensor]) -> dict:
    """The TransformerNet arguments of a MarianMT (or nmt-exported M2M100) config, or a refusal naming what nmt's
    Transformer does not compute."""
    kind = KINDS.get(config.get("model_type", "marian"))
    if kind is None:
        raise NmtError(f"nmt import reads MarianMT models (and the M2M100 folders nmt export writes); this one is a "
                       f"{config.get('model_type')}.")  # fmt: skip
    pairs = (("encoder_attention_heads", "decoder_attention_heads"), ("encoder_ffn_dim", "decoder_ffn_dim"))
    differ = [f"{a} differs from {b}" for a, b in pairs if config.get(a) != config.get(b)]
    unsupported = [f"it sets {key}" for key in ("normalize_before", "add_final_layer_norm", "normalize_embedding",
                                                "layernorm_embedding") if config.get(key)]  # fmt: skip
    activation = ACTIVATIONS.get(config.get("activation_function", kind["activation"]))
    if activation is None:
        unsupported.append(f"its activation is {config.get('activation_function')}")
    if differ or unsupported:
        raise NmtError(f"This model has a shape nmt's Transformer does not compute: {(differ or unsupported)[0]}.")
    shared = config.get("share_encoder_decoder_embeddings", True)
    specials = tok.specials
    if (config.get("pad_token_id"), config.get("eos_token_id")) != (specials.pad, specials.eos):
        raise NmtError("config.json's pad and eos ids are not vocab.json's <pad> and </s>.")
    vocab_size = config["vocab_size"]
    target_size = vocab_size if shared else config.get("decoder_vocab_size") or vocab_size
    if (vocab_size, target_size) != (tok.src_vocab_size, tok.tgt_vocab_size):
        raise NmtError(f"config.json has {vocab_size} / {target_size} pieces, the vocabularies "
                       f"{tok.src_vocab_size} / {tok.tgt_vocab_size}.")  # fmt: skip
    return {
        "class_path": "nmt.networks.transformer.TransformerNet",
        "init_args": {
            "d_model": config["d_model"],
            "n_heads": config["encoder_attention_heads"],
            "d_ff": config["encoder_ffn_dim"],
            "encoder_layers": config["encoder_layers"],
            "decoder_layers": config["decoder_layers"],
            "dropout": config.get("dropout", 0.1),
            "attention_dropout": config.get("attention_dropout", 0.0),
            "activation_dropout": config.get("activation_dropout", 0.0),
            "pre_norm": kind["pre_norm"],
            "share_embeddings": shared,
            "tie_output": config.get("tie_word_embeddings", True) or "lm_head.weight" not in weights,
            "output_bias": kind["output_bias"],
            "activation": activation,
            "scale_embedding": config.get("scale_embedding", False),
            "positions": kind["positions"],
            "max_positions": config.get("max_position_embeddings", 512),
            "src_vocab_size": vocab_size,
            "tgt_vocab_size": target_size,
            "pad_id": specials.pad,
            "bos_id": specials.bos,
            "eos_id": specials.eos,
        },
    }


def read_marian(model: str) -> Imported:
    """A MarianMT folder (or hub name) as nmt's network arguments, weights and tokenizer."""
    folder = fetch(model)
    missing = [name for name in FILES if not (folder / name).is_file()]
    if missing:
        raise NmtError(f"{folder} lacks {missing[0]}: a MarianMT folder holds {', '.join(FILES)} and the weights.")
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    tok = read_tokenizer(folder, config.get("decoder_start_token_id", config.get("pad_token_id")))
    theirs = _read_weights(folder)
    network = _network(config, tok, theirs)
    args = network["init_args"]
    if args["output_bias"] and "final_logits_bias" not in theirs:
        theirs["final_logits_bias"] = torch.zeros(1, args["tgt_vocab_size"])
    try:
        weights = from_hf(theirs, args["encoder_layers"], args["decoder_layers"], args["pre_norm"],
                          args["share_embeddings"], args["output_bias"])  # fmt: skip
    except KeyError as err:
        raise NmtError(f"{folder}'s weights lack {err.args[0]}; is it a complete MarianMT model?") from None
    if (folder / "nmt.json").is_file():  # written by nmt export: nmt's own search settings, which config.json lacks
        args.update(json.loads((folder / "nmt.json").read_text()).get("search", {}))
    settings = _settings(folder)
    languages = (settings.get("source_lang"), settings.get("target_lang"))
    return Imported(network, {k: v.float() for k, v in weights.items()}, tok, languages)
