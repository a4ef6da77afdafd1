"""/api/v1/usage: what jobs spent, by period, model, workflow and API key."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field

from api_server.auth import ReadKey
from api_server.deps import SessionDep
from api_server.http_errors import error_responses
from api_server.query_params import Moment, split_commas
from api_server.services.usage import UsageDimension, UsageFilters, hour_window, usage
from core.db.types import MAX_ID
from core.models.job import shown_cost

router = APIRouter(prefix="/api/v1/usage", tags=["usage"], responses=error_responses(401, 403))


class UsageQuery(BaseModel):
    """What to add up by, which rows count, and the page."""

    model_config = ConfigDict(extra="forbid")

    group_by: Annotated[list[UsageDimension], BeforeValidator(split_commas)] = Field(
        default_factory=lambda: [UsageDimension.DAY], min_length=1, max_length=5,
        description="Any of day, hour (UTC), model, workflow, key (repeat or comma-separate).")
    since: Moment | None = Field(None, description="Rows finished at or after this time.")
    until: Moment | None = Field(None, description="Rows finished before this time.")
    workflow: str | None = Field(None, max_length=128, description="Only this workflow's jobs (by name).")
    model: str | None = Field(None, max_length=128, description="Only rows this model answered.")
    key_id: int | None = Field(None, ge=1, le=MAX_ID, description="Only jobs this API key triggered.")
    limit: int = Field(100, ge=1, le=1000, description="Groups per page (1-1000).")
    offset: int = Field(0, ge=0, le=MAX_ID, description="Skip this many groups.")


class UsageGroup(BaseModel):
    """One group's rows, tokens and cost; the dimensions not grouped by are absent (null)."""

    day: str | None = None
    hour: str | None = Field(None, description="`YYYY-MM-DD HH`, UTC.")
    model: str | None = None
    workflow: str | None = None
    key: int | None = Field(None, description="The API key that triggered the jobs (null: none recorded).")
    rows: int = Field(description="Results stored: a row of a one-step workflow; a row's own result and each of "
                                  "its step results (one a model of a fan-out) in a workflow of steps.")
    tokens_in: int
    tokens_out: int
    cost: float


class UsagePage(BaseModel):
    """One page of usage groups, newest period first, with the number of groups."""

    items: list[UsageGroup]
    limit: int
    offset: int
    total: int
    since: AwareDatetime | None = Field(description="The start of the hours counted: `since`, to the start of its "
                                                    "hour (usage is kept by hour).")
    until: AwareDatetime | None = Field(description="The end of the hours counted: `until`, to the end of its hour.")


@router.get("", response_model=UsagePage, responses=error_responses(422))
async def get_usage(session: SessionDep, _caller: ReadKey, query: Annotated[UsageQuery, Query()]) -> UsagePage:
    """Spend and tokens of jobs' rows, added up by day or hour (UTC), model, workflow and API key.

    Usage is added up by UTC hour as results are stored: a result counts in the hour it was stored, and a
    failed row retried counts again, with its new attempts' tokens and cost, in the hour of the retry. Filter
    by time (`since`, `until`: whole hours, from the start of since's hour to the end of until's; the answer
    says which), `workflow`, `model` and `key_id`; page with `limit` and `offset`. Requests made
    directly to `/v1` are not jobs' rows and are not counted here. In a workflow of steps, tokens and cost are
    on the step results that bought them (grouped by the model that answered each), not on the row's own.
    """
    filters = UsageFilters(since=query.since, until=query.until, workflow=query.workflow, model=query.model,
                           key_id=query.key_id)
    groups, total = await usage(session, group_by=query.group_by, filters=filters, limit=query.limit,
                                offset=query.offset)
    since, until = hour_window(filters)
    items = [UsageGroup(**(g | {"rows": int(g["rows"]), "tokens_in": int(g["tokens_in"] or 0),
                                "tokens_out": int(g["tokens_out"] or 0), "cost": shown_cost(float(g["cost"] or 0))}))
             for g in groups]
    return UsagePage(items=items, limit=query.limit, offset=query.offset, total=total, since=since, until=until)
