"""Jobs run inside the API server when no Redis is configured (the embedded default).

The same executor, claims, leases, reaper and records as arq workers; only the queue is an asyncio
priority queue. Jobs queued before a restart are picked up again at start.
"""

from __future__ import annotations

import asyncio
import itertools
import logging

from sqlmodel import col, select

from core.background import cancel_and_wait
from core.db import Database
from core.models import Job, JobStatus, Priority
from core.queue import PRIORITY_RANK
from core.settings import Settings
from engine.gateway import ChatClient
from worker.constants import CAP_WAIT_S
from worker.executor import Outcome, WorkerContext, execute_job, worker_id
from worker.reaper import reap_round
from worker.tracing import setup_tracing

log = logging.getLogger(__name__)


class InProcessRunner:
    """A JobQueue that runs the jobs itself, `worker_max_jobs` at a time, highest priority first."""

    def __init__(self, database: Database, client: ChatClient, settings: Settings) -> None:
        self.ctx = WorkerContext(database, client, settings, worker_id("in-process"))  # until start() opens it
        self._queue: asyncio.PriorityQueue[tuple[int, int, int]] = asyncio.PriorityQueue()
        self._waiting: set[int] = set()
        self._order = itertools.count()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Start the job slots and the reaper, and offer every job already waiting in the database."""
        setup_tracing("rowloom")
        self.ctx = await WorkerContext.open(self.ctx.database, self.ctx.client, self.ctx.settings, "in-process")
        slots = [asyncio.create_task(self._slot()) for _ in range(self.ctx.settings.worker_max_jobs)]
        self._tasks = [*slots, asyncio.create_task(self._reaper())]
        async with self.ctx.database.session() as session:
            waiting = (await session.exec(select(Job.id, Job.priority).where(
                col(Job.status) == JobStatus.QUEUED))).all()
        for job_id, priority in waiting:
            await self.enqueue(job_id or 0, Priority(priority))

    async def enqueue(self, job_id: int, priority: Priority, *, attempt: int = 0, delay_s: float = 0.0) -> None:
        """Queue a job id once (offering a job that already waits is a no-op)."""
        if job_id in self._waiting:
            return
        self._waiting.add(job_id)
        entry = (-PRIORITY_RANK[Priority(priority)], next(self._order), job_id)
        if delay_s > 0:
            asyncio.get_running_loop().call_later(delay_s, self._queue.put_nowait, entry)
        else:
            self._queue.put_nowait(entry)

    async def depth(self) -> int | None:
        """Jobs waiting for a slot."""
        return len(self._waiting)

    async def aclose(self) -> None:
        """Stop: running jobs are re-queued in the database and resume at the next start."""
        await cancel_and_wait(self._tasks)
        self._tasks = []
        await self.ctx.aclose()

    async def _slot(self) -> None:
        while True:
            rank, _, job_id = await self._queue.get()
            self._waiting.discard(job_id)
            try:
                outcome = await execute_job(self.ctx, job_id)
            except Exception:
                log.exception("job %s: the runner failed; the reaper will re-queue it", job_id)
                outcome = Outcome.FINISHED
            task = asyncio.current_task()
            if task is not None and task.cancelling():  # stopped while the job wound down: take no other job
                log.warning("job %s ended during a stop that the run did not pass on", job_id)
                raise asyncio.CancelledError
            if outcome is Outcome.FINISHED:
                continue
            priority = list(PRIORITY_RANK)[-rank]
            if outcome is Outcome.WAIT:
                await self.enqueue(job_id, priority, delay_s=CAP_WAIT_S)
            elif outcome is Outcome.AGAIN:
                await self.enqueue(job_id, priority)

    async def _reaper(self) -> None:
        settings = self.ctx.settings
        while True:
            await asyncio.sleep(settings.reaper_interval_s)
            try:
                await reap_round(self.ctx, self)
            except Exception:
                log.warning("reaper run failed; trying again in %ss", settings.reaper_interval_s, exc_info=True)
