import math
from dataclasses import dataclass

import pytest
import torch

from nmt import search
from nmt.data.batching import Batch, pad
from nmt.data.tokenizer import BOS_ID, EOS_ID, PAD_ID
from nmt.networks import BahdanauNet, GRUNet, LuongNet, TransformerNet
from nmt.networks.state import DecoderState, row_field

SOURCES = [[5, 6, 7, 8, 9, EOS_ID], [10, 11, EOS_ID], [12, 13, 14, EOS_ID]]
COMMON = dict(src_vocab_size=24, tgt_vocab_size=24, dropout=0.0, max_len_a=1.0, max_len_b=4)
MODELS = {
    "transformer": lambda: TransformerNet(d_model=16, n_heads=2, d_ff=32, encoder_layers=1, decoder_layers=1, **COMMON),
    "gru": lambda: GRUNet(emb_size=8, hidden_size=12, **COMMON),
    "bahdanau": lambda: BahdanauNet(emb_size=8, hidden_size=12, **COMMON),
    "luong": lambda: LuongNet(emb_size=8, hidden_size=12, **COMMON),
}


@pytest.fixture(params=sorted(MODELS))
def model(request):
    torch.manual_seed(1)
    m = MODELS[request.param]().eval()
    with torch.no_grad():  # sharpen the random model so EOS turns up before the limit
        for p in m.parameters():
            p.mul_(3.0)
    return m


def encode(sources):
    src = pad(sources)
    return src, src != PAD_ID


def test_beam_one_equals_greedy(model):
    src, mask = encode(SOURCES)
    g = search.greedy(model, src, mask, 1.0, 4)
    b = search.beam_search(model, src, mask, beam=1, nbest=1, alpha=1.0, max_len_a=1.0, max_len_b=4)
    assert g.token_lists() == b.token_lists()
    assert torch.allclose(g.token_scores.sum(-1), b.token_scores.sum(-1), atol=1e-5)


def forced_scores(model, src_ids, out_ids):
    """Per-token log-probabilities of ``out_ids`` (ending in EOS) under teacher forcing."""
    batch = Batch.collate([(0, src_ids, [BOS_ID, *out_ids])])
    with torch.no_grad():
        lp = torch.log_softmax(model(batch).float(), -1)[0]
    return lp.gather(-1, batch.tgt_out[0][:, None]).squeeze(-1)


@pytest.mark.parametrize("alpha", [0.0, 1.0, -0.5])
def test_scores_sorted_and_equal_to_forced_decoding(model, alpha):
    src, mask = encode(SOURCES)
    hyps = search.beam_search(model, src, mask, beam=4, nbest=3, alpha=alpha, max_len_a=1.0, max_len_b=4)
    assert hyps.tokens.shape[:2] == (3, 3) and hyps.score.shape == (3, 3)
    assert (hyps.score[:, :-1] >= hyps.score[:, 1:] - 1e-6).all()
    lengths = hyps.lengths()
    for i, source in enumerate(SOURCES):
        for r in range(3):
            n = int(lengths[i, r])
            out = hyps.tokens[i, r, :n].tolist()
            assert out[-1] == EOS_ID and EOS_ID not in out[:-1] and len(out) <= len(source) + 4 + 1
            forced = forced_scores(model, source, out)
            assert torch.allclose(hyps.token_scores[i, r, :n], forced, atol=1e-4)
            penalty = ((5 + n) / 6) ** alpha
            assert abs(float(hyps.score[i, r]) - float(forced.sum()) / penalty) < 1e-4


def test_translation_does_not_depend_on_the_batch(model):
    src, mask = encode(SOURCES)
    together = search.beam_search(model, src, mask, beam=3, max_len_a=1.0, max_len_b=4)
    for i, source in enumerate(SOURCES):
        s, m = encode([source])
        alone = search.beam_search(model, s, m, beam=3, max_len_a=1.0, max_len_b=4)
        assert alone.token_lists() == [together.token_lists()[i]]
        assert torch.allclose(alone.score[0], together.score[i], atol=1e-5)


