"""/api/v1/jobs/{id}/...: what a job produced and what happened to it (items, errors, events, progress, output)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent

from api_server.auth import require, still_allowed, stream_pause
from api_server.deps import DatabaseDep, SessionDep, SettingsDep
from api_server.http_errors import ErrorResponse, error_responses
from api_server.query_params import EventListQuery, ItemListQuery, ItemStatus, JobId, ListPage, NoQueryDep
from api_server.services import job_results, job_steps
from api_server.services.errors import Conflict, NotFound
from api_server.services.jobs import get_job
from core.models import JobStatus, Scope
from core.models.job import JobPublic
from core.models.job_event import JobEventPublic
from core.models.job_item import JobItemPublic
from core.models.job_states import FINISHED
from core.models.job_steps import StepsPublic
from core.spec_policy import path_policy
from engine import is_table_output

router = APIRouter(prefix="/api/v1/jobs", tags=["job results"], dependencies=[require(Scope.READ)],
                   responses=error_responses(401, 403))
PROGRESS_POLL_S = 0.5


async def existing_job(job_id: JobId, session: SessionDep) -> int:
    """The job's id, or a 404: a dependency, so a stream answers 404 before its first byte, not inside it."""
    await get_job(session, job_id=job_id)
    return job_id


ExistingJobId = Annotated[int, Depends(existing_job)]


class ErrorListQuery(ItemListQuery):
    """GET /api/v1/jobs/{id}/errors: failed rows only."""

    status: None = None


@router.get("/{job_id}/items", response_model=ListPage[JobItemPublic], responses=error_responses(404, 422))
async def list_items(job_id: ExistingJobId, session: SessionDep,
                     query: Annotated[ItemListQuery, Query()]) -> ListPage[JobItemPublic]:
    """Page through a job's finished rows (filter with `status=done|failed`).

    Each item has the row's key, its answer or error, the model, attempts, latency, tokens and cost of all
    its attempts, and the workflow version and prompt hash it ran under. Ordered by key; page with `limit` +
    `offset` (returns `total`) or follow `next` as `after` while `has_more`.

    A multi-step job also keeps one result per row and step (and per model of a fan-out): `step=<id>` lists a
    step's, `model=<name>` one model's. A row's own result holds every column its steps wrote; tokens and cost
    are on the step results that bought them.
    """
    return await job_results.list_items(session, job_id=job_id, status=query.status, after=query.after,
                                        limit=query.limit, offset=query.offset, step=query.step, model=query.model)


@router.get("/{job_id}/errors", response_model=ListPage[JobItemPublic], responses=error_responses(404, 422))
async def list_errors(job_id: ExistingJobId, session: SessionDep,
                      query: Annotated[ErrorListQuery, Query()]) -> ListPage[JobItemPublic]:
    """Page through a job's failed rows with their error class and reason (`retry` re-sends exactly these).

    Paging as for items: `limit` + `offset` (returns `total`), or `next` as `after`.
    """
    return await job_results.list_items(session, job_id=job_id, status=ItemStatus.FAILED, after=query.after,
                                        limit=query.limit, offset=query.offset, step=query.step, model=query.model)


@router.get("/{job_id}/steps", response_model=StepsPublic, responses=error_responses(404, 422))
async def list_steps(job_id: JobId, session: SessionDep, _: NoQueryDep) -> StepsPublic:
    """A multi-step job's results by step and by model, with the agreement rates of a fan-out.

    Each step lists each of its models (one, or each of a fan-out's) with rows done and failed, tokens, cost,
    cached results and mean latency; a fan-out with `compare` adds the share of rows where all, most or none
    of the models agreed.

    Counted from the stored results, so it covers every run of the job. Empty for a one-step workflow.
    """
    return await job_steps.job_steps(session, job_id=job_id)


@router.get("/{job_id}/events", response_model=ListPage[JobEventPublic], responses=error_responses(404, 422))
async def list_events(job_id: ExistingJobId, session: SessionDep,
                      query: Annotated[EventListQuery, Query()]) -> ListPage[JobEventPublic]:
    """List a job's events, oldest first.

    Created, claimed, paused for API errors (with the cause), cancelled, re-queued, failed (with the error),
    output written (with where), ... Each says which API key caused it (`key_id`; null for a worker's own).
    """
    return await job_results.list_events(session, job_id=job_id, after=query.after, limit=query.limit)


@router.get("/{job_id}/progress", response_class=EventSourceResponse, responses={
    404: {"model": ErrorResponse, "description": "Not found", "content": {"application/json": {}}}})
async def stream_progress(job_id: ExistingJobId, database: DatabaseDep, request: Request,
                          _: NoQueryDep) -> AsyncIterator[ServerSentEvent]:
    """Follow a job's progress as server-sent events.

    A `progress` event (the job as GET returns it, without params) whenever it changes, and a last `end` event
    when the job is completed, failed or cancelled. The stream ends when its API key is revoked.
    """
    seen: Any = None
    while await still_allowed(request, Scope.READ):
        async with database.session() as session:
            job = await get_job(session, job_id=job_id)
        if job.updated_at != seen:
            seen = job.updated_at
            yield ServerSentEvent(event="progress", data=JobPublic.from_job(job).model_dump(
                mode="json", exclude={"params"}), id=str(job.updated_at.timestamp()))
        if JobStatus(job.status) in FINISHED:
            yield ServerSentEvent(event="end", data={"id": job_id, "status": job.status})
            return
        await stream_pause(request, PROGRESS_POLL_S)


OUTPUT_TYPES = {".csv": "text/csv", ".jsonl": "application/jsonl", ".parquet": "application/vnd.apache.parquet",
                ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


@router.get("/{job_id}/output", response_class=FileResponse,
            responses={200: {"description": "The output file, of the sink's kind",
                             "content": {media: {"schema": {"type": "string", "format": "binary"}}
                                         for media in OUTPUT_TYPES.values()}},
                       **error_responses(404, 409)})
async def download_output(job_id: JobId, session: SessionDep, settings: SettingsDep, _: NoQueryDep) -> FileResponse:
    """Download a job's output file (written when the job ends, and saved periodically while it runs).

    404 while there is none yet; 409 when the output went to a MySQL table (nothing to download).
    """
    job = await get_job(session, job_id=job_id)
    if not job.output:
        raise NotFound(f"job {job_id} has no output yet (status {job.status})", field="job_id")
    if is_table_output(job.output):
        raise Conflict(f"job {job_id} wrote its results to {job.output}; there is no file to download",
                       field="job_id")
    # The job's own output only, and only while it is where files may be (a symlink swapped in since counts).
    policy = path_policy(settings)
    allowed = await asyncio.to_thread(policy.problem, job.output) is None
    path = policy.resolve(job.output, field="output") if allowed else Path()
    if not allowed or not await asyncio.to_thread(path.is_file):
        raise NotFound(f"job {job_id}'s output is no longer there", field="job_id")
    return FileResponse(path, filename=path.name, media_type=OUTPUT_TYPES.get(path.suffix, "application/octet-stream"))
