"""Run one job: claim it, stream its rows through the engine into `job_items`, write its output, finish it.

Used alike by arq workers and by the in-process runner, so both keep the same states, limits and records.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from opentelemetry import trace
from sqlalchemy import case, func, select
from sqlmodel import col

from core.answer_store import DbAnswerCache
from core.budgets import open_guard
from core.budgets.client import BudgetedClient
from core.budgets.guard import BudgetGuard
from core.budgets.windows import subjects_of
from core.db import Database
from core.db.retry import DatabaseUnavailable
from core.db.types import utcnow
from core.job_records import event_row
from core.job_secrets import job_connections, shown_to_users
from core.models import Job, JobItem, JobStatus, WorkflowVersion
from core.models.job_event import EventKind, JobEventKind
from core.models.job_states import FINISHED, can_transition
from core.settings import Settings
from core.spec_policy import effective_spec, path_policy, spec_checks
from core.step_counts import step_counts
from core.usage_rollup import UsageSubject
from engine import BatchesOut, EngineError, RowStatus, RunOutcome, answer_fingerprint, run_spec
from engine.gateway import BatchDeployments, BudgetExceeded, ChatClient, Router
from worker.constants import RECORD_EVERY_S, STOP_GRACE_S, TRACER
from worker.job_batches import job_batch_run
from worker.job_batches import shown as shown_batches
from worker.lease import ClaimOutcome, claim, current_status, update_own
from worker.recorder import RUN_STATUSES, EarlierUsage, JobRecorder, StopReason
from worker.store import DbResultStore
from worker.tracing import job_context, trace_id_of

log = logging.getLogger(__name__)
tracer = trace.get_tracer(TRACER)


class Outcome(StrEnum):
    """What the caller (arq or the in-process runner) should do after `execute_job`."""

    FINISHED = "finished"  # nothing more: the job ended, stopped, or was not ours to run
    WAIT = "wait"  # the global cap is reached: offer the job again a little later
    AGAIN = "again"  # the job was queued again (resumed/retried) while this run wound down


def worker_id(kind: str) -> str:
    """A name for this worker process that is unique across machines."""
    return f"{kind}@{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class WorkerContext:
    """What every job run shares within one worker process."""

    database: Database
    client: ChatClient
    settings: Settings
    worker_id: str
    answers: DbAnswerCache | None = None  # the answer cache (with the gateway router)
    budgets: BudgetGuard | None = None  # budgets (with the gateway router)
    batches: BatchDeployments | None = None  # the gateway's deployments that take provider batches

    @classmethod
    async def open(cls, database: Database, client: ChatClient, settings: Settings, kind: str) -> WorkerContext:
        """The context of a worker process; with the gateway router, its answer cache and started budget guard."""
        name = worker_id(kind)
        database = database.with_patience(settings.db_outage_s)
        if not isinstance(client, Router):
            return cls(database, client, settings, name)
        budgets = open_guard(settings, database, client.config, holder=name, redis_patience_s=None)
        await budgets.start()
        return cls(database, client, settings, name,
                   answers=DbAnswerCache(database, scope=client.config.identity()), budgets=budgets,
                   batches=BatchDeployments(client.config))

    async def aclose(self) -> None:
        """Write pending answers, settle and stop the budget guard (the client and database are the caller's)."""
        if self.answers is not None:
            await self.answers.close()
        if self.budgets is not None:
            await self.budgets.aclose()
        if self.batches is not None:
            await self.batches.aclose()


async def execute_job(ctx: WorkerContext, job_id: int) -> Outcome:
    """Claim the job and run it to its end (or until it is cancelled, paused or its lease is lost)."""
    try:
        claimed, job = await claim(ctx.database, job_id=job_id, worker_id=ctx.worker_id,
                                   max_running=ctx.settings.max_running_jobs)
    except DatabaseUnavailable:
        return Outcome.WAIT  # offered again once the database is back
    if claimed in {ClaimOutcome.AT_CAPACITY, ClaimOutcome.LOCK_BUSY}:
        return Outcome.WAIT
    if job is None:
        return Outcome.FINISHED
    log.info("job %s claimed by %s (attempt %s, %s v%s)", job_id, ctx.worker_id, job.attempt, job.workflow_name,
             job.version)
    await JobRun(ctx, job).run()
    return Outcome.AGAIN if await _is_queued(ctx.database, job_id) else Outcome.FINISHED


async def _is_queued(database: Database, job_id: int) -> bool:
    async def read() -> bool:
        async with database.session() as session:
            job = await session.get(Job, job_id)
            return job is not None and job.status == JobStatus.QUEUED

    return await database.retrying(read, for_ever=True)


class JobRun:
    """One claimed run of a job."""

    def __init__(self, ctx: WorkerContext, job: Job) -> None:
        assert job.id is not None
        self.ctx = ctx
        self.job = job
        self.job_id: int = job.id
        self.shown = shown_to_users(ctx.settings)
        self.recorder = JobRecorder(ctx.database, job, earlier=EarlierUsage(), scrub=self.shown)
        if job.status == JobStatus.WAITING:  # a parked job taken to poll its batches: still waiting for them
            self.recorder.holding = JobStatus.WAITING

    async def run(self) -> None:
        """Run under the job's trace, then move the job to where the run left it."""
        with tracer.start_as_current_span("job", context=job_context(self.job.trace_id), attributes={
                "rowloom.job.id": self.job_id, "rowloom.job.attempt": self.job.attempt,
                "rowloom.workflow": self.job.workflow_name, "rowloom.worker": self.ctx.worker_id}) as span:
            self.recorder.earlier = await self._earlier_usage()
            if not await self.recorder.write(trace_id=trace_id_of(span)):
                return  # cancelled or taken over between the claim and now
            stop, ended = asyncio.Event(), asyncio.Event()
            beat = asyncio.create_task(self.recorder.beat(stop, ended))
            parked: BatchesOut | None = None
            try:
                outcome = await self._run_engine_until_stopped(stop)
            except asyncio.CancelledError:
                await self._shut_down()
                raise
            except DatabaseUnavailable as exc:
                await self._after_outage(exc)
                return
            except BatchesOut as out:
                parked, outcome = out, None
            except Exception as exc:
                span.record_exception(exc)
                await self._failed(exc)
                return
            finally:
                ended.set()
                await beat
            if parked is not None:  # (after the last heartbeat: a write it made after the release would be lost)
                await self._park(parked)
                return
            await self._ended(outcome)

    async def _run_engine_until_stopped(self, stop: asyncio.Event) -> RunOutcome | None:
        """The run, interrupted STOP_GRACE_S after a cancel or pause if it has not wound down by then (a source or
        sink blocked on a server that does not answer); None when interrupted so."""
        engine = asyncio.create_task(self._run_engine(stop))
        try:
            while not engine.done():
                stopping = asyncio.create_task(stop.wait())
                await asyncio.wait({engine, stopping}, return_when=asyncio.FIRST_COMPLETED)
                stopping.cancel()
                if engine.done():
                    break
                if self.recorder.stop_reason is None:  # the run stopped itself (a failure, a budget): it winds
                    await asyncio.wait({engine}, timeout=RECORD_EVERY_S)  # down in its own time, unless told to
                    continue
                await asyncio.wait({engine}, timeout=STOP_GRACE_S)
                if not engine.done():
                    log.warning("job %s: interrupting a run that did not stop within %ss", self.job_id, STOP_GRACE_S)
                    engine.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await engine
                    return None
            return engine.result()
        finally:
            if not engine.done():  # this task itself was cancelled (the worker shuts down)
                engine.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await engine

    async def _earlier_usage(self) -> EarlierUsage:
        """Tokens and cost of earlier runs (their rows are in job_items; a re-run row adds to its own), and what
        their cached rows saved (kept on the job: a cached item costs nothing)."""
        cached = (col(JobItem.cached) & (col(JobItem.status) == RowStatus.DONE.value))

        async def read() -> EarlierUsage:
            async with self.ctx.database.session() as session:
                row = (await session.exec(select(  # type: ignore[call-overload]
                    func.coalesce(func.sum(JobItem.tokens_in), 0), func.coalesce(func.sum(JobItem.tokens_out), 0),
                    func.coalesce(func.sum(JobItem.cost), 0.0), func.coalesce(func.sum(case((cached, 1), else_=0)), 0))
                    .where(col(JobItem.job_id) == self.job_id))).one()
                counts = await step_counts(session, job_id=self.job_id)
            return EarlierUsage(int(row[0]), int(row[1]), float(row[2]), int(row[3]), self.job.cost_saved, counts)

        return await self.ctx.database.retrying(read)

    async def _version(self) -> WorkflowVersion | None:
        async with self.ctx.database.session() as session:
            return await session.get(WorkflowVersion, self.job.workflow_version_id)

    async def _run_engine(self, stop: asyncio.Event) -> RunOutcome:
        version = await self.ctx.database.retrying(self._version)
        assert version is not None and version.id is not None
        settings = self.ctx.settings
        # Checked again here: a version stored before a policy changed, or a path that became a symlink.
        spec = effective_spec(version.spec, self.job.params, checks=spec_checks(settings))
        # Its base is absolute, so the record names the output unambiguously; its outputs go to the job's folder.
        paths = path_policy(settings).for_job(self._job_dir(), owner=f"job {self.job_id}")
        store = DbResultStore(self.ctx.database, job_id=self.job_id, workflow_version_id=version.id,
                              prompt_hash=answer_fingerprint(spec),
                              usage=UsageSubject(self.job.workflow_name, self.job.created_by))
        client = self.ctx.client
        subjects = subjects_of(workflow=self.job.workflow_name, key_id=self.job.created_by)
        if self.ctx.budgets is not None:
            await self.ctx.budgets.reload()  # a budget set just before the job holds from its first request
            client = BudgetedClient(client, self.ctx.budgets, subjects)
        batches = job_batch_run(self.ctx.database, deployments=self.ctx.batches, budgets=self.ctx.budgets, spec=spec,
                                recorder=self.recorder, subjects=subjects)
        try:
            return await run_spec(spec, client=client, base_dir=paths.base_dir, work_dir=self._job_dir(),
                                  store=store, on_progress=self.recorder.on_progress,
                                  on_event=self.recorder.on_event, stop=stop, paths=paths,
                                  connections=job_connections(settings), cache=self.ctx.answers, batches=batches)
        finally:
            if batches is not None:
                if self.recorder.stop_reason in (StopReason.CANCEL, StopReason.PAUSE):
                    await batches.cancel()  # a cancelled or paused job buys nothing more (finished lines are kept)
                self.recorder.batches = await shown_batches(batches.ledger)
            if self.ctx.answers is not None:  # a job right after this one (on any worker) finds its answers
                await self.ctx.answers.flush()

    def _job_dir(self) -> Path:
        return self.ctx.settings.data_dir.resolve() / "jobs" / str(self.job_id)

    async def _ended(self, outcome: RunOutcome | None) -> None:
        if outcome is not None:
            self.recorder.on_progress(outcome.progress)
        counts = self.recorder.counts_text()
        reason = self.recorder.stop_reason
        if reason is None:
            assert outcome is not None  # interrupted only for a stop reason
            if outcome.budget is not None:
                if await self._paused_for_budget(outcome.budget, counts):
                    return
            elif await self._finish(JobStatus.COMPLETED, JobEventKind.COMPLETED, f"completed: {counts}"):
                return
            # cancelled or paused in the last moment: treat it like a stop
            status = await current_status(self.ctx.database, job=self.job)
            stops = {JobStatus.CANCELLING: StopReason.CANCEL, JobStatus.PAUSED: StopReason.PAUSE}
            reason = stops.get(status) if status else None
        if reason is StopReason.CANCEL:
            self.recorder.holding = JobStatus.CANCELLING
            kept = "partial output kept" if outcome is not None else \
                f"interrupted after {STOP_GRACE_S:g} s of waiting for its source or sink"
            await self._finish(JobStatus.CANCELLED, JobEventKind.CANCELLED, f"cancelled ({counts}); {kept}")
        elif reason is StopReason.PAUSE:
            self.recorder.holding = JobStatus.PAUSED
            self.recorder.event(JobEventKind.PAUSED, f"stopped for the pause ({counts}); resume continues from here")
            await self.recorder.write()

    async def _park(self, out: BatchesOut) -> None:
        """Its provider batches are out and its rows wait for them: the job stays `waiting` with no worker (its
        slot goes to other jobs), and is offered again when they are next polled (see `lease.reap`)."""
        log.info("job %s waits for %s; polled again in %ss", self.job_id, out, out.poll_s)
        released = {"worker_id": None, "heartbeat_at": None, "enqueued_at": utcnow() + timedelta(seconds=out.poll_s),
                    "rows_per_s": None, "eta_s": None}
        events, self.recorder.pending_events = self.recorder.pending_events, []
        for statuses in ([JobStatus.WAITING], [JobStatus.CANCELLING, JobStatus.PAUSED]):
            # (cancelled or paused meanwhile: released all the same, and the reaper cancels its batches)
            if await update_own(self.ctx.database, job=self.job, statuses=statuses, events=events, for_ever=True,
                                values={**self.recorder.progress_values(), **released}):
                return

    async def _paused_for_budget(self, budget: BudgetExceeded, counts: str) -> bool:
        """Pause the job (not a failure): it resumes by itself when the budget resets or is raised."""
        return await self._finish(JobStatus.PAUSED, JobEventKind.PAUSED,
                                  f"paused by a budget ({counts}); resumes when the budget resets or is raised",
                                  budget_pause=budget.details, rows_per_s=None, eta_s=None)

    async def _shut_down(self) -> None:
        """The worker is shutting down mid-run: hand the job to another worker (or end a cancel)."""
        await self._hand_back("the worker shut down")

    async def _after_outage(self, exc: DatabaseUnavailable) -> None:
        """The database stayed away longer than DB_OUTAGE_S: the run has stopped; once the database is back (the
        write waits for it), the job is queued again to resume from its stored rows."""
        log.warning("job %s: stopped its run (%s); re-queued once the database is back", self.job_id, exc)
        await self._hand_back(f"its run stopped: {exc}")

    async def _hand_back(self, why: str) -> None:
        """Re-queue the job to resume from its finished rows (or end a cancel)."""
        if self.recorder.holding in RUN_STATUSES:
            await self._finish(JobStatus.QUEUED, JobEventKind.REQUEUED, f"{why}; re-queued to resume",
                               enqueued_at=utcnow(), rows_per_s=None, eta_s=None)
        elif self.recorder.holding is JobStatus.CANCELLING:
            await self._finish(JobStatus.CANCELLED, JobEventKind.CANCELLED, f"cancelled ({why} meanwhile)")

    async def _failed(self, exc: Exception) -> None:
        expected = isinstance(exc, EngineError | OSError)
        if not expected:
            log.exception("job %s failed", self.job_id)
        message = self.shown(str(exc) if expected else f"{type(exc).__name__}: {exc}")
        target = JobStatus.CANCELLED if self.recorder.holding is JobStatus.CANCELLING else JobStatus.FAILED
        kind = JobEventKind.CANCELLED if target is JobStatus.CANCELLED else JobEventKind.FAILED
        await self._finish(target, kind, f"{target}: {message}", error=message)

    async def _finish(self, target: JobStatus, kind: EventKind, message: str, **values: Any) -> bool:
        """Move the job from the status our claim holds to `target`, with final progress and an event."""
        events = [*self.recorder.pending_events, event_row(self.job_id, kind, message)]
        changes = {"status": target, **values}
        if target in FINISHED:
            changes["completed_at"] = utcnow()
        held = [status for status in self.recorder.ours() if can_transition(status, target)]
        applied = await update_own(self.ctx.database, job=self.job, statuses=held,
                                   values={**self.recorder.progress_values(), **changes}, events=events,
                                   for_ever=True)  # the run's last word: it waits for a database that is away
        if applied:
            self.recorder.pending_events = []
            log.info("job %s %s", self.job_id, message)  # completed: counts, failed: reason, requeued, ...
        return applied
