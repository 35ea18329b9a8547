"""``DecoderState``: what a network carries from one decoding step to the next.

The search (:mod:`nmt.search`) treats a state as opaque rows, one per hypothesis, and calls only
two methods: :meth:`DecoderState.expand` once (room for ``beam`` hypotheses per sentence) and
:meth:`DecoderState.reorder` after every step (keep the rows of the surviving hypotheses).

Each network declares its state as a dataclass whose tensor fields say how they move:

- ``row_field()``: one row per hypothesis (a recurrent hidden state); every reorder gathers it.
- ``sentence_field()``: one row per hypothesis, but equal for all hypotheses of a sentence (the
  GRU's summary vector): moving rows among a sentence's beams leaves it as it is.
- ``source_field()``: one row per *sentence* (encoder output, its projections, the mask), read by
  the ``group`` consecutive hypotheses of that sentence at once; it is never copied per beam and
  only follows sentences when some leave the batch.

Fields without a kind (a step counter, a flag) are carried along unchanged. A network with a
cheaper way to move its rows (the Transformer's lazily reordered cache) overrides the methods.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field

import torch

ROW, SENTENCE, SOURCE = "row", "sentence", "source"


def row_field(default=dataclasses.MISSING):
    return field(default=default, metadata={"kind": ROW})


def sentence_field(default=dataclasses.MISSING):
    return field(default=default, metadata={"kind": SENTENCE})


def source_field(default=dataclasses.MISSING):
    return field(default=default, metadata={"kind": SOURCE})


def take(value, index: torch.Tensor):
    """``index_select`` along dim 0 of every tensor in ``value`` (a tensor, or tuples/lists of them, or None)."""
    if isinstance(value, torch.Tensor):
        return value.index_select(0, index)
    if isinstance(value, (list, tuple)):
        return type(value)(take(v, index) for v in value)
    return value


def _rows(value) -> int | None:
    if isinstance(value, torch.Tensor):
        return value.size(0)
    if isinstance(value, (list, tuple)):
        return next((n for n in map(_rows, value) if n is not None), None)
    return None


@functools.cache
def _fields(cls: type, kind: str) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls) if f.metadata.get("kind") == kind)


@dataclass(kw_only=True)
class DecoderState:
    """Base of every network's decoder state; ``group`` hypotheses share each source row."""

    group: int = 1

    def _fields(self, kind: str) -> tuple[str, ...]:
        return _fields(type(self), kind)

    @property
    def rows(self) -> int:
        """Hypotheses (decoder rows) in this state."""
        for name in self._fields(ROW) + self._fields(SENTENCE):
            n = _rows(getattr(self, name))
            if n is not None:
                return n
        return next(n for n in (_rows(getattr(self, s)) for s in self._fields(SOURCE)) if n is not None) * self.group

    def expand(self, beam: int) -> DecoderState:
        """Room for ``beam`` hypotheses per sentence: each row becomes ``beam`` consecutive rows."""
        if beam == 1:
            return self
        index = torch.arange(self.rows, device=self._device()).repeat_interleave(beam)
        return dataclasses.replace(self, **self.moved(index, within=False, shared=False), group=self.group * beam)

    def reorder(self, index: torch.Tensor) -> DecoderState:
        """The rows ``index`` (R',) of this state, in that order.

        The search keeps a contract that lets shared rows stay put: once ``group`` > 1, either the
        same sentences remain (R' == R, rows moved among each sentence's own beams) or whole
        sentences leave (their ``group`` rows go together) and the others keep their order.
        """
        within = self.group > 1 and index.numel() == self.rows
        return dataclasses.replace(self, **self.moved(index, within, shared=not within))

    def moved(self, index: torch.Tensor, within: bool, shared: bool) -> dict:
        """The fields that change when rows ``index`` are taken: per-hypothesis rows always, rows equal
        within a sentence unless ``within``, the sentences' shared rows if ``shared`` (sentences left)."""
        names = self._fields(ROW) + (() if within else self._fields(SENTENCE))
        moved = {name: take(getattr(self, name), index) for name in names}
        if shared and self._fields(SOURCE):
            sentences = index[:: self.group] // self.group if self.group > 1 else index
            moved.update({name: take(getattr(self, name), sentences) for name in self._fields(SOURCE)})
        return moved

    def _device(self) -> torch.device:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            while isinstance(value, (list, tuple)) and value:
                value = value[0]
            if isinstance(value, torch.Tensor):
                return value.device
        return torch.device("cpu")
