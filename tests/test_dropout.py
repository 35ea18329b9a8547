import torch

from nmt.modules.dropout import Dropout, dropout, keep_mask


def test_keep_rate_and_expectation():
    torch.manual_seed(0)
    x = torch.full((400, 1000), 3.0, requires_grad=True)
    y = dropout(x, 0.1)
    kept = y != 0
    assert abs(kept.float().mean().item() - 0.9) < 0.003
    assert torch.allclose(y[kept], torch.tensor(3.0 / (1 - round(0.1 * 65536) / 65536)))
    assert abs(y.mean().item() - 3.0) < 0.01  # inverted dropout keeps the expectation
    y.sum().backward()
    assert torch.equal(x.grad, (y / 3.0).detach())  # the gradient goes through the same mask and scale


def test_same_seed_same_mask_and_other_sizes():
    torch.manual_seed(5)
    a = dropout(torch.ones(7, 3), 0.5)
    torch.manual_seed(5)
    b = dropout(torch.ones(7, 3), 0.5)
    assert torch.equal(a, b) and a.shape == (7, 3)  # 21 elements: not a multiple of the 4 lanes a draw gives
    mask, keep = keep_mask(10, 0.25)
    assert mask.shape == (10,) and mask.dtype == torch.bool and keep == 0.75


def test_module_eval_and_zero_rate_are_identity_and_bf16_keeps_dtype():
    layer = Dropout(0.3)
    x = torch.randn(5, 8)
    assert layer.eval()(x) is x
    assert dropout(x, 0.0) is x
    y = dropout(torch.ones(64, 64, dtype=torch.bfloat16), 0.2)
    assert y.dtype == torch.bfloat16 and set(y.unique().tolist()) <= {0.0, 1.25}
