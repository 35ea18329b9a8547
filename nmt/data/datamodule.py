"""``TranslationDataModule``: corpus -> SentencePiece -> encoded store -> token-budget batches.

With neither ``data_dir`` nor ``hf_dataset`` it uses the embedded synthetic corpus
(:mod:`nmt.data.synthetic`). ``prepare_data`` (one process per node) trains the tokenizer on a
sample of the training split and streams every split into an encoded store on disk
(:mod:`nmt.data.store`); ``setup`` (every process) opens them memory-mapped. Both find what is
already cached by the content of the files and the settings, and compute only what is missing.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import tempfile
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from nmt.checkpoint import Checkpoint
from nmt.data import corpus, identity, sources, store, synthetic
from nmt.data.batching import Batch, TokenBudgetBatchSampler
from nmt.data.encoding import Settings
from nmt.data.parallel import default_workers
from nmt.data.spm_sample import SPM_SEED, spm_sample
from nmt.data.tokenizer import Specials, Tokenizer
from nmt.errors import NmtError
from nmt.files import atomic_folder, atomic_write

log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    return Path(os.environ.get("NMT_CACHE", Path.home() / ".cache" / "nmt"))


def split_name(split: str | list[str]) -> str:
    """One name for a split given as a name, a glob or a list of them."""
    return split if isinstance(split, str) else "+".join(split)


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
        (hp.prepare_workers is not None and hp.prepare_workers < 1,
         f"--data.prepare_workers must be 1 or more (or null: every core), got {hp.prepare_workers}"),
        (hp.spm_sample < 1, f"--data.spm_sample must be positive, got {hp.spm_sample}"),
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
        train_split: name of the training split (file stem or Hugging Face split); several files
            (shards) as a glob such as ``train-*`` or a list of names, read in sorted order.
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
        prepare_workers: processes that encode the corpus on first use (default: every core).
        spm_sample: SentencePiece learns from at most this many training pairs, drawn at random
            (fixed seed) from the whole split when it has more.
        cache_dir: where tokenizers and encoded splits are kept (default ``$NMT_CACHE`` or ``~/.cache/nmt``).
        tokenizer: an nmt checkpoint whose SentencePiece models to use instead of training them (its
            vocabulary then replaces vocab_size, joint_vocab, model_type and character_coverage);
            ``nmt fit --init_from`` sets it.
        seed: seed of the batch order.
    """

    def __init__(
        self,
        data_dir: str | None = None,
        hf_dataset: str | None = None,
        hf_config: str | None = None,
        src_lang: str = "en",
        tgt_lang: str = "de",
        train_split: str | list[str] = "train",
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
        prepare_workers: int | None = None,
        spm_sample: int = 1_000_000,
        cache_dir: str | None = None,
        tokenizer: str | None = None,
        seed: int = 0,
    ):
        super().__init__()
        self.save_hyperparameters()
        _check_options(self.hparams)
        self.joint_vocab = joint_vocab
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self.tokenizer: Tokenizer | None = None
        self.given_tokenizer = self._given_tokenizer(tokenizer) if tokenizer else None
        if self.given_tokenizer is not None:  # the vocabulary sizes linked into the network are its
            self.tokenizer, self.joint_vocab = self.given_tokenizer, self.given_tokenizer.joint
        self.datasets: dict[str, store.EncodedSplit] = {}
        self.train_name = split_name(train_split)
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

    @property
    def specials(self) -> Specials:
        """The tokenizer's special ids (linked into the network; nmt's own until a given tokenizer says otherwise)."""
        return self.tokenizer.specials if self.tokenizer else Specials()

    # ----------------------------------------------------------------- reading
    def synthetic_dir(self) -> Path:
        """The embedded corpus's files (written into the cache on first use), alignments included."""
        folder = self.cache_dir / f"synthetic-v2-seed{synthetic.DEFAULT_SEED}"  # v2: with .align files
        if not (folder / "test.align").is_file():
            atomic_folder(folder, synthetic.write, replace=folder.exists())
        return folder

    def source(self, split: str | list[str]) -> sources.Source:
        """Where a split's pairs come from."""
        hp = self.hparams
        if hp.data_dir:
            return sources.find_source(hp.data_dir, split, hp.src_lang, hp.tgt_lang)
        if hp.hf_dataset:
            return sources.hf_source(hp.hf_dataset, split, hp.src_lang, hp.tgt_lang, hp.hf_config)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        langs = ("de", "en") if (hp.src_lang, hp.tgt_lang) == ("de", "en") else ("en", "de")
        return sources.find_source(self.synthetic_dir(), split, *langs)

    def evaluation_split(self, stage: str) -> str:
        """The split a stage evaluates on: the validation split for ``fit`` and ``validate``, the test split for
        ``test`` and ``predict``."""
        return self.hparams.val_split if stage in ("fit", "validate") else self.hparams.test_split

    def text(self, stage: str) -> corpus.ParallelText:
        """The evaluation text of ``stage`` (see :meth:`evaluation_split`), read from its files now (cleaned as for
        encoding)."""
        return corpus.clean(corpus.read(self.source(self.evaluation_split(stage))), drop_empty=False)

    def references(self, stage: str) -> list[str]:
        """Target text of ``stage``'s evaluation split, in dataset order (for scoring)."""
        return self.text(stage).tgt

    # ----------------------------------------------------------------- caching
    def _workers(self) -> int:
        return self.hparams.prepare_workers or default_workers()

    @staticmethod
    def _given_tokenizer(path: str) -> Tokenizer:
        return Tokenizer.from_dict(Checkpoint.read(path).tokenizer, origin=path)

    def _tokenizer(self) -> Tokenizer:
        if self.given_tokenizer is not None:
            return self.given_tokenizer
        hp = self.hparams
        source = self.source(hp.train_split)
        settings = [hp.vocab_size, hp.joint_vocab, hp.model_type, hp.character_coverage, hp.spm_sample, SPM_SEED]
        files = identity.source_identity(source, self.cache_dir)
        path = self.cache_dir / "tokenizers" / f"{identity.key(files, settings)}.pt"
        if path.is_file():
            return Tokenizer.from_dict(torch.load(path, weights_only=True), origin=str(path))
        train = spm_sample(source, hp.spm_sample, self._workers())
        if not len(train):  # SentencePiece cannot learn from nothing: say which file and why
            total = sum(train.dropped.values())
            corpus.raise_empty(self.train_name, source.origin, total, train.dropped, store.HINTS)
        log.info("training SentencePiece (%s, %d pieces) on %d pairs", hp.model_type, hp.vocab_size, len(train))
        tok = Tokenizer.train(train.src, train.tgt, hp.vocab_size, hp.joint_vocab, hp.model_type, hp.character_coverage)
        atomic_write(path, lambda tmp: torch.save(tok.to_dict(), tmp))
        return tok

    def _store(self, split: str | list[str], tok: Tokenizer) -> store.EncodedSplit:
        hp = self.hparams
        name = split_name(split)
        source = self.source(split)
        settings = Settings(name == self.train_name, hp.max_length, hp.max_length_ratio)
        files = identity.source_identity(source, self.cache_dir)
        key = identity.key(store.FORMAT, tok.digest(), files, vars(settings))
        folder = self.cache_dir / "stores" / f"{re.sub(r'[^A-Za-z0-9_.+-]', '_', name)[:60]}-{key}"
        if (folder / "meta.json").is_file():
            why = store.damage(folder)
            if why is None:
                return store.EncodedSplit(folder)
            log.warning("the encoded store %s is damaged (%s); encoding %s again", folder, why, name)
            store.build(folder, name, source, tok, settings, self._workers(), replace=True)
        else:
            log.info("encoding %s into %s", name, folder)
            store.build(folder, name, source, tok, settings, self._workers())
        return store.EncodedSplit(folder)

    def _splits(self, stage: str | None) -> list[str | list[str]]:
        hp = self.hparams
        return {
            "fit": [hp.train_split, hp.val_split],
            "validate": [hp.train_split, hp.val_split],
            "test": [hp.train_split, hp.test_split],
            "predict": [hp.train_split, hp.test_split],
        }.get(stage or "", [hp.train_split, hp.val_split, hp.test_split])

    def _load(self, stage: str | None, verbose: bool) -> tuple[Tokenizer, dict[str, store.EncodedSplit]]:
        for split in self._splits(stage):  # a missing split is named before SentencePiece learns or anything is encoded
            self.source(split)
        tok = self._tokenizer()
        datasets = {split_name(split): self._store(split, tok) for split in self._splits(stage)}
        if verbose:
            for dataset in datasets.values():
                log.info(dataset.report)
        return tok, datasets

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
        trainer = getattr(self, "trainer", None)
        stage = trainer.state.fn.value if trainer is not None and trainer.state.fn is not None else None
        self._load(stage, verbose=False)  # the splits this command uses (nmt fit needs no test split)

    def setup(self, stage: str | None = None) -> None:
        trainer = getattr(self, "trainer", None)
        verbose = trainer is None or trainer.is_global_zero
        self.tokenizer, self.datasets = self._load(stage, verbose=verbose)
        if stage in (None, "fit"):
            self._check_budget(verbose)

    def _check_budget(self, verbose: bool) -> None:
        """Refuse a --data.max_tokens below most training pairs (every batch would hold one pair, over the budget),
        and say how many pairs are longer than it."""
        lengths = self.datasets[self.train_name].lengths()
        budget = self.hparams.max_tokens
        median, longest = int(np.median(lengths)), int(lengths.max())
        if budget < median:
            raise NmtError(
                f"--data.max_tokens {budget} is below most training pairs (median {median} tokens, longest {longest}): "
                f"nearly every batch would hold one pair, over the budget. Use a budget of many pairs, e.g. "
                f"--data.max_tokens {max(4096, 32 * longest)}."
            )
        over = int((lengths > budget).sum())
        if over and verbose:
            log.warning("%d training pairs are longer than --data.max_tokens %d (longest %d tokens): each is trained "
                        "in a batch of its own.", over, budget, longest)  # fmt: skip

    def train_batches(self) -> int:
        """Training batches in one epoch, all ranks together (opens the stores if not set up yet)."""
        datasets = self.datasets if self.train_name in self.datasets else self._load("fit", verbose=False)[1]
        ds = datasets[self.train_name]
        return len(TokenBudgetBatchSampler(ds.lengths(), self.hparams.max_tokens, secondary=ds.tgt_lengths()))

    def _world(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        return (trainer.world_size, trainer.global_rank) if trainer else (1, 0)

    def _loader(self, split: str, train: bool) -> DataLoader:
        ds = self.datasets[split]
        world, rank = self._world()
        budget = self.hparams.max_tokens if train else (self.hparams.eval_max_tokens or self.hparams.max_tokens)
        resume, epoch_source = None, None
        if train:
            resume, self._resume = self._resume, None
            trainer = getattr(self, "trainer", None)
            epoch_source = (lambda: trainer.current_epoch) if trainer is not None else None
        sampler = TokenBudgetBatchSampler(
            ds.lengths(), budget, train, self.hparams.seed, world, rank, secondary=ds.tgt_lengths(), resume=resume,
            epoch_source=epoch_source,
        )  # fmt: skip
        workers = self.hparams.num_workers
        return DataLoader(
            ds,
            batch_sampler=sampler,
            collate_fn=functools.partial(Batch.collate, pad_id=self.tokenizer.specials.pad),
            num_workers=workers,
            pin_memory=torch.cuda.is_available(),
            persistent_workers=workers > 0,
            # Its own generator: creating an iterator would otherwise draw from the global RNG,
            # which dropout uses, and a resumed run creates its iterators at other moments.
            generator=torch.Generator().manual_seed(self.hparams.seed),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_name, train=True)

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
