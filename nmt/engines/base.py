"""What every decoding engine shares: the options, the prepared source lines, the result, the interface.

nmt translates with one of two engines: its own search on any network or ensemble
(:mod:`nmt.engines.native`), or CTranslate2 on an export (:mod:`nmt.engines.ctranslate2`).
``nmt translate``, ``nmt score``, ``nmt serve`` and the benchmarks open one engine
(:func:`nmt.engines.open_engine`) and then call only what this module declares:

- :class:`DecodeOptions`: how to decode, validated in one place (:meth:`DecodeOptions.check`);
  the command line shows its errors as ``nmt: error``, the server as 422 answers;
- :meth:`Engine.prepare`: source lines -> :class:`Prepared` (normalised, encoded, cut to the
  model's length with the lines that were cut listed, target prefixes encoded), done once;
- :meth:`Engine.run`: prepared lines -> one list of :class:`Translation` per line, best first,
  decoded in the token-budget batches of :meth:`Engine.batches`;
- :meth:`Engine.score`: the log-probability of given targets, token by token.

Prefixes travel with the lines (one per line) rather than in the options, so that requests with
different prefixes still share the options that decide whether they may share a batch.
"""

from __future__ import annotations

import abc
import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from typing import ClassVar

from nmt.data.batching import TokenBudgetBatchSampler
from nmt.data.corpus import normalize
from nmt.data.tokenizer import Tokenizer
from nmt.errors import NmtError

log = logging.getLogger(__name__)


class OptionError(NmtError):
    """An impossible decoding option; ``option`` names it (the HTTP layer answers 422, the CLI ``nmt: error``)."""

    def __init__(self, option: str, message: str):
        super().__init__(message)
        self.option = option


def flag(name: str) -> str:
    """How the command line spells an option: ``--max-len-a``."""
    return "--" + name.replace("_", "-")


@dataclass(frozen=True)
class DecodeOptions:
    """How to decode, whichever the engine.

    Attributes:
        beam: beam size (1: greedy search).
        nbest: hypotheses per line (at most ``beam``; with ``sample``, the number of samples).
        length_penalty: GNMT alpha of beam search (None: the model's).
        max_len_a: outputs end after ``a * source length + b`` tokens (None: the model's a).
        max_len_b: b of ``max_len_a`` (None: the model's).
        max_tokens: source tokens per batch.
        sample: draw ``nbest`` random translations instead of searching.
        topk: sampling from the k most probable tokens (0: all).
        topp: sampling from the smallest set of tokens holding this probability (1: all).
        temperature: sampling divides the log-probabilities by this.
        seed: the same seed gives the same samples.
        attention: return each hypothesis's attention over the source (slower).
        scores: the caller shows scores: nmt's own search always has them exactly, token by token;
            CTranslate2 scores its outputs again (teacher forcing) to give the same numbers.
    """

    beam: int = 1
    nbest: int = 1
    length_penalty: float | None = None
    max_len_a: float | None = None
    max_len_b: int | None = None
    max_tokens: int = 4096
    sample: bool = False
    topk: int = 0
    topp: float = 1.0
    temperature: float = 1.0
    seed: int = 0
    attention: bool = False
    scores: bool = False

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    def check(self, spell: Callable[[str], str] = flag) -> DecodeOptions:
        """``self`` if every value is possible, else :class:`OptionError` naming the option (as ``spell`` writes
        it) and the value."""
        s = spell

        def refuse(option: str, message: str) -> None:
            raise OptionError(option, message)

        if self.beam < 1:
            refuse("beam", f"{s('beam')} must be 1 (greedy) or more, got {self.beam}.")
        if self.sample:
            if self.beam > 1:
                refuse("sample", f"{s('sample')} draws translations instead of searching: give {s('sample')} or "
                       f"{s('beam')}, not both.")  # fmt: skip
            if self.nbest < 1:
                refuse("nbest", f"{s('nbest')} must be 1 or more, got {self.nbest}.")
            if self.topk < 0:
                refuse("topk", f"{s('topk')} must be 0 (every token) or more, got {self.topk}.")
            if not 0 < self.topp <= 1:
                refuse("topp", f"{s('topp')} must be above 0 and at most 1, got {self.topp}.")
            if not self.temperature > 0 or not math.isfinite(self.temperature):
                refuse("temperature", f"{s('temperature')} must be above 0, got {self.temperature}.")
        else:
            if not 1 <= self.nbest <= self.beam:
                refuse("nbest", f"{s('nbest')} must be between 1 and {s('beam')} ({self.beam}), got {self.nbest}.")
            defaults = (("topk", 0), ("topp", 1.0), ("temperature", 1.0))
            changed = [name for name, default in defaults if getattr(self, name) != default]
            if changed:
                refuse(changed[0], f"{s(changed[0])} applies to {s('sample')}; add {s('sample')}.")
        if self.length_penalty is not None and not math.isfinite(self.length_penalty):
            refuse("length_penalty", f"{s('length_penalty')} must be a number, got {self.length_penalty}.")
        for name in ("max_len_a", "max_len_b"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value >= 0):
                refuse(name, f"{s(name)} must be 0 or more (outputs end after a * source length + b), got {value}.")
        if self.max_tokens < 1:
            refuse("max_tokens", f"{s('max_tokens')} must be a positive number of source tokens per batch, "
                   f"got {self.max_tokens}.")  # fmt: skip
        return self


