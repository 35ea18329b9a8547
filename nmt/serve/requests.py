"""A ``POST /translate`` body, parsed and checked by hand: every mistake is a :class:`BadRequest` (a 4xx with a
message), never a traceback. The fields are documented in docs/deploy.md and :data:`REQUEST_SCHEMA`."""

from __future__ import annotations

import json
from dataclasses import dataclass

import torch

from nmt import search
from nmt.engines import DecodeOptions, Engine, OptionError, Prepared

#: Upper bounds a request may not exceed (the options' own rules are DecodeOptions.check's).
LIMITS = {"beam": 64, "nbest": 64, "alternatives": 20}
#: Request fields besides "text": the JSON types each accepts.
FIELDS = {
    "model": (str,),
    "beam": (int,),
    "nbest": (int,),
    "length_penalty": (int, float, type(None)),
    "scores": (bool,),
    "sample": (bool,),
    "topk": (int,),
    "topp": (int, float),
    "temperature": (int, float),
    "seed": (int,),
    "probabilities": (bool,),
    "alternatives": (int,),
    "attention": (bool,),
}
KINDS = {int: "a whole number", bool: "true or false", str: "a string", float: "a number"}
#: The OpenAPI description of POST /translate's body (the endpoint parses it by hand, to answer every error).
REQUEST_SCHEMA = {
    "type": "object",
    "required": ["text"],
    "properties": {
        "text": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
                 "description": "the lines to translate"},
        "model": {"type": "string", "description": "a name from GET /models (default: the first)"},
        "beam": {"type": "integer", "minimum": 1, "maximum": LIMITS["beam"], "default": 1},
        "nbest": {"type": "integer", "minimum": 1, "maximum": LIMITS["nbest"], "default": 1},
        "length_penalty": {"type": ["number", "null"], "default": None},
        "scores": {"type": "boolean", "default": False},
        "sample": {"type": "boolean", "default": False, "description": "nbest random translations"},
        "topk": {"type": "integer", "minimum": 0, "default": 0},
        "topp": {"type": "number", "exclusiveMinimum": 0, "maximum": 1, "default": 1},
        "temperature": {"type": "number", "exclusiveMinimum": 0, "default": 1},
        "seed": {"type": "integer", "default": 0},
        "probabilities": {"type": "boolean", "default": False, "description": "each output token's probability"},
        "alternatives": {"type": "integer", "minimum": 0, "maximum": LIMITS["alternatives"], "default": 0,
                         "description": "the k most probable tokens at each step"},
        "attention": {"type": "boolean", "default": False,
                      "description": "every layer's and head's attention over the source pieces"},
    },
    "additionalProperties": False,
}  # fmt: skip


class BadRequest(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def quoted(name: str) -> str:
    """How the API names an option: ``'beam'``."""
    return f"'{name}'"


@dataclass(frozen=True)
class Ask:
    """A checked request: the lines, the model, the decoding options and what to show besides the text."""

    lines: list
    model: str
    options: DecodeOptions
    scores: bool = False
    probabilities: bool = False
    alternatives: int = 0
    attention: bool = False

    @property
    def details(self) -> bool:
        """Whether a teacher-forced pass must look inside the translations."""
        return self.probabilities or self.alternatives > 0 or self.attention

    @property
    def key(self) -> tuple:
        """What requests must share to share a batch."""
        return self.model, self.options, self.probabilities, self.alternatives, self.attention


def parse(body: bytes, engines: dict[str, Engine], max_chars: int, max_lines: int, max_detail_lines: int) -> Ask:
    """A request, checked against the limits and what its model can do; else :class:`BadRequest`."""
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BadRequest(400, f'the body is not JSON ({err}); send {{"text": ["..."]}}') from None
    if not isinstance(data, dict):
        raise BadRequest(422, 'the body must be a JSON object such as {"text": ["..."]}')
    unknown = sorted(set(data) - {"text", *FIELDS})
    if unknown:
        raise BadRequest(422, f"unknown field '{unknown[0]}'; the fields are text, {', '.join(FIELDS)}")
    text = data.get("text")
    if isinstance(text, str):
        text = [text]
    if not isinstance(text, list) or not text:
        raise BadRequest(422, "'text' must be a non-empty list of strings (or one string)")
    if len(text) > max_lines:
        raise BadRequest(413, f"'text' has {len(text)} lines; at most {max_lines} a request")
    for i, line in enumerate(text):
        if not isinstance(line, str):
            raise BadRequest(422, f"'text'[{i}] is {type(line).__name__}, not a string")
        if len(line) > max_chars:
            raise BadRequest(413, f"'text'[{i}] has {len(line)} characters; at most {max_chars}")
    for name, types in FIELDS.items():
        value = data.get(name)
        if name in data and (not isinstance(value, types) or (isinstance(value, bool) and bool not in types)):
            raise BadRequest(422, f"'{name}' must be {KINDS[types[0]]}, got {value!r}")
    for name, high in LIMITS.items():
        if data.get(name, 0) > high:
            raise BadRequest(422, f"'{name}' may be at most {high} here, got {data[name]}")
    model = data.get("model", next(iter(engines)))
    if model not in engines:
        raise BadRequest(422, f"unknown model '{model}'; the models are {', '.join(engines)} (GET /models)")
    # "attention" here asks for every layer's, computed after the search (the search itself needs none).
    given = {
        name: data[name] for name in FIELDS if name in data and name in DecodeOptions.names() and name != "attention"
    }
    ask = Ask(text, model, DecodeOptions(**given), data.get("scores", False), data.get("probabilities", False),
              data.get("alternatives", 0), data.get("attention", False))  # fmt: skip
    if ask.alternatives < 0:
        raise BadRequest(422, f"'alternatives' must be 0 or more, got {ask.alternatives}")
    try:
        ask.options.check(quoted)
        engines[model].refuse(ask.options, spell=quoted)
    except OptionError as err:
        raise BadRequest(422, str(err).rstrip(".")) from None
    features = engines[model].describe()["features"]
    for name, asked in (("alternatives", ask.alternatives), ("attention", ask.attention)):
        if asked and not features[name]:
            network = engines[model].describe()["network"]
            raise BadRequest(422, f"'{name}': model '{model}' ({network}) has none to show")
    if (ask.alternatives or ask.attention) and len(text) > max_detail_lines:
        raise BadRequest(413, f"'alternatives' and 'attention' are given for at most {max_detail_lines} lines a "
                         f"request, and this one has {len(text)}")  # fmt: skip
    return ask


def work(engine: Engine, prepared: Prepared, options: DecodeOptions) -> int:
    """Decoder steps a request may take at most: for each line, its hypotheses (beam, or samples) times its
    output length limit."""
    a = engine.defaults()["max_len_a"] if options.max_len_a is None else options.max_len_a
    b = engine.defaults()["max_len_b"] if options.max_len_b is None else options.max_len_b
    rows = options.nbest if options.sample else options.beam
    lengths = [len(prepared.src[i]) for i in prepared.rows]
    if not lengths:
        return 0
    return rows * int(search.length_limits(torch.tensor(lengths), a, b).sum())
