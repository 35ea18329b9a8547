import math

import pytest
import torch

from nmt.modules.attention import BahdanauAttention, LuongAttention


def setup_module():
    torch.manual_seed(0)


def all_attentions(q=4, k=4):
    return [BahdanauAttention(q, k, 5)] + [LuongAttention(q, k, 5, score=s) for s in LuongAttention.SCORES]


@pytest.mark.parametrize("attention", all_attentions(), ids=["bahdanau", "dot", "general", "concat"])
def test_weights_sum_to_one_and_padding_gets_zero(attention):
    keys = torch.randn(2, 5, 4)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]], dtype=torch.bool)
    context, weights = attention(torch.randn(2, 4), attention.project_keys(keys), keys, mask)
    assert context.shape == (2, 4) and weights.shape == (2, 5)
    assert torch.allclose(weights.sum(-1), torch.ones(2))
    assert weights[1, 2:].eq(0).all()


@pytest.mark.parametrize("attention", all_attentions(), ids=["bahdanau", "dot", "general", "concat"])
def test_same_output_alone_and_in_a_padded_batch(attention):
    keys = torch.randn(2, 6, 4)
    mask = torch.tensor([[1] * 6, [1, 1, 1, 0, 0, 0]], dtype=torch.bool)
    query = torch.randn(2, 4)
    ctx_batch, w_batch = attention(query, attention.project_keys(keys), keys, mask)
    alone = keys[1:, :3]
    ctx_alone, w_alone = attention(query[1:], attention.project_keys(alone), alone, mask[1:, :3])
    assert torch.allclose(ctx_batch[1], ctx_alone[0], atol=1e-6)
    assert torch.allclose(w_batch[1, :3], w_alone[0], atol=1e-6)


def softmax(xs):
    exps = [math.exp(x) for x in xs]
    return [e / sum(exps) for e in exps]


def test_dot_score_by_hand():
    att = LuongAttention(2, 2, score="dot")
    keys = torch.tensor([[[1.0, 0.0], [0.0, 2.0]]])
    _, w = att(torch.tensor([[3.0, 1.0]]), att.project_keys(keys), keys, torch.ones(1, 2, dtype=torch.bool))
    assert torch.allclose(w[0], torch.tensor(softmax([3.0, 2.0])))


def test_general_score_by_hand():
    att = LuongAttention(2, 2, score="general")
    with torch.no_grad():
        att.key_proj.weight.copy_(torch.tensor([[2.0, 0.0], [1.0, 1.0]]))  # W_a
    keys = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    # h_t^T W_a h_s: W_a h_1 = (2, 1), W_a h_2 = (0, 1); h_t = (1, 1) -> scores 3, 1
    _, w = att(torch.tensor([[1.0, 1.0]]), att.project_keys(keys), keys, torch.ones(1, 2, dtype=torch.bool))
    assert torch.allclose(w[0], torch.tensor(softmax([3.0, 1.0])))


@pytest.mark.parametrize("cls", ["bahdanau", "concat"])
def test_additive_scores_by_hand(cls):
    att = BahdanauAttention(1, 1, 1) if cls == "bahdanau" else LuongAttention(1, 1, 1, score="concat")
    with torch.no_grad():
        att.query_proj.weight.fill_(1.0)  # W_q = 1
        att.key_proj.weight.fill_(2.0)  # W_k = 2
        att.v.weight.fill_(3.0)  # v = 3
    keys = torch.tensor([[[0.5], [-1.0]]])
    # score_j = 3 * tanh(1 * q + 2 * k_j) with q = 0.25
    expected = softmax([3 * math.tanh(0.25 + 1.0), 3 * math.tanh(0.25 - 2.0)])
    _, w = att(torch.tensor([[0.25]]), att.project_keys(keys), keys, torch.ones(1, 2, dtype=torch.bool))
    assert torch.allclose(w[0], torch.tensor(expected), atol=1e-6)


def test_keys_projected_once_not_per_step():
    att = BahdanauAttention(4, 4, 5)
    calls = []
    att.key_proj.register_forward_hook(lambda *a: calls.append(1))
    keys = att.project_keys(torch.randn(1, 3, 4))
    for _ in range(4):
        att(torch.randn(1, 4), keys, keys, torch.ones(1, 3, dtype=torch.bool))
    assert len(calls) == 1


def test_dot_needs_equal_sizes():
    with pytest.raises(ValueError, match="equal query and key sizes"):
        LuongAttention(4, 6, score="dot")


@torch.no_grad()
def test_grouped_attention_equals_attention_over_copies():
    """Beams reading one copy of the keys get exactly what they got from a copy each."""
    torch.manual_seed(0)
    for attention in (BahdanauAttention(6, 5, 4), *(LuongAttention(6, 6, 4, score) for score in LuongAttention.SCORES)):
        values, query = torch.randn(2, 7, 6), torch.randn(6, 6)
        mask = torch.tensor([[True] * 7, [True] * 4 + [False] * 3])
        keys = attention.project_keys(values if isinstance(attention, LuongAttention) else values[..., :5])
        shared = attention(query, keys, values, mask)
        each = attention(query, *(x.repeat_interleave(3, 0) for x in (keys, values, mask)))
        for got, want in zip(shared, each):
            assert got.shape == want.shape and torch.allclose(got, want, atol=1e-6)
        assert shared[1][3:, 4:].abs().sum() == 0  # padding of the second sentence, in all three of its beams
