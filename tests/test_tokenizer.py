import pytest

from nmt.data.datamodule import TranslationDataModule
from nmt.data.tokenizer import BOS_ID, EOS_ID, PAD_ID, UNK_ID, Tokenizer
from nmt.errors import NmtError

SRC = ["the cat sat on the mat", "a dog ran in the park", "twenty-one people arrived"] * 20
TGT = ["die Katze saß auf der Matte", "ein Hund lief im Park", "einundzwanzig Menschen kamen an"] * 20


@pytest.mark.parametrize("model_type", ["unigram", "bpe"])
def test_round_trip_and_special_ids(model_type):
    tok = Tokenizer.train(SRC, TGT, vocab_size=45, joint=True, model_type=model_type)
    ids = tok.encode_tgt(["einundzwanzig Menschen kamen an"])[0]
    assert ids[0] == BOS_ID and ids[-1] == EOS_ID and PAD_ID not in ids
    assert tok.decode_tgt([ids]) == ["einundzwanzig Menschen kamen an"]
    assert tok.encode_src(["a dog"])[0][-1] == EOS_ID
    assert [tok.src.id_to_piece(i) for i in (PAD_ID, UNK_ID, BOS_ID, EOS_ID)] == ["<pad>", "<unk>", "<s>", "</s>"]
    assert tok.src_vocab_size == tok.tgt_vocab_size == 45


def test_separate_vocabularies_and_serialisation():
    tok = Tokenizer.train(SRC, TGT, vocab_size=30, joint=False)
    assert tok.src is not tok.tgt
    again = Tokenizer.from_dict(tok.to_dict())
    assert again.encode_src(SRC[:3]) == tok.encode_src(SRC[:3])
    broken = {**tok.to_dict(), "sha256": "0" * 64}
    with pytest.raises(NmtError, match="SHA-256"):
        Tokenizer.from_dict(broken)


def test_impossible_vocabulary_sizes_give_advice():
    with pytest.raises(NmtError, match=r"supports at most \d+\. Set --data.vocab_size \d+ or less"):
        Tokenizer.train(SRC, TGT, vocab_size=5000)
    with pytest.raises(NmtError, match=r"characters alone need \d+\. Set --data.vocab_size \d+ or more"):
        Tokenizer.train(SRC, TGT, vocab_size=10)


def test_cache_is_reused_not_retrained(tiny_corpus, tmp_path, monkeypatch):
    dm = TranslationDataModule(data_dir=str(tiny_corpus), vocab_size=120, cache_dir=str(tmp_path))
    dm.setup("fit")
    calls = []
    monkeypatch.setattr(Tokenizer, "train", classmethod(lambda *a, **k: calls.append(1)))
    dm2 = TranslationDataModule(data_dir=str(tiny_corpus), vocab_size=120, cache_dir=str(tmp_path))
    dm2.setup("fit")
    assert not calls
    assert dm2.tokenizer.digest() == dm.tokenizer.digest()
    assert dm2.datasets["train"].folder == dm.datasets["train"].folder  # the same store, opened again
    assert dm2.src_vocab_size == 120
