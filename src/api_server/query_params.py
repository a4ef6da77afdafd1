"""Query-string models of the list endpoints (unknown parameters are rejected) and the page shape."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Path, Query
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from core.db.types import MAX_ID
from core.models.job_states import JobStatus, Priority

T = TypeVar("T")


def split_commas(value: Any) -> Any:
    """Accept `status=a&status=b` and `status=a,b` alike."""
    values = value if isinstance(value, list) else [value]
    return [part.strip() for item in values for part in str(item).split(",") if part.strip()]


class NoQuery(BaseModel):
    """Routes that take no query parameters reject any (a typo must not be silently ignored)."""

    model_config = ConfigDict(extra="forbid")


NoQueryDep = Annotated[NoQuery, Query()]
JobId = Annotated[int, Path(ge=1, le=MAX_ID, description="The job's id.")]
KeyId = Annotated[int, Path(ge=1, le=MAX_ID, description="The API key's id.")]
VersionNumber = Annotated[int, Path(ge=1, le=MAX_ID, description="The version's number.")]


class ListQuery(BaseModel):
    """Paging and ordering common to every list."""

    model_config = ConfigDict(extra="forbid")

    limit: int = Field(50, ge=1, le=1000, description="Items per page (1-1000).")
    offset: int | None = Field(
        None, ge=0, le=MAX_ID, description="Offset paging: skip this many items; the answer then carries `total`.")
    after: str | None = Field(
        None, max_length=2048, description="Cursor paging: the `next` value of the previous page.")
    order_by: str = Field(
        "created_at desc", max_length=64,
        description="`field`, `field asc`, `field desc` or `-field`; allowed fields are listed per endpoint.")


def _iso_8601(value: Any) -> Any:
    """A time filter is an ISO 8601 date or time: not a bare number, which pydantic would read as epoch seconds."""
    if not isinstance(value, str) or not re.match(r"\d{4}-\d{2}-\d{2}", value):
        raise ValueError("an ISO 8601 date or time is expected, e.g. 2026-11-29 or 2026-11-29T14:00:00Z")
    return value


Moment = Annotated[datetime, BeforeValidator(_iso_8601)]


class CreatedUpdatedRange(BaseModel):
    """Time-range filters (after is inclusive, before exclusive; times without a zone are UTC)."""

    created_after: Moment | None = None
    created_before: Moment | None = None
    updated_after: Moment | None = None
    updated_before: Moment | None = None


class WorkflowListQuery(ListQuery, CreatedUpdatedRange):
    """Filters for GET /api/v1/workflows. order_by: created_at, updated_at, name, id."""

    name: str | None = Field(None, max_length=128, description="Name contains this text.")
    tag: list[str] = Field(default_factory=list, description="Has every one of these tags.")
    is_active: bool | None = None

    _split_tags = field_validator("tag", mode="before")(split_commas)


class JobListQuery(ListQuery, CreatedUpdatedRange):
    """Filters for GET /api/v1/jobs.

    order_by: created_at, updated_at, started_at, completed_at, priority, status, name, id.
    """

    status: list[JobStatus] = Field(default_factory=list, description="Any of these statuses.")
    workflow: str | None = Field(None, max_length=128, description="Workflow name or id.")
    version: int | None = Field(None, ge=1, le=MAX_ID, description="Workflow version number.")
    name: str | None = Field(None, max_length=200, description="Job name contains this text.")
    priority: list[Priority] = Field(default_factory=list, description="Any of these priorities.")
    started_after: Moment | None = None
    started_before: Moment | None = None
    completed_after: Moment | None = None
    completed_before: Moment | None = None

    _split_lists = field_validator("status", "priority", mode="before")(split_commas)


class ListPage(BaseModel, Generic[T]):
    """One page of a list. Follow `next` (as `after`) while `has_more`; `total` only with offset paging."""

    items: list[T]
    limit: int
    offset: int | None = None
    total: int | None = None
    next: str | None = None
    has_more: bool


class ItemStatus(StrEnum):
    """How a row ended."""

    DONE = "done"
    FAILED = "failed"


class ItemListQuery(BaseModel):
    """GET /api/v1/jobs/{id}/items: rows by key, optionally only done or only failed ones."""

    model_config = ConfigDict(extra="forbid")

    status: ItemStatus | None = Field(None, description="done or failed; default both.")
    step: str | None = Field(None, max_length=64, description=(
        "A step's id: that step's results (one per row, or one per row and model of a fan-out); default: each "
        "row's own result."))
    model: str | None = Field(None, max_length=128, description=(
        "Only results of this model: the model a fan-out asked, or the one that answered."))
    limit: int = Field(100, ge=1, le=1000, description="Items per page (1-1000).")
    offset: int | None = Field(
        None, ge=0, le=MAX_ID, description="Offset paging: skip this many items; the answer then carries `total`.")
    after: str | None = Field(None, max_length=2048, description="Cursor paging: the `next` value of the previous "
                                                                  "page.")


class EventListQuery(BaseModel):
    """GET /api/v1/jobs/{id}/events: oldest first."""

    model_config = ConfigDict(extra="forbid")

    limit: int = Field(100, ge=1, le=1000, description="Events per page (1-1000).")
    after: int | None = Field(None, ge=0, le=MAX_ID, description="The `next` value of the previous page (an event id).")
