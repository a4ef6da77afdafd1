"""The workflow spec loader (engine): validation and error positions, without the API."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest

from engine.errors import SpecError
from engine.sources.columns import source_column_errors
from engine.spec import load_spec
from engine.spec.flow import pipeline
from engine.spec.models import ExcelSourceSpec, PromptStep
from engine.spec.paths import PathPolicy
from tests.support.records import spec_text


def issues_of(text: str) -> list[tuple[str, int | None, int | None]]:
    with pytest.raises(SpecError) as caught:
        load_spec(text)
    return [(i.field, i.line, i.column) for i in caught.value.issues]


def test_valid_spec_keeps_text_and_hash() -> None:
    text = spec_text(note="a comment")
    loaded = load_spec(text)
    assert loaded.text == text
    assert loaded.spec.concurrency.in_flight == 64
    assert loaded.spec.prompt.required_fields == ["category"]
    assert len(loaded.sha256) == 64


def test_excel_source_with_sheet_by_name() -> None:
    text = spec_text().replace("{kind: csv, path: tickets.csv, key: id}",
                               "{kind: excel, path: t.xlsx, sheet: Tickets}")
    source = load_spec(text).spec.source
    assert isinstance(source, ExcelSourceSpec)
    assert source.sheet == "Tickets"


@pytest.mark.parametrize(("change", "expected"), [
    (("  system:", "  sytem:"), ("prompt.sytem", 8, 3)),
    (("key: id}", "key: id, sheet: [1]}"), ("source.sheet", 3, 9)),
    (("{record_json}", "{subjetc}"), ("prompt.template", 9, 13)),
    (("validation: {category", "validation: {categroy"), ("validation.categroy", 11, 27)),
    (("input: [subject, body]", "input: []"), ("columns.input", 5, 10)),
])
def test_errors_point_at_the_yaml(change: tuple[str, str], expected: tuple[str, int, int]) -> None:
    field, line, _ = expected
    [(got_field, got_line, got_column)] = issues_of(spec_text().replace(*change))
    assert (got_field, got_line) == (field, line)
    assert got_column is not None and got_column >= 1


def test_duplicate_keys_and_tabs_are_yaml_errors_with_positions() -> None:
    [(_, line, _)] = issues_of(spec_text() + "name: again\n")
    assert line == 13  # the duplicate `name:` (the spec has 12 lines)
    [(_, line, column)] = issues_of("name: x\nsource:\n\t- a\n")
    assert line == 3 and column is not None


def test_json_examples_in_templates_are_not_placeholders() -> None:
    text = spec_text().replace("{record_json}", '{record_json} Answer like {\\"category\\": \\"technical\\"}')
    assert load_spec(text).spec.prompt.template.endswith('{"category": "technical"}')


def test_misspelled_keys_get_a_suggestion() -> None:
    text = spec_text().replace("key: id}", "key: id, seperator: ';'}")
    with pytest.raises(SpecError) as caught:
        load_spec(text)
    [issue] = caught.value.issues
    assert issue.field == "source.seperator"
    assert "did you mean 'separator'?" in issue.message


STEPS = """name: steps
source: {kind: inline, rows: [{id: 1, body: hello}]}
steps:
  - {id: embed, kind: embed, input: body, output: vector}
  - id: ask
    kind: prompt
    input: [body]
    output: {category: category}
    prompt: {template: "Kind of {body}"}
"""


@pytest.mark.parametrize(("change", "expected"), [
    (("id: ask", "id: embed"), ("steps.1.id", 5, 9, "step id 'embed' is used twice")),
    (("input: [body]", "input: [bdy]"), ("steps.1.input.0", 7, 13, "'bdy' is not in the source")),
    (("input: body,", "input: category,"), ("steps.0.input", 4, 37, "written by step 'ask', which comes later")),
    (("Kind of {body}", "Kind of {vector} {nope}"), ("steps.1.prompt.template", 9, 24, "placeholder {nope}")),
    (("kind: prompt", "kind: prompt\n    compare: {fields: [category]}"), ("steps.1", 5, 5, "compare needs models")),
    (("steps:", "columns: {input: [body], output: {a: a}}\nsteps:"), ("", 1, 1, "with steps, columns belong")),
])
def test_steps_errors_name_the_step_field_line_and_column(change: tuple[str, str],
                                                           expected: tuple[str, int, int, str]) -> None:
    field, line, column, words = expected
    with pytest.raises(SpecError) as caught:
        load_spec(STEPS.replace(*change), checks=(partial(source_column_errors, policy=PathPolicy(Path("/"))),))
    found = [(i.field, i.line, i.column) for i in caught.value.issues if words in i.message]
    assert found == [(field, line, column)], caught.value.issues


def test_a_one_step_workflow_is_a_pipeline_of_one_prompt_step() -> None:
    spec = load_spec(spec_text()).spec
    [step] = pipeline(spec)
    assert isinstance(step, PromptStep) and step.id == "prompt" and spec.columns is not None
    assert step.input == spec.columns.input and step.output == spec.columns.output
    assert spec.steps is None and load_spec(STEPS).spec.columns is None
