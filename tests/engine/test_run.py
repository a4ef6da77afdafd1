"""The row engine over real files and a fake upstream on 127.0.0.1 with injected faults."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import polars as pl
import pytest

from engine.gateway.openai_client import OpenAIClient
from engine.results.sqlite_store import SqliteResultStore
from engine.results.store import ErrorClass
from engine.run import run_spec
from engine.run.outage import UpstreamDown
from engine.run.runner import RunOutcome
from engine.spec.models import WorkflowSpec
from tests.support.engine_helpers import expected_summary, make_spec, read_csv_text, tickets
from tests.support.fake_upstream import FakeUpstream, first_attempts


async def run(spec: WorkflowSpec, up: FakeUpstream, tmp_path: Path, **kwargs: Any) -> RunOutcome:
    client = OpenAIClient(up.base_url, timeout_s=kwargs.pop("timeout_s", 10), model=kwargs.pop("model", None))
    try:
        return await run_spec(spec, client=client, base_dir=tmp_path, work_dir=tmp_path / "work", **kwargs)
    finally:
        await client.aclose()


def csv_spec(tmp_path: Path, rows: int, **kwargs: Any) -> WorkflowSpec:
    tickets(rows).write_csv(tmp_path / "in.csv")
    return make_spec(source="{kind: csv, path: in.csv, key: id, batch_size: 40}",
                     sink="{kind: csv, path: out/out.csv}", **kwargs)


def assert_answers_on_their_rows(spec: WorkflowSpec, out: pl.DataFrame) -> int:
    filled = 0
    for row in out.iter_rows(named=True):
        if row["body"] is None:
            assert row["ai_summary"] is None and row["ai_category"] is None
            continue
        if row["ai_summary"] is not None:
            assert row["ai_summary"] == expected_summary(spec, row)
            assert row["ai_category"] in ("technical", "business", "general")
            filled += 1
    return filled


async def test_faults_end_valid_and_every_answer_lands_on_its_row(tmp_path: Path) -> None:
    spec = csv_spec(tmp_path, 300)
    events: list[str] = []
    faults = first_attempts({"429": 0.1, "500": 0.1, "malformed": 0.1})
    async with FakeUpstream(faults=faults) as up:
        outcome = await run(spec, up, tmp_path, on_event=lambda kind, *_: events.append(kind))
    p = outcome.progress
    assert (p.total, p.done, p.failed, p.skipped) == (300, 270, 0, 30)
    out = read_csv_text(tmp_path / "out" / "out.csv")
    assert out.columns == ["id", "subject", "body", "ai_category", "ai_summary"]
    assert out["id"].to_list() == tickets(300)["id"].to_list()
    assert assert_answers_on_their_rows(spec, out) == 270
    assert set(up.stats.by_status) == {200, 429, 500}
    assert max(up.stats.attempts.values()) <= 1 + 3 + 2  # within api_error + content_error retries
    assert set(up.stats.ok.values()) == {1}  # no row was answered twice
    assert p.tokens_in > 0 and p.tokens_out > 0
    assert "paused_for_api_errors" in events and events[-1] == "output_written"
    assert not (tmp_path / "out" / "out.errors.csv").exists()


async def test_rows_that_keep_failing_are_recorded_and_left_unfilled(tmp_path: Path) -> None:
    spec = csv_spec(tmp_path, 60, api=2, content=1)
    doomed = {"500": set(), "400": set(), "bad-enum": set()}

    def faults(prompt: str, attempt: int, body: dict[str, Any]) -> str | None:
        index = int(prompt.split("Printer ")[1].split(" ")[0])
        kind = {1: "500", 2: "400", 3: "bad-enum"}.get(index % 7)
        if kind:
            doomed[kind].add(prompt)
        return kind

    async with FakeUpstream(faults=faults) as up:
        outcome = await run(spec, up, tmp_path)
    failed_prompts = set().union(*doomed.values())
    assert outcome.progress.failed == len(failed_prompts)
    assert outcome.progress.done == 54 - len(failed_prompts)
    for prompt in doomed["500"]:
        assert up.stats.attempts[prompt] == 3  # 1 + api_error retries
    for prompt in doomed["400"]:
        assert up.stats.attempts[prompt] == 1  # the request's own fault: never retried
    for prompt in doomed["bad-enum"]:
        assert up.stats.attempts[prompt] == 2  # 1 + content_error retries
    errors = read_csv_text(tmp_path / "out" / "out.errors.csv")
    assert sorted(errors["error_class"].unique()) == [ErrorClass.API.value, ErrorClass.CONTENT.value]
    assert errors.filter(pl.col("error_class") == "content_error")["reason"].str.contains("not-an-option").all()
    out = read_csv_text(tmp_path / "out" / "out.csv")
    failed_keys = set(errors["key"].to_list())
    for row in out.iter_rows(named=True):
        if row["id"] in failed_keys:
            assert row["ai_summary"] is None and row["ai_category"] is None  # never "ERROR: ..." in the output


async def test_a_row_failed_for_its_answers_names_the_model_that_answered(tmp_path: Path) -> None:
    spec = csv_spec(tmp_path, 10)  # asks for the spec's model, `auto`; the client maps it to its own

    async with FakeUpstream(faults=lambda prompt, attempt, body: "bad-enum") as up:
        outcome = await run(spec, up, tmp_path, model="fake-answering")
    errors = read_csv_text(tmp_path / "out" / "out.errors.csv")
    assert outcome.progress.failed == errors.height > 0
    assert set(errors["model"]) == {"fake-answering"}


async def test_a_run_whose_upstream_is_down_stops_and_resumes_when_it_is_back(tmp_path: Path) -> None:
    spec = csv_spec(tmp_path, 200, in_flight=4, api=0)  # 180 rows to send; default: stop after 50 API failures
    assert spec.concurrency.stop_after_api_failures == 50

    async with FakeUpstream(faults=lambda *_: "500") as up:
        with pytest.raises(UpstreamDown, match=r"after 5\d rows in a row failed with API errors.*HTTP 500"):
            await run(spec, up, tmp_path)
        assert 50 <= up.stats.requests <= 50 + 4 + 4  # the streak, plus what was in flight and queued
        sent_while_down = up.stats.requests
        up.faults = None  # the model is back
        outcome = await run(spec, up, tmp_path)
    assert outcome.progress.done == 180 and outcome.progress.failed == 0
    assert up.stats.requests - sent_while_down == 180  # the failed rows and the unsent ones, each once


async def test_content_errors_fall_back_to_another_model(tmp_path: Path) -> None:
    spec = csv_spec(tmp_path, 20, content=3, extra="model: {name: small, fallback: large, fallback_after: 2}")

    def faults(prompt: str, attempt: int, body: dict[str, Any]) -> str | None:
        return "bad-enum" if body["model"] == "small" else None

    async with FakeUpstream(faults=faults, keep_bodies=True) as up:
        outcome = await run(spec, up, tmp_path)
    assert outcome.progress.done == 18
    assert up.stats.models == {"small": 36, "large": 18}
    retry = next(b for b in up.stats.bodies if b["model"] == "large")
    assert [m["role"] for m in retry["messages"]] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert "not accepted" in retry["messages"][-1]["content"]


async def test_stopped_run_resumes_without_resending_finished_rows(tmp_path: Path) -> None:
    spec = csv_spec(tmp_path, 400, in_flight=8)
    stop = asyncio.Event()

    def stop_after_100(prompt: str, attempt: int, body: dict[str, Any]) -> None:
        if up.stats.requests >= 100:
            stop.set()

    async with FakeUpstream(latency_s=0.005, faults=stop_after_100) as up:
        first = await run(spec, up, tmp_path, stop=stop)
        assert first.stopped
        assert 90 <= first.progress.done < 360
        partial = read_csv_text(tmp_path / "out" / "out.csv")
        assert partial.height == 400  # partial results are written, every row kept
        assert assert_answers_on_their_rows(spec, partial) == first.progress.done
        sent_before = up.stats.requests
        up.faults = None
        second = await run(spec, up, tmp_path)
    assert not second.stopped
    assert second.progress.done == 360
    assert up.stats.requests - sent_before == 360 - first.progress.done
    assert set(up.stats.ok.values()) == {1}  # no finished row went upstream twice
    assert assert_answers_on_their_rows(spec, read_csv_text(tmp_path / "out" / "out.csv")) == 360


async def test_each_answer_is_durable_as_soon_as_the_store_can_take_it(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Group commit: no timer or batch size holds an answer back, so a crash re-sends only what was in flight."""
    from engine.run import runner

    monkeypatch.setattr(runner, "time", SimpleNamespace(monotonic=lambda: 0.0))  # no timer ever fires
    spec = csv_spec(tmp_path, 8, in_flight=1)  # 8 rows, sent one at a time
    durable_when_sent: list[int] = []

    def count_durable(prompt: str, attempt: int, body: dict[str, Any]) -> None:
        database = tmp_path / "work" / "results.sqlite"
        if database.exists():
            with contextlib.closing(sqlite3.connect(database)) as db:
                durable_when_sent.append(db.execute("SELECT count(*) FROM results").fetchone()[0])

    async with FakeUpstream(latency_s=0.1, faults=count_durable) as up:
        outcome = await run(spec, up, tmp_path)
    assert outcome.progress.done == 8
    # The last request leaves after seven answers came back, 0.1 s apart: they are durable by then (a store
    # that waited for a batch or a timer would still hold them all).
    assert durable_when_sent[-1] >= 1


