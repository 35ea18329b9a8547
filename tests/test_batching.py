import torch

from nmt.data.batching import Batch, TokenBudgetBatchSampler
from nmt.data.tokenizer import BOS_ID, EOS_ID, PAD_ID

LENGTHS = [((i * 37) % 29) + 1 for i in range(500)]


def test_budget_respected_and_every_index_once():
    sampler = TokenBudgetBatchSampler(LENGTHS, max_tokens=120, shuffle=False)
    seen = []
    for batch in sampler:
        assert max(LENGTHS[i] for i in batch) * len(batch) <= 120
        seen.extend(batch)
    assert sorted(seen) == list(range(500))


def test_similar_lengths_batched_together():
    sampler = TokenBudgetBatchSampler(LENGTHS, max_tokens=200, shuffle=True, seed=3)
    spreads = [max(LENGTHS[i] for i in b) - min(LENGTHS[i] for i in b) for b in sampler]
    # Batches are cut from the length-sorted order: a batch only spans a length boundary.
    assert max(spreads) <= 3 and sum(spreads) / len(spreads) < 1


def test_secondary_key_groups_target_lengths():
    lengths = [((i * 7) % 5) + 20 for i in range(500)]  # ~100 pairs per padded length
    targets = [((i * 13) % 17) + 1 for i in range(500)]

    def target_padding(sampler):
        return sum(max(targets[i] for i in b) * len(b) - sum(targets[i] for i in b) for b in sampler)

    plain = TokenBudgetBatchSampler(lengths, 200, shuffle=True, seed=3)
    keyed = TokenBudgetBatchSampler(lengths, 200, shuffle=True, seed=3, secondary=targets)
    assert sorted(i for b in keyed for i in b) == list(range(500))
    assert all(max(lengths[i] for i in b) * len(b) <= 200 for b in keyed)
    assert target_padding(keyed) < target_padding(plain) / 2


def test_shuffle_depends_on_seed_and_epoch_only():
    a = TokenBudgetBatchSampler(LENGTHS, 150, shuffle=True, seed=1)
    b = TokenBudgetBatchSampler(LENGTHS, 150, shuffle=True, seed=1)
    assert list(a) == list(b)
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first


def test_resumed_epoch_continues_before_set_epoch_is_called():
    straight = TokenBudgetBatchSampler(LENGTHS, 150, shuffle=True, seed=1)
    straight.set_epoch(1)
    second_epoch = list(straight)
    resumed = TokenBudgetBatchSampler(LENGTHS, 150, shuffle=True, seed=1)
    resumed.resume = (1, 3)  # a checkpoint taken after 3 batches of the second epoch
    assert list(resumed) == second_epoch[3:]  # the epoch comes from the checkpoint
    resumed.set_epoch(2)
    straight.set_epoch(2)
    assert list(resumed) == list(straight)  # later epochs are whole


def test_the_trainers_epoch_wins_over_set_epoch():
    # After a resume from a checkpoint saved at on_train_epoch_end, Lightning calls set_epoch(e + 1) for epoch e.
    epoch = 2
    sampler = TokenBudgetBatchSampler(LENGTHS, 150, shuffle=True, seed=1)
    sampler.epoch_source = lambda: epoch
    sampler.set_epoch(3)
    expected = TokenBudgetBatchSampler(LENGTHS, 150, shuffle=True, seed=1)
    expected.set_epoch(2)
    assert list(sampler) == list(expected)


def test_ddp_shards_are_disjoint_equal_and_cover_training_data():
    shards = [list(TokenBudgetBatchSampler(LENGTHS, 150, True, 5, num_replicas=3, rank=r)) for r in range(3)]
    assert len({len(s) for s in shards}) == 1
    flat = [i for s in shards for b in s for i in b]
    assert len(flat) == len(set(flat))
    everything = [i for b in TokenBudgetBatchSampler(LENGTHS, 150, True, 5).batches() for i in b]
    assert set(flat) <= set(everything) and len(flat) >= len(everything) - 2 * 150


def test_ddp_evaluation_shards_cover_everything_once():
    shards = [list(TokenBudgetBatchSampler(LENGTHS, 150, False, 0, num_replicas=2, rank=r)) for r in range(2)]
    flat = sorted(i for s in shards for b in s for i in b)
    assert flat == list(range(500))


def test_batch_owns_shift_and_masks():
    batch = Batch.collate([(4, [7, 8, EOS_ID], [BOS_ID, 9, 10, EOS_ID]), (9, [7, EOS_ID], [BOS_ID, 11, EOS_ID])])
    assert batch.src.tolist() == [[7, 8, EOS_ID], [7, EOS_ID, PAD_ID]]
    assert batch.src_lengths.tolist() == [3, 2]
    assert batch.tgt_in.tolist() == [[BOS_ID, 9, 10], [BOS_ID, 11, EOS_ID]]
    assert batch.tgt_out.tolist() == [[9, 10, EOS_ID], [11, EOS_ID, PAD_ID]]
    assert batch.tgt_mask.tolist() == [[True, True, True], [True, True, False]]
    assert batch.src_mask.tolist() == [[True, True, True], [True, True, False]]
    assert batch.ntokens == 5 and batch.index.tolist() == [4, 9]
    moved = batch.to(torch.device("cpu"))
    assert torch.equal(moved.tgt_in, batch.tgt_in) and moved.ntokens == 5


def test_batches_are_the_greedy_cut_of_the_sorted_order():
    """The sampler cuts batches by binary search on numpy arrays; the batches are those of the plain
    per-item greedy loop (what nmt did before, and the same pairs fairseq's bucketing gives)."""
    import numpy as np

    rng = np.random.default_rng(0)
    for trial in range(20):
        lengths = rng.integers(1, 200, size=int(rng.integers(1, 2000))).tolist()
        budget = int(rng.choice([40, 150, 512, 4096]))
        sampler = TokenBudgetBatchSampler(np.array(lengths), budget, shuffle=False)
        expected, current, longest = [], [], 0
        for i in sorted(range(len(lengths)), key=lambda i: lengths[i]):  # stable: ties in index order
            if current and max(longest, lengths[i]) * (len(current) + 1) > budget:
                expected.append(current)
                current, longest = [], 0
            current.append(i)
            longest = max(longest, lengths[i])
        expected.append(current)
        assert list(sampler) == expected, trial
