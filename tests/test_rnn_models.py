import pytest
import torch

from nmt.data.batching import Batch
from nmt.data.tokenizer import BOS_ID, EOS_ID
from nmt.models.bahdanau import BahdanauSeq2Seq
from nmt.models.gru import GRUSeq2Seq
from nmt.models.luong import LuongSeq2Seq
from tests.helpers import train_losses

PAIRS = [(0, [5, 6, 7, 8, EOS_ID], [BOS_ID, 9, 10, 11, EOS_ID]), (1, [5, 12, EOS_ID], [BOS_ID, 13, EOS_ID])]
SMALL = dict(src_vocab_size=30, tgt_vocab_size=30, emb_size=8, hidden_size=12, dropout=0.0)
VARIANTS = [
    (GRUSeq2Seq, {}),
    (BahdanauSeq2Seq, {}),
    (LuongSeq2Seq, {"score": "dot"}),
    (LuongSeq2Seq, {"score": "general"}),
    (LuongSeq2Seq, {"score": "concat"}),
    (LuongSeq2Seq, {"input_feeding": False}),
    (BahdanauSeq2Seq, {"cell": "lstm", "num_layers": 2}),
    (GRUSeq2Seq, {"cell": "rnn"}),
    (LuongSeq2Seq, {"cell": "lstm", "tie_output": False, "share_embeddings": False}),
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
    state = model.net.encode(batch.src, batch.src_mask)
    for t in range(batch.tgt_in.size(1)):
        log_probs, state, attn = model.net.decode_step(batch.tgt_in[:, t], state)
        assert torch.allclose(log_probs, full[:, t], atol=1e-5)
        if cls is GRUSeq2Seq:
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
def test_reorder_state_handles_lstm_pairs():
    model = build(BahdanauSeq2Seq, {"cell": "lstm", "num_layers": 2})
    batch = Batch.collate(PAIRS)
    state = model.net.encode(batch.src, batch.src_mask)
    picked = model.net.reorder_state(state, torch.tensor([1, 0, 1]))
    assert picked["hidden"][0].shape == (3, 2, 12)
    assert torch.equal(picked["hidden"][1][0], state["hidden"][1][1])
    assert torch.equal(picked["keys"][2], state["keys"][1])


@torch.no_grad()
def test_expand_state_repeats_each_sentence_for_its_beams():
    model = build(LuongSeq2Seq, {"cell": "lstm"})
    batch = Batch.collate(PAIRS)
    state = model.net.encode(batch.src, batch.src_mask)
    beams = model.net.expand_state(state, 3)
    assert beams["hidden"][0].shape[0] == beams["feed"].shape[0] == 6 and beams["beam"] == 3
    for row, sentence in enumerate([0, 0, 0, 1, 1, 1]):
        assert torch.equal(beams["hidden"][1][row], state["hidden"][1][sentence])
    # The source side is shared by a sentence's beams: one row per sentence, not a copy per beam.
    for key in ("keys", "values", "src_mask"):
        assert beams[key] is state[key]
    assert model.net.expand_state(state, 1) is state
    # When the first sentence leaves, its beams' rows go and the second sentence's source row stays.
    left = model.net.reorder_state(beams, torch.tensor([5, 3, 4]))
    assert torch.equal(left["keys"], state["keys"][1:]) and torch.equal(left["src_mask"], state["src_mask"][1:])
    assert torch.equal(left["feed"], beams["feed"][[5, 3, 4]])
    within = model.net.reorder_state(beams, torch.tensor([2, 2, 0, 4, 5, 3]), within_sentences=True)
    assert within["keys"] is state["keys"] and torch.equal(within["hidden"][0], beams["hidden"][0][[2, 2, 0, 4, 5, 3]])


def test_scheduled_sampling_changes_training_inputs_only():
    model = build(GRUSeq2Seq, {"teacher_forcing_ratio": 0.0})
    batch = Batch.collate(PAIRS)
    forced = build(GRUSeq2Seq, {})(batch)
    assert torch.allclose(model(batch), forced)  # eval mode: always the reference
    model.train()
    assert not torch.allclose(model(batch), forced)


def test_bad_cell_is_rejected():
    with pytest.raises(ValueError, match="cell must be one of"):
        build(GRUSeq2Seq, {"cell": "transformer"})