@dataclass
class Translation:
    """One hypothesis: detokenised text, its (length-normalised) score, and per-token detail."""

    text: str
    score: float
    tokens: list[str]  # target subwords, EOS excluded
    token_scores: list[float]  # log-probability of each subword (and of EOS, last); CTranslate2: [] unless asked
    attention: list[list[float]] | None  # (target subwords + EOS) x source subwords (+ EOS)


@dataclass
class Prepared:
    """Source lines made ready for an engine, once: what every engine decodes from.

    ``texts``: each line normalised ("" for an empty line, which gets no hypotheses); ``src``: its
    source ids ending with EOS, cut to the model's ``max_source_positions`` (EOS kept);
    ``too_long``: the lines that were cut; ``prefixes``: target ids each line's translations start
    with ([] for none), or None; ``unknown_prefix``: line -> the parts of its prefix the target
    vocabulary lacks.
    """

    texts: list[str]
    src: list[list[int]]
    too_long: list[int] = field(default_factory=list)
    prefixes: list[list[int]] | None = None
    unknown_prefix: dict[int, list[str]] = field(default_factory=dict)

    @property
    def rows(self) -> list[int]:
        """The lines to translate (those with text)."""
        return [i for i, text in enumerate(self.texts) if text]

    def select(self, rows: list[int]) -> Prepared:
        """The lines ``rows``, in that order."""
        cut = set(self.too_long)
        return Prepared([self.texts[i] for i in rows], [self.src[i] for i in rows],
                        [j for j, i in enumerate(rows) if i in cut],
                        None if self.prefixes is None else [self.prefixes[i] for i in rows])  # fmt: skip


def prepare(tokenizer: Tokenizer, lines: list[str], max_positions: int, prefixes: list[str] | None = None) -> Prepared:
    """Normalise and encode ``lines`` (and their target ``prefixes``), cutting sources to ``max_positions``."""
    texts = [normalize(line) for line in lines]
    src = tokenizer.encode_src(texts)
    too_long = [i for i, s in enumerate(src) if len(s) > max_positions]
    for i in too_long:
        src[i] = src[i][: max_positions - 1] + [src[i][-1]]
    forced, unknown = None, {}
    if prefixes is not None:
        forced = [tokenizer.encode_prefix(normalize(p)) for p in prefixes]
        unknown = {
            i: tokenizer.unknown(normalize(p))
            for i, (p, ids) in enumerate(zip(prefixes, forced))
            if tokenizer.specials.unk in ids
        }
    return Prepared(texts, src, too_long, forced, unknown)


