"""Estimate a job before it is triggered: its spec with the job's params, over its source, by the gateway."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select, update
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from api_server.services.errors import DomainError, InvalidInput
from api_server.services.estimate_runner import EstimateRunner, SourceUnreadable
from api_server.services.jobs import check_params, runnable_version
from api_server.services.workflows import get_workflow
from core.db import Database
from core.models import Job, JobItem, JobStatus, WorkflowVersion
from core.models.estimate import EstimatePublic
from core.models.job import JobCreate
from engine import Estimate, InputError, RowStatus, SpecCheck, estimated_step
from engine.gateway import GatewayConfig

log = logging.getLogger(__name__)

EARLIER_JOBS = 5  # the workflow's most recent completed jobs whose answers set the expected output tokens


async def estimate_job(session: AsyncSession, *, data: JobCreate, runner: EstimateRunner, gateway: GatewayConfig,
                       checks: Sequence[SpecCheck] = ()) -> Estimate:
    """What `data` would send and cost as a job; InvalidInput names what stops it (as POST /jobs would)."""
    workflow = await get_workflow(session, ref=data.workflow, field="workflow")
    version = await runnable_version(session, workflow, data.version)
    return await _estimate(session, version=version, params=data.params, runner=runner, gateway=gateway,
                           checks=checks)


async def _estimate(session: AsyncSession, *, version: WorkflowVersion, params: dict[str, Any],
                    runner: EstimateRunner, gateway: GatewayConfig, checks: Sequence[SpecCheck],
                    stored_before: float | None = None) -> Estimate:
    """The estimate of a version run with `params`. Answers stored since `stored_before` are not counted on (the
    job's own, when it is already running)."""
    spec = check_params(version.spec, params, checks=checks)
    try:
        estimated_step(spec)
    except InputError as exc:
        raise InvalidInput(str(exc), field="workflow") from None
    deployments = gateway.members(spec.model.name)
    if not deployments:
        raise InvalidInput(f"unknown model {spec.model.name!r}", field="params.model.name")
    earlier = await _earlier_output_tokens(session, version.workflow_id)
    await session.close()  # its connection goes back to the pool: the estimate may wait its turn a while
    try:
        return await runner.estimate(spec=spec, deployments=deployments, earlier_output_tokens=earlier,
                                     cache_scope=gateway.identity(), stored_before=stored_before)
    except SourceUnreadable as exc:
        raise InvalidInput(str(exc), field="source") from None


async def _earlier_output_tokens(session: AsyncSession, workflow_id: int) -> float | None:
    """Output tokens of an answer on average over the workflow's recent completed jobs (first attempts)."""
    recent = list((await session.exec(  # type: ignore[call-overload]
        select(col(Job.id)).where(col(Job.workflow_id) == workflow_id, col(Job.status) == JobStatus.COMPLETED)
        .order_by(col(Job.id).desc()).limit(EARLIER_JOBS))).scalars())  # MariaDB: no LIMIT inside IN (...)
    if not recent:
        return None
    query = select(func.avg(JobItem.tokens_out)).where(
        col(JobItem.job_id).in_(recent), col(JobItem.status) == RowStatus.DONE.value, col(JobItem.attempts) == 1)
    value = (await session.exec(query)).one()[0]  # type: ignore[call-overload]
    return None if value is None else float(value)


async def record_estimate(database: Database, *, job_id: int, runner: EstimateRunner, gateway: GatewayConfig,
                          checks: Sequence[SpecCheck] = ()) -> None:
    """Estimate a job just triggered, of the version and params it was made with, and keep it on its record
    beside the actuals its runs add up (a job whose source cannot be read now keeps none: its run reports the
    problem)."""
    try:
        async with database.session() as session:
            job = await session.get(Job, job_id)
            version = await session.get(WorkflowVersion, job.workflow_version_id) if job is not None else None
            if job is None or version is None:
                return  # deleted meanwhile
            estimate = await _estimate(session, version=version, params=job.params, runner=runner, gateway=gateway,
                                       checks=checks, stored_before=job.created_at.timestamp())
            await session.exec(update(Job).where(col(Job.id) == job_id).values(
                estimate=EstimatePublic.from_estimate(estimate).model_dump(mode="json")))
            await session.commit()
    except DomainError as exc:
        log.info("job %s: no estimate (%s)", job_id, exc.message)
    except Exception:
        log.warning("job %s: the estimate failed", job_id, exc_info=True)
