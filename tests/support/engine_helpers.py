"""Helpers for engine tests: input tables, specs, and the expected answer of each row."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import polars as pl

from engine.run.prompts import PromptRenderer
from engine.spec import load_spec
from engine.spec.models import WorkflowSpec
from tests.support.fake_upstream import marker

SPEC = """name: triage
source: {source}
columns:
  input: [subject, body]
  output: {{category: ai_category, summary: ai_summary}}
prompt:
  system: You sort support tickets.
  template: "Classify this ticket: {{record_json}}"
validation: {{category: [technical, business, general]}}
concurrency: {{in_flight: {in_flight}, pause_on_api_error_s: 0.05, error_window_s: 0.05}}
retry: {{api_error: {api}, content_error: {content}, system_error: 1}}
{extra}
"""


def tickets(count: int) -> pl.DataFrame:
    """Rows with unicode, and an empty body on every 10th row (those are skipped: inputs must all be present)."""
    return pl.DataFrame({
        "id": [f"T{i:05d}" for i in range(count)],
        "subject": [f"Printer {i} — ça ne marche pas ✓" for i in range(count)],
        "body": [None if i % 10 == 9 else f"Body of ticket {i}, 中文 {i * 7}" for i in range(count)],
    })


def make_spec(*, source: str, sink: str | None = None, in_flight: int = 8, api: int = 3, content: int = 2,
              extra: str = "") -> WorkflowSpec:
    """A triage spec around the given source/sink flow mappings."""
    sink_line = f"sink: {sink}" if sink else ""
    return load_spec(SPEC.format(source=source, in_flight=in_flight, api=api, content=content,
                                 extra=f"{extra}\n{sink_line}")).spec


def expected_summary(spec: WorkflowSpec, row: dict[str, Any]) -> str:
    """The summary the fake upstream gives for this row's prompt."""
    assert spec.prompt is not None and spec.columns is not None
    prompt = PromptRenderer(spec.prompt).messages({c: row[c] for c in spec.columns.input})[-1]["content"]
    return f"summary:{marker(prompt)}"


def read_csv_text(path: Path) -> pl.DataFrame:
    """A CSV with every column as text, as the engine reads it."""
    return pl.read_csv(path, infer_schema=False)


def cosine(a: list[float], b: list[float]) -> float:
    """Cosine similarity, in plain Python (the reference retrieval is checked against)."""
    return sum(x * y for x, y in zip(a, b, strict=True)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))