class Engine(abc.ABC):
    """A loaded model that translates: nmt's own search (``--engine nmt``) or CTranslate2's."""

    name: ClassVar[str]
    tokenizer: Tokenizer
    max_source_positions: int

    @classmethod
    def refuse(cls, options: DecodeOptions, members: int = 1, precision: str = "32",
               spell: Callable[[str], str] = flag) -> None:  # fmt: skip
        """Raise :class:`OptionError` for what this engine cannot do (before it is loaded), naming the option as
        ``spell`` writes it; nothing by default."""
        return None

    @abc.abstractmethod
    def defaults(self) -> dict:
        """The model's own search settings: ``max_len_a``, ``max_len_b``, ``length_penalty``."""

    def prepare(self, lines: list[str], prefixes: list[str] | None = None) -> Prepared:
        return prepare(self.tokenizer, lines, self.max_source_positions, prefixes)

    def batches(self, prepared: Prepared, options: DecodeOptions) -> Iterator[list[int]]:
        """The lines to translate, in batches of similar length within ``options.max_tokens`` source tokens
        (samples are rows of their own: the budget is shared among ``nbest``)."""
        rows = prepared.rows
        budget = max(options.max_tokens // options.nbest, 1) if options.sample else options.max_tokens
        for batch in TokenBudgetBatchSampler([len(prepared.src[i]) for i in rows], budget, shuffle=False):
            yield [rows[j] for j in batch]

    @abc.abstractmethod
    def run(self, prepared: Prepared, options: DecodeOptions) -> list[list[Translation]]:
        """``options.nbest`` translations of each prepared line, best first (none for an empty line)."""

    def translate(self, lines: list[str], options: DecodeOptions, prefixes: list[str] | None = None,
                  ) -> list[list[Translation]]:  # fmt: skip
        """:meth:`run` on :meth:`prepare`'d lines, warning about sources cut to the model's length."""
        options.check()
        self.refuse(options)
        prepared = self.prepare(lines, prefixes)
        for i, parts in list(prepared.unknown_prefix.items())[:5]:
            log.warning(
                "the prefix of line %d holds %s, which the target vocabulary lacks: it becomes <unk> (shown as ⁇) "
                "and the model continues from there", i + 1, ", ".join(repr(p) for p in parts),
            )  # fmt: skip
        if len(prepared.unknown_prefix) > 5:
            log.warning("... and %d more prefixes with unknown characters", len(prepared.unknown_prefix) - 5)
        if prepared.too_long:
            log.warning(
                "%d input line(s) exceed the model's %d source tokens (first: line %d); they are truncated to fit.",
                len(prepared.too_long), self.max_source_positions, prepared.too_long[0] + 1,
            )  # fmt: skip
        return self.run(prepared, options)

    @abc.abstractmethod
    def score(self, sources: list[str], targets: list[str], max_tokens: int = 4096) -> list[list[float]]:
        """The log-probability of each target token (and of EOS, last) given its source, per pair."""

    @abc.abstractmethod
    def describe(self) -> dict:
        """What the model is (``nmt serve``'s GET /models): ``network``, ``parameters``, ``steps``, ``languages``,
        ``layers`` and ``heads`` of its attention, and its ``features`` (attention, alternatives, sampling)."""

    @abc.abstractmethod
    def details(self, prepared: Prepared, results: list[list[Translation]], alternatives: int = 0,
                attention: bool = False, max_tokens: int = 4096) -> list[list[dict]]:  # fmt: skip
        """What lies behind each translation of :meth:`run`, per line and hypothesis, computed again by teacher
        forcing: its ``tokens`` and ``source_tokens``, each token's ``probabilities`` (EOS last), the
        ``alternatives`` most probable tokens at each step (piece, probability) and the ``attention`` of every
        layer and head (layers x heads x target pieces and EOS x source pieces and EOS), when asked."""
