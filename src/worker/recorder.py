"""Progress, heartbeat and events of a running job, written to its record twice a second.

The same conditional write is the lease heartbeat and the control channel: when it stops applying, the
job was cancelled, paused or taken over, and the run is told to stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from core.db import Database
from core.db.retry import DatabaseUnavailable
from core.db.types import utcnow
from core.job_records import event_row
from core.models import Job, JobStatus
from core.models.job_event import EventKind
from engine import Progress, StepCounts, added_steps
from worker.constants import RECORD_EVERY_S
from worker.lease import current_status, update_own

log = logging.getLogger(__name__)


RUN_STATUSES = (JobStatus.RUNNING, JobStatus.WAITING)  # a run moves between these by itself

class StopReason(StrEnum):
    """Why a run was told to stop early."""

    CANCEL = "cancel"
    PAUSE = "pause"
    LEASE_LOST = "lease_lost"


@dataclass(frozen=True)
class EarlierUsage:
    """Tokens and cost already spent on the job by earlier runs."""

    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0
    cached: int = 0  # rows answered from the answer cache
    saved: float = 0.0  # what their answers had cost
    steps: StepCounts = field(default_factory=dict)  # a multi-step job's results by step and model


class JobRecorder:
    """Collects the engine's progress and events and writes them on the job's record."""

    def __init__(self, database: Database, job: Job, *, earlier: EarlierUsage,
                 scrub: Callable[[str], str] = str) -> None:
        self.database = database
        self.scrub = scrub  # no event carries a secret the run resolved, or the server's folders
        self.job = job
        self.earlier = earlier
        self.latest: Progress | None = None
        self.output: str | None = None  # the newest (partial or final) output the engine wrote
        self.pending_events: list[dict[str, Any]] = []
        self.stop_reason: StopReason | None = None
        self.holding = JobStatus.RUNNING  # the status our claim keeps the job in (cancelling after a cancel)
        self.batches: list[dict[str, Any]] | None = None  # the job's provider batches, as its record shows them

    def on_progress(self, progress: Progress) -> None:
        """Engine callback: keep the newest snapshot."""
        self.latest = progress

    def on_event(self, kind: EventKind, message: str, data: dict[str, Any]) -> None:
        """Engine callback: queue an event for the next write."""
        if isinstance(data.get("output"), str):
            self.output = self.scrub(data["output"])
        self.event(kind, message, **data)

    def event(self, kind: EventKind, message: str, **data: Any) -> None:
        """Queue an event for the next write."""
        assert self.job.id is not None
        data = {k: self.scrub(v) if isinstance(v, str) else v for k, v in data.items()}
        self.pending_events.append(event_row(self.job.id, kind, self.scrub(message), **data))

    def counts_text(self) -> str:
        """The newest counts, as a job's events say them."""
        p = self.latest
        return f"{p.done if p else 0} done, {p.failed if p else 0} failed, {p.skipped if p else 0} skipped"

    def progress_values(self) -> dict[str, Any]:
        """The job columns that show the newest progress."""
        values: dict[str, Any] = {"output": self.output} if self.output else {}
        if self.batches is not None:
            values["batches"] = self.batches
        p = self.latest
        if p is None:
            return values
        return values | {
                "rows_total": p.total, "rows_done": p.done, "rows_failed": p.failed, "rows_skipped": p.skipped,
                "rows_per_s": None if p.finished else p.rows_per_s, "eta_s": None if p.finished else p.eta_s,
                "tokens_in": self.earlier.tokens_in + p.tokens_in,
                "tokens_out": self.earlier.tokens_out + p.tokens_out,
                "cost": self.earlier.cost + p.cost, "models": p.models,
                "rows_cached": self.earlier.cached + p.cached, "cost_saved": self.earlier.saved + p.saved,
                "steps": added_steps(self.earlier.steps, p.steps) or None}

    def ours(self) -> list[JobStatus]:
        """The statuses the job may be in while our claim holds it: running and waiting are both the run's (it
        moves between them itself), any other the one it holds."""
        return list(RUN_STATUSES) if self.holding in RUN_STATUSES else [self.holding]

    async def write(self, **values: Any) -> bool:
        """Write progress, heartbeat, queued events and `values` if our claim still holds the job."""
        events, self.pending_events = self.pending_events, []
        applied = False
        try:
            applied = await update_own(self.database, job=self.job, statuses=self.ours(), events=events,
                                       values={"heartbeat_at": utcnow(), **self.progress_values(), **values})
        finally:
            if not applied:  # refused or failed: the events go with the next write
                self.pending_events = events + self.pending_events
        return applied

    async def tick(self) -> None:
        """One heartbeat; on a refused write, find out why and set `stop_reason`."""
        if await self.write():
            return
        status = await current_status(self.database, job=self.job)
        if status is JobStatus.CANCELLING:
            self.stop_reason = StopReason.CANCEL
            self.holding = JobStatus.CANCELLING  # keep the lease alive while in-flight rows and the sink finish
            await self.write()
        elif status is JobStatus.PAUSED:
            self.stop_reason = StopReason.PAUSE
        elif status not in self.ours():
            self.stop_reason = StopReason.LEASE_LOST

    async def beat(self, stop: asyncio.Event, ended: asyncio.Event) -> None:
        """Tick every RECORD_EVERY_S until `ended` is set; set `stop` once a stop reason appears.

        Ended rather than cancelled: a write cut short would lose the events it had taken from the queue."""
        while not ended.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ended.wait(), RECORD_EVERY_S)
                return
            try:
                await self.tick()
            except DatabaseUnavailable:  # logged once for the process; the run's own writes decide what happens
                pass
            except Exception:  # a hiccup: try again next tick (the lease outlasts many of them)
                log.warning("could not record progress of job %s", self.job.id, exc_info=True)
            if self.stop_reason is not None and not stop.is_set():
                log.info("job %s: stopping (%s)", self.job.id, self.stop_reason)
                stop.set()
