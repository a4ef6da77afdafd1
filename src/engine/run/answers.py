"""What a model must answer: extract the JSON object, check it, and describe it as a JSON schema."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from engine.errors import ContentError
from engine.spec.models import FieldType, PromptStep

FENCE = "```"
# An answer is parsed on the event loop that serves every row of the run: its size and the places an object may
# start are bounded, so that no answer holds the loop for more than a few milliseconds (measured in
# tests/engine/test_answers.py). Real answers are far below both bounds.
MAX_ANSWER_CHARS = 1_000_000
MAX_OBJECT_STARTS = 16  # of fenced blocks, and of `{` in prose
_JSON_TYPES: dict[FieldType, tuple[type, ...]] = {
    FieldType.STRING: (str,),
    FieldType.INTEGER: (int,),
    FieldType.NUMBER: (int, float),
    FieldType.BOOLEAN: (bool,),
    FieldType.ARRAY: (list,),
    FieldType.OBJECT: (dict,),
}


@dataclass(frozen=True)
class AnswerContract:
    """Fields an answer must have, the values some may take, and their JSON types."""

    required: tuple[str, ...]
    allowed: dict[str, tuple[Any, ...]]
    types: dict[str, FieldType]

    @classmethod
    def of(cls, step: PromptStep) -> AnswerContract:
        """Required fields default to the output fields when the step names none."""
        required = tuple(step.prompt.required_fields or step.output)
        return cls(required=required, allowed={k: tuple(v) for k, v in step.validation.items()},
                   types=dict(step.prompt.types))

    def json_schema(self) -> dict[str, Any]:
        """A JSON schema for the answer (for `response_format` when the model supports it)."""
        properties: dict[str, Any] = {}
        for name in dict.fromkeys((*self.required, *self.allowed, *self.types)):
            prop: dict[str, Any] = {}
            if name in self.types:
                prop["type"] = self.types[name].value
            elif name not in self.allowed:
                prop["type"] = "string"
            if name in self.allowed:
                prop["enum"] = list(self.allowed[name])
            properties[name] = prop
        return {"type": "object", "properties": properties, "required": list(self.required),
                "additionalProperties": False}

    def response_format(self) -> dict[str, Any]:
        """The OpenAI `response_format` carrying the schema."""
        return {"type": "json_schema", "json_schema": {"name": "row_answer", "strict": True,
                                                       "schema": self.json_schema()}}

    def check(self, content: str) -> dict[str, Any]:
        """The answer's JSON object if it meets the contract; ContentError naming the problem otherwise."""
        answer = extract_json_object(content)
        missing = [name for name in self.required if answer.get(name) in (None, "")]
        if missing:
            raise ContentError(f"missing required field(s): {', '.join(missing)}")
        for name, kind in self.types.items():
            value = answer.get(name)
            if value is not None and not _is_type(value, kind):
                raise ContentError(f"field {name!r} must be {kind.value}, got {type(value).__name__} {value!r:.60}")
        for name, allowed in self.allowed.items():
            value = answer.get(name)
            if value is not None and value not in allowed:
                raise ContentError(f"field {name!r} is {value!r:.60}; allowed: {', '.join(map(str, allowed))}")
        return answer


def _is_type(value: Any, kind: FieldType) -> bool:
    if isinstance(value, bool) and kind in (FieldType.INTEGER, FieldType.NUMBER):
        return False
    return isinstance(value, _JSON_TYPES[kind])


def extract_json_object(content: str) -> dict[str, Any]:
    """The first JSON object in a reply: the whole text, a ```json fence, or embedded in prose (in linear time)."""
    if len(content) > MAX_ANSWER_CHARS:
        raise ContentError(f"the answer has {len(content):,} characters; at most {MAX_ANSWER_CHARS:,} are parsed")
    text = content.strip()
    # The whole reply first (the usual case): fences are looked for only when it is not an object. json, not
    # orjson: orjson turns integers beyond 64 bits into floats, and an answer must keep its values exactly.
    for candidate in itertools.chain([text], itertools.islice(_fenced(text), MAX_OBJECT_STARTS)):
        try:
            value = json.loads(candidate)
        except (ValueError, RecursionError):  # RecursionError: an answer nested deeper than the decoder goes
            continue
        if isinstance(value, dict):
            return value
    decoder = json.JSONDecoder()
    for start in itertools.islice(_positions(text, "{"), MAX_OBJECT_STARTS):
        try:
            value, _ = decoder.raw_decode(text, start)
        except (ValueError, RecursionError):
            continue
        if isinstance(value, dict):
            return value
    snippet = text[:80].replace("\n", " ")
    raise ContentError(f"no JSON object in the answer ({snippet!r}{'...' if len(text) > 80 else ''})")


def _positions(text: str, needle: str) -> Iterator[int]:
    start = text.find(needle)
    while start != -1:
        yield start
        start = text.find(needle, start + len(needle))


def _fenced(text: str) -> Iterator[str]:
    """The text of each fenced block (```json ... ```), stripped: fences pair up in order, as Markdown reads them."""
    fences = _positions(text, FENCE)
    for opening, closing in zip(fences, fences, strict=False):
        body = text[opening + len(FENCE):closing]
        if body.startswith(("json", "JSON")):
            body = body[4:]
        yield body.strip()
