"""Workflow definitions: store YAML as immutable versions, edit metadata, list, delete."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, delete, exists, func
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api_server.services.errors import Conflict, InvalidInput, NotFound
from api_server.services.paging import Page, PageRequest, Sortable, fetch_page, sortable_time
from core.db.types import MAX_ID, utcnow
from core.models import Job, Workflow, WorkflowTag, WorkflowVersion
from core.models.workflow import (
    NAME_PATTERN,
    WorkflowMeta,
    WorkflowPublic,
    WorkflowUpdate,
    WorkflowVersionUpdate,
)
from engine import LoadedSpec, SpecCheck, SpecError, load_spec

ORDERABLE: dict[str, Sortable] = {
    "created_at": sortable_time(col(Workflow.created_at)),
    "updated_at": sortable_time(col(Workflow.updated_at)),
    "name": Sortable(col(Workflow.name)),
    "id": Sortable(col(Workflow.id)),
}
_RETRIES_ON_RACE = 3


@dataclass(frozen=True)
class StoredVersion:
    """The outcome of storing YAML: the workflow, its version, and whether the version is new."""

    workflow: Workflow
    version: WorkflowVersion
    created: bool


@dataclass(frozen=True)
class WorkflowFilters:
    """List filters for workflows (all optional; tags must all be present)."""

    name: str | None = None
    tags: Sequence[str] = ()
    is_active: bool | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    updated_after: datetime | None = None
    updated_before: datetime | None = None


def parse_spec(text: str, *, checks: Sequence[SpecCheck] = ()) -> LoadedSpec:
    """Validate YAML text as a workflow spec (and `checks`); a 422 naming field, line and column otherwise."""
    try:
        return load_spec(text, checks=checks)
    except SpecError as exc:
        details = [replace(issue, field=issue.field or "yaml") for issue in exc.issues]
        raise InvalidInput(f"invalid workflow YAML: {exc}", field="yaml", details=details) from None


async def store_yaml(session: AsyncSession, *, text: str, name: str | None = None, meta: WorkflowMeta | None = None,
                     checks: Sequence[SpecCheck] = (), created_by: int | None = None) -> StoredVersion:
    """Create a workflow, or a new version of it; identical YAML returns the existing version."""
    # In a thread: parsing a large document, and the path checks' file system calls, must not hold up the server.
    loaded = await asyncio.to_thread(parse_spec, text, checks=checks)
    workflow_name = name or loaded.spec.name
    if not workflow_name:
        raise InvalidInput("name: give the workflow a name, or set `name:` in the YAML", field="name")
    if not re.match(NAME_PATTERN, workflow_name):
        raise InvalidInput(f"name {workflow_name!r} must match {NAME_PATTERN}", field="name")
    for attempt in range(_RETRIES_ON_RACE):
        try:
            return await _store(session, loaded, workflow_name, meta or WorkflowMeta(), created_by)
        except IntegrityError:  # a concurrent request took the same name or version number
            await session.rollback()
            if attempt == _RETRIES_ON_RACE - 1:
                raise
    raise AssertionError("unreachable")


async def _store(session: AsyncSession, loaded: LoadedSpec, name: str, meta: WorkflowMeta,
                 created_by: int | None) -> StoredVersion:
    workflow = (await session.exec(select(Workflow).where(col(Workflow.name) == name))).one_or_none()
    if workflow is None:
        now = utcnow()
        workflow = Workflow(name=name, description=meta.description, is_active=meta.is_active,
                            created_at=now, updated_at=now)
        session.add(workflow)
        await session.flush()
        assert workflow.id is not None
        session.add_all([WorkflowTag(workflow_id=workflow.id, tag=tag) for tag in meta.tags])
    else:
        same = (await session.exec(select(WorkflowVersion).where(
            col(WorkflowVersion.workflow_id) == workflow.id, WorkflowVersion.sha256 == loaded.sha256,
        ))).one_or_none()
        if same is not None:
            return StoredVersion(workflow, same, created=False)
    assert workflow.id is not None
    workflow.latest_version += 1
    workflow.updated_at = utcnow()
    version = WorkflowVersion(workflow_id=workflow.id, version=workflow.latest_version, yaml=loaded.text,
                              spec=loaded.spec.model_dump(mode="json"), sha256=loaded.sha256, created_by=created_by)
    session.add(version)
    await session.commit()
    return StoredVersion(workflow, version, created=True)


async def get_workflow(session: AsyncSession, *, ref: str | int, field: str | None = None) -> Workflow:
    """A workflow by id or name. NotFound for a path reference; InvalidInput naming `field` otherwise."""
    ref_text = str(ref)
    by_id = ref_text.isdigit() and int(ref_text) <= MAX_ID  # a longer number is no id: it can only be a name
    condition = col(Workflow.id) == int(ref_text) if by_id else col(Workflow.name) == ref_text
    workflow = (await session.exec(select(Workflow).where(condition))).one_or_none()
    if workflow is None:
        raise missing(f"workflow {ref_text!r} not found", named_in=field, path_parameter="workflow")
    return workflow


def missing(message: str, *, named_in: str | None, path_parameter: str) -> NotFound | InvalidInput:
    """A missing resource: 404 when the path names it, 422 naming the field when a body or query does."""
    if named_in is not None:
        return InvalidInput(f"{named_in}: {message}", field=named_in)
    return NotFound(message, field=path_parameter)


async def tags_of(session: AsyncSession, *, workflow_ids: Sequence[int]) -> dict[int, list[str]]:
    """Tags of several workflows in one query."""
    tags: dict[int, list[str]] = {workflow_id: [] for workflow_id in workflow_ids}
    if workflow_ids:
        rows = await session.exec(select(col(WorkflowTag.workflow_id), col(WorkflowTag.tag))
                                     .where(col(WorkflowTag.workflow_id).in_(workflow_ids))
                                     .order_by(col(WorkflowTag.tag)))
        for workflow_id, tag in rows:
            tags[workflow_id].append(tag)
    return tags


async def to_public(session: AsyncSession, *, workflows: Sequence[Any]) -> list[WorkflowPublic]:
    """Workflows as the API shows them, tags included."""
    tags = await tags_of(session, workflow_ids=[w.id for w in workflows if w.id is not None])
    return [WorkflowPublic.model_validate(w, update={"tags": tags[w.id]}) for w in workflows
            if w.id is not None]


async def update_workflow(session: AsyncSession, *, ref: str, changes: WorkflowUpdate) -> Workflow:
    """Apply metadata changes (description, tags, is_active)."""
    workflow = await get_workflow(session, ref=ref)
    assert workflow.id is not None
    values = changes.model_dump(exclude_unset=True)
    if "tags" in values and values["tags"] is not None:
        await session.exec(delete(WorkflowTag).where(col(WorkflowTag.workflow_id) == workflow.id))
        session.add_all([WorkflowTag(workflow_id=workflow.id, tag=tag) for tag in values.pop("tags")])
    for key, value in values.items():
        if value is not None:
            setattr(workflow, key, value)
    workflow.updated_at = utcnow()
    await session.commit()
    return workflow


async def delete_workflow(session: AsyncSession, *, ref: str) -> None:
    """Delete a workflow and its versions; refused while any job references it."""
    workflow = await get_workflow(session, ref=ref)
    jobs = (await session.exec(select(func.count()).select_from(Job)
                                  .where(col(Job.workflow_id) == workflow.id))).one()
    if jobs:
        raise Conflict(f"workflow {workflow.name!r} is referenced by {jobs} job(s); delete those jobs "
                       "first, or deactivate the workflow with PATCH is_active=false", field="workflow")
    await session.exec(delete(WorkflowTag).where(col(WorkflowTag.workflow_id) == workflow.id))
    await session.exec(delete(WorkflowVersion).where(col(WorkflowVersion.workflow_id) == workflow.id))
    await session.delete(workflow)
    await session.commit()


async def list_versions(session: AsyncSession, *, ref: str) -> tuple[Workflow, list[WorkflowVersion]]:
    """Every version of a workflow, newest first."""
    workflow = await get_workflow(session, ref=ref)
    versions = (await session.exec(select(WorkflowVersion)
                                      .where(col(WorkflowVersion.workflow_id) == workflow.id)
                                      .order_by(col(WorkflowVersion.version).desc()))).all()
    return workflow, list(versions)


async def get_version(session: AsyncSession, *, workflow: Workflow, number: int,
                      field: str | None = None) -> WorkflowVersion:
    """One version of a workflow by its number."""
    version = (await session.exec(select(WorkflowVersion).where(
        col(WorkflowVersion.workflow_id) == workflow.id, col(WorkflowVersion.version) == number,
    ))).one_or_none()
    if version is None:
        raise missing(f"workflow {workflow.name!r} has no version {number}", named_in=field, path_parameter="version")
    return version


async def update_version(session: AsyncSession, *, ref: str, number: int,
                         changes: WorkflowVersionUpdate) -> WorkflowVersion:
    """Activate or deactivate one version."""
    workflow = await get_workflow(session, ref=ref)
    version = await get_version(session, workflow=workflow, number=number)
    version.is_active = changes.is_active
    await session.commit()
    return version


async def list_workflows(session: AsyncSession, *, filters: WorkflowFilters, page: PageRequest) -> Page:
    """One page of workflows matching the filters."""
    conditions: list[ColumnElement[bool]] = []
    if filters.name:
        conditions.append(col(Workflow.name).contains(filters.name, autoescape=True))
    for tag in filters.tags:
        conditions.append(exists().where(col(WorkflowTag.workflow_id) == col(Workflow.id), col(WorkflowTag.tag) == tag))
    if filters.is_active is not None:
        conditions.append(col(Workflow.is_active) == filters.is_active)
    conditions += time_range(col(Workflow.created_at), filters.created_after, filters.created_before)
    conditions += time_range(col(Workflow.updated_at), filters.updated_after, filters.updated_before)
    query = select(*(col(getattr(Workflow, name)) for name in Workflow.model_fields))
    return await fetch_page(session, query=query, conditions=conditions,
                            id_column=col(Workflow.id), sortables=ORDERABLE, request=page)


def time_range(column: Any, after: datetime | None, before: datetime | None) -> list[ColumnElement[bool]]:
    """`after <= column < before`, each bound optional."""
    conditions: list[ColumnElement[bool]] = []
    if after is not None:
        conditions.append(column >= after)
    if before is not None:
        conditions.append(column < before)
    return conditions
