"""Hugging Face models: a MarianMT folder imported as an nmt checkpoint computes and tokenizes exactly as Marian
does, everything nmt does works on it (fine-tuning included), and nmt Transformers export to folders that
transformers loads and that give nmt's own output (and import back unchanged). Tiny models, built here."""

import io
import json

import pytest
import torch

from nmt.data.batching import Batch
from nmt.engines import DecodeOptions
from nmt.errors import NmtError
from tests.conftest import assert_clean_error, checkpoint, http_call, load, run_nmt, start_server

transformers = pytest.importorskip("transformers")
spm = pytest.importorskip("sentencepiece")

LINES = ["On Monday, Anna saw two dogs.", "Peter ж was born on May 1, 1990!", "", "The book costs five euros.",
         ">>de<< Four people arrived."]  # fmt: skip


def _spm(lines: list[str], size: int) -> bytes:
    buffer = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_writer=buffer, vocab_size=size, minloglevel=2,
                                   num_threads=1, shuffle_input_sentence=False, pad_id=-1, bos_id=-1, eos_id=0,
                                   unk_id=1)  # fmt: skip
    return buffer.getvalue()


def make_marian(folder, corpus, shared: bool, activation: str, tie: bool = True):
    """A tiny MarianMT model as OPUS-MT folders hold one, its vocabulary Marian's (</s> 0, <unk> 1, <pad> 2), trained
    a few steps with transformers so that its outputs depend on the input."""
    from transformers import MarianConfig, MarianMTModel, MarianTokenizer

    folder.mkdir(parents=True)
    src_lines = (corpus / "train.en").read_text(encoding="utf-8").splitlines()
    tgt_lines = (corpus / "train.de").read_text(encoding="utf-8").splitlines()
    models = {"src.spm": _spm(src_lines, 90), "tgt.spm": _spm(tgt_lines, 110)}
    pieces = {}
    for name, model in models.items():
        (folder / name).write_bytes(model)
        processor = spm.SentencePieceProcessor(model_proto=model)
        pieces[name] = [processor.id_to_piece(i) for i in range(2, processor.get_piece_size())]
    specials = ["</s>", "<unk>", "<pad>"]
    vocab = specials + (sorted(set(pieces["src.spm"]) | set(pieces["tgt.spm"])) if shared else pieces["src.spm"])
    (folder / "v.json").write_text(json.dumps({p: i for i, p in enumerate(vocab)}))
    target = None if shared else specials + pieces["tgt.spm"]
    if target:
        (folder / "tv.json").write_text(json.dumps({p: i for i, p in enumerate(target)}))
    tokenizer = MarianTokenizer(str(folder / "src.spm"), str(folder / "tgt.spm"), str(folder / "v.json"),
                                target_vocab_file=str(folder / "tv.json") if target else None,
                                separate_vocabs=not shared, source_lang="en", target_lang="de")  # fmt: skip
    torch.manual_seed(0)
    config = MarianConfig(vocab_size=len(vocab), decoder_vocab_size=len(target or vocab), d_model=16,
                          share_encoder_decoder_embeddings=shared, tie_word_embeddings=tie, encoder_layers=2,
                          decoder_layers=2, encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32,
                          decoder_ffn_dim=32, activation_function=activation, max_position_embeddings=64,
                          scale_embedding=True, pad_token_id=2, eos_token_id=0, decoder_start_token_id=2,
                          forced_eos_token_id=0, dropout=0.0)  # fmt: skip
    model = MarianMTModel(config)
    with torch.no_grad():
        model.final_logits_bias.normal_(0, 0.5)  # so that the output bias is imported, not zeros
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for step in range(150):
        rows = slice(16 * step % 384, 16 * step % 384 + 16)
        batch = tokenizer(src_lines[rows], text_target=tgt_lines[rows], return_tensors="pt", padding=True)
        batch["labels"][batch["labels"] == config.pad_token_id] = -100
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    with torch.no_grad():  # end sooner than this little training teaches: outputs of several lengths
        model.final_logits_bias[0, config.eos_token_id] += 4.0
    model.eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    for name in ("src.spm", "tgt.spm", "v.json", "tv.json"):
        (folder / name).unlink(missing_ok=True)
    return folder


