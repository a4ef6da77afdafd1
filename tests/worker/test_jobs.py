"""Jobs end to end with the in-process runner: API -> runner -> engine -> fake upstream over HTTP -> records."""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import func, select, update
from sqlmodel import col

from core.models import Job, JobItem
from core.queue import NoQueue
from core.usage_rollup import UsageSubject
from engine.results.store import RowResult, RowStatus
from tests.support.engine_helpers import expected_summary, tickets
from tests.support.fake_upstream import FakeUpstream, first_attempts
from tests.support.served import served
from tests.support.worker_helpers import (
    all_pages,
    check_output,
    job_of,
    platform,
    read_bytes,
    wait_for,
    wait_status,
    workflow_spec,
    workflow_yaml,
    write_tickets,
)
from worker.store import DbResultStore
from worker.tracing import setup_tracing


async def test_a_job_runs_end_to_end_and_its_record_shows_it(database_url: str, tmp_path: Path,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="worker.executor")
    frame = write_tickets(tmp_path, 120)
    async with FakeUpstream(faults=first_attempts({"500": 0.1, "malformed": 0.05})) as upstream, \
            platform(database_url=database_url, data_dir=tmp_path, upstream_url=upstream.base_url) as p:
        job_id = await p.start_job(name="nightly triage")
        job = await wait_status(p.http, job_id, "completed")
        event_list = await all_pages(p.http, f"/api/v1/jobs/{job_id}/events")
        items = await all_pages(p.http, f"/api/v1/jobs/{job_id}/items")
        errors = (await p.http.get(f"/api/v1/jobs/{job_id}/errors")).json()
        at_offset = (await p.http.get(f"/api/v1/jobs/{job_id}/items", params={"offset": 100, "limit": 50})).json()
        errors_at_offset = (await p.http.get(f"/api/v1/jobs/{job_id}/errors", params={"offset": 0})).json()
        download = await p.http.get(f"/api/v1/jobs/{job_id}/output")
        progress = await p.http.get(f"/api/v1/jobs/{job_id}/progress")
    spec = workflow_spec()
    output = (tmp_path / job["output"])
    assert output.is_absolute() and output.parts[-3:] == ("jobs", str(job_id), "tickets.rowloom.csv")
    assert check_output(output, frame, spec) == 108
    assert job["counts"] == {"total": 120, "done": 108, "failed": 0, "skipped": 12, "cached": 0}
    assert job["usage"]["tokens_in"] > 0 and job["usage"]["tokens_out"] > 0
    assert job["usage"]["models"] == {"fake": 108}
    assert sum(i["tokens_in"] for i in items) == job["usage"]["tokens_in"]
    assert re.fullmatch(r"[0-9a-f]{32}", job["trace_id"]) and job["attempt"] == 1
    assert job["started_at"] and job["completed_at"] and job["worker_id"].startswith("in-process@")
    events = [e["kind"] for e in event_list]
    assert events[:2] == ["created", "claimed"] and events[-2:] == ["output_written", "completed"]
    pauses = [e for e in event_list if e["kind"] == "paused_for_api_errors"]
    assert pauses and all("HTTP 500" in e["data"]["cause"] or "malformed" in e["data"]["cause"].lower()
                          for e in pauses)
    by_key = {i["key"]: i for i in items}
    assert len(items) == 108 and all(i["status"] == "done" for i in items)
    for row in frame.filter(frame["body"].is_not_null()).iter_rows(named=True):
        item = by_key[row["id"]]
        assert item["outputs"]["summary"] == expected_summary(spec, row)
        assert item["workflow_version_id"] and re.fullmatch(r"[0-9a-f]{64}", item["prompt_hash"])
    retried = [i for i in items if i["attempts"] > 1]
    assert retried, "the injected faults should have cost some rows a second attempt"
    assert errors["items"] == []
    assert (at_offset["total"], at_offset["offset"], at_offset["has_more"]) == (108, 100, False)
    assert at_offset["items"] == items[100:]  # the same order as the cursor pages
    assert (errors_at_offset["total"], errors_at_offset["items"]) == (0, [])
    assert download.status_code == 200 and download.content == read_bytes(output)
    assert progress.headers["content-type"].startswith("text/event-stream")
    assert "event: progress" in progress.text and progress.text.rstrip().splitlines()[-1].startswith("data:")
    assert "event: end" in progress.text
    said = [r.getMessage() for r in caplog.records if r.name == "worker.executor"]
    assert said == [f"job {job_id} claimed by {job['worker_id']} (attempt 1, triage v1)",
                    f"job {job_id} completed: 108 done, 0 failed, 12 skipped"]


