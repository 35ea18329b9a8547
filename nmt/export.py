"""Export a Transformer checkpoint to CTranslate2, and translate with the export.

CTranslate2 (the inference engine behind OpenNMT and OPUS-MT deployments) runs the same
computation in optimised C++, with int8 weights if asked. The export writes, into one folder,
the CTranslate2 model (``model.bin``, ``config.json``, the vocabularies), nmt's SentencePiece
models and ``nmt.json`` (the search defaults), so the folder alone translates.

The mapping, layer by layer (``TransformerSpec``): nmt's separate query and key/value projections
are fused into CTranslate2's QKV (self-attention) or KV (cross-attention) weights; pre- or
post-norm and the final layer norms as configured; one embedding table shared by encoder, decoder
and output projection when the network shares them. nmt's own sinusoidal position table is exported
as it is (CTranslate2's built-in one lays out sine and cosine differently), from position 0.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from nmt.errors import NmtError
from nmt.networks.base import Seq2SeqNet
from nmt.networks.transformer import TransformerNet

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


def transformer_spec(net: TransformerNet):
    """The ``ctranslate2.specs.TransformerSpec`` of ``net``, weights set."""
    import ctranslate2

    encoder, decoder = net.encoder, net.decoder
    pre_norm = encoder.layers[0].sub_attn.pre_norm
    spec = ctranslate2.specs.TransformerSpec.from_config(
        (len(encoder.layers), len(decoder.layers)), net.n_heads, pre_norm=pre_norm
    )
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
    tok = net.tokenizer
    spec.register_source_vocabulary([tok.src.id_to_piece(i) for i in range(tok.src_vocab_size)])
    spec.register_target_vocabulary([tok.tgt.id_to_piece(i) for i in range(tok.tgt_vocab_size)])
    spec.config.add_source_eos = True  # nmt's sources end with EOS; the decoder starts from BOS (<s>)
    spec.config.layer_norm_epsilon = encoder.layers[0].sub_attn.norm.eps
    return spec


def export_ctranslate2(net: Seq2SeqNet, out: Path, quantization: str | None = None) -> Path:
    """Write ``net`` as a CTranslate2 model folder (with the tokenizer and search defaults) into ``out``."""
    try:
        import ctranslate2
    except ImportError:
        raise NmtError("nmt export needs CTranslate2: pip install 'nmt[export]' (or ctranslate2).") from None
    if not isinstance(net, TransformerNet):
        raise NmtError(
            f"CTranslate2 has no specification for a {type(net).__name__}: only the Transformer exports "
            "(recurrent networks translate with nmt translate)."
        )

    class _Converter(ctranslate2.converters.Converter):
        def _load(self):
            return transformer_spec(net)

    _Converter().convert(str(out), quantization=quantization, force=True)
    tok = net.tokenizer
    (out / "source.spm").write_bytes(tok.src_model)
    (out / "target.spm").write_bytes(tok.tgt_model)
    settings = {"max_len_a": net.max_len_a, "max_len_b": net.max_len_b, "length_penalty": net.length_penalty,
                "max_positions": net.max_source_positions, "quantization": quantization or "float32"}  # fmt: skip
    (out / "nmt.json").write_text(json.dumps(settings, indent=2))
    return out


# CTranslate2's own length penalty in beam search: not 0, which changes when its search stops, and too small
# to change its ranking before nmt's replaces it.
OWN_PENALTY = 1e-6


def limit(source_tokens: int, max_len_a: float, max_len_b: int) -> int:
    """nmt's output length limit for a source of ``source_tokens`` (EOS included): a * length + b."""
    return max(int(math.floor(source_tokens * max_len_a + max_len_b)), 1)