VARIANTS = {
    "shared vocabulary, swish": (True, "swish", True),
    "separate vocabularies, gelu, untied": (False, "gelu", False),
}


@pytest.fixture(scope="module")
def marians(tiny_corpus, tmp_path_factory) -> dict:
    """Each variant: (the Marian folder, nmt's import of it)."""
    out = {}
    for name, variant in VARIANTS.items():
        folder = make_marian(tmp_path_factory.mktemp("marian") / "model", tiny_corpus, *variant)
        ckpt = folder.parent / "imported.ckpt"
        result = run_nmt("import", "--model", str(folder), "--out", str(ckpt))
        assert result.returncode == 0, result.stderr[-3000:]
        out[name] = folder, ckpt
    return out


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_the_import_computes_and_tokenizes_as_marian(marians, tiny_corpus, variant):
    from transformers import MarianMTModel, MarianTokenizer

    folder, ckpt = marians[variant]
    theirs, tok = MarianMTModel.from_pretrained(folder).eval(), MarianTokenizer.from_pretrained(folder)
    engine = load(ckpt)
    ours = engine.tokenizer
    # Ids: unknown characters, punctuation, an empty line, a language code; targets with the target's pieces.
    assert ours.encode_src(LINES) == tok(LINES)["input_ids"]
    targets = (tiny_corpus / "test.de").read_text(encoding="utf-8").splitlines()[:12] + ["Ein ж Satz."]
    assert [ids[1:] for ids in ours.encode_tgt(targets)] == tok(text_target=targets)["input_ids"]
    # Logits of a padded batch, teacher forced.
    sources = (tiny_corpus / "test.en").read_text(encoding="utf-8").splitlines()[:12] + ["Ein ж Satz."]
    pairs = [(i, s, t) for i, (s, t) in enumerate(zip(ours.encode_src(sources), ours.encode_tgt(targets)))]
    batch = Batch.collate(pairs, ours.specials.pad)
    with torch.no_grad():
        mine = engine.net(batch)
        reference = theirs(input_ids=batch.src, attention_mask=batch.src_mask.long(), decoder_input_ids=batch.tgt_in)
    assert (mine - reference.logits)[batch.tgt_mask].abs().max() < 1e-4
    # Search: greedy as generate(num_beams=1); beam 4 as generate(num_beams=4) with no length penalty on either side
    # (Hugging Face divides by length ** p, nmt by GNMT's ((5 + length) / 6) ** alpha: equal only at 0). Where an
    # output reaches the length limit, Hugging Face forces the end with a log-probability of 0 and nmt with the end's
    # own, so beam search may rank those outputs otherwise (docs/training.md): they are compared by greedy search.
    encoded = tok(sources, return_tensors="pt", padding=True)
    for beam in (1, 4):
        generated = theirs.generate(**encoded, num_beams=beam, max_length=24, length_penalty=0.0, early_stopping=True)
        found = engine.translate(sources, DecodeOptions(beam=beam, max_len_a=0, max_len_b=22, length_penalty=0.0))
        ended = 0
        for row, hyps in zip(generated.tolist(), found):
            expected = [t for t in row[1:] if t != ours.specials.pad]
            if beam > 1 and len(expected) == 23:
                continue
            ended += len(expected) < 23
            assert [ours.tgt_id(p) for p in hyps[0].tokens] + [ours.specials.eos] == expected, beam
        assert ended >= 2 and len({hyps[0].text for hyps in found}) > 3  # outputs of several lengths and texts
    greedy = engine.translate(sources, DecodeOptions(max_len_a=0, max_len_b=22))
    reference = theirs.generate(**encoded, num_beams=1, max_length=24)
    assert [h[0].text for h in greedy] == tok.batch_decode(reference, skip_special_tokens=True)


