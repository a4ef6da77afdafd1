"""A multi-step job's results by step and model: rows, failures, tokens, cost, latency, and how models agree."""

from __future__ import annotations

from typing import Any

from sqlalchemy import case, func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api_server.services.jobs import get_job
from core.models import JobItem, WorkflowVersion
from core.models.job import shown_cost
from core.models.job_steps import AgreementPublic, StepModelPublic, StepPublic, StepsPublic
from engine.results import RowStatus
from engine.spec import merge_params, validate_spec_data
from engine.spec.flow import compare_columns, pipeline
from engine.spec.models import PromptStep


async def job_steps(session: AsyncSession, *, job_id: int) -> StepsPublic:
    """The job's steps in order, each with a summary a model (one, or each of a fan-out's)."""
    job = await get_job(session, job_id=job_id)
    version = await session.get(WorkflowVersion, job.workflow_version_id)
    assert version is not None
    spec = validate_spec_data(merge_params(version.spec, job.params))
    if spec.steps is None:
        return StepsPublic(steps=[])
    done = col(JobItem.status) == RowStatus.DONE.value
    figures = (await session.exec(select(  # type: ignore[call-overload]
        JobItem.step, JobItem.target, func.sum(case((done, 1), else_=0)), func.sum(case((done, 0), else_=1)),
        func.sum(JobItem.tokens_in), func.sum(JobItem.tokens_out), func.sum(JobItem.cost),
        func.sum(case((col(JobItem.cached), 1), else_=0)), func.avg(JobItem.latency_s))
        .where(col(JobItem.job_id) == job_id, col(JobItem.step) != "")
        .group_by(JobItem.step, JobItem.target))).all()
    by_unit = {(step, target): rest for step, target, *rest in figures}
    steps = []
    for step in pipeline(spec):
        targets = (step.models or [""]) if isinstance(step, PromptStep) else [""]
        models = [_model(target, by_unit.get((step.id, target))) for target in targets]
        agreement = await _agreement(session, job_id, step) if isinstance(step, PromptStep) else []
        steps.append(StepPublic(id=step.id, kind=step.kind, models=models, agreement=agreement))
    return StepsPublic(steps=steps)


def _model(target: str, figures: Any) -> StepModelPublic:
    done, failed, tokens_in, tokens_out, cost, cached, latency = figures or (0, 0, 0, 0, 0.0, 0, None)
    return StepModelPublic(model=target, done=int(done or 0), failed=int(failed or 0),
                           tokens_in=int(tokens_in or 0), tokens_out=int(tokens_out or 0),
                           cost=shown_cost(float(cost or 0)), cached=int(cached or 0),
                           mean_latency_s=None if latency is None else round(float(latency), 4))


async def _agreement(session: AsyncSession, job_id: int, step: PromptStep) -> list[AgreementPublic]:
    """Per compared field, the share of done rows where all, most, or no models gave the same value."""
    shares = []
    for field, (column, _) in compare_columns(step).items():
        level = col(JobItem.outputs)[column].as_string()
        rows = (await session.exec(select(level, func.count())
                                   .where(col(JobItem.job_id) == job_id, col(JobItem.step) == "",
                                          col(JobItem.status) == RowStatus.DONE.value, level.is_not(None))
                                   .group_by(level))).all()
        counts = {str(name): int(n) for name, n in rows}
        total = sum(counts.values())
        shares.append(AgreementPublic(
            field=field, column=column, rows=total,
            **{name: round(counts.get(name, 0) / total, 6) if total else None for name in ("all", "majority",
                                                                                            "none")}))
    return shares