async def test_the_window_stays_full_across_batch_boundaries(tmp_path: Path) -> None:
    spec = csv_spec(tmp_path, 200, in_flight=16)  # batch_size 40: a drain at each batch would show
    async with FakeUpstream(latency_s=0.05, latency_spread=1.0) as up:  # answers spread over 50-100 ms
        outcome = await run(spec, up, tmp_path)
    assert outcome.progress.done == 180
    assert up.stats.peak_in_flight == 16
    # Draining the window at a batch boundary leaves the upstream idle before the next batch's first row; a
    # continuous window sends the next row as one returns, while the others are still out, so only the very
    # first request finds the upstream idle.
    assert up.stats.idle_arrivals == 1


async def test_hanging_upstream_times_out_as_api_error(tmp_path: Path) -> None:
    spec = csv_spec(tmp_path, 10, api=1)
    async with FakeUpstream(faults=first_attempts({"hang": 1.0}), hang_s=5) as up:
        outcome = await run(spec, up, tmp_path, timeout_s=0.2)
    assert outcome.progress.done == 9  # the retry after the timeout succeeds


@pytest.mark.parametrize(("kind", "suffix"), [("parquet", "parquet"), ("jsonl", "jsonl"), ("csv", "csv")])
async def test_file_kinds_round_trip(tmp_path: Path, kind: str, suffix: str) -> None:
    frame = tickets(50).with_columns(pl.Series("score", list(range(50))))
    {"parquet": frame.write_parquet, "jsonl": frame.write_ndjson, "csv": frame.write_csv}[kind](
        tmp_path / f"in.{suffix}")
    spec = make_spec(source=f"{{kind: {kind}, path: in.{suffix}}}", sink=f"{{kind: {kind}, path: out.{suffix}}}")
    async with FakeUpstream() as up:
        outcome = await run(spec, up, tmp_path)
    assert outcome.progress.done == 45
    reader = {"parquet": pl.read_parquet, "jsonl": pl.read_ndjson, "csv": read_csv_text}[kind]
    out = reader(tmp_path / f"out.{suffix}")
    assert out.columns == ["id", "subject", "body", "score", "ai_category", "ai_summary"]
    original = frame if kind != "csv" else read_csv_text(tmp_path / "in.csv")
    assert out.select(original.columns).equals(original)
    assert assert_answers_on_their_rows(spec, out) == 45


