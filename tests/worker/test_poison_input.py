"""Inputs that would take a reader's process down: the job fails with a reason, the server goes on, and a job
whose worker keeps dying is failed instead of re-queued for ever."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import update
from sqlmodel import col

from core.db import Database
from core.models import Job, JobStatus
from core.queue import NoQueue
from tests.support.engine_helpers import SPEC
from tests.support.fake_upstream import FakeUpstream
from tests.support.workbooks import sparse_workbook
from tests.support.worker_helpers import job_of, platform, wait_status
from worker.lease import reap

SPARSE = SPEC.format(source="{kind: excel, path: sparse.xlsx, key: id}", in_flight=4, api=1, content=1,
                     extra="model: {name: fake}")


async def test_a_sparse_workbook_fails_its_job_and_the_server_goes_on(database_url: str, tmp_path: Path) -> None:
    """A 1.5 KB workbook with a cell at XFD1048576 aborted the process that read it (the API's estimate, or the
    worker, re-queued after each crash): now the job fails with the sheet's size, and everything else answers."""
    sparse_workbook(tmp_path / "sparse.xlsx")
    async with FakeUpstream() as upstream, \
            platform(database_url=database_url, data_dir=tmp_path, upstream_url=upstream.base_url,
                     excel_max_cells=10_000_000) as p:
        job = await wait_status(p.http, await p.start_job(yaml=SPARSE), "failed")
        estimate = await p.http.post("/api/v1/jobs/estimate", json={"workflow": "triage"})
        ping = await p.http.get("/ping")
    assert job["error"] == ("sparse.xlsx: sheet 'Sheet1' spans A1:XFD1048576 (17,179,869,184 cells); at most "
                            "10,000,000 are read (EXCEL_MAX_CELLS)")  # named relative to DATA_DIR
    assert str(tmp_path) not in estimate.text
    assert estimate.status_code == 422 and estimate.json()["error"]["field"] == "source"
    assert ping.status_code == 200 and upstream.stats.requests == 0


async def _lose_lease(database: Database, job_id: int) -> None:
    """The job is running on a worker that stopped sending heartbeats long ago."""
    async with database.session() as session:
        await session.exec(update(Job).where(col(Job.id) == job_id).values(  # type: ignore[call-overload]
            status=JobStatus.RUNNING, worker_id="gone@host:1", heartbeat_at=datetime.now(UTC) - timedelta(hours=1)))
        await session.commit()


async def test_a_job_whose_worker_dies_twice_fails_instead_of_looping(database_url: str, tmp_path: Path) -> None:
    sparse_workbook(tmp_path / "sparse.xlsx")
    async with FakeUpstream() as upstream, \
            platform(database_url=database_url, data_dir=tmp_path, upstream_url=upstream.base_url,
                     queue=NoQueue()) as p:
        job_id = await p.start_job(yaml=SPARSE)
        await _lose_lease(p.database, job_id)
        assert await reap(p.database, NoQueue(), lease_s=30, max_lost_leases=2) == [job_id]
        requeued = await job_of(p.http, job_id)
        await _lose_lease(p.database, job_id)
        assert await reap(p.database, NoQueue(), lease_s=30, max_lost_leases=2) == []
        failed = await job_of(p.http, job_id)
        retried = await p.http.post(f"/api/v1/jobs/{job_id}/retry")
        await _lose_lease(p.database, job_id)
        assert await reap(p.database, NoQueue(), lease_s=30, max_lost_leases=2) == [job_id]  # a retry starts over
    assert requeued["status"] == "queued"
    assert failed["status"] == "failed" and failed["error"].startswith("its worker stopped 2 times while running it")
    assert retried.status_code == 200
