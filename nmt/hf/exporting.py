"""An nmt Transformer as a Hugging Face folder that ``AutoModelForSeq2SeqLM``, ``AutoTokenizer`` and
``pipeline("translation")`` load, computing exactly what nmt computes.

A post-norm network becomes a ``MarianMTModel``, a pre-norm one an ``M2M100ForConditionalGeneration``
(pre-norm, with a final layer norm on each stack). Both compute their sinusoidal positions themselves,
so the network's table must be theirs: ``positions: marian`` (post-norm) or ``fairseq`` (pre-norm,
which also fixes the first position at pad_id + 1). M2M100 has one vocabulary and no output bias.
A network that no class represents exactly is refused, naming what differs. The tokenizer is a
``MarianTokenizer`` (the two SentencePiece models and a vocabulary numbering their pieces as nmt
does), and the generation settings are nmt's greedy search: never padding or BOS, the decoder
starting from nmt's BOS, and nmt's length limit where Hugging Face can express it (:func:`max_length`).
``transformers`` 4 translates with ``pipeline("translation", model=DIR)``; version 5 removed that
pipeline, and ``model.generate`` with the tokenizer does the same.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from nmt.data.tokenizer import Tokenizer
from nmt.errors import NmtError
from nmt.files import atomic_folder
from nmt.hf.layout import to_hf
from nmt.networks.base import Seq2SeqNet
from nmt.networks.transformer import TransformerNet
from nmt.search import length_limits

HF_ACTIVATIONS = {"relu": "relu", "gelu": "gelu", "swish": "swish"}  # nmt's name -> Hugging Face's


def hf_class(net: Seq2SeqNet) -> str:
    """``marian`` or ``m2m_100``: the Hugging Face class that computes exactly what ``net`` does; else a refusal
    naming what differs."""
    if not isinstance(net, TransformerNet):
        raise NmtError(f"A {type(net).__name__} has no Hugging Face class: only the Transformer exports.")
    args = net.config["init_args"]
    pre_norm, positions = args.get("pre_norm", True), args.get("positions", "vaswani")
    kind, layout = ("m2m_100", "fairseq") if pre_norm else ("marian", "marian")
    name = "M2M100 (pre-norm)" if pre_norm else "MarianMT (post-norm)"
    differ = []
    if positions != layout:
        differ.append(f"its position table is {positions} and {name} computes {layout}'s (train with "
                      f"--model.net.positions {layout})")  # fmt: skip
    if pre_norm and not args.get("share_embeddings", True):
        differ.append("it has two vocabularies and M2M100 one")
    if pre_norm and args.get("output_bias", False):
        differ.append("it has an output bias and M2M100 none")
    if differ:
        raise NmtError(f"This network cannot be exported to Hugging Face exactly: {'; '.join(differ)}.")
    return kind


def _config(net: TransformerNet, kind: str):
    from transformers import M2M100Config, MarianConfig

    a = net.config["init_args"]
    common = dict(
        d_model=a["d_model"], encoder_layers=a["encoder_layers"], decoder_layers=a["decoder_layers"],
        encoder_attention_heads=net.n_heads, decoder_attention_heads=net.n_heads, encoder_ffn_dim=a["d_ff"],
        decoder_ffn_dim=a["d_ff"], activation_function=HF_ACTIVATIONS[a.get("activation", "relu")],
        dropout=a["dropout"], attention_dropout=a["attention_dropout"], activation_dropout=a["activation_dropout"],
        max_position_embeddings=net.max_source_positions,
        scale_embedding=a.get("scale_embedding", True), pad_token_id=net.pad_id, eos_token_id=net.eos_id,
        bos_token_id=net.bos_id, decoder_start_token_id=net.bos_id, forced_eos_token_id=net.eos_id,
        tie_word_embeddings=a["tie_output"], vocab_size=net.src_vocab_size,
    )  # fmt: skip
    if kind == "m2m_100":
        return M2M100Config(**common, encoder_layerdrop=0.0, decoder_layerdrop=0.0)
    return MarianConfig(**common, decoder_vocab_size=net.tgt_vocab_size,
                        share_encoder_decoder_embeddings=a["share_embeddings"])  # fmt: skip


def max_length(net: TransformerNet) -> int:
    """Hugging Face's limit for nmt's :func:`~nmt.search.length_limits`: exact when a is 0 (b tokens, then the end
    forced, after the decoder's start token); else the longest output nmt allows for any source. Never past the
    position table, as nmt's own search."""
    longest = torch.tensor([net.max_source_positions])
    return int(length_limits(longest, net.max_len_a, net.max_len_b, net.max_target_positions)) + 2


def _vocabularies(tok: Tokenizer) -> tuple[list[str], list[str] | None]:
    """The pieces by id of the source side, and of the target side when it has its own numbering."""
    src = tok.src_pieces(range(tok.src_vocab_size))
    tgt = tok.tgt_pieces(range(tok.tgt_vocab_size))
    return src, (None if tgt == src else tgt)


def _write(net: TransformerNet, tok: Tokenizer, kind: str, folder: Path, origin: str) -> None:
    from transformers import AutoModelForSeq2SeqLM, GenerationConfig, MarianTokenizer

    config = _config(net, kind)
    model = AutoModelForSeq2SeqLM.from_config(config)
    weights = to_hf(net.state_dict(), len(net.encoder.layers), len(net.decoder.layers),
                    kind == "m2m_100", kind == "marian")  # fmt: skip
    own = model.state_dict()
    missing = [k for k in own if k not in weights and "embed_positions" not in k]  # positions: computed, not stored
    if missing:
        raise NmtError(f"{type(model).__name__} has a weight nmt does not map, {missing[0]} (a transformers version "
                       "nmt does not know?); nothing was written.")  # fmt: skip
    model.load_state_dict({k: v for k, v in weights.items() if k in own}, strict=False)
    never = sorted({net.pad_id, net.bos_id})
    model.generation_config = GenerationConfig(
        decoder_start_token_id=net.bos_id, bos_token_id=net.bos_id, eos_token_id=net.eos_id, pad_token_id=net.pad_id,
        forced_eos_token_id=net.eos_id, bad_words_ids=[[i] for i in never], num_beams=1, do_sample=False,
        max_length=max_length(net),
    )  # fmt: skip
    model.save_pretrained(folder)
    src, tgt = _vocabularies(tok)
    (folder / "source.spm").write_bytes(tok.src_model)
    (folder / "target.spm").write_bytes(tok.tgt_model)
    (folder / "vocab.json").write_text(json.dumps({p: i for i, p in enumerate(src)}, ensure_ascii=False))
    if tgt is not None:
        (folder / "target_vocab.json").write_text(json.dumps({p: i for i, p in enumerate(tgt)}, ensure_ascii=False))
    tokenizer = MarianTokenizer(str(folder / "source.spm"), str(folder / "target.spm"), str(folder / "vocab.json"),
                                target_vocab_file=str(folder / "target_vocab.json") if tgt else None,
                                separate_vocabs=tgt is not None, model_max_length=net.max_source_positions)  # fmt: skip
    tokenizer.save_pretrained(folder)
    search = {"max_len_a": net.max_len_a, "max_len_b": net.max_len_b, "length_penalty": net.length_penalty}
    record = {"format": "huggingface", "class": kind, "exported_from": origin, "search": search}
    (folder / "nmt.json").write_text(json.dumps(record))  # nmt import takes nmt's search settings back


def export_huggingface(net: Seq2SeqNet, tok: Tokenizer, out: Path, origin: str = "") -> str:
    """Write ``net`` and ``tok`` as a Hugging Face folder ``out`` (replaced only once the new one is complete);
    returns the class written (``marian`` or ``m2m_100``)."""
    kind = hf_class(net)
    try:
        import transformers  # noqa: F401
    except ImportError:
        raise NmtError("nmt export --format huggingface needs transformers: pip install 'nmt[hf]'.") from None
    atomic_folder(Path(out), lambda folder: _write(net, tok, kind, folder, origin), replace=True)
    return kind