def test_everything_nmt_does_works_on_an_imported_model(marians, tiny_corpus, tmp_path):
    folder, ckpt = marians["shared vocabulary, swish"]
    src = str(tiny_corpus / "test.en")
    (tmp_path / "prefix").write_text("Am\n" * 24, encoding="utf-8")
    for options in (["--beam", "4", "--nbest", "2", "--scores"], ["--sample", "--nbest", "2", "--seed", "3"],
                    ["--prefix", str(tmp_path / "prefix")], ["--format", "jsonl", "--alignments"]):  # fmt: skip
        result = run_nmt("translate", "--ckpt", str(ckpt), "-i", src, *options)
        assert result.returncode == 0 and result.stdout.count("\n") in (24, 48), result.stderr[-2000:]
    assert all(line.startswith("Am") for line in run_nmt("translate", "--ckpt", str(ckpt), "-i", src, "--prefix",
                                                         str(tmp_path / "prefix")).stdout.splitlines())  # fmt: skip
    score = run_nmt("score", "--ckpt", str(ckpt), "--source", src, "--target", str(tiny_corpus / "test.de"))
    assert score.returncode == 0 and len(score.stdout.splitlines()) == 24
    test = run_nmt("test", "--config", str(ckpt.with_suffix(".yaml")), "--ckpt_path", str(ckpt), "--data.data_dir",
                   str(tiny_corpus), "--trainer.default_root_dir", str(tmp_path), "--trainer.enable_progress_bar",
                   "false")  # fmt: skip
    assert test.returncode == 0 and "test BLEU" in test.stdout, test.stderr[-2000:]
    plot = run_nmt("plot-attention", "--ckpt", str(ckpt), "--text", "Anna saw two dogs.", "--out",
                   str(tmp_path / "a.png"))  # fmt: skip
    assert plot.returncode == 0 and (tmp_path / "a.png").stat().st_size > 1000
    compare = run_nmt("compare", "--out", str(tmp_path / "compare"), "--ckpts", str(ckpt), "--data.data_dir",
                      str(tiny_corpus), "--bucket-width", "10", "--show", "0")  # fmt: skip
    assert compare.returncode == 0 and "TransformerNet" in compare.stdout, compare.stderr[-2000:]
    pytest.importorskip("ctranslate2")
    export = run_nmt("export", "--ckpt", str(ckpt), "--out", str(tmp_path / "ct2"))
    assert export.returncode == 0, export.stderr[-2000:]
    ours = run_nmt("translate", "--ckpt", str(ckpt), "-i", src, "--scores")
    theirs = run_nmt("translate", "--engine", "ctranslate2", "--ckpt", str(tmp_path / "ct2"), "-i", src, "--scores")
    assert ours.stdout == theirs.stdout and ours.returncode == 0, theirs.stderr[-2000:]


def _fine_tune(ckpt, corpus, root):
    return run_nmt("fit", "--config", str(ckpt.with_suffix(".yaml")), "--init_from", str(ckpt), "--data.data_dir",
                   str(corpus), "--data.max_tokens", "1024", "--model.lr", "0.003", "--model.warmup_steps", "5",
                   "--trainer.max_steps", "30", "--trainer.val_check_interval", "30", "--trainer.log_every_n_steps",
                   "5", "--samples.num_sentences", "0", "--trainer.enable_progress_bar", "false",
                   "--trainer.default_root_dir", str(root))  # fmt: skip