async def test_store_is_durable_and_reopens(tmp_path: Path) -> None:
    spec = csv_spec(tmp_path, 30)
    async with FakeUpstream() as up:
        await run(spec, up, tmp_path)
    store = SqliteResultStore(tmp_path / "work" / "results.sqlite")
    keys = tickets(30)["id"].to_list()
    done = await store.done_keys(keys)
    stored = await store.results_for(keys[:1])
    await store.close()
    assert len(done) == 27
    result = stored[keys[0]]
    assert result.attempts == 1 and result.tokens_in > 0 and result.outputs["summary"].startswith("summary:")


async def test_a_failing_store_fails_the_run_instead_of_hanging(tmp_path: Path) -> None:
    spec = csv_spec(tmp_path, 200, in_flight=4)

    class FullDisk(SqliteResultStore):
        async def write(self, results: Any) -> None:
            raise OSError(28, "No space left on device")

    store = FullDisk(tmp_path / "results.sqlite")
    async with FakeUpstream() as up:
        client = OpenAIClient(up.base_url)
        with pytest.raises(OSError, match="No space left"):
            await asyncio.wait_for(run_spec(spec, client=client, base_dir=tmp_path, work_dir=tmp_path / "w",
                                            store=store), timeout=20)
        await client.aclose()
    await store.close()
    assert not (tmp_path / "out" / "out.csv").exists()


