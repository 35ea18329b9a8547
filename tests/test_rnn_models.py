import pytest
import torch

from nmt.data.batching import Batch
from nmt.data.tokenizer import BOS_ID, EOS_ID
from nmt.networks import BahdanauNet, GRUNet, LuongNet
from tests.conftest import train_losses

PAIRS = [(0, [5, 6, 7, 8, EOS_ID], [BOS_ID, 9, 10, 11, EOS_ID]), (1, [5, 12, EOS_ID], [BOS_ID, 13, EOS_ID])]
SMALL = dict(src_vocab_size=30, tgt_vocab_size=30, emb_size=8, hidden_size=12, dropout=0.0)
VARIANTS = [
    (GRUNet, {}),
    (BahdanauNet, {}),
    (LuongNet, {"score": "dot"}),
    (LuongNet, {"score": "general"}),
    (LuongNet, {"score": "concat"}),
    (LuongNet, {"input_feeding": False}),
    (BahdanauNet, {"cell": "lstm", "num_layers": 2}),
    (GRUNet, {"cell": "rnn"}),
    (LuongNet, {"cell": "lstm", "tie_output": False, "share_embeddings": False}),
]
IDS = ["gru", "bahdanau", "luong-dot", "luong-general", "luong-concat", "luong-nofeed", "bahdanau-lstm2",
       "gru-elman", "luong-lstm-untied"]  # fmt: skip


def build(cls, extra):
    torch.manual_seed(0)
    return cls(**{**SMALL, **extra}).eval()


@pytest.mark.parametrize("cls,extra", VARIANTS, ids=IDS)
@torch.no_grad()
def test_decode_step_matches_teacher_forcing(cls, extra):
    model = build(cls, extra)
    batch = Batch.collate(PAIRS)
    full = torch.log_softmax(model(batch), -1)
    state = model.encode(batch.src, batch.src_mask)
    for t in range(batch.tgt_in.size(1)):
        log_probs, state, attn = model.decode_step(batch.tgt_in[:, t], state)
        assert torch.allclose(log_probs, full[:, t], atol=1e-5)
        if cls is GRUNet:
            assert attn is None
        else:
            assert attn.shape == (2, 5) and torch.allclose(attn.sum(-1), torch.ones(2), atol=1e-5)
            assert attn[1, 3:].eq(0).all()


@pytest.mark.parametrize("cls,extra", VARIANTS[:3], ids=IDS[:3])
@torch.no_grad()
def test_padding_never_leaks_into_states(cls, extra):
    model = build(cls, extra)
    batched = model(Batch.collate(PAIRS))
    alone = model(Batch.collate(PAIRS[1:]))
    assert torch.allclose(batched[1, :2], alone[0], atol=1e-5)


@pytest.mark.parametrize("cls,extra", VARIANTS, ids=IDS)
def test_loss_falls_on_a_tiny_batch(cls, extra):
    losses = train_losses(build(cls, extra), Batch.collate(PAIRS), steps=25, lr=1e-2)
    assert losses[-1] < 0.5 * losses[0]


@torch.no_grad()
def test_reorder_handles_lstm_pairs():
    model = build(BahdanauNet, {"cell": "lstm", "num_layers": 2})
    batch = Batch.collate(PAIRS)
    state = model.encode(batch.src, batch.src_mask)
    picked = state.reorder(torch.tensor([1, 0, 1]))
    assert picked.hidden[0].shape == (3, 2, 12)
    assert torch.equal(picked.hidden[1][0], state.hidden[1][1])
    assert torch.equal(picked.keys[2], state.keys[1])


@torch.no_grad()
def test_expand_repeats_each_sentence_for_its_beams():
    model = build(LuongNet, {"cell": "lstm"})
    batch = Batch.collate(PAIRS)
    state = model.encode(batch.src, batch.src_mask)
    beams = state.expand(3)
    assert beams.hidden[0].shape[0] == beams.feed.shape[0] == 6 and beams.group == 3 and beams.rows == 6
    for row, sentence in enumerate([0, 0, 0, 1, 1, 1]):
        assert torch.equal(beams.hidden[1][row], state.hidden[1][sentence])
    # The source side is shared by a sentence's beams: one row per sentence, not a copy per beam.
    assert beams.keys is state.keys and beams.values is state.values and beams.src_mask is state.src_mask
    assert state.expand(1) is state
    # When the first sentence leaves, its beams' rows go and the second sentence's source row stays.
    left = beams.reorder(torch.tensor([5, 3, 4]))
    assert torch.equal(left.keys, state.keys[1:]) and torch.equal(left.src_mask, state.src_mask[1:])
    assert torch.equal(left.feed, beams.feed[[5, 3, 4]]) and left.group == 3
    within = beams.reorder(torch.tensor([2, 2, 0, 4, 5, 3]))
    assert within.keys is state.keys and torch.equal(within.hidden[0], beams.hidden[0][[2, 2, 0, 4, 5, 3]])


@torch.no_grad()
def test_gru_summary_follows_sentences_not_beams():
    model = build(GRUNet, {})
    batch = Batch.collate(PAIRS)
    beams = model.encode(batch.src, batch.src_mask).expand(2)
    assert beams.context.shape[0] == 4 and torch.equal(beams.context[0], beams.context[1])
    within = beams.reorder(torch.tensor([1, 1, 3, 2]))
    assert within.context is beams.context  # equal within a sentence: nothing to move
    left = beams.reorder(torch.tensor([3, 2]))
    assert torch.equal(left.context, beams.context[[3, 2]])


def test_scheduled_sampling_changes_training_inputs_only():
    model = build(GRUNet, {"teacher_forcing_ratio": 0.0})
    batch = Batch.collate(PAIRS)
    forced = build(GRUNet, {})(batch)
    assert torch.allclose(model(batch), forced)  # eval mode: always the reference
    model.train()
    assert not torch.allclose(model(batch), forced)


def test_bad_cell_is_rejected():
    with pytest.raises(ValueError, match="cell must be one of"):
        build(GRUNet, {"cell": "transformer"})
