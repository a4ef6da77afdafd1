"""Cancel, pause, resume and retry act within 2 s and leave states, counts and outputs right."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import update
from sqlmodel import col

from core.db import Database
from core.db.types import utcnow
from core.models import Job
from engine import RunEvent
from tests.support.fake_upstream import FakeUpstream, first_attempts
from tests.support.records import make_job, make_workflow
from tests.support.worker_helpers import (
    Platform,
    all_pages,
    check_output,
    job_of,
    platform,
    running_with_rows_done,
    wait_for,
    wait_status,
    workflow_spec,
    workflow_yaml,
    write_tickets,
)
from worker.lease import ClaimOutcome, claim
from worker.recorder import EarlierUsage, JobRecorder

CONTROL_S = 2.0
ROWS = 220  # 198 to send; at 0.05 s each, 4 at a time, a run takes ~2.5 s: long enough to act mid-run


async def worker_event(p: Platform, job_id: int, kind: str, text: str) -> dict[str, Any]:
    """Wait for an event the worker writes when it has stopped."""
    async def probe() -> dict[str, Any] | None:
        events = await all_pages(p.http, f"/api/v1/jobs/{job_id}/events")
        return next((e for e in events if e["kind"] == kind and text in e["message"]), None)

    return await wait_for(probe, what=f"a {kind} event from the worker")


async def done_items(p: Platform, job_id: int) -> int:
    return len(await all_pages(p.http, f"/api/v1/jobs/{job_id}/items", status="done"))


def last_arrival(upstream: FakeUpstream) -> float:
    return max(upstream.stats.arrivals)


async def test_cancel_stops_sending_within_two_seconds_and_keeps_partial_output(
        database_url: str, tmp_path: Path) -> None:
    frame = write_tickets(tmp_path, ROWS)
    async with FakeUpstream(latency_s=0.05) as upstream, \
            platform(database_url=database_url, data_dir=tmp_path, upstream_url=upstream.base_url) as p:
        job_id = await p.start_job(yaml=workflow_yaml(4))
        await running_with_rows_done(p.http, job_id)
        asked = time.monotonic()
        response = await p.http.post(f"/api/v1/jobs/{job_id}/cancel")
        assert response.status_code == 200 and response.json()["status"] == "cancelling"
        job = await wait_status(p.http, job_id, "cancelled", within_s=10)
        items = await done_items(p, job_id)
        kinds = [e["kind"] for e in await all_pages(p.http, f"/api/v1/jobs/{job_id}/events")]
    assert last_arrival(upstream) < asked + CONTROL_S
    assert 20 <= job["counts"]["done"] == items < 198
    assert check_output((tmp_path / job["output"]), frame, workflow_spec(), complete=False) == items
    assert kinds[-3:] == ["cancel_requested", "output_written", "cancelled"]
    assert job["completed_at"] is not None


async def test_a_cancelled_queued_job_never_starts(database_url: str, tmp_path: Path) -> None:
    write_tickets(tmp_path, ROWS)
    async with FakeUpstream(latency_s=0.05) as upstream, \
            platform(database_url=database_url, data_dir=tmp_path, upstream_url=upstream.base_url,
                     worker_max_jobs=1) as p:
        first = await p.start_job(yaml=workflow_yaml(4))
        await running_with_rows_done(p.http, first, rows=1)
        second = await p.start_job(yaml=workflow_yaml(4))
        cancelled = (await p.http.post(f"/api/v1/jobs/{second}/cancel")).json()
        await p.http.post(f"/api/v1/jobs/{first}/cancel")
        await wait_status(p.http, first, "cancelled")
        job = await job_of(p.http, second)
        kinds = [e["kind"] for e in await all_pages(p.http, f"/api/v1/jobs/{second}/events")]
        items = await all_pages(p.http, f"/api/v1/jobs/{second}/items")
    assert cancelled["status"] == "cancelled"
    assert job["status"] == "cancelled" and job["attempt"] == 0 and job["started_at"] is None
    assert kinds == ["created", "cancelled"] and items == []
    # Both jobs ask about the same rows: had the second sent any, some prompt would have been sent twice.
    assert max(upstream.stats.attempts.values()) == 1


async def test_pause_stops_within_two_seconds_and_resume_sends_no_done_row_again(
        database_url: str, tmp_path: Path) -> None:
    frame = write_tickets(tmp_path, ROWS)
    async with FakeUpstream(latency_s=0.05) as upstream, \
            platform(database_url=database_url, data_dir=tmp_path, upstream_url=upstream.base_url) as p:
        job_id = await p.start_job(yaml=workflow_yaml(4))
        await running_with_rows_done(p.http, job_id)
        asked = time.monotonic()
        paused = (await p.http.post(f"/api/v1/jobs/{job_id}/pause")).json()
        await worker_event(p, job_id, "paused", "stopped for the pause")
        stopped_at = last_arrival(upstream)
        at_pause = await job_of(p.http, job_id)
        items_at_pause = await done_items(p, job_id)
        resumed = (await p.http.post(f"/api/v1/jobs/{job_id}/resume")).json()
        job = await wait_status(p.http, job_id, "completed")
    assert paused["status"] == "paused" and resumed["status"] == "queued"
    assert stopped_at < asked + CONTROL_S
    assert at_pause["status"] == "paused" and at_pause["counts"]["done"] == items_at_pause < 198
    assert job["counts"]["done"] == 198 and job["attempt"] == 2
    check_output((tmp_path / job["output"]), frame, workflow_spec())
    assert max(upstream.stats.ok.values()) == 1  # no row answered twice


async def test_retry_sends_only_failed_and_unsent_rows(database_url: str, tmp_path: Path) -> None:
    frame = write_tickets(tmp_path, ROWS)
    async with FakeUpstream(latency_s=0.05, faults=first_attempts({"bad-enum": 0.2}, attempts=99)) as upstream, \
            platform(database_url=database_url, data_dir=tmp_path, upstream_url=upstream.base_url) as p:
        job_id = await p.start_job(yaml=workflow_yaml(4))
        await running_with_rows_done(p.http, job_id)
        await p.http.post(f"/api/v1/jobs/{job_id}/cancel")
        first_run = await wait_status(p.http, job_id, "cancelled")
        done_first = {i["key"] for i in await all_pages(p.http, f"/api/v1/jobs/{job_id}/items", status="done")}
        failed_first = await all_pages(p.http, f"/api/v1/jobs/{job_id}/errors")
        sent_first = sum(upstream.stats.attempts.values())
        upstream.faults = None  # the model behaves now
        retried = (await p.http.post(f"/api/v1/jobs/{job_id}/retry")).json()
        job = await wait_status(p.http, job_id, "completed")
    assert retried["status"] == "queued" and failed_first and done_first
    assert first_run["counts"]["failed"] == len(failed_first)
    assert job["counts"] == {"total": ROWS, "done": 198, "failed": 0, "skipped": 22, "cached": 0}
    check_output((tmp_path / job["output"]), frame, workflow_spec())
    # The retry sent each row that was not done exactly once more, and no done row at all.
    assert sum(upstream.stats.attempts.values()) - sent_first == 198 - len(done_first)
    assert max(upstream.stats.ok.values()) == 1


async def test_an_event_taken_by_a_held_up_heartbeat_is_stored_when_the_run_ends(
        client: httpx.AsyncClient, database: Database) -> None:
    """The heartbeat that carries the last events is let finish as the run ends, never cut short."""
    await make_workflow(client)
    job_id = (await make_job(client))["id"]
    outcome, job = await claim(database, job_id=job_id, worker_id="w-1", max_running=0)
    assert outcome is ClaimOutcome.CLAIMED and job is not None
    recorder = JobRecorder(database, job, earlier=EarlierUsage())
    recorder.event(RunEvent.OUTPUT_WRITTEN, "output written")
    stop, ended = asyncio.Event(), asyncio.Event()
    async with database.session() as holder:  # holds the job's row (MySQL) or the write lock (SQLite)
        await holder.exec(update(Job).where(col(Job.id) == job_id).values(updated_at=utcnow()))
        beat = asyncio.create_task(recorder.beat(stop, ended))

        async def event_taken() -> bool:
            return not recorder.pending_events

        await wait_for(event_taken, what="a heartbeat that took the event")
        ended.set()
        await holder.rollback()
    await beat
    await recorder.write()  # what the run's last write does with anything still queued
    events = [e["kind"] for e in (await client.get(f"/api/v1/jobs/{job_id}/events")).json()["items"]]
    assert events.count("output_written") == 1
