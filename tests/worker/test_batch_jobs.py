"""Jobs in batch mode on the platform: the job waits with its provider batches in its record, any worker follows
them, a killed worker's batches are followed by the next, and cancel cancels them (fake upstream's Files and
Batches API on 127.0.0.1, MariaDB or SQLite, Redis for arq)."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.arq_helpers import arq_platform
from tests.support.fake_upstream import FakeUpstream
from tests.support.worker_helpers import (
    all_pages,
    check_output,
    job_of,
    platform,
    start_worker_process,
    wait_for,
    wait_status,
    workflow_spec,
    write_tickets,
)

BATCH = "{max_requests: 60, poll_s: 0.05}"
PRICE = (1000.0, 2000.0)  # per million tokens in, out: the batch price is half


def release(upstream: FakeUpstream) -> None:
    """End the batches out, and answer the next ones at once."""
    upstream.batches.delay_s = 0.0
    for batch in upstream.batches.batches.values():
        batch["_ready_at"] = 0.0


async def waiting_with(http: httpx.AsyncClient, job_id: int, batches: int) -> dict[str, Any]:
    async def seen() -> dict[str, Any] | None:
        job = await job_of(http, job_id)
        shown = [b for b in job["batches"] if b["status"] == "in_progress"]
        return job if job["status"] == "waiting" and len(shown) == batches else None

    return await wait_for(seen, what=f"the job waiting for {batches} batches")


async def test_a_batch_job_waits_for_its_batches_then_completes_at_the_batch_price(
        database_url: str, tmp_path: Path) -> None:
    frame = write_tickets(tmp_path, 120)
    async with FakeUpstream() as upstream, platform(database_url=database_url, data_dir=tmp_path,
                                                    upstream_url=upstream.base_url, batch=BATCH, price=PRICE,
                                                    reaper_interval_s=0.2) as p:
        upstream.batches.delay_s = 3600.0
        job_id = await p.start_job(params={"mode": "batch"})
        waiting = await waiting_with(p.http, job_id, 2)
        release(upstream)
        job = await wait_status(p.http, job_id, "completed")
        events = await all_pages(p.http, f"/api/v1/jobs/{job_id}/events")
        items = await all_pages(p.http, f"/api/v1/jobs/{job_id}/items")
        usage = (await p.http.get("/api/v1/usage", params={"group_by": "model"})).json()["items"]
    assert [(u["model"], u["rows"]) for u in usage] == [("fake (batch)", 108)]  # batch answers shown as such
    assert job["usage"]["models"] == {"fake (batch)": 108} and usage[0]["cost"] == pytest.approx(
        job["usage"]["cost"])
    assert [b["requests"] for b in waiting["batches"]] == [60, 48] and waiting["counts"]["done"] == 0
    assert check_output(tmp_path / job["output"], frame, workflow_spec()) == 108
    assert [b["state"] for b in job["batches"]] == ["collected"] * 2
    assert [b["completed"] for b in job["batches"]] == [60, 48] and upstream.batches.stats.files_deleted == 4
    kinds = [e["kind"] for e in events]
    assert kinds.count("batch_submitted") == 2 and kinds.count("batch_ended") == 2
    assert kinds.index("waiting") < kinds.index("batches_back") < kinds.index("completed")
    half = [(i["tokens_in"] * PRICE[0] + i["tokens_out"] * PRICE[1]) / 2e6 for i in items]
    assert [i["cost"] for i in items] == pytest.approx(half)
    assert job["usage"]["cost"] == pytest.approx(sum(half))
    assert sum(b["cost"] for b in job["batches"]) == pytest.approx(sum(half))
    assert sum(b["saved"] for b in job["batches"]) == pytest.approx(sum(half))  # live would have cost twice as much
    assert upstream.stats.requests == 108 and set(upstream.stats.ok.values()) == {1}  # all in batches, once


async def test_a_waiting_job_leaves_its_workers_only_slot_to_other_jobs(database_url: str, tmp_path: Path) -> None:
    frame = write_tickets(tmp_path, 120)
    async with FakeUpstream() as upstream, platform(database_url=database_url, data_dir=tmp_path, batch=BATCH,
                                                    upstream_url=upstream.base_url, worker_max_jobs=1,
                                                    reaper_interval_s=0.2) as p:
        upstream.batches.delay_s = 3600.0
        batch_id = await p.start_job(params={"mode": "batch"})
        await waiting_with(p.http, batch_id, 2)
        live = await wait_status(p.http, await p.start_job(), "completed")  # the one slot is free
        waiting = await job_of(p.http, batch_id)
        release(upstream)
        done = await wait_status(p.http, batch_id, "completed")
    assert waiting["status"] == "waiting" and live["counts"]["done"] == 108 == done["counts"]["done"]
    assert upstream.batches.stats.batches_created == 2 and len(upstream.batches.stats.custom_ids) == 108
    assert check_output(tmp_path / done["output"], frame, workflow_spec()) == 108


async def test_pausing_a_waiting_job_cancels_its_batches_and_resuming_it_finishes_the_rest(
        database_url: str, tmp_path: Path) -> None:
    frame = write_tickets(tmp_path, 120)
    async with FakeUpstream() as upstream, platform(database_url=database_url, data_dir=tmp_path, batch=BATCH,
                                                    upstream_url=upstream.base_url, reaper_interval_s=0.2) as p:
        upstream.batches.delay_s = 3600.0
        job_id = await p.start_job(params={"mode": "batch"})
        await waiting_with(p.http, job_id, 2)
        assert (await p.http.post(f"/api/v1/jobs/{job_id}/pause")).status_code == 200

        async def cancelled() -> bool | None:
            return True if upstream.batches.stats.batches_cancelled == 2 else None

        await wait_for(cancelled, what="both provider batches cancelled")
        paused = await job_of(p.http, job_id)
        release(upstream)
        assert (await p.http.post(f"/api/v1/jobs/{job_id}/resume")).status_code == 200
        done = await wait_status(p.http, job_id, "completed")
    assert paused["status"] == "paused" and done["counts"]["done"] == 108
    assert upstream.batches.stats.batches_created == 4  # the cancelled two answered nothing: submitted again
    assert upstream.stats.requests == 108 and set(upstream.stats.ok.values()) == {1}
    assert check_output(tmp_path / done["output"], frame, workflow_spec()) == 108


async def test_cancelling_a_waiting_job_cancels_its_provider_batches(database_url: str, tmp_path: Path) -> None:
    write_tickets(tmp_path, 120)
    async with FakeUpstream() as upstream, platform(database_url=database_url, data_dir=tmp_path,
                                                    upstream_url=upstream.base_url, batch=BATCH,
                                                    reaper_interval_s=0.2) as p:
        upstream.batches.delay_s = 3600.0
        job_id = await p.start_job(params={"mode": "batch"})
        await waiting_with(p.http, job_id, 2)
        assert (await p.http.post(f"/api/v1/jobs/{job_id}/cancel")).status_code == 200
        job = await wait_status(p.http, job_id, "cancelled")
    assert upstream.batches.stats.batches_cancelled == 2 and upstream.stats.requests == 0
    assert job["counts"]["done"] == 0


@pytest.mark.redis
async def test_a_worker_killed_with_two_batches_out_is_followed_by_the_next_and_nothing_goes_twice(
        database_url: str, tmp_path: Path, queue_name: str, processes: list[subprocess.Popen[bytes]]) -> None:
    frame = write_tickets(tmp_path, 120)
    log = tmp_path / "workers.log"
    async with FakeUpstream() as upstream, \
            arq_platform(database_url, tmp_path, upstream, queue_name, batch=BATCH) as p:
        upstream.batches.delay_s = 3600.0
        job_id = await p.start_job(params={"mode": "batch"})
        processes.append(start_worker_process(p.settings, log))
        await waiting_with(p.http, job_id, 2)
        processes[0].send_signal(signal.SIGKILL)
        processes[0].wait(timeout=10)
        release(upstream)
        processes.append(start_worker_process(p.settings, log))
        job = await wait_status(p.http, job_id, "completed", within_s=60)
        events = await all_pages(p.http, f"/api/v1/jobs/{job_id}/events")
    kinds = [e["kind"] for e in events]
    assert kinds.count("batch_submitted") == 2 and "completed" in kinds  # (killed holding it, or while parked)
    assert upstream.batches.stats.batches_created == 2 and len(upstream.batches.stats.custom_ids) == 108
    assert upstream.stats.requests == 108 and set(upstream.stats.ok.values()) == {1}
    assert check_output(tmp_path / job["output"], frame, workflow_spec()) == 108
