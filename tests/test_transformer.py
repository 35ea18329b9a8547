import pytest
import torch

from nmt.data.batching import Batch
from nmt.data.tokenizer import BOS_ID, EOS_ID
from nmt.networks import TransformerNet


def tiny(**kw):
    torch.manual_seed(0)
    args = dict(src_vocab_size=30, tgt_vocab_size=30, d_model=16, n_heads=2, d_ff=32, encoder_layers=2,
                decoder_layers=2, dropout=0.0)  # fmt: skip
    return TransformerNet(**{**args, **kw}).eval()


PAIRS = [(0, [5, 6, 7, 8, EOS_ID], [BOS_ID, 9, 10, 11, EOS_ID]), (1, [5, 12, EOS_ID], [BOS_ID, 13, EOS_ID])]


@pytest.mark.parametrize("pre_norm", [True, False])
def test_padding_does_not_change_a_sentence(pre_norm):
    model = tiny(pre_norm=pre_norm)
    batched = model(Batch.collate(PAIRS))
    alone = model(Batch.collate(PAIRS[1:]))
    assert torch.allclose(batched[1, :2], alone[0], atol=1e-5)


def test_causal_mask_future_tokens_do_not_change_the_past():
    model = tiny()
    a = model(Batch.collate([(0, [5, 6, EOS_ID], [BOS_ID, 9, 10, 11, EOS_ID])]))
    b = model(Batch.collate([(0, [5, 6, EOS_ID], [BOS_ID, 9, 20, 21, EOS_ID])]))
    assert torch.allclose(a[0, :2], b[0, :2], atol=1e-6)
    assert not torch.allclose(a[0, 2:], b[0, 2:], atol=1e-3)


@pytest.mark.parametrize("pre_norm", [True, False])
@torch.no_grad()
def test_cached_decode_step_equals_teacher_forcing(pre_norm):
    model = tiny(pre_norm=pre_norm)
    batch = Batch.collate(PAIRS)
    full = torch.log_softmax(model(batch), -1)  # (B, T, V)
    state = model.encode(batch.src, batch.src_mask)
    for t in range(batch.tgt_in.size(1)):
        log_probs, state, attn = model.decode_step(batch.tgt_in[:, t], state)
        assert torch.allclose(log_probs, full[:, t], atol=1e-5)
        assert attn.shape == (2, batch.src.size(1))
        assert torch.allclose(attn.sum(-1), torch.ones(2), atol=1e-5)
        assert float(attn[1, 3:].abs().max()) == 0.0  # padding gets no attention
    assert state.caches[0][0].shape[2] == batch.tgt_in.size(1)


@pytest.mark.parametrize("pre_norm", [True, False])
@torch.no_grad()
def test_one_teacher_forced_pass_gives_what_the_search_computes_step_by_step(pre_norm):
    model = tiny(decoder_layers=3, pre_norm=pre_norm)
    batch = Batch.collate(PAIRS)
    log_probs, maps = model.teacher_forced(batch.src, batch.src_mask, batch.tgt_in)  # (B, T, V), (B, L, H, T, S)
    assert maps.shape == (2, 3, 2, batch.tgt_in.size(1), batch.src.size(1))
    for layer in range(3):
        for head in (0, 1, None):
            model.select_attention(layer, head)
            state = model.encode(batch.src, batch.src_mask)
            for t in range(batch.tgt_in.size(1)):
                step, state, attn = model.decode_step(batch.tgt_in[:, t], state)
                assert torch.allclose(step, log_probs[:, t], atol=1e-5)
                expected = maps[:, layer, :, t].mean(1) if head is None else maps[:, layer, head, t]
                assert torch.allclose(attn, expected, atol=1e-5)
    assert not torch.allclose(maps[:, 0], maps[:, 2], atol=1e-3)  # the layers differ


@torch.no_grad()
def test_reorder_selects_rows_and_reorders_the_cache_lazily():
    model = tiny()
    batch = Batch.collate(PAIRS)
    state = model.encode(batch.src, batch.src_mask)
    _, state, _ = model.decode_step(batch.tgt_in[:, 0], state)
    swapped = state.reorder(torch.tensor([1, 1, 0]))
    assert swapped.src_mask.shape[0] == 3 and swapped.step == 1 and swapped.rows == 3
    assert swapped.caches is state.caches and swapped.order.tolist() == [1, 1, 0]  # not gathered yet
    # The next steps continue rows 1, 1, 0 exactly (the cache reorder is applied inside decode_step).
    prev = batch.tgt_in[:, 1]
    want, state, _ = model.decode_step(prev, state)
    got, swapped, _ = model.decode_step(prev[[1, 1, 0]], swapped)
    assert torch.allclose(got, want[[1, 1, 0]], atol=1e-6)
    assert torch.equal(swapped.caches[0][0], state.caches[0][0][[1, 1, 0]])
    again = swapped.reorder(torch.tensor([2, 0])).reorder(torch.tensor([1]))
    # two reorders compose: rows [2, 0] of swapped, then row 1 of those = swapped row 0 = original row 1
    assert torch.allclose(model.decode_step(prev[[1]], again)[0][0], model.decode_step(prev, state)[0][1], atol=1e-6)


