"""The CTranslate2 export folder: writing it from a Transformer, and checking it before use.

CTranslate2 (the inference engine behind OpenNMT and OPUS-MT deployments) runs the same
computation in optimised C++, with int8 weights if asked. The export writes, into one folder,
the CTranslate2 model (``model.bin``, ``config.json``, the vocabularies), nmt's SentencePiece
models and ``nmt.json`` (the search defaults, and the size and checksum of each file, so that
:func:`open_export` can tell a damaged or mixed-up folder), so the folder alone translates
(:mod:`nmt.engines.ctranslate2`). The folder is written under a temporary name and renamed when
complete; an existing folder is replaced only if it is an earlier export (or with ``force``), and
never if it holds the checkpoint being exported.

The mapping, layer by layer (``TransformerSpec``): nmt's separate query and key/value projections
are fused into CTranslate2's QKV (self-attention) or KV (cross-attention) weights; pre- or
post-norm and the final layer norms as configured; one embedding table shared by encoder, decoder
and output projection when the network shares them. nmt's own sinusoidal position table is exported
as it is (CTranslate2's built-in one lays out sine and cosine differently), from position 0.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nmt.data.tokenizer import Tokenizer
from nmt.errors import NmtError
from nmt.files import atomic_folder
from nmt.networks.base import Seq2SeqNet, count_parameters
from nmt.networks.transformer import TransformerNet

CT2_ACTIVATIONS = {"relu": "RELU", "gelu": "GELU", "swish": "SWISH"}  # nmt's name -> CTranslate2's
QUANTIZATIONS = ("int8", "int8_float32", "int8_float16", "int8_bfloat16", "int16", "float16", "bfloat16", "float32")


def _numpy(tensor) -> np.ndarray:
    # A copy: the converter quantizes its arrays in place, and a view would quantize the network itself.
    return tensor.detach().float().cpu().numpy().copy()


def _linear(spec, module) -> None:
    spec.weight = _numpy(module.weight)
    if module.bias is not None:
        spec.bias = _numpy(module.bias)


def _norm(spec, module) -> None:
    spec.gamma, spec.beta = _numpy(module.weight), _numpy(module.bias)


def _attention(spec, module, self_attention: bool) -> None:
    if self_attention:  # one fused [q; k; v] projection
        spec.linear[0].weight = np.concatenate([_numpy(module.q_proj.weight), _numpy(module.kv_proj.weight)])
        spec.linear[0].bias = np.concatenate([_numpy(module.q_proj.bias), _numpy(module.kv_proj.bias)])
    else:  # the query, then the fused [k; v] of the encoder output
        _linear(spec.linear[0], module.q_proj)
        _linear(spec.linear[1], module.kv_proj)
    _linear(spec.linear[-1], module.out_proj)


def _ffn(spec, block, norm) -> None:
    _norm(spec.layer_norm, norm)
    _linear(spec.linear_0, block[0])
    _linear(spec.linear_1, block[-1])


def transformer_spec(net: TransformerNet, tok: Tokenizer):
    """The ``ctranslate2.specs.TransformerSpec`` of ``net``, weights set."""
    import ctranslate2

    encoder, decoder = net.encoder, net.decoder
    pre_norm = encoder.layers[0].sub_attn.pre_norm
    activation = getattr(ctranslate2.specs.common_spec.Activation, CT2_ACTIVATIONS[net.config["init_args"].get(
        "activation", "relu")])  # fmt: skip
    spec = ctranslate2.specs.TransformerSpec.from_config(
        (len(encoder.layers), len(decoder.layers)), net.n_heads, pre_norm=pre_norm, activation=activation
    )
    scaled = net.src_embed.scale != 1.0
    spec.encoder.scale_embeddings = spec.decoder.scale_embeddings = scaled
    positions = _numpy(net.src_embed.positions)
    spec.encoder.embeddings[0].weight = _numpy(net.src_embed.tokens.weight)
    spec.encoder.position_encodings.encodings = positions
    for layer_spec, layer in zip(spec.encoder.layer, encoder.layers):
        _attention(layer_spec.self_attention, layer.attn, self_attention=True)
        _norm(layer_spec.self_attention.layer_norm, layer.sub_attn.norm)
        _ffn(layer_spec.ffn, layer.ff, layer.sub_ff.norm)
    spec.decoder.embeddings.weight = _numpy(net.tgt_embed.tokens.weight)
    spec.decoder.position_encodings.encodings = _numpy(net.tgt_embed.positions)
    for layer_spec, layer in zip(spec.decoder.layer, decoder.layers):
        _attention(layer_spec.self_attention, layer.self_attn, self_attention=True)
        _norm(layer_spec.self_attention.layer_norm, layer.sub_self.norm)
        _attention(layer_spec.attention, layer.cross_attn, self_attention=False)
        _norm(layer_spec.attention.layer_norm, layer.sub_cross.norm)
        _ffn(layer_spec.ffn, layer.ff, layer.sub_ff.norm)
    if pre_norm:
        _norm(spec.encoder.layer_norm, encoder.norm)
        _norm(spec.decoder.layer_norm, decoder.norm)
    _linear(spec.decoder.projection, net.output)
    spec.register_source_vocabulary(tok.src_pieces(range(tok.src_vocab_size)))
    spec.register_target_vocabulary(tok.tgt_pieces(range(tok.tgt_vocab_size)))
    special = dict(zip(("unk", "bos", "eos"), tok.tgt_pieces([tok.specials.unk, tok.specials.bos, tok.specials.eos])))
    spec.config.unk_token, spec.config.eos_token = special["unk"], special["eos"]
    spec.config.bos_token = spec.config.decoder_start_token = special["bos"]  # nmt's <s>; Marian's <pad>
    spec.config.add_source_eos = True  # nmt's sources end with EOS; the decoder starts from BOS
    spec.config.layer_norm_epsilon = encoder.layers[0].sub_attn.norm.eps
    return spec


REQUIRED = ("model.bin", "config.json", "source.spm", "target.spm")


def _record(path: Path, checksum: bool) -> dict:
    record = {"bytes": path.stat().st_size}
    if checksum:
        record["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    return record


def _write(spec, net: Seq2SeqNet, tok: Tokenizer, folder: Path, quantization: str | None, origin: dict) -> None:
    spec.validate()
    spec.optimize(quantization=quantization)
    spec.save(str(folder))
    (folder / "source.spm").write_bytes(tok.src_model)
    (folder / "target.spm").write_bytes(tok.tgt_model)
    settings = {"max_len_a": net.max_len_a, "max_len_b": net.max_len_b, "length_penalty": net.length_penalty,
                "max_positions": net.max_source_positions, "quantization": quantization or "float32",
                "files": {p.name: _record(p, p.name != "model.bin") for p in sorted(folder.iterdir())},
                "model": {"network": type(net).__name__, "parameters": count_parameters(net), **origin}}  # fmt: skip
    if tok.vocab is not None:
        stored = tok.to_dict()
        settings["vocabulary"] = {k: stored[k] for k in ("joint", "vocab", "target_vocab", "decoder_start")}
    (folder / "nmt.json").write_text(json.dumps(settings, indent=2, ensure_ascii=False))


def export_ctranslate2(net: Seq2SeqNet, tok: Tokenizer, out: Path, quantization: str | None = None,
                       steps: int | None = None, languages: list[str] | None = None) -> Path:  # fmt: skip
    """Write ``net`` as a CTranslate2 model folder (with the tokenizer and search defaults) into ``out``,
    replacing what is there only once the new folder is complete (see :func:`check_destination` first).
    ``steps`` and ``languages`` (the checkpoint's) are recorded for ``nmt serve``'s model list."""
    try:
        import ctranslate2  # noqa: F401  (the specs below need it)
    except ImportError:
        raise NmtError("nmt export needs CTranslate2: pip install 'nmt[export]' (or ctranslate2).") from None
    if not isinstance(net, TransformerNet):
        raise NmtError(
            f"CTranslate2 has no specification for a {type(net).__name__}: only the Transformer exports "
            "(recurrent networks translate with nmt translate)."
        )
    spec = transformer_spec(net, tok)
    origin = {"steps": steps, "languages": languages}
    atomic_folder(Path(out), lambda folder: _write(spec, net, tok, folder, quantization, origin), replace=True)
    return Path(out)


@dataclass
class ExportFolder:
    """An export, checked: its search settings and its tokenizer."""

    folder: Path
    settings: dict
    tokenizer: Tokenizer


def open_export(folder: str | Path) -> ExportFolder:
    """Check an export folder against its ``nmt.json`` (every file there, whole, and the tokenizer the export
    was written with) and read it; one sentence naming what is wrong otherwise."""
    folder = Path(folder)
    if not folder.exists():
        raise NmtError(f"--ckpt {folder}: no such folder; write one with nmt export --ckpt CKPT --out {folder}.")
    if not folder.is_dir():
        raise NmtError(f"--engine ctranslate2 takes the folder written by nmt export as --ckpt, not {folder}.")
    if not (folder / "nmt.json").is_file():
        raise NmtError(f"{folder} is not an export of nmt (no nmt.json); write one with nmt export.")
    try:
        settings = json.loads((folder / "nmt.json").read_text())
        expected = settings["files"]
        int(settings["max_positions"])
    except (ValueError, KeyError, TypeError):
        raise NmtError(f"{folder}/nmt.json is damaged or from an older nmt; export the checkpoint again.") from None
    for name in sorted({*REQUIRED, *expected}):
        path = folder / name
        if not path.is_file():
            raise NmtError(f"{folder} lacks {name}: the export is incomplete; export the checkpoint again.")
        record = _record(path, "sha256" in expected.get(name, {}))
        if record != expected.get(name):
            what = "is cut short or changed" if record["bytes"] != expected.get(name, {}).get("bytes") else \
                "belongs to another model (its checksum differs)"  # fmt: skip
            raise NmtError(f"{path} {what} since the export was written; export the checkpoint again.")
    src, tgt = (folder / "source.spm").read_bytes(), (folder / "target.spm").read_bytes()
    try:
        vocab = settings.get("vocabulary") or {}  # an imported model's (nmt's own number pieces as SentencePiece)
        tokenizer = Tokenizer(src, tgt, vocab.get("joint", src == tgt), vocab.get("vocab"), vocab.get("target_vocab"),
                              vocab.get("decoder_start", "<pad>"))  # fmt: skip
    except RuntimeError:
        raise NmtError(f"{folder}: source.spm or target.spm is not a SentencePiece model.") from None
    return ExportFolder(folder, settings, tokenizer)
