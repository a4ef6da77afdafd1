"""Spend and tokens of jobs' rows, added up by period (UTC day or hour), model, workflow and API key."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from core.models import Job, JobItem


class UsageDimension(StrEnum):
    """What usage is added up by."""

    DAY = "day"
    HOUR = "hour"
    MODEL = "model"
    WORKFLOW = "workflow"
    KEY = "key"


@dataclass(frozen=True)
class UsageFilters:
    """Which rows count: finished in [since, until), of a workflow (by name), a model, a key."""

    since: datetime | None = None
    until: datetime | None = None
    workflow: str | None = None
    model: str | None = None
    key_id: int | None = None


def _period(dimension: UsageDimension, dialect: str) -> ColumnElement[Any]:
    """The row's UTC day (`2026-11-29`) or hour (`2026-11-29 14`) as text, the same on every backend."""
    stamp = col(JobItem.updated_at)
    if dialect == "mysql":
        return func.date_format(stamp, "%Y-%m-%d" if dimension is UsageDimension.DAY else "%Y-%m-%d %H")
    return func.substr(stamp, 1, 10 if dimension is UsageDimension.DAY else 13)


def _column(dimension: UsageDimension, dialect: str) -> ColumnElement[Any]:
    if dimension in (UsageDimension.DAY, UsageDimension.HOUR):
        return _period(dimension, dialect)
    columns: dict[UsageDimension, Any] = {
        UsageDimension.MODEL: col(JobItem.model), UsageDimension.WORKFLOW: col(Job.workflow_name),
        UsageDimension.KEY: col(Job.created_by)}
    chosen: ColumnElement[Any] = columns[dimension]
    return chosen


async def usage(session: AsyncSession, *, group_by: list[UsageDimension], filters: UsageFilters, limit: int,
                offset: int) -> tuple[list[dict[str, Any]], int]:
    """One page of groups (newest period first, then by name) with rows, tokens and cost; and how many groups."""
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    dimensions = list(dict.fromkeys(group_by))  # each once, in the order asked
    columns = [_column(d, dialect).label(d.value) for d in dimensions]
    conditions: list[ColumnElement[bool]] = []
    if filters.since is not None:
        conditions.append(col(JobItem.updated_at) >= filters.since)
    if filters.until is not None:
        conditions.append(col(JobItem.updated_at) < filters.until)
    if filters.workflow is not None:
        conditions.append(col(Job.workflow_name) == filters.workflow)
    if filters.model is not None:
        conditions.append(col(JobItem.model) == filters.model)
    if filters.key_id is not None:
        conditions.append(col(Job.created_by) == filters.key_id)
    grouped = (select(*columns, func.count().label("rows"), func.sum(JobItem.tokens_in).label("tokens_in"),
                      func.sum(JobItem.tokens_out).label("tokens_out"), func.sum(JobItem.cost).label("cost"))
               .join(Job, col(Job.id) == col(JobItem.job_id)).where(*conditions).group_by(*columns))
    order = [c.desc() if d in (UsageDimension.DAY, UsageDimension.HOUR) else c.asc()
             for d, c in zip(dimensions, columns, strict=True)]
    total = (await session.exec(select(func.count()).select_from(grouped.subquery()))).one()  # type: ignore[call-overload]
    rows = (await session.exec(grouped.order_by(*order).limit(limit).offset(offset))).all()  # type: ignore[call-overload]
    return [dict(row._mapping) for row in rows], int(total[0])
