"""A multi-step job's results by step and model: rows, failures, tokens, cost, latency, and how models agree."""

from __future__ import annotations

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api_server.services.jobs import get_job
from core.models import JobItem, WorkflowVersion
from core.models.job import shown_cost
from core.models.job_steps import AgreementPublic, StepModelPublic, StepPublic, StepsPublic
from core.spec_policy import effective_spec
from core.step_counts import step_counts
from engine import PromptStep, RowStatus, compare_columns, pipeline, step_targets


async def job_steps(session: AsyncSession, *, job_id: int) -> StepsPublic:
    """The job's steps in order, each with a summary for each of its models (one, or each of a fan-out's)."""
    job = await get_job(session, job_id=job_id)
    version = await session.get(WorkflowVersion, job.workflow_version_id)
    assert version is not None
    # What the job ran, shown even when the platform's policy has changed since (no checks).
    spec = effective_spec(version.spec, job.params, checks=())
    if spec.steps is None:
        return StepsPublic(steps=[])
    counts = await step_counts(session, job_id=job_id)
    steps = []
    for step in pipeline(spec):
        models = [_model(target, counts.get(step.id, {}).get(target, {})) for target in step_targets(step)]
        agreement = await _agreement(session, job_id, step) if isinstance(step, PromptStep) else []
        steps.append(StepPublic(id=step.id, kind=step.kind, models=models, agreement=agreement))
    return StepsPublic(steps=steps)


def _model(target: str, counts: dict[str, float]) -> StepModelPublic:
    done, failed = int(counts.get(RowStatus.DONE.value, 0)), int(counts.get(RowStatus.FAILED.value, 0))
    return StepModelPublic(model=target, done=done, failed=failed, tokens_in=int(counts.get("tokens_in", 0)),
                           tokens_out=int(counts.get("tokens_out", 0)), cost=shown_cost(counts.get("cost", 0.0)),
                           cached=int(counts.get("cached", 0)),
                           mean_latency_s=round(counts["latency_s"] / (done + failed), 4) if done + failed else None)


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