async def test_inline_rows_and_the_default_output(tmp_path: Path) -> None:
    rows = "[{id: 1, subject: Écran noir, body: rien ne s'affiche}, {id: 2, subject: Login, body: null}]"
    spec = make_spec(source=f"{{kind: inline, key: id, rows: {rows}}}")
    async with FakeUpstream() as up:
        outcome = await run(spec, up, tmp_path)
    assert (outcome.progress.done, outcome.progress.skipped) == (1, 1)
    assert outcome.output == str(tmp_path / "triage.rowloom.jsonl")
    out = pl.read_ndjson(tmp_path / "triage.rowloom.jsonl")
    assert out["id"].to_list() == [1, 2]
    assert out["ai_summary"].to_list()[0] == expected_summary(spec, {"subject": "Écran noir",
                                                                     "body": "rien ne s'affiche"})


async def test_default_output_sits_beside_a_file_source(tmp_path: Path) -> None:
    tickets(5).write_csv(tmp_path / "in.csv")
    spec = make_spec(source="{kind: csv, path: in.csv}")
    async with FakeUpstream() as up:
        outcome = await run(spec, up, tmp_path)
    assert outcome.output == str(tmp_path / "in.rowloom.csv")
    assert read_csv_text(tmp_path / "in.csv").columns == ["id", "subject", "body"]  # the input is untouched


async def test_errors_without_a_key_column_name_the_row_a_person_sees(tmp_path: Path) -> None:
    frame = tickets(10)
    frame.write_csv(tmp_path / "in.csv")  # header on row 1: the first ticket is row 2
    spec = make_spec(source="{kind: csv, path: in.csv}", sink="{kind: csv, path: out/out.csv}")
    doomed = frame["subject"][3]  # position 3: row 5 of the file

    async with FakeUpstream(faults=lambda prompt, attempt, body: "400" if doomed in prompt else None) as up:
        outcome = await run(spec, up, tmp_path)
    errors = read_csv_text(tmp_path / "out" / "out.errors.csv")
    assert outcome.progress.failed == 1
    assert errors.columns[0] == "row" and errors["row"].to_list() == ["5"]
    out = read_csv_text(tmp_path / "out" / "out.csv")
    assert out["ai_summary"][3] is None and out["subject"][3] == doomed  # row 5 of the file, unfilled
