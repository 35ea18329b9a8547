"""Where each weight of an nmt Transformer lives in a Hugging Face MarianMT or M2M100 model.

Both are BART-like: per layer, separate q/k/v/out projections, ``fc1``/``fc2`` and a layer norm
per sublayer (after it in Marian, before it in M2M100, which adds a final norm to each stack).
nmt's attention projects keys and values in one matrix (``kv_proj``: the keys' rows, then the
values'), so those are split or joined; every other weight is the same tensor under another name.
One table serves both directions (:func:`to_hf`, :func:`from_hf`).
"""

from __future__ import annotations

import torch

#: nmt's name in a layer -> Hugging Face's (a pair: nmt's one matrix is their two, stacked).
ENCODER_LAYER = {
    "attn.q_proj": "self_attn.q_proj",
    "attn.kv_proj": ("self_attn.k_proj", "self_attn.v_proj"),
    "attn.out_proj": "self_attn.out_proj",
    "sub_attn.norm": "self_attn_layer_norm",
    "ff.0": "fc1",
    "ff.3": "fc2",
    "sub_ff.norm": "final_layer_norm",
}
DECODER_LAYER = {
    "self_attn.q_proj": "self_attn.q_proj",
    "self_attn.kv_proj": ("self_attn.k_proj", "self_attn.v_proj"),
    "self_attn.out_proj": "self_attn.out_proj",
    "sub_self.norm": "self_attn_layer_norm",
    "cross_attn.q_proj": "encoder_attn.q_proj",
    "cross_attn.kv_proj": ("encoder_attn.k_proj", "encoder_attn.v_proj"),
    "cross_attn.out_proj": "encoder_attn.out_proj",
    "sub_cross.norm": "encoder_attn_layer_norm",
    "ff.0": "fc1",
    "ff.3": "fc2",
    "sub_ff.norm": "final_layer_norm",
}


def _layers(encoder_layers: int, decoder_layers: int, pre_norm: bool):
    """(nmt name, Hugging Face name or pair) of every weight and bias of the two stacks."""
    for stack, count, table in (("encoder", encoder_layers, ENCODER_LAYER), ("decoder", decoder_layers, DECODER_LAYER)):
        for i in range(count):
            for ours, theirs in table.items():
                for part in ("weight", "bias"):
                    hf = tuple(f"model.{stack}.layers.{i}.{t}.{part}" for t in theirs) if isinstance(theirs, tuple) \
                        else f"model.{stack}.layers.{i}.{theirs}.{part}"  # fmt: skip
                    yield f"{stack}.layers.{i}.{ours}.{part}", hf
        if pre_norm:
            for part in ("weight", "bias"):
                yield f"{stack}.norm.{part}", f"model.{stack}.layer_norm.{part}"


def from_hf(theirs: dict[str, torch.Tensor], encoder_layers: int, decoder_layers: int, pre_norm: bool,
            shared: bool, output_bias: bool) -> dict[str, torch.Tensor]:  # fmt: skip
    """nmt's state_dict of a Transformer from a Hugging Face one (tied weights given under every name nmt uses)."""

    def first(*names: str) -> torch.Tensor:  # a tied weight may be saved under any one of its names
        found = [theirs[n] for n in names if n in theirs]
        if not found:
            raise KeyError(names[0])
        return found[0]

    ours = {}
    for name, hf in _layers(encoder_layers, decoder_layers, pre_norm):
        ours[name] = torch.cat([theirs[h] for h in hf]) if isinstance(hf, tuple) else theirs[hf]
    encoder, decoder, joint = (
        "model.encoder.embed_tokens.weight",
        "model.decoder.embed_tokens.weight",
        "model.shared.weight",
    )
    ours["src_embed.tokens.weight"] = first(joint, encoder, decoder) if shared else first(encoder)
    ours["tgt_embed.tokens.weight"] = first(joint, decoder, encoder) if shared else first(decoder)
    ours["output.weight"] = theirs.get("lm_head.weight", ours["tgt_embed.tokens.weight"])
    if output_bias:
        ours["output.bias"] = theirs["final_logits_bias"].reshape(-1)
    return ours


def to_hf(ours: dict[str, torch.Tensor], encoder_layers: int, decoder_layers: int, pre_norm: bool,
          final_logits_bias: bool) -> dict[str, torch.Tensor]:  # fmt: skip
    """A Hugging Face state_dict from nmt's (``final_logits_bias``: Marian's, zeros where nmt has no output bias)."""
    theirs = {}
    for name, hf in _layers(encoder_layers, decoder_layers, pre_norm):
        if isinstance(hf, tuple):
            for h, part in zip(hf, ours[name].chunk(len(hf))):
                theirs[h] = part.clone()
        else:
            theirs[hf] = ours[name].clone()
    theirs["model.shared.weight"] = ours["src_embed.tokens.weight"].clone()
    theirs["model.encoder.embed_tokens.weight"] = ours["src_embed.tokens.weight"].clone()
    theirs["model.decoder.embed_tokens.weight"] = ours["tgt_embed.tokens.weight"].clone()
    theirs["lm_head.weight"] = ours["output.weight"].clone()
    if final_logits_bias:
        bias = ours.get("output.bias", torch.zeros(ours["output.weight"].size(0)))
        theirs["final_logits_bias"] = bias.reshape(1, -1).clone()
    return theirs