def test_fine_tuning_an_imported_model(marians, tiny_corpus, tmp_path):
    from tests.conftest import losses

    _, ckpt = marians["separate vocabularies, gelu, untied"]
    result = _fine_tune(ckpt, tiny_corpus, tmp_path / "run")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "starting from the weights of" in result.stderr and "training SentencePiece" not in result.stderr
    seen = losses(tmp_path / "run")
    assert len(seen) == 6 and sum(seen[-2:]) < sum(seen[:2])  # the loss falls
    tuned = checkpoint(tmp_path / "run", "last.ckpt")
    assert load(tuned).tokenizer.digest() == load(ckpt).tokenizer.digest()  # the imported vocabulary, no new one
    src = str(tiny_corpus / "test.en")
    ours = run_nmt("translate", "--ckpt", str(tuned), "-i", src)
    assert ours.returncode == 0 and len(ours.stdout.splitlines()) == 24
    pytest.importorskip("ctranslate2")
    assert run_nmt("export", "--ckpt", str(tuned), "--out", str(tmp_path / "ct2")).returncode == 0
    theirs = run_nmt("translate", "--engine", "ctranslate2", "--ckpt", str(tmp_path / "ct2"), "-i", src)
    assert theirs.stdout == ours.stdout
    server, port = start_server(tuned)
    try:
        first = (tiny_corpus / "test.en").read_text(encoding="utf-8").splitlines()[0]
        status, answer = http_call(port, "/translate", json.dumps({"text": [first]}).encode())
        assert status == 200 and answer["translations"] == ours.stdout.splitlines()[:1]
    finally:
        server.terminate()
        server.wait(timeout=30)


# ------------------------------------------------------------------------------------------ export
@pytest.fixture(scope="module")
def trained(tiny_runs, tmp_path_factory):
    """An nmt post-norm and pre-norm Transformer, with the position tables Marian and M2M100 compute, ending their
    outputs where Hugging Face can too (a fixed number of tokens)."""
    runs = {}
    for norm, positions in (("post", "marian"), ("pre", "fairseq")):
        root = tmp_path_factory.mktemp(f"hf-{norm}")
        result = run_nmt("fit", *tiny_runs.args("transformer"), "--model.net.pre_norm", str(norm == "pre").lower(),
                         "--model.net.positions", positions, "--model.net.max_len_a", "0", "--model.net.max_len_b",
                         "20", "--model.net.activation", "gelu", "--trainer.default_root_dir", str(root))  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        runs[norm] = checkpoint(root, "last.ckpt")
    return runs


@pytest.mark.parametrize("norm", ["post", "pre"])
def test_an_exported_model_translates_in_transformers_as_in_nmt_and_imports_back(trained, tiny_corpus, tmp_path,
                                                                                  norm):  # fmt: skip
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    ckpt = trained[norm]
    out = tmp_path / "hf"
    result = run_nmt("export", "--format", "huggingface", "--ckpt", str(ckpt), "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    assert ("MarianMT" if norm == "post" else "M2M100") in result.stdout
    lines = (tiny_corpus / "test.en").read_text(encoding="utf-8").splitlines()
    model, tok = AutoModelForSeq2SeqLM.from_pretrained(out).eval(), AutoTokenizer.from_pretrained(out)
    assert type(model).__name__ == ("MarianMTModel" if norm == "post" else "M2M100ForConditionalGeneration")
    if int(transformers.__version__.split(".")[0]) < 5:  # transformers 5 removed the translation pipeline
        theirs = [o["translation_text"] for o in transformers.pipeline("translation", model=str(out))(lines)]
    else:  # what that pipeline did
        theirs = tok.batch_decode(model.generate(**tok(lines, return_tensors="pt", padding=True)),
                                  skip_special_tokens=True)  # fmt: skip
    ours = run_nmt("translate", "--ckpt", str(ckpt), "-i", str(tiny_corpus / "test.en")).stdout.splitlines()
    assert theirs == ours
    back = tmp_path / "back.ckpt"
    assert run_nmt("import", "--model", str(out), "--out", str(back)).returncode == 0
    for options in (["--beam", "3", "--scores"], ["--format", "jsonl"]):
        again = run_nmt("translate", "--ckpt", str(back), "-i", str(tiny_corpus / "test.en"), *options)
        first = run_nmt("translate", "--ckpt", str(ckpt), "-i", str(tiny_corpus / "test.en"), *options)
        assert again.stdout == first.stdout and again.returncode == 0, again.stderr[-2000:]


def test_an_export_stops_where_the_position_table_ends_as_nmt_does(trained, tmp_path):
    """A model whose length rule reaches past its position table (1.5 x 16 + 10 > 16) stops where nmt stops."""
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    from nmt.engines.native import NmtEngine
    from nmt.hf.exporting import export_huggingface
    from nmt.networks import loading

    tok = loading.load(trained["post"]).tokenizer
    config = loading.load(trained["post"]).net.config
    torch.manual_seed(0)  # untrained: it never chooses the end, so each output runs to its limit
    net = loading.build({**config, "init_args": {**config["init_args"], "max_positions": 16, "max_len_a": 1.5,
                                                  "max_len_b": 10, "dropout": 0.0}}).eval()  # fmt: skip
    export_huggingface(net, tok, tmp_path / "hf")
    model, their_tok = (
        AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "hf").eval(),
        AutoTokenizer.from_pretrained(tmp_path / "hf"),
    )
    lines = ["Anna saw two dogs.", "Four people."]  # 5-15 pieces: under the table, over its limit
    theirs = model.generate(**their_tok(lines, return_tensors="pt", padding=True))
    ours = NmtEngine(net, tok).translate(lines, DecodeOptions())
    assert theirs.size(1) <= 17  # the decoder's start, at most 15 tokens, the end: 16 positions
    assert their_tok.batch_decode(theirs, skip_special_tokens=True) == [hyps[0].text for hyps in ours]
    assert max(len(hyps[0].tokens) for hyps in ours) == 15
    assert all(5 <= len(ids) <= 16 for ids in tok.encode_src(lines))


