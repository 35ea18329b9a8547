"""SentencePiece subword tokenisation: train (or load from cache), encode, decode.

A tokenizer nmt trains numbers the pieces as its SentencePiece models do, with the same special
ids for every model: pad=0, unk=1, bos=2, eos=3. With ``joint=True`` source and target share one
model (and the Transformer can share embeddings). An imported model's tokenizer (a Hugging Face
MarianMT folder, :mod:`nmt.hf`) numbers the pieces its two SentencePiece models cut by a vocabulary
of its own (``vocab``, and ``target_vocab`` when the sides have separate ones), with that
vocabulary's special ids (:class:`Specials`; Marian's decoder starts from its padding id), and gives
exactly ``MarianTokenizer``'s ids. A :class:`Tokenizer` serialises to a small dict of model bytes
(and vocabularies) plus a SHA-256, which checkpoints carry so that a checkpoint alone translates.
"""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass, field

import sentencepiece as spm

from nmt.errors import NmtError

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3  # the special ids of every tokenizer nmt trains
LANGUAGE_CODE = re.compile(r">>[^<>]+<<")  # a multilingual model's target language, as the first word (>>fra<<)


@dataclass(frozen=True)
class Specials:
    """The special ids of a vocabulary: padding, unknown, the decoder's first input (bos) and the end (eos)."""

    pad: int = PAD_ID
    unk: int = UNK_ID
    bos: int = BOS_ID
    eos: int = EOS_ID


def _advice(err: str, vocab_size: int, n: int) -> str:
    """SentencePiece's training error turned into what to change."""
    what = f"SentencePiece cannot build a vocabulary of {vocab_size} pieces from this corpus ({n} sentences)"
    too_high = re.search(r"Vocabulary size too high.*<= (\d+)", err)
    if too_high:
        return f"{what}: it supports at most {too_high.group(1)}. Set --data.vocab_size {too_high.group(1)} or less."
    too_low = re.search(r"smaller than required_chars\. \d+ vs (\d+)", err)
    if too_low:
        return (
            f"{what}: its characters alone need {too_low.group(1)}. Set --data.vocab_size {too_low.group(1)} "
            "or more, or lower --data.character_coverage."
        )
    return f"SentencePiece training failed: {err}"


def _train_model(sentences: list[str], vocab_size: int, model_type: str, coverage: float) -> bytes:
    buffer = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences),
            model_writer=buffer,
            vocab_size=vocab_size,
            model_type=model_type,
            character_coverage=coverage,
            pad_id=PAD_ID,
            unk_id=UNK_ID,
            bos_id=BOS_ID,
            eos_id=EOS_ID,
            input_sentence_size=2_000_000,
            shuffle_input_sentence=False,  # the same corpus always gives the same model
            num_threads=1,  # one thread: the same corpus always gives the same model
            minloglevel=2,
        )
    except RuntimeError as err:
        raise NmtError(_advice(str(err).rstrip("."), vocab_size, len(sentences))) from None
    return buffer.getvalue()


