"""A job's provider batches as its worker follows them: their ledger in the database, the job's budgets, and the
job shown `waiting`, with its batches, while they are out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from core.batch_ledger import DbBatchLedger
from core.budgets.batches import BatchBudgets
from core.budgets.guard import BudgetGuard
from core.budgets.windows import Subject
from core.db import Database
from core.job_records import event_row
from core.models import JobStatus
from core.models.job_event import JobEventKind
from engine import BatchLedger, BatchRecord, BatchRun, InputError, WorkflowSpec, requires_batches
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
                   on_waiting=WaitingShown(database, recorder, ledger).changed)
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