def test_what_no_hugging_face_class_computes_is_refused(tiny_runs, tmp_path):
    from nmt.hf.exporting import hf_class
    from nmt.networks import GRUNet, TransformerNet

    sizes = dict(src_vocab_size=20, tgt_vocab_size=20, d_model=8, n_heads=2, d_ff=16)
    with pytest.raises(NmtError, match="its position table is vaswani and M2M100 .pre-norm. computes fairseq"):
        hf_class(TransformerNet(**sizes))  # nmt's default
    with pytest.raises(NmtError, match="MarianMT .post-norm. computes marian"):
        hf_class(TransformerNet(**sizes, pre_norm=False, positions="fairseq"))
    with pytest.raises(NmtError, match="it has an output bias and M2M100 none"):
        hf_class(TransformerNet(**sizes, positions="fairseq", output_bias=True))
    with pytest.raises(NmtError, match="only the Transformer exports"):
        hf_class(GRUNet(src_vocab_size=20, tgt_vocab_size=20, emb_size=8, hidden_size=8))
    assert hf_class(TransformerNet(**sizes, positions="fairseq")) == "m2m_100"
    result = run_nmt("export", "--format", "huggingface", "--ckpt", str(checkpoint(tiny_runs["transformer"])),
                     "--out", str(tmp_path / "hf"))  # fmt: skip
    assert_clean_error(result, "cannot be exported to Hugging Face exactly", "--model.net.positions fairseq")
    assert not (tmp_path / "hf").exists()


def test_what_is_not_a_marian_folder_is_named(marians, tmp_path):
    folder, _ = marians["shared vocabulary, swish"]
    assert_clean_error(run_nmt("import", "--model", str(tmp_path), "--out", str(tmp_path / "x.ckpt")),
                       "lacks config.json")  # fmt: skip
    offline = run_nmt("import", "--model", "nobody/no-such-model", "--out", str(tmp_path / "x.ckpt"),
                      env={"HF_HUB_OFFLINE": "1"})  # fmt: skip
    assert_clean_error(offline, "Could not download nobody/no-such-model from the Hugging Face hub")
    other = tmp_path / "other"
    other.mkdir()
    for f in folder.iterdir():
        (other / f.name).write_bytes(f.read_bytes())
    config = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**config, "model_type": "t5"}))
    assert_clean_error(run_nmt("import", "--model", str(other), "--out", str(tmp_path / "x.ckpt")),
                       "nmt import reads MarianMT models", "this one is a t5")  # fmt: skip