@torch.no_grad()
def test_expanded_beams_share_the_source_rows():
    model = tiny()
    batch = Batch.collate(PAIRS)
    state = model.encode(batch.src, batch.src_mask).expand(3)
    assert state.group == 3 and state.rows == 6 and state.src_mask is not None
    assert state.cross_kv[0][0].shape[0] == 2  # one row per sentence, not per beam
    _, state, _ = model.decode_step(batch.tgt_in[:, 0].repeat_interleave(3), state)
    within = state.reorder(torch.tensor([2, 2, 0, 4, 5, 3]))  # beams moved inside their sentences
    assert within.cross_kv is state.cross_kv and within.order.tolist() == [2, 2, 0, 4, 5, 3]
    left = state.reorder(torch.tensor([5, 3, 4]))  # the first sentence is done
    assert torch.equal(left.src_mask, state.src_mask[1:]) and left.rows == 3


def test_embeddings_shared_and_tied():
    model = tiny()
    assert model.src_embed is model.tgt_embed
    assert model.output.weight is model.tgt_embed.tokens.weight
    separate = tiny(share_embeddings=False, src_vocab_size=40)
    assert separate.src_embed is not separate.tgt_embed
    with pytest.raises(ValueError, match="share_embeddings"):
        tiny(src_vocab_size=40)


def test_loss_falls_on_a_tiny_batch():
    from tests.conftest import train_losses

    losses = train_losses(tiny(), Batch.collate(PAIRS), steps=30, lr=3e-3, smoothing=0.1)
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize("causal", [False, True])
def test_bf16_attention_on_cpu_is_written_out_and_matches_the_fused_kernel(causal, monkeypatch):
    from nmt.modules import transformer as blocks

    torch.manual_seed(0)
    attn = blocks.MultiHeadAttention(32, 4)
    x = torch.randn(3, 6, 32)
    mask = None if causal else torch.tensor([[True] * 6, [True] * 4 + [False] * 2, [True] + [False] * 5])
    calls = []
    fused = blocks.F.scaled_dot_product_attention
    monkeypatch.setattr(blocks.F, "scaled_dot_product_attention", lambda *a, **k: calls.append(1) or fused(*a, **k))

    def run(dtype):
        xs = x.clone().requires_grad_()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
            out, weights = attn(xs, *attn.project_kv(xs), mask, causal=causal)
        out.float().pow(2).sum().backward()
        return out.float(), xs.grad

    reference, ref_grad = run(torch.float32)  # the fused kernel
    assert calls == [1] and reference.dtype == torch.float32
    out, grad = run(torch.bfloat16)  # written out, scores and softmax in float32
    assert calls == [1]
    assert torch.allclose(out, reference, atol=0.03, rtol=0.02)
    assert torch.allclose(grad, ref_grad, atol=0.05, rtol=0.05)
    # The weights asked for in bf16 sum to one, and padded keys or future positions get none.
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        _, weights = attn(x, *attn.project_kv(x), mask, causal=causal, need_weights=True)
    assert weights.dtype == torch.bfloat16 and weights.shape == (3, 4, 6, 6)
    assert torch.allclose(weights.float().sum(-1), torch.ones(3, 4, 6), atol=1e-2)
    hidden = torch.ones(6, 6, dtype=torch.bool).triu(1) if causal else ~mask[:, None, None, :].expand(3, 4, 6, 6)
    assert float(weights.float().masked_select(hidden).abs().max()) == 0.0


def test_written_out_attention_keeps_bf16_scores_in_float32():
    from nmt.modules.transformer import _attention

    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 2, 5, 64).mul(3).bfloat16() for _ in range(3))  # scores of magnitude ~10-40
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, weights = _attention(q, k, v, None, False, 0.0)
    exact = (q.float() @ k.float().transpose(-2, -1) / 8.0).softmax(-1)
    # Only the final rounding to bfloat16 (relative 2^-9) remains; bfloat16 scores would be ~10x further off.
    assert torch.allclose(weights.float(), exact, rtol=2**-8, atol=1e-6)
