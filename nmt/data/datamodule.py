"""``TranslationDataModule``: corpus -> SentencePiece -> cached ids -> token-budget batches.

With neither ``data_dir`` nor ``hf_dataset`` it uses the embedded synthetic corpus
(:mod:`nmt.data.synthetic`). ``prepare_data`` (one process per node) trains the tokenizer
and encodes every split into a content-addressed cache; ``setup`` (every process) loads
from that cache. Both go through :meth:`_load`, which computes only what is not cached.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader

from nmt.data import corpus, synthetic
from nmt.data.batching import Batch, PairDataset, TokenBudgetBatchSampler
from nmt.data.tokenizer import Tokenizer
from nmt.errors import NmtError

log = logging.getLogger(__name__)

FILTER_HINTS = {
    "empty": "pairs with an empty side after cleaning",
    "too_long": "raise --data.max_length",
    "length_ratio": "raise --data.max_length_ratio",
}


def default_cache_dir() -> Path:
    return Path(os.environ.get("NMT_CACHE", Path.home() / ".cache" / "nmt"))


def atomic_write(path: Path, write) -> None:
    """Call ``write(tmp_path)`` then rename onto ``path``: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _sha(*parts: object) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part if isinstance(part, bytes) else json.dumps(part, sort_keys=True).encode())
        h.update(b"\0")
    return h.hexdigest()[:20]


def _check_options(hp) -> None:
    """Refuse impossible --data values when the command line is read, not after the model is built."""
    problems = [
        (hp.vocab_size < 5, f"--data.vocab_size must be at least 5 (pad, unk, bos and eos come first), "
         f"got {hp.vocab_size}; the embedded corpus uses 500, real corpora several thousand"),
        (hp.max_tokens < 1, f"--data.max_tokens must be a positive number of tokens per batch, got {hp.max_tokens}"),
        (hp.eval_max_tokens is not None and hp.eval_max_tokens < 1,
         f"--data.eval_max_tokens must be positive (or null: max_tokens), got {hp.eval_max_tokens}"),
        (hp.max_length < 1, f"--data.max_length must be positive, got {hp.max_length}"),
        (hp.max_length_ratio < 1, f"--data.max_length_ratio must be 1 or more, got {hp.max_length_ratio}"),
        (not 0 < hp.character_coverage <= 1,
         f"--data.character_coverage must be in (0, 1], got {hp.character_coverage}"),
        (hp.model_type not in ("unigram", "bpe"), f"--data.model_type must be unigram or bpe, not '{hp.model_type}'"),
        (hp.num_workers < 0, f"--data.num_workers cannot be negative, got {hp.num_workers}"),
    ]  # fmt: skip
    for bad, message in problems:
        if bad:
            raise NmtError(message + ".")
    if hp.src_lang == hp.tgt_lang:
        log.warning(
            "--data.src_lang and --data.tgt_lang are both '%s': the model will learn to copy. "
            "Set them to the two languages of the corpus.", hp.src_lang,
        )  # fmt: skip


