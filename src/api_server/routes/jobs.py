"""/api/v1/jobs: trigger jobs of workflows, follow them, and control them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Header, Query, Request, Response, status
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel, ConfigDict, Field, field_validator

from api_server.auth import AdminKey, ReadKey, WriteKey, still_allowed, stream_pause
from api_server.deps import (
    BudgetsDep,
    DatabaseDep,
    EstimatesDep,
    QueueDep,
    RouterDep,
    SessionDep,
    SpecChecksDep,
)
from api_server.http_errors import error_responses
from api_server.query_params import JobId, JobListQuery, ListPage, NoQueryDep
from api_server.routes._paging import list_page, page_request
from api_server.services import estimates
from api_server.services import jobs as service
from core.db.types import MAX_ID
from core.models import JobAction, Scope
from core.models.estimate import EstimatePublic
from core.models.job import JobCreate, JobPublic, JobSummary

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"], responses=error_responses(401, 403))
MAX_WATCHED = 200  # jobs one stream follows (a page shows at most 100)
WATCH_POLL_S = 0.5

IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", max_length=255,
           description="Repeat a POST safely: the same key and body return the first job."),
]


@router.post("", response_model=JobPublic, status_code=status.HTTP_201_CREATED,
             responses={200: {"model": JobPublic, "description": "Same Idempotency-Key and body: the first job"},
                        **error_responses(409, 413, 422, 429)})
async def create_job(data: JobCreate, response: Response, session: SessionDep, queue: QueueDep, caller: WriteKey,
                     checks: SpecChecksDep, budgets: BudgetsDep, database: DatabaseDep, runner: EstimatesDep,
                     gateway: RouterDep, background: BackgroundTasks, _: NoQueryDep,
                     idempotency_key: IdempotencyKey = None) -> JobPublic:
    """Trigger a job of a workflow.

    `workflow` is a name or id; `version` defaults to the newest active one. `params` override parts of
    the spec for this job (for example `{"source": {"path": "other.csv"}}`) and are validated with
    it. With an `Idempotency-Key` header, a retry with the same key and body returns the first job (200);
    the same key with a different body is a 409.

    A job that counts toward a budget with nothing left is refused (429, naming the budget, what is spent of
    its limit, and when it resets). The job's `estimate` (as `POST /jobs/estimate` gives it) is made after the
    answer and shown on the job beside its `usage`.
    """
    job, created = await service.create_job(session, queue=queue, data=data, checks=checks,
                                            idempotency_key=idempotency_key, created_by=caller.key_id,
                                            budgets=budgets)
    if created:
        assert job.id is not None
        background.add_task(estimates.record_estimate, database, job_id=job.id, runner=runner,
                            gateway=gateway.config, checks=checks)
    else:
        response.status_code = status.HTTP_200_OK
    response.headers["Location"] = f"{router.prefix}/{job.id}"
    return JobPublic.from_job(job)


@router.post("/estimate", response_model=EstimatePublic, responses=error_responses(404, 409, 413, 422))
async def estimate_job(data: JobCreate, session: SessionDep, _caller: WriteKey, checks: SpecChecksDep,
                       runner: EstimatesDep, gateway: RouterDep, _: NoQueryDep) -> EstimatePublic:
    """Estimate a job without triggering it: no job is made and no model is called.

    The body is what `POST /api/v1/jobs` takes. The answer: the rows that would be sent (after `select`, and
    less those the answer cache would answer),
    input tokens counted by each candidate model's tokenizer, output tokens expected (from the workflow's
    recent jobs, else from the answer's fields; `max_tokens` is the high end), cost low / expected / high by
    each model's routing weight and price, and the time the models' `safe_rps` and `tpm` imply.
    """
    estimate = await estimates.estimate_job(session, data=data, runner=runner, gateway=gateway.config,
                                            checks=checks)
    return EstimatePublic.from_estimate(estimate)


@router.get("", response_model=ListPage[JobSummary], responses=error_responses(422))
async def list_jobs(session: SessionDep, _caller: ReadKey,
                    query: Annotated[JobListQuery, Query()]) -> ListPage[JobSummary]:
    """List jobs, filtered and ordered (items carry no params).

    Filters: `status` and `priority` (repeat or comma-separate: any of), `workflow` (name or id),
    `version`, `name` (contains), and `created|updated|started|completed` `_after` / `_before`.
    `order_by`: created_at, updated_at, started_at, completed_at, priority, status, name, id, each with
    asc or desc. Page with `limit` + `offset` (returns `total`) or follow the `next` cursor as `after`,
    which stays fast and skips nothing at any depth even while jobs are added.
    """
    filters = service.JobFilters(
        statuses=query.status, workflow=query.workflow, version=query.version, name=query.name,
        priorities=query.priority,
        created_after=query.created_after, created_before=query.created_before,
        updated_after=query.updated_after, updated_before=query.updated_before,
        started_after=query.started_after, started_before=query.started_before,
        completed_after=query.completed_after, completed_before=query.completed_before,
    )
    page = await service.list_jobs(session, filters=filters, page=page_request(query, service.ORDERABLE))
    return list_page(page, JobSummary.from_job)


class WatchQuery(BaseModel):
    """GET /api/v1/jobs/changes: the jobs a page shows, and the newest job it knows."""

    model_config = ConfigDict(extra="forbid")

    ids: list[int] = Field(default_factory=list, max_length=MAX_WATCHED, description=(
        f"Jobs to follow (repeat or comma-separate; at most {MAX_WATCHED})."))
    since_id: int = Field(0, ge=0, le=MAX_ID, description="Announce jobs created with a larger id.")

    @field_validator("ids", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return [part for v in value for part in v.split(",") if part.strip()]
        return value


@router.get("/changes", response_class=EventSourceResponse, responses=error_responses(422))
async def watch_jobs(database: DatabaseDep, _caller: ReadKey, request: Request,
                     query: Annotated[WatchQuery, Query()]) -> AsyncIterator[ServerSentEvent]:
    """Follow a list of jobs as server-sent events: what a jobs page needs to stay current.

    A `job` event (the job as lists show it) each time one of `ids` changes, and a `created` event (with
    the newest id) when jobs newer than `since_id` appear. Each check reads the followed jobs by id and the
    newest id, so it costs the same with a million jobs as with ten. The stream ends when its API key is revoked.
    """
    seen: dict[int, object] = {}
    newest = query.since_id
    while await still_allowed(request, Scope.READ):
        async with database.session() as session:
            jobs, latest = await service.jobs_by_id(session, ids=query.ids)
        for job in jobs:
            if seen.get(job.id or 0) != job.updated_at:
                seen[job.id or 0] = job.updated_at
                yield ServerSentEvent(event="job", data=JobSummary.from_job(job).model_dump(mode="json"))
        if latest > newest:
            newest = latest
            yield ServerSentEvent(event="created", data={"newest_id": latest})
        await stream_pause(request, WATCH_POLL_S)


@router.get("/{job_id}", response_model=JobPublic, responses=error_responses(404, 422))
async def get_job(job_id: JobId, session: SessionDep, _caller: ReadKey, _: NoQueryDep) -> JobPublic:
    """Get one job: status, counts, usage, timestamps, error."""
    return JobPublic.from_job(await service.get_job(session, job_id=job_id))


@router.delete("/{job_id}", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(404, 409))
async def delete_job(job_id: JobId, session: SessionDep, _caller: AdminKey, _: NoQueryDep) -> None:
    """Delete a finished (completed, failed or cancelled) job's record; 409 for any other status."""
    await service.delete_job(session, job_id=job_id)