async def test_progress_streams_over_http_while_the_job_runs(database_url: str, tmp_path: Path) -> None:
    write_tickets(tmp_path, 220)  # 198 rows to send, 4 at a time at 0.05 s: a run of ~2.5 s
    events: list[tuple[str, dict[str, Any]]] = []
    status_on_arrival: list[str] = []  # the job's status (asked of the API) as each progress event arrived
    async with FakeUpstream(latency_s=0.05) as upstream, \
            platform(database_url=database_url, data_dir=tmp_path, upstream_url=upstream.base_url) as p, \
            served(p.app) as base_url, httpx.AsyncClient(base_url=base_url, timeout=30,
                                                         headers=p.http.headers) as http:
        job_id = await p.start_job(yaml=workflow_yaml(4))
        async with http.stream("GET", f"/api/v1/jobs/{job_id}/progress") as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            kind = ""
            async for line in stream.aiter_lines():
                if line.startswith("event: "):
                    kind = line.removeprefix("event: ")
                elif line.startswith("data: "):
                    events.append((kind, json.loads(line.removeprefix("data: "))))
                    if kind == "progress":
                        status_on_arrival.append((await job_of(p.http, job_id))["status"])
    progress = [data for kind, data in events if kind == "progress"]
    done = [data["counts"]["done"] for data in progress]
    assert events[-1] == ("end", {"id": job_id, "status": "completed"})
    assert done == sorted(done) and done[-1] == 198
    live = [d for d, data, status in zip(done, progress, status_on_arrival, strict=True)
            if 0 < d < 198 and data["status"] == status == "running"]
    assert len(live) >= 2, f"none arrived while the job ran: {list(zip(done, status_on_arrival, strict=True))}"


async def test_failed_rows_are_listed_with_reasons_and_left_unfilled(database_url: str, tmp_path: Path) -> None:
    frame = write_tickets(tmp_path, 40)
    always_bad = first_attempts({"bad-enum": 0.25}, attempts=99)
    async with FakeUpstream(faults=always_bad) as upstream, \
            platform(database_url=database_url, data_dir=tmp_path, upstream_url=upstream.base_url) as p:
        job_id = await p.start_job()
        job = await wait_status(p.http, job_id, "completed")
        errors = await all_pages(p.http, f"/api/v1/jobs/{job_id}/errors")
        failed_items = await all_pages(p.http, f"/api/v1/jobs/{job_id}/items", status="failed")
        deleted = await p.http.delete(f"/api/v1/jobs/{job_id}")
        items_after = await p.http.get(f"/api/v1/jobs/{job_id}/items")
        async with p.database.session() as session:  # the job's rows and events went with it
            left = await session.scalar(select(func.count()).select_from(JobItem))
    assert job["counts"]["failed"] == len(errors) > 0
    assert job["counts"]["done"] + job["counts"]["failed"] == 36
    assert errors == failed_items
    assert deleted.status_code == 204 and items_after.status_code == 404 and left == 0
    assert all(e["error_class"] == "content_error" and "category" in e["error"] for e in errors)
    assert all(e["attempts"] == 2 for e in errors)  # content_error: 1 retry
    answered = check_output((tmp_path / job["output"]), frame, workflow_spec(), complete=False)
    assert answered == job["counts"]["done"]


