"""SentencePiece subword tokenisation: train (or load from cache), encode, decode.

Special ids are fixed for every model: pad=0, unk=1, bos=2, eos=3. With ``joint=True``
source and target share one model (and the Transformer can share embeddings).
A :class:`Tokenizer` serialises to a small dict of model bytes plus a SHA-256, which
checkpoints carry so that a checkpoint alone is enough to translate.
"""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass

import sentencepiece as spm

from nmt.errors import NmtError

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3


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
    """Source and target SentencePiece processors (the same object when ``joint``)."""

    src_model: bytes
    tgt_model: bytes
    joint: bool

    def __post_init__(self) -> None:
        self.src = spm.SentencePieceProcessor(model_proto=self.src_model)
        self.tgt = self.src if self.joint else spm.SentencePieceProcessor(model_proto=self.tgt_model)

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
        return self.src.get_piece_size()

    @property
    def tgt_vocab_size(self) -> int:
        return self.tgt.get_piece_size()

    def encode_src(self, lines: list[str]) -> list[list[int]]:
        """Source ids, ending with EOS."""
        return [ids + [EOS_ID] for ids in self.src.encode(lines)]

    def encode_tgt(self, lines: list[str]) -> list[list[int]]:
        """Target ids, BOS ... EOS (the Batch shifts them into decoder input and output)."""
        return [[BOS_ID] + ids + [EOS_ID] for ids in self.tgt.encode(lines)]

    def decode_tgt(self, ids: list[list[int]]) -> list[str]:
        """Detokenised target text; padding, BOS and EOS are left out, an unknown piece shows as SentencePiece's
        " ⁇ " (both engines render it so)."""
        return self.tgt.decode([[i for i in seq if i == UNK_ID or i > EOS_ID] for seq in ids])

    def unknown(self, text: str, side: str = "tgt") -> list[str]:
        """The parts of ``text`` the ``side`` vocabulary lacks (each becomes one ``<unk>``)."""
        model = self.tgt if side == "tgt" else self.src
        return [piece for piece, i in zip(model.encode(text, out_type=str), model.encode(text)) if i == UNK_ID]

    def src_pieces(self, ids: list[int]) -> list[str]:
        return [self.src.id_to_piece(i) for i in ids]

    def tgt_pieces(self, ids: list[int]) -> list[str]:
        return [self.tgt.id_to_piece(i) for i in ids]

    def to_dict(self) -> dict:
        """Plain bytes and strings only, so a checkpoint can be loaded with ``weights_only=True``."""
        return {"src": self.src_model, "tgt": self.tgt_model, "joint": self.joint, "sha256": self.digest()}

    def digest(self) -> str:
        return hashlib.sha256(self.src_model + b"\0" + self.tgt_model).hexdigest()

    @classmethod
    def from_dict(cls, data: dict, origin: str = "checkpoint") -> Tokenizer:
        try:
            tok = cls(data["src"], data["tgt"], bool(data["joint"]))
        except (KeyError, TypeError, RuntimeError) as err:
            raise NmtError(f"The tokenizer stored in {origin} is unreadable ({err}); the file is damaged.") from None
        if data.get("sha256") not in (None, tok.digest()):
            raise NmtError(f"The tokenizer stored in {origin} does not match its SHA-256; the file is damaged.")
        return tok
