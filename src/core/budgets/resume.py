"""Jobs paused by a budget resume by themselves: when the budget's window resets, or it is raised or removed."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from sqlalchemy import update
from sqlmodel import col, select

from core.budgets.guard import BudgetGuard
from core.db import Database
from core.db.types import utcnow
from core.job_records import add_events, event_row
from core.models import Budget, Job, JobStatus
from core.models.job_event import JobEventKind
from core.queue import JobQueue, offer

log = logging.getLogger(__name__)

RESUME_BATCH = 100


async def resume_for_budgets(database: Database, queue: JobQueue, guard: BudgetGuard) -> list[int]:
    """Queue again every job a budget paused that now has room; the ids resumed."""
    async with database.session() as session:
        paused = (await session.exec(select(Job.id, Job.budget_pause).where(
            col(Job.status) == JobStatus.PAUSED, col(Job.budget_pause).is_not(None)).limit(RESUME_BATCH))).all()
        if not paused:
            return []
        budgets = {b.id: b for b in (await session.exec(select(Budget))).all()}
    figures = {f.budget.id: f for f in await guard.figures(budgets.values())}
    resumed: list[int] = []
    for job_id, pause in paused:
        why = _room(pause or {}, figures)
        assert job_id is not None
        if why is not None and await _resume(database, job_id, why):
            resumed.append(job_id)
    for job_id in resumed:
        async with database.session() as session:
            job = await session.get(Job, job_id)
        if job is not None:
            await offer(queue, job_id, job.priority, job.attempt)
    if resumed:
        log.info("resumed jobs a budget had paused: %s", resumed)
    return resumed


def _room(pause: Mapping[str, Any], figures: dict[int | None, Any]) -> str | None:
    """Why the budget that paused a job now lets it go on, or None while it still does not."""
    current = figures.get(pause.get("budget_id"))
    if current is None:
        return "its budget was removed"
    if current.window.name != pause.get("window"):
        return f"its budget's {current.budget.period} window reset"
    room = current.budget.limit_usd - current.spent - current.held
    if room >= float(pause.get("needed_usd") or 0.0) and room > 0:
        return f"its budget has room again ({room:.6g} of {current.budget.limit_usd:.6g} left)"
    return None


async def _resume(database: Database, job_id: int, why: str) -> bool:
    async with database.session() as session:
        now = utcnow()
        result = await session.exec(update(Job).where(
            col(Job.id) == job_id, col(Job.status) == JobStatus.PAUSED, col(Job.budget_pause).is_not(None))
            .values(status=JobStatus.QUEUED, budget_pause=None, enqueued_at=now, updated_at=now))
        if result.rowcount != 1:
            return False
        await add_events(session, [event_row(job_id, JobEventKind.RESUMED, f"resumed: {why}")])
        await session.commit()
        return True