async def test_a_missing_input_fails_the_job_with_the_reason(database_url: str, tmp_path: Path) -> None:
    async with FakeUpstream() as upstream, \
            platform(database_url=database_url, data_dir=tmp_path, upstream_url=upstream.base_url) as p:
        job_id = await p.start_job(params={"source": {"path": "nowhere.csv"}})
        job = await wait_status(p.http, job_id, "failed")
        events = (await p.http.get(f"/api/v1/jobs/{job_id}/events")).json()["items"]
        output = await p.http.get(f"/api/v1/jobs/{job_id}/output")
    assert "nowhere.csv" in job["error"]
    assert events[-1]["kind"] == "failed" and "nowhere.csv" in events[-1]["message"]
    assert upstream.stats.requests == 0
    assert output.status_code == 404 and "no output" in output.json()["error"]["message"]


async def test_a_job_whose_model_is_down_fails_with_the_reason_and_a_retry_finishes_it(
        database_url: str, tmp_path: Path) -> None:
    frame = write_tickets(tmp_path, 60)
    async with FakeUpstream(faults=lambda *_: "500") as upstream, \
            platform(database_url=database_url, data_dir=tmp_path, upstream_url=upstream.base_url) as p:
        job_id = await p.start_job(params={"concurrency": {"stop_after_api_failures": 3}, "retry": {"api_error": 0}})
        failed = await wait_status(p.http, job_id, "failed")
        failed_items = await all_pages(p.http, f"/api/v1/jobs/{job_id}/errors")
        sent_while_down = upstream.stats.requests
        upstream.faults = None  # the model is back
        retried = await p.http.post(f"/api/v1/jobs/{job_id}/retry")
        job = await wait_status(p.http, job_id, "completed")
    assert "rows in a row failed with API errors" in failed["error"] and "HTTP 500" in failed["error"]
    assert sent_while_down < 54, "the job stopped instead of failing every row"
    assert failed["counts"]["failed"] == len(failed_items) > 0  # the record counts what /errors lists
    assert retried.status_code == 200
    assert job["counts"]["done"] == 54 and job["counts"]["failed"] == 0
    assert check_output((tmp_path / job["output"]), frame, workflow_spec()) == 54


async def test_urgent_jobs_are_picked_before_older_normal_and_low_ones(database_url: str, tmp_path: Path) -> None:
    write_tickets(tmp_path, 20)
    tickets(5_000).write_csv(tmp_path / "long.csv")  # keeps the only worker slot while the others are queued
    async with FakeUpstream(latency_s=0.02) as upstream, \
            platform(database_url=database_url, data_dir=tmp_path, upstream_url=upstream.base_url,
                     worker_max_jobs=1) as p:
        first = await p.start_job(name="first", params={"source": {"path": "long.csv"}})
        await wait_status(p.http, first, "running")
        low = await p.start_job(name="low", priority="low")
        normal = await p.start_job(name="normal", priority="normal")
        urgent = await p.start_job(name="urgent", priority="urgent")
        assert (await p.http.post(f"/api/v1/jobs/{first}/cancel")).status_code == 200  # the slot frees now
        jobs = [await wait_status(p.http, j, "completed") for j in (low, normal, urgent)]
    started = sorted(jobs, key=lambda j: j["started_at"])
    assert [j["name"] for j in started] == ["urgent", "normal", "low"]


async def test_the_global_cap_bounds_running_jobs(database_url: str, tmp_path: Path) -> None:
    write_tickets(tmp_path, 30)
    async with FakeUpstream(latency_s=0.01) as upstream, \
            platform(database_url=database_url, data_dir=tmp_path, upstream_url=upstream.base_url,
                     worker_max_jobs=3, max_running_jobs=1) as p:
        ids = [await p.start_job(name=f"job {i}") for i in range(3)]
        peak = 0

        async def all_done() -> bool:
            nonlocal peak
            page = (await p.http.get("/api/v1/jobs", params={"status": "running"})).json()
            peak = max(peak, len(page["items"]))
            statuses = {(await job_of(p.http, i))["status"] for i in ids}
            return statuses == {"completed"}

        await wait_for(all_done, what="all three jobs to complete")
    assert peak == 1


