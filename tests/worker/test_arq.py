"""Jobs on arq with a real Redis: a worker in process, and worker processes killed with SIGKILL mid-job."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from sqlmodel import col, select

from core.models import JobItem
from engine.run.prompts import PromptRenderer
from tests.support.arq_helpers import arq_platform, arq_worker
from tests.support.fake_upstream import FakeUpstream
from tests.support.worker_helpers import (
    Platform,
    all_pages,
    check_output,
    job_of,
    running_with_rows_done,
    start_worker_process,
    wait_for,
    wait_status,
    workflow_spec,
    workflow_yaml,
    write_tickets,
)

pytestmark = pytest.mark.redis


async def test_a_worker_closes_cleanly_with_a_task_caught_mid_flight(
        database_url: str, tmp_path: Path, queue_name: str) -> None:
    shut_down: list[bool] = []
    # The worker's close on leaving arq_worker raised CancelledError with arq's own close.
    async with FakeUpstream() as upstream, arq_platform(database_url, tmp_path, upstream, queue_name) as p, \
            arq_worker(p.settings) as worker:
        shutdown_hook = worker.on_shutdown
        assert shutdown_hook is not None

        async def recorded_shutdown(ctx: dict[str, Any]) -> None:
            await shutdown_hook(ctx)
            shut_down.append(True)

        async def started() -> bool:
            return "rowloom" in worker.ctx

        worker.on_shutdown = recorded_shutdown
        await wait_for(started, what="the worker's startup")
        mid_flight = asyncio.create_task(asyncio.Event().wait())  # a job or reaper run that never ends
        worker.tasks["caught-mid-flight"] = mid_flight
    assert mid_flight.cancelled() and shut_down == [True]


async def test_an_arq_worker_runs_a_job_end_to_end(database_url: str, tmp_path: Path, queue_name: str) -> None:
    frame = write_tickets(tmp_path, 60)
    async with FakeUpstream() as upstream, \
            arq_platform(database_url, tmp_path, upstream, queue_name, reaper_interval_s=1) as p, \
            arq_worker(p.settings):
        job_id = await p.start_job()
        job = await wait_status(p.http, job_id, "completed")
        kinds = [e["kind"] for e in await all_pages(p.http, f"/api/v1/jobs/{job_id}/events")]

        async def worker_in_metrics() -> str | None:
            text = (await p.http.get("/metrics")).text
            return text if 'process="arq@' in text else None

        metrics = await wait_for(worker_in_metrics, what="the worker's statistics in /metrics")
    check_output((tmp_path / job["output"]), frame, workflow_spec())
    assert job["counts"] == {"total": 60, "done": 54, "failed": 0, "skipped": 6, "cached": 0}
    assert job["worker_id"].startswith("arq@") and len(job["trace_id"]) == 32
    assert job["usage"]["tokens_in"] > 0
    assert kinds[:2] == ["created", "claimed"] and kinds[-1] == "completed"
    assert 'rowloom_jobs{status="completed"} 1.0' in metrics
    assert 'rowloom_upstream_requests_total{model="fake",outcome="ok",process="arq@' in metrics


async def durable_prompts(p: Platform, job_id: int, frame: pl.DataFrame) -> set[str]:
    """The prompts of the rows stored as done for the job right now."""
    spec = workflow_spec()
    assert spec.prompt is not None
    renderer = PromptRenderer(spec.prompt)
    async with p.database.session() as session:
        keys = set((await session.exec(select(JobItem.key_json).where(
            col(JobItem.job_id) == job_id, col(JobItem.status) == "done"))).all())
    return {renderer.messages({c: row[c] for c in spec.columns.input})[-1]["content"]
            for row in frame.iter_rows(named=True) if json.dumps(row["id"]) in keys}


async def test_a_killed_worker_loses_no_row_and_sends_no_finished_row_twice(
        database_url: str, tmp_path: Path, queue_name: str, processes: list[subprocess.Popen[bytes]]) -> None:
    frame = write_tickets(tmp_path, 500)
    spec = workflow_spec(8)
    log = tmp_path / "workers.log"
    async with FakeUpstream(latency_s=0.04) as upstream, \
            arq_platform(database_url, tmp_path, upstream, queue_name) as p:
        job_id = await p.start_job(yaml=workflow_yaml(8))
        processes.append(start_worker_process(p.settings, log))
        await running_with_rows_done(p.http, job_id, rows=120)
        processes[0].send_signal(signal.SIGKILL)
        processes[0].wait(timeout=10)
        durable = await durable_prompts(p, job_id, frame)  # what was stored when the worker died
        processes.append(start_worker_process(p.settings, log))
        job = await wait_status(p.http, job_id, "completed", within_s=60)
        events = await all_pages(p.http, f"/api/v1/jobs/{job_id}/events")
    kinds = [e["kind"] for e in events]
    assert kinds.count("claimed") == 2 and "requeued" in kinds, kinds
    assert job["attempt"] == 2 and job["counts"]["done"] == 450
    check_output((tmp_path / job["output"]), frame, spec)  # every row once, each with its own answer
    assert not [p.name for p in (tmp_path / job["output"]).parent.iterdir() if p.name.endswith(".tmp")]  # killed run's
    assert len(durable) >= 120
    assert all(upstream.stats.attempts[prompt] == 1 for prompt in durable)  # finished rows: sent once
    # Resent: only rows in flight at the kill, or answered but not yet made durable (one flush window).
    resent = {prompt for prompt, count in upstream.stats.attempts.items() if count > 1}
    assert resent and not resent & durable


async def test_a_worker_stopped_with_sigterm_hands_its_job_back(
        database_url: str, tmp_path: Path, queue_name: str, processes: list[subprocess.Popen[bytes]]) -> None:
    frame = write_tickets(tmp_path, 400)
    log = tmp_path / "workers.log"
    async with FakeUpstream(latency_s=0.04) as upstream, \
            arq_platform(database_url, tmp_path, upstream, queue_name) as p:
        job_id = await p.start_job(yaml=workflow_yaml(8))
        processes.append(start_worker_process(p.settings, log))
        await running_with_rows_done(p.http, job_id, rows=60)
        processes[0].send_signal(signal.SIGTERM)
        assert processes[0].wait(timeout=20) == 0
        handed_back = await job_of(p.http, job_id)
        durable = await durable_prompts(p, job_id, frame)
        processes.append(start_worker_process(p.settings, log))
        job = await wait_status(p.http, job_id, "completed", within_s=60)
        events = await all_pages(p.http, f"/api/v1/jobs/{job_id}/events")
    assert handed_back["status"] == "queued"  # at once: no lease had to expire
    requeued = next(e for e in events if e["kind"] == "requeued")
    assert "shut down" in requeued["message"]
    assert job["attempt"] == 2 and job["counts"]["done"] == 360
    check_output((tmp_path / job["output"]), frame, workflow_spec(8))
    assert len(durable) >= 60 and all(upstream.stats.attempts[prompt] == 1 for prompt in durable)


async def test_arq_picks_urgent_jobs_before_older_normal_and_low_ones(
        database_url: str, tmp_path: Path, queue_name: str) -> None:
    write_tickets(tmp_path, 20)
    async with FakeUpstream() as upstream, arq_platform(database_url, tmp_path, upstream, queue_name,
                                                        worker_max_jobs=1) as p:
        ids = [await p.start_job(name=priority, priority=priority) for priority in ("low", "normal", "high", "urgent")]
        async with arq_worker(p.settings):  # started only now: all four wait in the queue
            jobs = [await wait_status(p.http, job_id, "completed") for job_id in ids]
    assert [j["name"] for j in sorted(jobs, key=lambda j: j["started_at"])] == ["urgent", "high", "normal", "low"]


TWO_STEPS = """name: triage
source: {kind: csv, path: tickets.csv, key: id}
select: {require: any}
steps:
  - id: classify
    kind: prompt
    input: [subject]
    output: {category: category}
    prompt: {template: "Classify: {subject}"}
    validation: {category: [technical, business, general]}
    model: {name: fake}
  - id: compare
    kind: prompt
    input: [subject, category]
    output: {urgent: urgent}
    prompt: {template: "Urgent? {subject} ({category})"}
    validation: {urgent: ["yes", "no"]}
    models: [ma, mb]