@pytest.mark.parametrize("beam", [1, 3])
def test_search_without_attention_finds_the_same_translations(model, beam):
    src, mask = encode(SOURCES)
    net = model
    full = search.decode_batch(net, src, mask, beam=beam, nbest=1)
    bare = search.decode_batch(net, src, mask, beam=beam, nbest=1, attention=False)
    assert bare.attention is None
    assert (full.attention is None) == isinstance(model, GRUNet)  # only the GRU has no attention
    assert torch.equal(bare.tokens, full.tokens)
    assert torch.allclose(bare.token_scores, full.token_scores, atol=1e-6)
    if isinstance(model, TransformerNet):  # and it computes no attention weights at all
        assert net.decode_step(src[:, 0], net.encode(src, mask, attention=False))[2] is None


def test_attention_is_returned_per_output_token(model):
    src, mask = encode(SOURCES)
    hyps = search.beam_search(model, src, mask, beam=2, nbest=2, max_len_a=1.0, max_len_b=4)
    if isinstance(model, GRUNet):
        assert hyps.attention is None
        return
    assert hyps.attention.shape == (*hyps.tokens.shape, src.size(1))
    real = hyps.tokens != PAD_ID
    sums = hyps.attention.sum(-1)
    assert torch.allclose(sums[real], torch.ones_like(sums[real]), atol=1e-4)
    assert hyps.attention[1][..., 3:].abs().max() == 0  # padding of sentence 1 never attended


def test_length_penalty_formula():
    assert torch.allclose(search.length_penalty(torch.tensor([1, 7]), 1.0), torch.tensor([1.0, 2.0]))
    assert float(search.length_penalty(torch.tensor(7), 0.0)) == 1.0


def test_nbest_larger_than_beam_is_rejected(model):
    src, mask = encode(SOURCES)
    with pytest.raises(ValueError, match="nbest"):
        search.beam_search(model, src, mask, beam=2, nbest=3)


@dataclass(kw_only=True)
class _Rows(DecoderState):
    dummy: torch.Tensor = row_field()


class _Scripted:
    """A stand-in network whose next-token distribution depends only on the previous token: from BOS,
    EOS (p = e^-1) just beats token 4 (e^-1.1); after token 4, EOS is almost certain (e^-0.05)."""

    V = 8
    pad_id, bos_id, eos_id = PAD_ID, BOS_ID, EOS_ID

    def encode(self, src, src_mask, attention):
        return _Rows(dummy=torch.zeros(src.size(0), 1))

    def decode_step(self, prev, state):
        probs = torch.full((prev.size(0), self.V), 1e-6)
        probs[:, EOS_ID] = 1.0
        from_bos = prev == BOS_ID
        probs[from_bos, EOS_ID], probs[from_bos, 4] = math.exp(-1.0), math.exp(-1.1)
        probs[prev == 4, EOS_ID] = math.exp(-0.05)
        return probs.log(), state, None


def test_beam_search_does_not_stop_while_a_longer_hypothesis_can_still_win():
    # Empty output: -1.0 / lp(1) = -1.0. "4": (-1.1 - 0.05) / lp(2) = -0.986 with alpha 1, so it wins,
    # although at step 1 its open score (-1.1) was below the finished one: stopping there was a search error.
    src = torch.tensor([[5, EOS_ID]])
    best = search.beam_search(_Scripted(), src, src != PAD_ID, beam=2, nbest=1, alpha=1.0, attention=False)
    assert best.token_lists() == [[4]] and abs(float(best.score[0, 0]) + 1.15 / (7 / 6)) < 1e-4
    hyps = search.beam_search(_Scripted(), src, src != PAD_ID, beam=2, nbest=2, alpha=1.0, attention=False)
    assert hyps.token_lists(0) == [[4]] and hyps.token_lists(1) == [[]]
    assert torch.allclose(hyps.score[0], torch.tensor([-1.15 / (7 / 6), -1.0]), atol=1e-4)
    raw = search.beam_search(_Scripted(), src, src != PAD_ID, beam=2, nbest=1, alpha=0.0, attention=False)
    assert raw.token_lists() == [[]]  # ranked by raw log-probability, the empty output is best
