"""Answers as models really write them, and prompts as templates really say them."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from engine.run import answers
from engine.run.answers import MAX_ANSWER_CHARS, MAX_OBJECT_STARTS, ContentError, extract_json_object
from engine.run.prompts import PromptRenderer
from tests.support.engine_helpers import make_spec

ANSWERS = [
    ('{"category": "technical"}', {"category": "technical"}),
    ('  {"category": "technical", "n": 3}\n', {"category": "technical", "n": 3}),
    ('```json\n{"category": "business"}\n```', {"category": "business"}),
    ('Sure! Here it is:\n```\n{"category": "general"}\n```\nAnything else?', {"category": "general"}),
    ('The answer is {"category": "technical", "nested": {"a": [1, 2]}} as requested.',
     {"category": "technical", "nested": {"a": [1, 2]}}),
    ('{"score": NaN, "category": "general"}', {"category": "general"}),  # json takes what orjson refuses
    ('{"big": 123456789012345678901234567890}', {"big": 123456789012345678901234567890}),
    ('{"text": "ça ne marche pas ✓ 中文"}', {"text": "ça ne marche pas ✓ 中文"}),
    ('[1, 2] and then {"category": "business"}', {"category": "business"}),
]


@pytest.mark.parametrize(("content", "expected"), ANSWERS)
def test_the_answer_object_is_found_wherever_the_model_put_it(content: str, expected: dict[str, Any]) -> None:
    answer = extract_json_object(content)
    assert {k: v for k, v in answer.items() if k != "score"} == expected


@pytest.mark.parametrize("content", ["", "no json here", "[1, 2, 3]", '{"category": "technical"'])
def test_a_reply_without_an_object_is_a_content_error(content: str) -> None:
    with pytest.raises(ContentError, match="no JSON object"):
        extract_json_object(content)


HOSTILE = ["```" + " " * 25_000 + "x", "```json" + " " * 25_000 + "x``", "```" * 300_000, '{"a": ' * 150_000,
           '{"' * 400_000, "{" * 999_999, "`" * 999_999]


@pytest.mark.parametrize("content", HOSTILE, ids=["fence-spaces", "json-fence-spaces", "fences", "deep", "open-strings",
                                                  "braces", "backticks"])
def test_hostile_answers_are_decoded_a_bounded_number_of_times(content: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each decode is linear in the answer, so a bounded count of them is linear time (no pattern backtracks)."""
    decodes = 0
    real_raw = answers.json.JSONDecoder.raw_decode

    def raw_decode(self: Any, text: str, idx: int = 0) -> Any:  # json.loads decodes through it too
        nonlocal decodes
        decodes += 1
        return real_raw(self, text, idx)

    monkeypatch.setattr(answers.json.JSONDecoder, "raw_decode", raw_decode)
    with pytest.raises(ContentError, match="no JSON object"):
        extract_json_object(content)
    assert decodes <= 1 + 2 * MAX_OBJECT_STARTS


def test_an_answer_over_the_parsed_size_is_a_content_error() -> None:
    with pytest.raises(ContentError, match="at most 1,000,000 are parsed"):
        extract_json_object('{"a": "' + "x" * MAX_ANSWER_CHARS + '"}')
    assert extract_json_object("```json\n" + '{"a": 1}' + "\n```" + " " * 1000) == {"a": 1}


def test_placeholders_are_filled_and_json_examples_left_alone() -> None:
    spec = make_spec(source="{kind: csv, path: in.csv}")
    assert spec.prompt is not None
    renderer = PromptRenderer(spec.prompt.model_copy(update={
        "system": "You sort tickets.",
        "template": 'Ticket {subject}: {record_json}. Answer like {"category": "x"}. Body again: {body}.'}))
    messages = renderer.messages({"subject": "Imprimante ✓", "body": date(2026, 1, 2)})
    assert messages == [
        {"role": "system", "content": "You sort tickets."},
        {"role": "user", "content": 'Ticket Imprimante ✓: {"subject": "Imprimante ✓", "body": "2026-01-02"}. '
                                    'Answer like {"category": "x"}. Body again: 2026-01-02.'},
    ]
    assert renderer.messages({"subject": None, "body": "b"})[-1]["content"].startswith("Ticket : {")
