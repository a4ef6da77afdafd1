"""The answer cache: the same request is bought once, within a run, across runs and across workflows."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from engine.gateway.openai_client import OpenAIClient
from engine.results.answer_cache import SqliteAnswerCache
from engine.run import RunOutcome, run_spec
from engine.spec.models import WorkflowSpec
from tests.support.engine_helpers import make_spec, read_csv_text
from tests.support.fake_upstream import FakeUpstream


def repeating(path: Path, rows: int, distinct: int) -> None:
    """`rows` tickets whose inputs repeat `distinct` different ones (keys all different)."""
    pl.DataFrame({"id": [f"T{i:05d}" for i in range(rows)],
                  "subject": [f"Printer {i % distinct} is jammed" for i in range(rows)],
                  "body": [f"Body {i % distinct}" for i in range(rows)]}).write_csv(path)


def spec(out: str, extra: str = "") -> WorkflowSpec:
    return make_spec(source="{kind: csv, path: in.csv, key: id}", sink=f"{{kind: csv, path: {out}}}", in_flight=32,
                     extra=extra)


async def run(flow: WorkflowSpec, up: FakeUpstream, tmp_path: Path, work: str) -> RunOutcome:
    client, cache = OpenAIClient(up.base_url), SqliteAnswerCache(tmp_path / "answers.sqlite")
    try:
        return await run_spec(flow, client=client, base_dir=tmp_path, work_dir=tmp_path / work, cache=cache)
    finally:
        await client.aclose()
        await cache.close()


async def test_rows_repeating_100_prompts_send_100_requests(tmp_path: Path) -> None:
    repeating(tmp_path / "in.csv", 1000, 100)
    async with FakeUpstream(latency_s=0.02) as up:  # concurrent duplicates wait for the first
        outcome = await run(spec("out.csv"), up, tmp_path, "w")
    assert up.stats.requests == 100 and outcome.progress.done == 1000
    assert outcome.progress.cached == 900 and outcome.progress.saved == 0.0  # the fake upstream has no price
    out = read_csv_text(tmp_path / "out.csv")
    by_input = out.group_by("subject").agg(pl.col("ai_summary").n_unique())
    assert by_input["ai_summary"].to_list() == [1] * 100  # each prompt's rows hold its one answer


async def test_a_second_identical_run_sends_nothing_and_gives_the_same_output(tmp_path: Path) -> None:
    repeating(tmp_path / "in.csv", 300, 300)
    async with FakeUpstream() as up:
        await run(spec("first.csv"), up, tmp_path, "first")
        sent = up.stats.requests
        again = await run(spec("second.csv"), up, tmp_path, "second")  # another store: only the cache is shared
    assert sent == 300 and up.stats.requests == sent and again.progress.cached == 300
    assert read_csv_text(tmp_path / "first.csv").equals(read_csv_text(tmp_path / "second.csv"))


@pytest.mark.parametrize("change", ["prompt", "temperature"])
async def test_a_changed_prompt_or_temperature_asks_every_row_again(tmp_path: Path, change: str) -> None:
    repeating(tmp_path / "in.csv", 200, 200)
    flow = spec("second.csv")
    changed = flow.model_copy(update={"prompt": flow.prompt.model_copy(update={"system": "Sort tickets carefully."})}
                              if change == "prompt" else
                              {"model": flow.model.model_copy(update={"temperature": 0.5})})
    async with FakeUpstream() as up:
        await run(spec("first.csv"), up, tmp_path, "first")
        await run(changed, up, tmp_path, "second")
    assert up.stats.requests == 400


@pytest.mark.parametrize(("setting", "second_run_sends"), [
    ("cache: {mode: off}", 100),  # every row asked, duplicates too
    ("cache: {mode: refresh}", 10),  # the stored answers asked again, once each
    ("cache: {ttl_s: 60}", 10),  # answers stored an hour ago are stale
    ("cache: {ttl_s: 7200}", 0),
])
async def test_off_refresh_and_ttl(tmp_path: Path, setting: str, second_run_sends: int) -> None:
    repeating(tmp_path / "in.csv", 100, 10)
    async with FakeUpstream() as up:
        await run(spec("first.csv"), up, tmp_path, "first")
        first: Any = up.stats.requests
        with contextlib.closing(sqlite3.connect(tmp_path / "answers.sqlite")) as db, db:
            db.execute("UPDATE answers SET stored_at = stored_at - 3600")  # bought an hour ago
        await run(spec("second.csv", setting), up, tmp_path, "second")
    assert first == 10 and up.stats.requests - first == second_run_sends