@dataclass
class Tokenizer:
    """Source and target SentencePiece processors (the same object when ``joint``), and for an imported model
    the vocabularies that number their pieces (None: SentencePiece's own ids)."""

    src_model: bytes
    tgt_model: bytes
    joint: bool
    vocab: list[str] | None = None
    target_vocab: list[str] | None = None
    decoder_start: str = "<pad>"  # with a vocabulary: the piece the decoder starts from (Marian's <pad>)
    specials: Specials = field(init=False)

    def __post_init__(self) -> None:
        self.src = spm.SentencePieceProcessor(model_proto=self.src_model)
        self.tgt = (
            self.src if self.src_model == self.tgt_model else spm.SentencePieceProcessor(model_proto=self.tgt_model)
        )
        self._ids: dict[str, int] | None = None
        self._target_ids: dict[str, int] | None = None
        self.specials = Specials()
        if self.vocab is not None:
            self._ids = {piece: i for i, piece in enumerate(self.vocab)}
            self._target_ids = (
                self._ids if self.target_vocab is None else {p: i for i, p in enumerate(self.target_vocab)}
            )
            missing = [t for t in ("<pad>", "<unk>", "</s>") if t not in self._ids or t not in self._target_ids]
            if missing:
                raise NmtError(f"The vocabulary has no {missing[0]}; it is not a MarianMT vocabulary.")
            if self.decoder_start not in self._target_ids:
                raise NmtError(f"The target vocabulary has no {self.decoder_start}, the piece the decoder starts from.")
            ids = self._target_ids
            self.specials = Specials(ids["<pad>"], ids["<unk>"], ids[self.decoder_start], ids["</s>"])
            if (self._ids["</s>"], self._ids["<pad>"]) != (self.specials.eos, self.specials.pad):
                raise NmtError("The source and target vocabularies number </s> or <pad> differently; nmt needs one id "
                               "for each.")  # fmt: skip

    @classmethod
    def train(
        cls,
        src: list[str],
        tgt: list[str],
        vocab_size: int = 500,
        joint: bool = True,
        model_type: str = "unigram",
        character_coverage: float = 1.0,
    ) -> Tokenizer:
        """Train on the training split; ``vocab_size`` is per model (the joint one when ``joint``)."""
        if model_type not in ("unigram", "bpe"):
            raise NmtError(f"--data.model_type must be 'unigram' or 'bpe', not '{model_type}'.")
        if joint:
            model = _train_model(src + tgt, vocab_size, model_type, character_coverage)
            return cls(model, model, True)
        return cls(
            _train_model(src, vocab_size, model_type, character_coverage),
            _train_model(tgt, vocab_size, model_type, character_coverage),
            False,
        )

    @property
    def src_vocab_size(self) -> int:
        return len(self.vocab) if self.vocab is not None else self.src.get_piece_size()

    @property
    def tgt_vocab_size(self) -> int:
        if self.vocab is not None:
            return len(self.target_vocab or self.vocab)
        return self.tgt.get_piece_size()

    def _pieces(self, line: str, side: str) -> list[str]:
        """The pieces of a line (for an imported model: a leading language code such as >>fra<< is one piece of
        its own, as MarianTokenizer makes it)."""
        model = self.src if side == "src" else self.tgt
        code = LANGUAGE_CODE.match(line) if self.vocab is not None else None
        if code:
            return [code.group(), *model.encode(line[code.end() :], out_type=str)]
        return model.encode(line, out_type=str)

    def _ids_of(self, lines: list[str], side: str) -> list[list[int]]:
        """The ids of each line's pieces, without special ids."""
        if self.vocab is None:
            return (self.src if side == "src" else self.tgt).encode(lines)
        ids, unk = (self._ids if side == "src" else self._target_ids), self.specials.unk
        return [[ids.get(piece, unk) for piece in self._pieces(line, side)] for line in lines]

    def encode_src(self, lines: list[str]) -> list[list[int]]:
        """Source ids, ending with EOS."""
        return [ids + [self.specials.eos] for ids in self._ids_of(lines, "src")]

    def encode_tgt(self, lines: list[str]) -> list[list[int]]:
        """Target ids, BOS ... EOS (the Batch shifts them into decoder input and output)."""
        return [[self.specials.bos] + ids + [self.specials.eos] for ids in self._ids_of(lines, "tgt")]

    def encode_prefix(self, text: str) -> list[int]:
        """The target ids a translation starting with ``text`` starts with (no BOS, no EOS)."""
        return self._ids_of([text], "tgt")[0]

    def decode_tgt(self, ids: list[list[int]]) -> list[str]:
        """Detokenised target text; padding, BOS and EOS are left out, an unknown piece shows as SentencePiece's
        " ⁇ " (both engines render it so)."""
        s = self.specials
        kept = [[i for i in seq if i not in (s.pad, s.bos, s.eos)] for seq in ids]
        if self.vocab is None:
            return self.tgt.decode(kept)
        return [self.tgt.decode_pieces(self.tgt_pieces(seq)).replace("▁", " ").strip() for seq in kept]

    def unknown(self, text: str, side: str = "tgt") -> list[str]:
        """The parts of ``text`` the ``side`` vocabulary lacks (each becomes one ``<unk>``)."""
        pieces, ids = self._pieces(text, side), self._ids_of([text], side)[0]
        return [piece for piece, i in zip(pieces, ids) if i == self.specials.unk]

    def src_pieces(self, ids: list[int]) -> list[str]:
        if self.vocab is not None:
            return [self.vocab[i] for i in ids]
        return [self.src.id_to_piece(i) for i in ids]

    def tgt_pieces(self, ids: list[int]) -> list[str]:
        if self.vocab is not None:
            return [(self.target_vocab or self.vocab)[i] for i in ids]
        return [self.tgt.id_to_piece(i) for i in ids]

    def tgt_id(self, piece: str) -> int:
        """The target id of a piece (unknown: the unknown id)."""
        if self._target_ids is not None:
            return self._target_ids.get(piece, self.specials.unk)
        return self.tgt.piece_to_id(piece)

    def to_dict(self) -> dict:
        """Plain bytes and strings only, so a checkpoint can be loaded with ``weights_only=True``."""
        data = {"src": self.src_model, "tgt": self.tgt_model, "joint": self.joint, "sha256": self.digest()}
        if self.vocab is not None:
            target = None if self.target_vocab is None else list(self.target_vocab)
            data.update(vocab=list(self.vocab), target_vocab=target, decoder_start=self.decoder_start)
        return data

    def digest(self) -> str:
        h = hashlib.sha256(self.src_model + b"\0" + self.tgt_model)
        for vocab in (self.vocab, self.target_vocab):
            if vocab is not None:
                h.update(b"\0" + "\n".join(vocab).encode())
        if self.vocab is not None:
            h.update(b"\0" + self.decoder_start.encode())
        return h.hexdigest()

    @classmethod
    def from_dict(cls, data: dict, origin: str = "checkpoint") -> Tokenizer:
        try:
            tok = cls(data["src"], data["tgt"], bool(data["joint"]), data.get("vocab"), data.get("target_vocab"),
                      data.get("decoder_start", "<pad>"))  # fmt: skip
        except (KeyError, TypeError, RuntimeError) as err:
            raise NmtError(f"The tokenizer stored in {origin} is unreadable ({err}); the file is damaged.") from None
        if data.get("sha256") not in (None, tok.digest()):
            raise NmtError(f"The tokenizer stored in {origin} does not match its SHA-256; the file is damaged.")
        return tok
