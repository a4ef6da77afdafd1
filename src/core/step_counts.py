"""A job's step results added up by step, model and outcome, from `job_items` (every run of the job counted)."""

from __future__ import annotations

from sqlalchemy import case, func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.models import JobItem
from engine import StepCounts

SUMMED = ("tokens_in", "tokens_out", "cost", "cached", "latency_s")
FRACTIONAL = ("cost", "latency_s")


async def step_counts(session: AsyncSession, *, job_id: int) -> StepCounts:
    """Step id -> model ("" for a step of one model) -> done and failed counts, tokens, cost, cached results and
    the sum of latencies: the shape a run's progress reports them in."""
    rows = (await session.exec(select(  # type: ignore[call-overload]
        JobItem.step, JobItem.target, JobItem.status, func.count(), func.sum(JobItem.tokens_in),
        func.sum(JobItem.tokens_out), func.sum(JobItem.cost), func.sum(case((col(JobItem.cached), 1), else_=0)),
        func.sum(JobItem.latency_s))
        .where(col(JobItem.job_id) == job_id, col(JobItem.step) != "")
        .group_by(JobItem.step, JobItem.target, JobItem.status))).all()
    counts: StepCounts = {}
    for step, target, status, results, *sums in rows:
        into = counts.setdefault(step, {}).setdefault(target, {})
        into[status] = into.get(status, 0) + results
        for name, value in zip(SUMMED, sums, strict=True):
            into[name] = into.get(name, 0) + (float(value or 0) if name in FRACTIONAL else int(value or 0))
    return counts