class Exported:
    """A CTranslate2 export, translating as :func:`nmt.translation.translate_full` does (the same
    batching by tokens, length limits, prefixes and output type).

    Args:
        folder: a folder written by :func:`export_ctranslate2`.
        device: ``cpu`` or ``cuda``.
        threads: CPU cores to use (0: as many as PyTorch uses, ``torch.get_num_threads()``, which
            follows ``OMP_NUM_THREADS``). On a CPU, CTranslate2 translates that many batches at once with
            one thread each (``inter_threads``), its setting for throughput: threads that share one batch
            wait on each other at every step (measured in docs/benchmarks.md).
    """

    def __init__(self, folder: str | Path, device: str = "cpu", threads: int = 0):
        import ctranslate2
        import torch

        from nmt.data.tokenizer import Tokenizer

        folder = Path(folder)
        if not (folder / "nmt.json").is_file():
            raise NmtError(f"{folder} is not an export of nmt (no nmt.json); write one with nmt export.")
        self.settings = json.loads((folder / "nmt.json").read_text())
        src, tgt = (folder / "source.spm").read_bytes(), (folder / "target.spm").read_bytes()
        self.tokenizer = Tokenizer(src, tgt, src == tgt)
        if device == "cpu":
            cores = threads or torch.get_num_threads()
            self.translator = ctranslate2.Translator(str(folder), device, inter_threads=cores, intra_threads=1)
        else:
            self.translator = ctranslate2.Translator(str(folder), device)

    def translate(self, lines: list[str], beam: int = 1, nbest: int = 1, length_penalty: float | None = None,
                  max_tokens: int = 4096, prefixes: list[str] | None = None) -> list[list]:  # fmt: skip
        import torch

        from nmt import search
        from nmt.data.corpus import normalize
        from nmt.translation import Translation

        s = self.settings
        tok = self.tokenizer
        texts = [normalize(line) for line in lines]
        todo = [i for i, text in enumerate(texts) if text]
        sources = [tok.src.encode(texts[i], out_type=str)[: s["max_positions"] - 1] for i in todo]
        limits = [limit(len(source) + 1, s["max_len_a"], s["max_len_b"]) for source in sources]
        target_prefix = None if prefixes is None else [tok.tgt.encode(normalize(prefixes[i]), out_type=str) or None
                                                        for i in todo]  # fmt: skip
        alpha = s["length_penalty"] if length_penalty is None else length_penalty
        # CTranslate2 divides a hypothesis's log-probability by length ** alpha, nmt by GNMT's
        # ((5 + length) / 6) ** alpha. CTranslate2 gets a negligible penalty of its own, undone below (with
        # none at all it also waits for its best beam to finish, and searches longer than nmt), and all
        # the beam's finished hypotheses are ranked as nmt's search ranks them.
        own = OWN_PENALTY if beam > 1 else 0.0
        results = self.translator.translate_batch(
            sources, target_prefix, max_batch_size=max_tokens, batch_type="tokens", beam_size=beam,
            num_hypotheses=beam, length_penalty=own, return_scores=True,
            max_decoding_length=max(limits, default=1) + 1, min_decoding_length=0, max_input_length=0,
            suppress_sequences=[["<pad>"], ["<s>"]],  # as nmt's search: never padding or BOS
        ) if sources else []  # fmt: skip
        out: list[list] = [[] for _ in lines]
        for i, source, cap, result in zip(todo, sources, limits, results):
            ranked = []
            for pieces, score in zip(result.hypotheses, result.scores):
                # The log-probability: 0 ** penalty made an empty output's -inf, so score that one again.
                raw = (
                    score * len(pieces) ** own
                    if pieces
                    else sum(self.translator.score_batch([source], [[]])[0].log_probs)
                )
                pieces = pieces[:cap]  # nmt ends an output at its length limit
                penalty = search.length_penalty(torch.tensor(len(pieces) + 1), alpha if beam > 1 else 0.0)  # + EOS
                ranked.append((raw / penalty.item(), pieces))
            ranked.sort(key=lambda hyp: -hyp[0])
            for score, pieces in ranked[:nbest]:
                out[i].append(Translation(tok.tgt.decode_pieces(pieces), float(score), pieces, [], None))
        return out