concurrency: {in_flight: 8}
"""


async def test_a_job_killed_between_steps_resends_no_finished_row_step_and_model(
        database_url: str, tmp_path: Path, queue_name: str, processes: list[subprocess.Popen[bytes]]) -> None:
    frame = write_tickets(tmp_path, 300)
    subjects = dict(zip(frame["id"], frame["subject"], strict=True))
    log = tmp_path / "workers.log"
    async with FakeUpstream(latency_s=0.03, model_answers=True) as upstream, \
            arq_platform(database_url, tmp_path, upstream, queue_name, extra_models=("ma", "mb")) as p:
        job_id = await p.start_job(yaml=TWO_STEPS)
        processes.append(start_worker_process(p.settings, log))

        async def some_rows_between_steps() -> bool | None:
            steps = (await job_of(p.http, job_id))["steps"]
            first = steps.get("classify", {}).get("", {}).get("done", 0)
            return first >= 60 or None

        await wait_for(some_rows_between_steps, within_s=60, what="rows past the first step")
        processes[0].send_signal(signal.SIGKILL)
        processes[0].wait(timeout=10)
        async with p.database.session() as session:  # what was durable when the worker died
            units = (await session.exec(select(JobItem.key_json, JobItem.step, JobItem.target, JobItem.outputs)
                                        .where(col(JobItem.job_id) == job_id, col(JobItem.step) != "",
                                               col(JobItem.status) == "done"))).all()
        processes.append(start_worker_process(p.settings, log))
        job = await wait_status(p.http, job_id, "completed", within_s=60)
    categories = {json.loads(key): out["category"] for key, step, _, out in units if step == "classify"}
    durable = {(f"Classify: {subjects[json.loads(key)]}", "fake-model") for key, step, _, _ in units
               if step == "classify"}
    durable |= {(f"Urgent? {subjects[json.loads(key)]} ({categories[json.loads(key)]})", f"{target}-model")
                for key, step, target, _ in units if step == "compare"}
    assert len(durable) >= 60 and any(step == "compare" for _, step, _, _ in units)
    assert all(upstream.stats.asked[asked] == 1 for asked in durable)  # finished (row, step, model): sent once
    assert job["counts"]["done"] == 300 and job["attempt"] == 2
    assert {t: c["done"] for t, c in job["steps"]["compare"].items()} == {"ma": 300, "mb": 300}
    out = pl.read_csv(tmp_path / job["output"], infer_schema=False)
    for row in out.iter_rows(named=True):
        prompt = f"Urgent? {row['subject']} ({row['category']})"
        body = {"response_format": {"json_schema": {"schema": {"properties": {"urgent": {"enum": ["yes", "no"]}}}}}}
        assert row["urgent_ma"] == FakeUpstream.answer(body, f"ma-model|{prompt}")["urgent"]
        assert row["urgent_mb"] == FakeUpstream.answer(body, f"mb-model|{prompt}")["urgent"]
