"""Claims, heartbeats and the reaper: who runs a job is decided in the database, never only in Redis.

Every status change here is checked against the one transition table (`job_states.TRANSITIONS`), and
every update a worker makes is conditional on its own claim (worker id + attempt), so a worker that
lost its lease can no longer touch the job.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import func, select, text, update
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import Database
from core.db.types import utcnow
from core.job_records import add_events, event_row
from core.models import Job, JobStatus, Priority
from core.models.job_event import EventKind, JobEventKind
from core.models.job_states import can_transition
from core.outages import database_outage
from core.queue import JobQueue, offer
from worker.constants import CLAIM_LOCK, CLAIM_LOCK_WAIT_S, REQUEUE_BATCH

log = logging.getLogger(__name__)


class ClaimOutcome(StrEnum):
    """What a claim attempt found."""

    CLAIMED = "claimed"
    NOT_QUEUED = "not_queued"  # cancelled, paused, or already claimed by someone else
    AT_CAPACITY = "at_capacity"  # MAX_RUNNING_JOBS jobs are running
    LOCK_BUSY = "lock_busy"  # other claims held the claim lock too long: try again


def _checked(source: Collection[JobStatus], target: JobStatus) -> list[str]:
    for status in source:
        assert can_transition(status, target), f"{status} -> {target} is not in TRANSITIONS"
    return [s.value for s in source]


@asynccontextmanager
async def _claim_lock(session: AsyncSession, database: Database) -> AsyncIterator[bool]:
    """Serialise claims on MySQL so the global cap holds (SQLite serialises every write already); yields whether
    the lock is held. The session must be pinned: MySQL's lock belongs to the connection that took it."""
    if database.backend != "mysql":
        yield True
        return
    taken = (await session.exec(text(  # type: ignore[call-overload]
        f"SELECT GET_LOCK('{CLAIM_LOCK}', {CLAIM_LOCK_WAIT_S})"))).scalar()
    try:
        yield taken == 1
    finally:
        if taken == 1:
            await session.exec(text(f"SELECT RELEASE_LOCK('{CLAIM_LOCK}')"))  # type: ignore[call-overload]


async def claim(database: Database, *, job_id: int, worker_id: str,
                max_running: int) -> tuple[ClaimOutcome, Job | None]:
    """queued -> running for this worker (attempt + 1), atomically, unless the global cap is reached; or a parked
    job (waiting, no worker: its provider batches are out) taken to poll them, still waiting and not capped."""
    now = utcnow()
    queued = _checked([JobStatus.QUEUED], JobStatus.RUNNING)
    fresh = update(Job).where(col(Job.id) == job_id, col(Job.status).in_(queued))
    if max_running:
        running = select(func.count()).select_from(
            select(col(Job.id)).where(col(Job.status) == JobStatus.RUNNING).subquery()).scalar_subquery()
        fresh = fresh.where(running < max_running)
    parked = update(Job).where(col(Job.id) == job_id, col(Job.status) == JobStatus.WAITING,
                               col(Job.worker_id).is_(None))
    taken = {"worker_id": worker_id, "attempt": col(Job.attempt) + 1, "heartbeat_at": now, "updated_at": now}

    async def transaction() -> tuple[bool | None, Job | None]:
        async with database.pinned_session() as session:
            async with _claim_lock(session, database) as locked:
                if not locked:
                    log.warning("job %s: the claim lock stayed taken for %ss; trying again later", job_id,
                                CLAIM_LOCK_WAIT_S)
                    return None, None
                result = await session.exec(parked.values(**taken))
                claimed = result.rowcount == 1  # (no event: a parked job is taken at every poll of its batches)
                if not claimed:
                    result = await session.exec(fresh.values(
                        status=JobStatus.RUNNING, started_at=func.coalesce(col(Job.started_at), now),
                        completed_at=None, error=None, **taken))
                    claimed = result.rowcount == 1
                    if claimed:
                        await add_events(session, [event_row(job_id, JobEventKind.CLAIMED,
                                                             f"claimed by worker {worker_id}", worker=worker_id)])
                await session.commit()
            job = await session.get(Job, job_id)
        return claimed, job

    claimed, job = await database.retrying(transaction)
    if claimed is None:
        return ClaimOutcome.LOCK_BUSY, None
    # (claimed by us all the same: a try whose commit landed but whose answer was lost to an outage)
    if job is not None and (claimed or (job.status in (JobStatus.RUNNING, JobStatus.WAITING) and
                                        job.worker_id == worker_id)):
        return ClaimOutcome.CLAIMED, job
    if job is not None and job.status == JobStatus.QUEUED:
        return ClaimOutcome.AT_CAPACITY, None
    return ClaimOutcome.NOT_QUEUED, None


async def update_own(database: Database, *, job: Job, statuses: Collection[JobStatus], values: dict[str, Any],
                     events: list[dict[str, Any]] | None = None, for_ever: bool = False) -> bool:
    """Update the job if this claim (worker + attempt) still holds it in one of `statuses` (riding out a database
    outage, `for_ever` for a write that must land)."""
    target = values.get("status")
    allowed = _checked(statuses, target) if target is not None else [s.value for s in statuses]

    async def transaction() -> bool:
        async with database.session() as session:
            result = await session.exec(update(Job).where(
                col(Job.id) == job.id, col(Job.worker_id) == job.worker_id, col(Job.attempt) == job.attempt,
                col(Job.status).in_(allowed)).values(updated_at=utcnow(), **values))
            applied: bool = result.rowcount == 1
            if applied and events:
                await add_events(session, events)
            await session.commit()
        return applied

    return await database.retrying(transaction, for_ever=for_ever)


