"""A job's provider batches as its worker follows them: their ledger in the database, the job's budgets, and the
job shown `waiting`, with its batches, while they are out."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from sqlalchemy import exists, select, update
from sqlmodel import col

from core.batch_ledger import BATCHES, DbBatchLedger
from core.budgets.batches import BatchBudgets
from core.budgets.guard import BudgetGuard
from core.budgets.windows import Subject
from core.db import Database
from core.db.types import utcnow
from core.job_records import add_events, event_row
from core.models import Job, JobStatus
from core.models.job_event import JobEventKind
from core.models.job_states import can_transition
from engine import (
    UNCANCELLABLE,
    BatchLedger,
    BatchRecord,
    BatchRun,
    BatchState,
    InputError,
    WorkflowSpec,
    cancel_batches,
    requires_batches,
)
from engine.gateway import BatchDeployments
from worker.lease import update_own
from worker.recorder import JobRecorder


def job_batch_run(database: Database, *, deployments: BatchDeployments | None, budgets: BudgetGuard | None,
                  spec: WorkflowSpec, recorder: JobRecorder, subjects: Sequence[Subject]) -> BatchRun | None:
    """The job's batches, when its steps may send any; InputError for a step in batch mode the gateway cannot
    batch."""
    if deployments is None:
        if requires_batches(spec):
            raise InputError("mode batch needs the platform's gateway config (a deployment with `batch`)")
        return None
    assert recorder.job.id is not None
    ledger = DbBatchLedger(database, job_id=recorder.job.id)
    budget = BatchBudgets(budgets, subjects) if budgets is not None else None
    run = BatchRun(spec, deployments=deployments, ledger=ledger, budget=budget,
                   on_waiting=WaitingShown(database, recorder, ledger).changed, park=True)
    return run if run.batched else None


async def shown(ledger: BatchLedger) -> list[dict[str, Any]]:
    """The job's batches as its record shows them."""
    return [record.public() for record in await ledger.batches()]


class WaitingShown:
    """Moves the job between running and waiting as its batches go out and come back, with its batches in its
    record."""

    def __init__(self, database: Database, recorder: JobRecorder, ledger: DbBatchLedger) -> None:
        self.database = database
        self.recorder = recorder
        self.ledger = ledger

    async def changed(self, out: list[BatchRecord]) -> None:
        """`out`: the batches still out ([]: none; the job's rows go on)."""
        self.recorder.batches = await shown(self.ledger)
        target = JobStatus.WAITING if out else JobStatus.RUNNING
        if self.recorder.holding not in (JobStatus.RUNNING, JobStatus.WAITING) or self.recorder.holding is target:
            return  # cancelling, or already there: the next heartbeat shows the batches
        source = self.recorder.holding
        message = (f"waiting for {len(out)} provider batch{'es' if len(out) != 1 else ''}" if out
                   else "its provider batches ended; its rows go on")
        values: dict[str, Any] = {"status": target, **self.recorder.progress_values()}
        kind = JobEventKind.WAITING if out else JobEventKind.BATCHES_BACK
        # The batches' own events go with it: a job shown waiting names the batches it waits for.
        taken, self.recorder.pending_events = self.recorder.pending_events, []
        applied = False
        try:
            applied = await update_own(self.database, job=self.recorder.job, statuses=[source], values=values,
                                       events=[*taken, event_row(self.recorder.job.id or 0, kind, message)])
        finally:
            if not applied:  # they go with the next write
                self.recorder.pending_events = taken + self.recorder.pending_events
        if applied:
            self.recorder.holding = target


async def stop_parked(database: Database, deployments: BatchDeployments | None) -> None:
    """Cancel the provider batches of parked jobs (no worker holds them) that were cancelled or paused, and end the
    cancellations: what a worker does for a job it holds when told to stop."""
    if deployments is None:
        return
    cancellable = exists().where(BATCHES.c.job_id == Job.id, BATCHES.c.state == BatchState.SUBMITTED.value,
                                 BATCHES.c.status.not_in(UNCANCELLABLE))

    async def parked() -> list[Any]:
        async with database.session() as session:
            return list((await session.exec(select(Job.id, Job.status).where(  # type: ignore[call-overload]
                col(Job.worker_id).is_(None), (col(Job.status) == JobStatus.CANCELLING) |
                ((col(Job.status) == JobStatus.PAUSED) & cancellable)))).all())

    for job_id, status in await database.retrying(parked):
        ledger = DbBatchLedger(database, job_id=job_id)
        await cancel_batches(ledger, deployments)
        stopped = {"batches": await shown(ledger), "updated_at": utcnow()}
        if status == JobStatus.CANCELLING:
            assert can_transition(JobStatus.CANCELLING, JobStatus.CANCELLED)
            stopped |= {"status": JobStatus.CANCELLED, "completed_at": utcnow()}
            event = event_row(job_id, JobEventKind.CANCELLED, "cancelled while waiting; its provider batches "
                                                              "were cancelled")
        else:
            event = event_row(job_id, JobEventKind.PAUSED, "its provider batches were cancelled for the pause "
                                                           "(their finished lines are kept)")
        await database.retrying(functools.partial(_stopped, database, job_id, status, stopped, event))


async def _stopped(database: Database, job_id: int, status: str, values: dict[str, Any], event: dict[str, Any]
                   ) -> None:
    async with database.session() as session:
        result = await session.exec(update(Job).where(
            col(Job.id) == job_id, col(Job.status) == status, col(Job.worker_id).is_(None)).values(**values))
        if result.rowcount == 1:
            await add_events(session, [event])
        await session.commit()
