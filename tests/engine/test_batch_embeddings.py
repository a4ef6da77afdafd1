"""Embed steps in batch mode: each row's text a line of an embeddings batch (one endpoint a batch), its vector the
live one's, its retries counted as a live request's."""

from __future__ import annotations

import json
import random
import sqlite3
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from engine.results.store import UNIT_MARK
from engine.run.batch_files import unit_of
from engine.spec import load_spec
from tests.engine.test_batch_mode import batch_with, run
from tests.support.fake_upstream import FakeUpstream, fake_vector

RAG = """name: rag
source: {{kind: csv, path: questions.csv, key: id}}
steps:
  - {{id: embed, kind: embed, template: "{{subject}}: {{body}}", output: vector, model: m0}}
  - {{id: find, kind: retrieve, query: vector, knowledge: {{source: {{kind: csv, path: kb.csv}}, text: text}},
     top_k: 2, output: context}}
  - id: answer
    kind: prompt
    input: [subject, context]
    output: {{reply: reply}}
    prompt: {{template: "Question: {{subject}}\\nUse: {{context}}"}}
concurrency: {{in_flight: 16}}
sink: {{kind: jsonl, path: out.jsonl}}
mode: {mode}
"""


# One text a request live, as in a batch line (the fake upstream's faults go by a request's first text).
EMBED = """name: embed
source: {{kind: csv, path: questions.csv, key: id}}
steps:
  - {{id: embed, kind: embed, template: "{{subject}}: {{body}}", output: vector, model: m0, batch_size: 1}}
concurrency: {{in_flight: 16}}
sink: {{kind: jsonl, path: out.jsonl}}
mode: {mode}
"""


def write_tables(folder: Path, rows: int) -> None:
    pl.DataFrame({"text": [f"Article {i}: how to fix problem {i * 13 % 97}" for i in range(20)]}).write_csv(
        folder / "kb.csv")
    pl.DataFrame({"id": list(range(rows)), "subject": [f"Help {i}" for i in range(rows)],
                  "body": [f"My device {i} shows error {i * 7}" for i in range(rows)]}).write_csv(
        folder / "questions.csv")


def step_models(work: Path) -> dict[str, set[str]]:
    """The models each step's stored results name."""
    with sqlite3.connect(work / "results.sqlite") as db:
        found: dict[str, set[str]] = {}
        for key, model in db.execute("SELECT key, model FROM results"):
            step = key.split(UNIT_MARK)[1] if UNIT_MARK in key else ""
            found.setdefault(step, set()).add(model)
        return found


async def test_an_embed_step_in_batch_mode_sends_an_embeddings_batch_then_the_next_steps(tmp_path: Path) -> None:
    write_tables(tmp_path, 30)
    outputs = {}
    for mode in ("batch", "live"):
        spec = load_spec(RAG.format(mode=mode)).spec
        async with FakeUpstream() as up:
            outcome = await run(spec, up, tmp_path / mode)
        outputs[mode] = pl.read_ndjson(tmp_path / "out.jsonl")
        assert (outcome.progress.done, outcome.progress.failed) == (30, 0)
        if mode == "batch":
            created = [(b["endpoint"], [unit_of(line["custom_id"])[1][0] for line in b["_lines"]])
                       for b in up.batches.batches.values()]
            assert created == [("/v1/embeddings", ["embed"] * 30), ("/v1/chat/completions", ["answer"] * 30)]
            models = step_models(tmp_path / mode)
            assert models["embed"] == {"m0 (batch)"} and models["answer"] == {"m0 (batch)"}
    assert outputs["batch"].equals(outputs["live"])
    for row in outputs["batch"].iter_rows(named=True):
        assert row["vector"] == fake_vector(f"{row['subject']}: {row['body']}")


def embed_faults(text: str, attempt: int, _: dict[str, Any]) -> str | None:
    """Some texts are refused, some fail once."""
    draw = random.Random(text).random()
    if draw < 0.1:
        return "400"
    return "500" if attempt == 1 and draw < 0.4 else None


@pytest.mark.parametrize("retry", ["live", "batch"])
async def test_embeddings_error_lines_end_as_a_live_run_ends(tmp_path: Path, retry: str) -> None:
    write_tables(tmp_path, 60)
    ended = {}
    for mode in ("batch", "live"):
        spec = load_spec(EMBED.format(mode=mode)).spec
        async with FakeUpstream(embed_faults=embed_faults) as up:
            outcome = await run(spec, up, tmp_path / mode, batch=batch_with(f"retry: {retry}"))
        with sqlite3.connect(tmp_path / mode / "results.sqlite") as db:
            ended[mode] = {key.split(UNIT_MARK)[0]: (status, json.loads(outputs).get("vector") is not None)
                           for key, status, outputs in db.execute("SELECT key, status, outputs FROM results")
                           if UNIT_MARK not in key}
        if mode == "batch":
            endpoints = {b["endpoint"] for b in up.batches.batches.values()}
            assert endpoints == {"/v1/embeddings"}
            assert up.batches.stats.batches_created == (1 if retry == "live" else 2)
        p = outcome.progress
        assert p.failed > 0 and p.done > 0 and p.done + p.failed == 60
    assert ended["batch"] == ended["live"]