def _after_lost_lease(source: JobStatus, lost: int, most: int, now: datetime
                      ) -> tuple[JobStatus, EventKind, dict[str, Any], str]:
    """Where a job whose worker stopped goes: cancelled (it was cancelling), failed (its workers died `most`
    times), or queued again to resume."""
    values: dict[str, Any] = {"updated_at": now, "lost_leases": lost}
    if source is JobStatus.CANCELLING:
        return JobStatus.CANCELLED, JobEventKind.CANCELLED, values | {"status": JobStatus.CANCELLED,
                                                                   "completed_at": now}, "cancelled"
    if lost >= most:
        error = (f"its worker stopped {lost} times while running it (killed, or out of memory: an input may crash "
                 "its reader); not re-queued again")
        return JobStatus.FAILED, JobEventKind.FAILED, values | {"status": JobStatus.FAILED, "completed_at": now,
                                                             "error": error, "rows_per_s": None, "eta_s": None}, error
    return JobStatus.QUEUED, JobEventKind.REQUEUED, values | {"status": JobStatus.QUEUED, "enqueued_at": now,
                                                           "rows_per_s": None, "eta_s": None}, \
        "re-queued to resume from its finished rows"


async def current_status(database: Database, *, job: Job) -> JobStatus | None:
    """The job's status if this claim still holds it, else None (re-queued and claimed elsewhere)."""
    async def read() -> Any:
        async with database.session() as session:
            return (await session.exec(select(Job.status, Job.worker_id, Job.attempt)  # type: ignore[call-overload]
                                       .where(col(Job.id) == job.id))).one_or_none()

    row = await database.retrying(read)
    if row is None or row[1] != job.worker_id or row[2] != job.attempt:
        return None
    return JobStatus(row[0])


async def reap(database: Database, queue: JobQueue, *, lease_s: float, max_lost_leases: int) -> list[int]:
    """Re-queue running jobs whose lease expired (or fail one whose worker died `max_lost_leases` times: an input
    that kills its worker must not loop), finish abandoned cancellations, re-offer queued jobs no worker took and
    parked jobs whose batches are due a poll."""
    now = utcnow()
    cutoff = now - timedelta(seconds=lease_s)

    async def sweep() -> tuple[list[int], dict[int, tuple[Priority, int]]]:
        async with database.session() as session:
            # Just after a database outage no heartbeat is fresh (none could be written): leases are judged
            # again once every worker had a lease's time to write one.
            requeued = [] if database_outage.ended_within(lease_s) else await _expire_leases(
                session, now=now, lease_s=lease_s, max_lost_leases=max_lost_leases)
            waiting = list((await session.exec(select(Job.id, Job.priority, Job.attempt).where(  # type: ignore[call-overload]
                col(Job.status) == JobStatus.QUEUED, col(Job.enqueued_at) < cutoff).limit(REQUEUE_BATCH))).all())
            # Parked jobs whose batches are due a poll (enqueued_at: when), offered until a worker takes one.
            waiting += (await session.exec(select(Job.id, Job.priority, Job.attempt).where(  # type: ignore[call-overload]
                col(Job.status) == JobStatus.WAITING, col(Job.worker_id).is_(None), col(Job.enqueued_at) <= now)
                .limit(REQUEUE_BATCH))).all()
            jobs = {row[0]: (row[1], row[2]) for row in waiting}
            for job_id in requeued:
                job = await session.get(Job, job_id)
                if job is not None:
                    jobs[job_id] = (job.priority, job.attempt)
        return requeued, jobs

    requeued, jobs = await database.retrying(sweep)
    if requeued:
        log.warning("re-queued jobs with expired leases: %s", requeued)
    for job_id, (priority, attempt) in jobs.items():
        await offer(queue, job_id, priority, attempt)
    return requeued


async def _expire_leases(session: AsyncSession, *, now: datetime, lease_s: float, max_lost_leases: int) -> list[int]:
    """Move running, waiting and cancelling jobs whose heartbeat is older than the lease on; the ids re-queued."""
    cutoff = now - timedelta(seconds=lease_s)
    requeued: list[int] = []
    for source in (JobStatus.RUNNING, JobStatus.WAITING, JobStatus.CANCELLING):
        stale = (await session.exec(select(Job.id, Job.worker_id, Job.lost_leases).where(  # type: ignore[call-overload]
            col(Job.status) == source, col(Job.heartbeat_at) < cutoff).limit(REQUEUE_BATCH))).all()
        for job_id, worker_id, lost in stale:
            target, kind, values, message = _after_lost_lease(source, lost + 1, max_lost_leases, now)
            result = await session.exec(update(Job).where(
                col(Job.id) == job_id, col(Job.status).in_(_checked([source], target)),
                col(Job.heartbeat_at) < cutoff).values(**values))
            if result.rowcount == 1:
                await add_events(session, [event_row(
                    job_id, kind, f"worker {worker_id} stopped sending heartbeats (lease {lease_s:g}s); {message}",
                    worker=worker_id)])
                if target is JobStatus.QUEUED:
                    requeued.append(job_id)
            await session.commit()
    return requeued
