"""Claims: the running-jobs cap holds across workers, and MySQL's claim lock is held only while claiming."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy import text

from core.db import Database
from tests.support.records import make_job, make_workflow
from worker import lease
from worker.constants import CLAIM_LOCK
from worker.lease import ClaimOutcome, claim

JOBS = 12
MYSQL_ONLY = pytest.mark.parametrize("database_url", [pytest.param("mysql", marks=pytest.mark.mysql)],
                                     indirect=True)
CAP = 3


async def queued_jobs(client: httpx.AsyncClient, count: int) -> list[int]:
    await make_workflow(client)
    return [(await make_job(client))["id"] for _ in range(count)]


async def test_the_running_jobs_cap_holds_for_claims_from_two_workers_at_once(
        client: httpx.AsyncClient, database: Database) -> None:
    job_ids = await queued_jobs(client, JOBS)
    other = Database(database.url)  # a second worker: its own pool of connections
    try:
        outcomes = await asyncio.gather(*(
            claim(db, job_id=job_id, worker_id=f"w-{n % 2}", max_running=CAP)
            for n, job_id in enumerate(job_ids) for db in [(database, other)[n % 2]]))
    finally:
        await other.dispose()
    claimed = [job for outcome, job in outcomes if outcome is ClaimOutcome.CLAIMED]
    assert len(claimed) == CAP
    assert [o for o, _ in outcomes].count(ClaimOutcome.AT_CAPACITY) == JOBS - CAP
    listing = (await client.get("/api/v1/jobs", params={"status": "running", "offset": 0})).json()
    assert listing["total"] == CAP


@MYSQL_ONLY
async def test_a_claim_releases_the_claim_lock_it_took(client: httpx.AsyncClient, database: Database) -> None:
    job_ids = await queued_jobs(client, 3)
    for job_id in job_ids:
        outcome, _ = await claim(database, job_id=job_id, worker_id="w-1", max_running=0)
        assert outcome is ClaimOutcome.CLAIMED
        async with database.engine.connect() as connection:
            free = (await connection.execute(text(f"SELECT IS_FREE_LOCK('{CLAIM_LOCK}')"))).scalar()
        assert free == 1, "a claim left the claim lock taken (by a pooled connection)"


@MYSQL_ONLY
async def test_a_claim_that_cannot_take_the_lock_claims_nothing(
        client: httpx.AsyncClient, database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lease, "CLAIM_LOCK_WAIT_S", 0)
    [job_id] = await queued_jobs(client, 1)
    async with database.engine.connect() as holder:
        assert (await holder.execute(text(f"SELECT GET_LOCK('{CLAIM_LOCK}', 0)"))).scalar() == 1
        outcome, job = await claim(database, job_id=job_id, worker_id="w-1", max_running=0)
        await holder.execute(text(f"SELECT RELEASE_LOCK('{CLAIM_LOCK}')"))
    assert (outcome, job) == (ClaimOutcome.LOCK_BUSY, None)
    assert (await client.get(f"/api/v1/jobs/{job_id}")).json()["status"] == "queued"
    outcome, _ = await claim(database, job_id=job_id, worker_id="w-1", max_running=0)
    assert outcome is ClaimOutcome.CLAIMED