ACTION_RESPONSES = error_responses(404, 409, 422)


@router.post("/{job_id}/cancel", response_model=JobPublic, responses=ACTION_RESPONSES)
async def cancel_job(job_id: JobId, session: SessionDep, queue: QueueDep, caller: WriteKey,
                  _: NoQueryDep) -> JobPublic:
    """Cancel a job.

    A queued or paused job is cancelled at once, a running one goes through `cancelling` (rows in flight are
    finished or dropped, the output written so far is kept). 409 names the status if the job cannot be cancelled.
    """
    job = await service.act(session, queue=queue, job_id=job_id, action=JobAction.CANCEL, key_id=caller.key_id)
    return JobPublic.from_job(job)


@router.post("/{job_id}/pause", response_model=JobPublic, responses=ACTION_RESPONSES)
async def pause_job(job_id: JobId, session: SessionDep, queue: QueueDep, caller: WriteKey,
                  _: NoQueryDep) -> JobPublic:
    """Pause a queued or running job.

    It keeps its place and its finished rows. 409 names the status otherwise.
    """
    job = await service.act(session, queue=queue, job_id=job_id, action=JobAction.PAUSE, key_id=caller.key_id)
    return JobPublic.from_job(job)


@router.post("/{job_id}/resume", response_model=JobPublic, responses=ACTION_RESPONSES)
async def resume_job(job_id: JobId, session: SessionDep, queue: QueueDep, caller: WriteKey,
                  _: NoQueryDep) -> JobPublic:
    """Resume a paused job.

    It is queued again and goes on from its finished rows. 409 names the status otherwise.
    """
    job = await service.act(session, queue=queue, job_id=job_id, action=JobAction.RESUME, key_id=caller.key_id)
    return JobPublic.from_job(job)


@router.post("/{job_id}/retry", response_model=JobPublic, responses=ACTION_RESPONSES)
async def retry_job(job_id: JobId, session: SessionDep, queue: QueueDep, caller: WriteKey,
                  _: NoQueryDep) -> JobPublic:
    """Retry a failed or cancelled job.

    It is queued again; finished rows are kept and only failed and unsent rows run. 409 names the status otherwise.
    """
    job = await service.act(session, queue=queue, job_id=job_id, action=JobAction.RETRY, key_id=caller.key_id)
    return JobPublic.from_job(job)
