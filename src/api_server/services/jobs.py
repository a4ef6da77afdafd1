"""Job records: trigger (and offer to the queue), read, list, act on (cancel/pause/resume/retry) and delete."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api_server.services.budgets import check_room
from api_server.services.errors import Conflict, InvalidInput, NotFound
from api_server.services.paging import Page, PageRequest, Sortable, fetch_page, sortable_time
from api_server.services.workflows import get_version, get_workflow, time_range
from core.budgets.guard import BudgetGuard
from core.db.types import utcnow
from core.job_records import add_events, event_row
from core.models import Job, JobAction, JobStatus, Priority, Workflow, WorkflowVersion
from core.models.job import SUMMARY_COLUMNS, JobCreate
from core.models.job_event import JobEventKind
from core.models.job_states import ACTIONS, FINISHED, can_transition
from core.queue import JobQueue, offer
from core.spec_policy import effective_spec
from engine import ErrorDetail, SpecCheck, SpecError, WorkflowSpec

ORDERABLE: dict[str, Sortable] = {
    "created_at": sortable_time(col(Job.created_at)),
    "updated_at": sortable_time(col(Job.updated_at)),
    "started_at": sortable_time(col(Job.started_at), nullable=True),
    "completed_at": sortable_time(col(Job.completed_at), nullable=True),
    "priority": Sortable(col(Job.priority), parse=Priority),
    "status": Sortable(col(Job.status)),
    "name": Sortable(col(Job.name)),
    "id": Sortable(col(Job.id)),
}


@dataclass(frozen=True)
class JobFilters:
    """List filters for jobs (all optional; several statuses or priorities match any of them)."""

    statuses: Sequence[JobStatus] = ()
    workflow: str | None = None
    version: int | None = None
    name: str | None = None
    priorities: Sequence[Priority] = ()
    created_after: datetime | None = None
    created_before: datetime | None = None
    updated_after: datetime | None = None
    updated_before: datetime | None = None
    started_after: datetime | None = None
    started_before: datetime | None = None
    completed_after: datetime | None = None
    completed_before: datetime | None = None


def request_hash(data: JobCreate) -> str:
    """A stable hash of a create request's body, compared under one Idempotency-Key."""
    canonical = json.dumps(data.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


async def create_job(session: AsyncSession, *, queue: JobQueue, data: JobCreate, checks: Sequence[SpecCheck] = (),
                     idempotency_key: str | None = None, created_by: int | None = None,
                     budgets: BudgetGuard | None = None) -> tuple[Job, bool]:
    """Trigger a job and offer it to the workers; returns (job, created). A repeated Idempotency-Key returns
    the first job (offered once, when it was created). OverBudget if a budget it counts toward is spent."""
    body_hash = request_hash(data)
    if idempotency_key is not None:
        first = await _job_by_key(session, idempotency_key, body_hash, created_by)
        if first is not None:
            return first, False
    workflow = await get_workflow(session, ref=data.workflow, field="workflow")
    if not workflow.is_active:
        raise Conflict(f"workflow {workflow.name!r} is inactive; activate it (PATCH is_active=true) "
                       "to run it", field="workflow")
    version = await runnable_version(session, workflow, data.version)
    check_params(version.spec, data.params, checks=checks)
    if budgets is not None:
        await check_room(session, budgets, workflow=workflow.name, key_id=created_by)
    assert workflow.id is not None and version.id is not None
    now = utcnow()
    job = Job(workflow_id=workflow.id, workflow_version_id=version.id, workflow_name=workflow.name,
              version=version.version, name=data.name or workflow.name, params=data.params,
              priority=data.priority, idempotency_key=idempotency_key, request_hash=body_hash,
              created_at=now, updated_at=now, enqueued_at=now, created_by=created_by)
    session.add(job)
    try:
        await session.flush()
        assert job.id is not None
        await add_events(session, [event_row(job.id, JobEventKind.CREATED, f"created from {workflow.name} "
                                             f"v{version.version} with priority {data.priority}",
                                             key_id=created_by)])
        await session.commit()
    except IntegrityError:  # a concurrent request with the same Idempotency-Key won the insert
        await session.rollback()
        if idempotency_key is None:
            raise
        first = await _job_by_key(session, idempotency_key, body_hash, created_by)
        if first is None:
            raise
        return first, False
    await offer(queue, job.id, job.priority, job.attempt)
    return job, True


async def _job_by_key(session: AsyncSession, key: str, body_hash: str, created_by: int | None) -> Job | None:
    """The job an API key made with this Idempotency-Key (another key's use of the same one is its own)."""
    job = (await session.exec(select(Job).where(col(Job.idempotency_key) == key,
                                                col(Job.created_by) == created_by))).one_or_none()
    if job is not None and job.request_hash != body_hash:
        raise Conflict("Idempotency-Key was already used with a different request body",
                       field="Idempotency-Key")
    return job


async def runnable_version(session: AsyncSession, workflow: Workflow, number: int | None) -> WorkflowVersion:
    if number is not None:
        version = await get_version(session, workflow=workflow, number=number, field="version")
        if not version.is_active:
            raise Conflict(f"version {number} of {workflow.name!r} is inactive", field="version")
        return version
    newest = (await session.exec(
        select(WorkflowVersion)
        .where(col(WorkflowVersion.workflow_id) == workflow.id, col(WorkflowVersion.is_active) == True)  # noqa: E712
        .order_by(col(WorkflowVersion.version).desc()).limit(1)
    )).one_or_none()
    if newest is None:
        raise Conflict(f"workflow {workflow.name!r} has no active version", field="version")
    return newest


def check_params(spec: Mapping[str, Any], params: Mapping[str, Any], *,
                 checks: Sequence[SpecCheck] = ()) -> WorkflowSpec:
    """The spec with the job's overrides; rejects overrides that would make it invalid or break `checks`, naming
    `params.<field>` (or the stored spec's field, when the stored version itself no longer passes)."""
    try:
        return effective_spec(spec, params, checks=checks)
    except SpecError as exc:
        details = [ErrorDetail(_field_of(i.field, params), i.message) for i in exc.issues]
        field = "params" if any(d.field.startswith("params") for d in details) else "version"
        raise InvalidInput(f"{field}: " + "; ".join(f"{d.field}: {d.message}" for d in details),
                           field=field, details=details) from None


def _field_of(spec_field: str, params: Mapping[str, Any]) -> str:
    """A spec field as the request names it: under `params` if the job overrides it, else the stored version's."""
    if not spec_field:
        return "params"
    return f"params.{spec_field}" if spec_field.split(".")[0] in params else spec_field


async def get_job(session: AsyncSession, *, job_id: int) -> Job:
    """One job by id."""
    job = await session.get(Job, job_id)
    if job is None:
        raise NotFound(f"job {job_id} not found", field="job_id")
    return job


async def jobs_by_id(session: AsyncSession, *, ids: Sequence[int]) -> tuple[list[Job], int]:
    """These jobs (those that exist), and the newest job's id (0: none): primary-key reads only."""
    jobs = list((await session.exec(select(Job).where(col(Job.id).in_(ids)))).all()) if ids else []
    newest = (await session.exec(select(func.max(Job.id)))).one()
    return jobs, int(newest or 0)


async def transition(session: AsyncSession, *, job: Job, target: JobStatus,
                     events: Sequence[dict[str, Any]] = (), **changes: Any) -> Job:
    """Move a job to `target` if that is legal from its current status, atomically (compare and set).

    `events` (rows from `event_row`) are recorded in the same transaction, only if the move happened.
    """
    current = JobStatus(job.status)
    if not can_transition(current, target):
        raise Conflict(f"job {job.id} is {current}; it cannot become {target}", field="status")
    now = utcnow()
    values: dict[str, Any] = {"status": target, "updated_at": now, **changes}
    if target in FINISHED:
        values.setdefault("completed_at", now)
    result = await session.exec(
        update(Job).where(col(Job.id) == job.id, col(Job.status) == current).values(**values)
    )
    if result.rowcount != 1:
        await session.rollback()
        await session.refresh(job)
        raise Conflict(f"job {job.id} changed to {job.status} meanwhile; nothing was done", field="status")
    await add_events(session, events)
    await session.commit()
    await session.refresh(job)
    return job


async def act(session: AsyncSession, *, queue: JobQueue, job_id: int, action: JobAction,
              key_id: int | None = None) -> Job:
    """Cancel, pause, resume or retry a job (a job queued again is offered to the workers); a 409 names the
    status that forbids it."""
    job = await get_job(session, job_id=job_id)
    target = ACTIONS[action].get(JobStatus(job.status))
    if target is None:
        allowed = ", ".join(ACTIONS[action])
        raise Conflict(f"cannot {action} job {job.id}: it is {job.status} (only a job that is {allowed} "
                       f"can be {_past(action)})", field="status")
    changes: dict[str, Any] = {}
    if action is JobAction.RETRY:
        changes = {"error": None, "completed_at": None, "rows_per_s": None, "eta_s": None, "lost_leases": 0}
    if target is JobStatus.QUEUED:
        changes |= {"enqueued_at": utcnow(), "budget_pause": None}  # resumed by hand: no longer the budget's
    assert job.id is not None
    event = event_row(job.id, _ACTION_EVENTS[(action, target)], f"{action} requested: {job.status} -> {target}",
                      key_id=key_id)
    job = await transition(session, job=job, target=target, events=[event], **changes)
    if target is JobStatus.QUEUED:
        await offer(queue, job_id, job.priority, job.attempt)
    return job


_ACTION_EVENTS = {
    (JobAction.CANCEL, JobStatus.CANCELLED): JobEventKind.CANCELLED,
    (JobAction.CANCEL, JobStatus.CANCELLING): JobEventKind.CANCEL_REQUESTED,
    (JobAction.PAUSE, JobStatus.PAUSED): JobEventKind.PAUSED,
    (JobAction.RESUME, JobStatus.QUEUED): JobEventKind.RESUMED,
    (JobAction.RETRY, JobStatus.QUEUED): JobEventKind.RETRIED,
}


def _past(action: JobAction) -> str:
    return {"cancel": "cancelled", "pause": "paused", "resume": "resumed", "retry": "retried"}[action.value]


async def delete_job(session: AsyncSession, *, job_id: int) -> None:
    """Delete a finished job's record."""
    job = await get_job(session, job_id=job_id)
    if JobStatus(job.status) not in FINISHED:
        raise Conflict(f"job {job.id} is {job.status}; only completed, failed or cancelled jobs can be "
                       "deleted (cancel it first)", field="status")
    await session.delete(job)
    await session.commit()


async def list_jobs(session: AsyncSession, *, filters: JobFilters, page: PageRequest) -> Page:
    """One page of job summaries matching the filters."""
    conditions: list[ColumnElement[bool]] = []
    if filters.statuses:
        conditions.append(col(Job.status).in_([s.value for s in filters.statuses]))
    if filters.priorities:
        conditions.append(col(Job.priority).in_(list(filters.priorities)))
    if filters.workflow is not None:
        workflow = await get_workflow(session, ref=filters.workflow, field="workflow")
        conditions.append(col(Job.workflow_id) == workflow.id)
    if filters.version is not None:
        conditions.append(col(Job.version) == filters.version)
    if filters.name:
        conditions.append(col(Job.name).contains(filters.name, autoescape=True))
    for column, after, before in (
        (col(Job.created_at), filters.created_after, filters.created_before),
        (col(Job.updated_at), filters.updated_after, filters.updated_before),
        (col(Job.started_at), filters.started_after, filters.started_before),
        (col(Job.completed_at), filters.completed_after, filters.completed_before),
    ):
        conditions += time_range(column, after, before)
    query = select(*(getattr(Job, name) for name in SUMMARY_COLUMNS))
    return await fetch_page(session, query=query, conditions=conditions, id_column=col(Job.id),
                            sortables=ORDERABLE, request=page)
