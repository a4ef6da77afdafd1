"""Handing job ids to whoever runs them: arq on Redis, or the in-process runner (composed by the CLI).

The database stays the system of record: a queue entry is only a hint that a job may be claimable, so
a lost or repeated entry is harmless (claims are compare-and-set; the reaper re-enqueues stale jobs).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any, Protocol

from core.models.job_states import Priority
from core.redis_retry import API_PATIENCE_S, patient_settings

log = logging.getLogger(__name__)

QUEUE_NAME = "rowloom:queue"
EXECUTE_JOB = "execute_job"  # the arq function name workers register
ENTRY_EXPIRES = timedelta(days=7)  # an entry nobody picked up in this long is dropped (the reaper re-adds it)
# arq picks the lowest score first and scores are enqueue times in ms; moving each priority this far into
# the past puts every urgent job before any high one, and so on, while keeping FIFO within a priority.
PRIORITY_SPAN_MS = 10 * 365 * 24 * 3600 * 1000
PRIORITY_RANK = {priority: rank for rank, priority in enumerate(Priority)}  # low = 0 ... urgent = 3


def entry_id(queue_name: str, job_id: int, attempt: int) -> str:
    """The arq id of the entry that offers a job for its next claim (attempt + 1).

    Offering the same job again before it is claimed is a no-op; after a claim (even one whose worker
    died, leaving its entry stuck "in progress" in Redis) the next offer is a new entry.
    """
    return f"{queue_name}:{job_id}:{attempt}"


class JobQueue(Protocol):
    """Where the API (and the reaper) send a job once it is queued."""

    async def start(self) -> None:
        """Connect, or start running jobs (the in-process runner)."""
        ...

    async def enqueue(self, job_id: int, priority: Priority, *, attempt: int = 0, delay_s: float = 0.0) -> None:
        """Offer a queued job (whose last claim was `attempt`) to the workers."""
        ...

    async def depth(self) -> int | None:
        """Entries waiting (None when unknown)."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


class NoQueue:
    """No workers attached (tests, or an API-only process): jobs wait in the database until one comes."""

    async def start(self) -> None:
        """Nothing to start."""

    async def enqueue(self, job_id: int, priority: Priority, *, attempt: int = 0, delay_s: float = 0.0) -> None:
        """Nothing to do; a worker's reaper sweeps up waiting jobs."""

    async def depth(self) -> int | None:
        """Unknown."""
        return None

    async def aclose(self) -> None:
        """Nothing to close."""


class ArqQueue:
    """Job ids on an arq queue in Redis, ordered by priority, then by time."""

    def __init__(self, redis_url: str, queue_name: str = QUEUE_NAME, *, patience_s: float | None = API_PATIENCE_S
                 ) -> None:
        self.redis_url = redis_url
        self.queue_name = queue_name
        self.patience_s = patience_s  # a call waits out a Redis outage this long (None: for ever)
        self._pool: object | None = None

    async def start(self) -> None:
        """Connect lazily: the API starts even while Redis is down (the reaper re-offers waiting jobs)."""

    async def _arq(self) -> Any:
        from arq import create_pool

        if self._pool is None:
            self._pool = await create_pool(patient_settings(self.redis_url, self.patience_s),
                                           default_queue_name=self.queue_name)
        return self._pool

    async def enqueue(self, job_id: int, priority: Priority, *, attempt: int = 0, delay_s: float = 0.0) -> None:
        """Add an entry; its score sorts it by priority (see PRIORITY_SPAN_MS)."""
        pool = await self._arq()
        head_start = timedelta(milliseconds=PRIORITY_RANK[priority] * PRIORITY_SPAN_MS)
        await pool.enqueue_job(EXECUTE_JOB, job_id, _job_id=entry_id(self.queue_name, job_id, attempt),
                               _defer_by=timedelta(seconds=delay_s) - head_start, _expires=ENTRY_EXPIRES)

    async def depth(self) -> int | None:
        """Entries in the queue (including ones a worker is running right now)."""
        pool = await self._arq()
        return int(await pool.zcard(self.queue_name))

    async def aclose(self) -> None:
        """Close the Redis pool."""
        if self._pool is not None:
            await self._pool.aclose()  # type: ignore[attr-defined]
            self._pool = None


def queue_for(redis_url: str | None, queue_name: str = QUEUE_NAME) -> JobQueue:
    """arq when Redis is configured; otherwise nothing (the CLI attaches the in-process runner instead)."""
    return ArqQueue(redis_url, queue_name) if redis_url else NoQueue()


async def offer(queue: JobQueue, job_id: int, priority: Priority, attempt: int) -> None:
    """Enqueue, but never fail the request over it: the job is safely queued in the database already."""
    try:
        await queue.enqueue(job_id, priority, attempt=attempt)
    except Exception as exc:  # e.g. Redis down; a worker's reaper re-offers jobs left waiting
        log.warning("could not enqueue job %s (%s); a worker's reaper offers it from the database", job_id,
                    f"{type(exc).__name__}: {exc}"[:200])