async def test_a_job_whose_worker_vanished_is_requeued_and_resumed(database_url: str, tmp_path: Path) -> None:
    frame = write_tickets(tmp_path, 30)
    spec = workflow_spec()
    rows = frame.filter(frame["body"].is_not_null()).to_dicts()
    async with FakeUpstream() as upstream:
        async with platform(database_url=database_url, data_dir=tmp_path, upstream_url=upstream.base_url,
                            queue=NoQueue()) as p:
            job_id = await p.start_job()
            # A worker claimed it, finished ten rows, and died: running, heartbeat older than the lease.
            store = DbResultStore(p.database, job_id=job_id, workflow_version_id=1, prompt_hash="x",
                                  usage=UsageSubject("triage", None))
            await store.write([RowResult(key=row["id"], status=RowStatus.DONE, model="fake", attempts=1,
                                         outputs={"category": "general", "summary": expected_summary(spec, row)})
                               for row in rows[:10]])
            async with p.database.session() as session:
                await session.exec(update(Job).where(col(Job.id) == job_id).values(
                    status="running", worker_id="dead-worker", attempt=1,
                    heartbeat_at=datetime.now(UTC) - timedelta(seconds=5)))
                await session.commit()
        async with platform(database_url=database_url, data_dir=tmp_path, upstream_url=upstream.base_url,
                            job_lease_s=1, reaper_interval_s=0.1) as p:
            job = await wait_status(p.http, job_id, "completed")
            events = await all_pages(p.http, f"/api/v1/jobs/{job_id}/events")
    kinds = [e["kind"] for e in events]
    assert kinds == ["created", "requeued", "claimed", "output_written", "completed"]
    assert "dead-worker" in events[1]["message"]
    assert job["attempt"] == 2 and job["counts"]["done"] == 27
    check_output((tmp_path / job["output"]), frame, spec)
    sent = set(upstream.stats.attempts)
    assert len(sent) == 17 and all(max(upstream.stats.ok.values()) == 1 for _ in sent)


async def test_a_job_has_one_trace_from_job_to_upstream_calls(database_url: str, tmp_path: Path) -> None:
    exporter = InMemorySpanExporter()
    setup_tracing().add_span_processor(SimpleSpanProcessor(exporter))
    write_tickets(tmp_path, 10)
    try:
        async with FakeUpstream(faults=first_attempts({"500": 0.3})) as upstream, \
                platform(database_url=database_url, data_dir=tmp_path, upstream_url=upstream.base_url,
                         trace_upstream=True) as p:
            job = await wait_status(p.http, await p.start_job(), "completed")
        spans = [s for s in exporter.get_finished_spans() if format(s.context.trace_id, "032x") == job["trace_id"]]
    finally:
        exporter.shutdown()
    by_id = {s.context.span_id: s for s in spans}
    [job_span] = [s for s in spans if s.name == "job"]
    [run_span] = [s for s in spans if s.name == "run"]
    attempts = [s for s in spans if s.name == "row.attempt"]
    calls = [s for s in spans if s.name == "POST"]
    assert job_span.parent is None and job_span.attributes and job_span.attributes["rowloom.job.id"] == job["id"]
    assert run_span.parent is not None and run_span.parent.span_id == job_span.context.span_id
    assert len(attempts) == len(calls) == upstream.stats.requests > 9  # some rows needed a second attempt
    for call in calls:  # each upstream call sits inside its row attempt
        assert call.parent is not None and by_id[call.parent.span_id].name == "row.attempt"
        assert call.attributes and call.attributes.get("http.response.status_code", call.attributes.get(
            "http.status_code")) in (200, 500)