class TranslationDataModule(L.LightningDataModule):
    """Parallel data for any nmt model.

    Args:
        data_dir: folder with ``{split}.{lang}``, ``{split}.tsv`` or ``{split}.jsonl`` files.
        hf_dataset: Hugging Face dataset name or local folder (used when ``data_dir`` is unset).
        hf_config: the Hugging Face dataset's configuration name, if it has several.
        src_lang: source language code (file suffix, TSV header or JSON key).
        tgt_lang: target language code (file suffix, TSV header or JSON key).
        train_split: name of the training split (file stem or Hugging Face split).
        val_split: name of the validation split.
        test_split: name of the test split (``nmt test`` and ``nmt predict``).
        vocab_size: SentencePiece pieces per model (the shared one when ``joint_vocab``); 500 suits
            the embedded corpus, real corpora want several thousand (Multi30k: 8000).
        joint_vocab: one SentencePiece model for both sides (lets the network share embeddings).
        model_type: SentencePiece algorithm, ``unigram`` or ``bpe``.
        character_coverage: SentencePiece character coverage (1.0 for alphabets, 0.9995 for CJK).
        max_tokens: padded tokens per training batch (per device).
        eval_max_tokens: padded tokens per validation/test batch (default: ``max_tokens``).
        max_length: training pairs with a side longer than this many subwords are dropped;
            longer evaluation sources are truncated, with a warning.
        max_length_ratio: training pairs whose longer side exceeds this many times the shorter are dropped.
        num_workers: DataLoader worker processes.
        cache_dir: where tokenizers and encoded splits are kept (default ``$NMT_CACHE`` or ``~/.cache/nmt``).
        seed: seed of the batch order.
    """

    def __init__(
        self,
        data_dir: str | None = None,
        hf_dataset: str | None = None,
        hf_config: str | None = None,
        src_lang: str = "en",
        tgt_lang: str = "de",
        train_split: str = "train",
        val_split: str = "val",
        test_split: str = "test",
        vocab_size: int = 500,
        joint_vocab: bool = True,
        model_type: str = "unigram",
        character_coverage: float = 1.0,
        max_tokens: int = 4096,
        eval_max_tokens: int | None = None,
        max_length: int = 256,
        max_length_ratio: float = 3.0,
        num_workers: int = 0,
        cache_dir: str | None = None,
        seed: int = 0,
    ):
        super().__init__()
        self.save_hyperparameters()
        _check_options(self.hparams)
        self.joint_vocab = joint_vocab
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self.tokenizer: Tokenizer | None = None
        self.datasets: dict[str, PairDataset] = {}
        self.texts: dict[str, corpus.ParallelText] = {}
        self._resume: tuple[int, int] | None = None
        #: Where training stands: {"epoch", "batches_done"} (kept current by nmt.callbacks.ResumeState).
        self.position: dict[str, int] = {}

    # Linked into the model by the CLI (SentencePiece gives exactly vocab_size pieces).
    @property
    def src_vocab_size(self) -> int:
        return self.tokenizer.src_vocab_size if self.tokenizer else self.hparams.vocab_size

    @property
    def tgt_vocab_size(self) -> int:
        return self.tokenizer.tgt_vocab_size if self.tokenizer else self.hparams.vocab_size

    # ----------------------------------------------------------------- reading
    def _synthetic_dir(self) -> Path:
        folder = self.cache_dir / f"synthetic-v1-seed{synthetic.DEFAULT_SEED}"
        if not (folder / "test.de").is_file():
            with tempfile.TemporaryDirectory(dir=self.cache_dir) as tmp:
                synthetic.write(tmp)
                folder.mkdir(parents=True, exist_ok=True)
                for f in Path(tmp).iterdir():
                    os.replace(f, folder / f.name)
        return folder

    def _read(self, split: str) -> corpus.ParallelText:
        hp = self.hparams
        if hp.data_dir:
            raw = corpus.read_split(hp.data_dir, split, hp.src_lang, hp.tgt_lang)
        elif hp.hf_dataset:
            raw = corpus.read_hf(hp.hf_dataset, split, hp.src_lang, hp.tgt_lang, hp.hf_config)
        else:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            raw = corpus.read_split(self._synthetic_dir(), split, "en", "de")
            if (hp.src_lang, hp.tgt_lang) == ("de", "en"):
                raw = corpus.ParallelText(raw.tgt, raw.src, raw.origin)
        return corpus.clean(raw, drop_empty=split == hp.train_split)

    # ----------------------------------------------------------------- caching
    def _tokenizer(self, train: corpus.ParallelText) -> Tokenizer:
        hp = self.hparams
        settings = [hp.vocab_size, hp.joint_vocab, hp.model_type, hp.character_coverage]
        path = self.cache_dir / "tokenizers" / f"{_sha(train.src, train.tgt, settings)}.pt"
        if path.is_file():
            return Tokenizer.from_dict(torch.load(path, weights_only=True), origin=str(path))
        log.info("training SentencePiece (%s, %d pieces) on %d pairs", hp.model_type, hp.vocab_size, len(train))
        tok = Tokenizer.train(train.src, train.tgt, hp.vocab_size, hp.joint_vocab, hp.model_type, hp.character_coverage)
        atomic_write(path, lambda tmp: torch.save(tok.to_dict(), tmp))
        return tok

    def _encode(self, split: str, text: corpus.ParallelText, tok: Tokenizer) -> tuple[PairDataset, str]:
        hp = self.hparams
        is_train = split == hp.train_split
        key = _sha(tok.digest(), text.src, text.tgt, is_train, hp.max_length, hp.max_length_ratio)
        path = self.cache_dir / "encoded" / f"{split}-{key}.pt"
        if path.is_file():
            cached = torch.load(path, weights_only=True)
            return PairDataset(cached["src"], cached["tgt"]), cached["report"]
        src, tgt = tok.encode_src(text.src), tok.encode_tgt(text.tgt)
        dropped = text.dropped.copy()
        total = len(text) + sum(dropped.values())
        if is_train:
            keep, too_long = corpus.length_filter(
                [len(s) - 1 for s in src], [len(t) - 2 for t in tgt], hp.max_length, hp.max_length_ratio
            )
            dropped.update(too_long)
            src, tgt = [src[i] for i in keep], [tgt[i] for i in keep]
            if not src:
                corpus.raise_empty(split, text.origin, total, dropped, FILTER_HINTS)
        else:
            cut = sum(len(s) > hp.max_length for s in src)
            if cut:
                dropped["truncated (kept)"] = cut
            src = [s[: hp.max_length - 1] + [s[-1]] if len(s) > hp.max_length else s for s in src]
            if not src:
                corpus.raise_empty(split, text.origin, 0, dropped, FILTER_HINTS)
        report = corpus.report(split, text.origin, total, len(src), text.cleaned, dropped)
        atomic_write(path, lambda tmp: torch.save({"src": src, "tgt": tgt, "report": report}, tmp))
        return PairDataset(src, tgt), report

    def _splits(self, stage: str | None) -> list[str]:
        hp = self.hparams
        return {
            "fit": [hp.train_split, hp.val_split],
            "validate": [hp.train_split, hp.val_split],
            "test": [hp.train_split, hp.test_split],
            "predict": [hp.train_split, hp.test_split],
        }.get(stage or "", [hp.train_split, hp.val_split, hp.test_split])

    def _load(self, stage: str | None, verbose: bool) -> tuple[Tokenizer, dict, dict]:
        texts = {s: self._read(s) for s in self._splits(stage)}
        train = texts[self.hparams.train_split]
        if not len(train):  # SentencePiece cannot learn from nothing: say which file and why
            total = sum(train.dropped.values())
            corpus.raise_empty(self.hparams.train_split, train.origin, total, train.dropped, FILTER_HINTS)
        tok = self._tokenizer(train)
        datasets = {}
        for split, text in texts.items():
            datasets[split], report = self._encode(split, text, tok)
            if verbose:
                log.info(report)
        return tok, texts, datasets

    # ---------------------------------------------------------------- Lightning
    def prepare_data(self) -> None:
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            tempfile.NamedTemporaryFile(dir=self.cache_dir).close()
        except OSError as err:
            raise NmtError(
                f"The cache folder {self.cache_dir} cannot be written ({err.strerror}); set --data.cache_dir "
                "(or $NMT_CACHE) to a folder you can write to."
            ) from None
        self._load(None, verbose=False)

    def setup(self, stage: str | None = None) -> None:
        trainer = getattr(self, "trainer", None)
        self.tokenizer, self.texts, self.datasets = self._load(stage, verbose=trainer is None or trainer.is_global_zero)

    def train_batches(self) -> int:
        """Training batches in one epoch, all ranks together (reads the cached data if not set up yet)."""
        train = self.hparams.train_split
        datasets = self.datasets if train in self.datasets else self._load("fit", verbose=False)[2]
        ds = datasets[train]
        return len(TokenBudgetBatchSampler(ds.lengths(), self.hparams.max_tokens, secondary=[len(t) for t in ds.tgt]))

    def _world(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        return (trainer.world_size, trainer.global_rank) if trainer else (1, 0)

    def _loader(self, split: str, train: bool) -> DataLoader:
        ds = self.datasets[split]
        world, rank = self._world()
        budget = self.hparams.max_tokens if train else (self.hparams.eval_max_tokens or self.hparams.max_tokens)
        sampler = TokenBudgetBatchSampler(
            ds.lengths(), budget, train, self.hparams.seed, world, rank, secondary=[len(t) for t in ds.tgt]
        )
        workers = self.hparams.num_workers
        return DataLoader(
            ds,
            batch_sampler=sampler,
            collate_fn=Batch.collate,
            num_workers=workers,
            pin_memory=torch.cuda.is_available(),
            persistent_workers=workers > 0,
            # Its own generator: creating an iterator would otherwise draw from the global RNG,
            # which dropout uses, and a resumed run creates its iterators at other moments.
            generator=torch.Generator().manual_seed(self.hparams.seed),
        )

    def train_dataloader(self) -> DataLoader:
        loader = self._loader(self.hparams.train_split, train=True)
        loader.batch_sampler.resume, self._resume = self._resume, None
        trainer = self.trainer
        if trainer is not None:
            loader.batch_sampler.epoch_source = lambda: trainer.current_epoch
        return loader

    def state_dict(self) -> dict:
        """Where training stands in the epoch, so a resumed run continues with the next batch."""
        trainer = getattr(self, "trainer", None)
        return dict(self.position) if trainer is not None and trainer.state.fn == "fit" else {}

    def load_state_dict(self, state: dict) -> None:
        if state:
            self.position = dict(state)
            self._resume = (int(state["epoch"]), int(state["batches_done"]))

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.hparams.val_split, train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.hparams.test_split, train=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.hparams.test_split, train=False)

    def references(self, split: str) -> list[str]:
        """Target text of an evaluation split, in dataset order (for scoring)."""
        return self.texts[split].tgt
