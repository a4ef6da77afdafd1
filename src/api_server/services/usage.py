"""Spend and tokens of jobs' results, added up by period (UTC day or hour), model, workflow and API key, from the
hourly rollups (`core.usage_rollup`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import ColumnElement, func, select
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from core.models import UsageHour
from core.models.usage_hour import NO_KEY, NO_MODEL
from core.usage_rollup import hour_of


class UsageDimension(StrEnum):
    """What usage is added up by."""

    DAY = "day"
    HOUR = "hour"
    MODEL = "model"
    WORKFLOW = "workflow"
    KEY = "key"


@dataclass(frozen=True)
class UsageFilters:
    """Which results count: stored in the hours from since's to until's, of a workflow (by name), a model, a key."""

    since: datetime | None = None
    until: datetime | None = None
    workflow: str | None = None
    model: str | None = None
    key_id: int | None = None


def _period(dimension: UsageDimension, dialect: str) -> ColumnElement[Any]:
    """The hour's UTC day (`2026-11-29`) or hour (`2026-11-29 14`) as text, the same on every backend."""
    if dimension is UsageDimension.DAY:
        return cast(ColumnElement[Any], col(UsageHour.day))
    stamp = col(UsageHour.hour)
    if dialect == "mysql":
        return func.date_format(stamp, "%Y-%m-%d %H")
    return func.substr(stamp, 1, 13)


def _column(dimension: UsageDimension, dialect: str) -> ColumnElement[Any]:
    if dimension in (UsageDimension.DAY, UsageDimension.HOUR):
        return _period(dimension, dialect)
    columns: dict[UsageDimension, Any] = {
        UsageDimension.MODEL: func.nullif(col(UsageHour.model), NO_MODEL),
        UsageDimension.WORKFLOW: col(UsageHour.workflow_name),
        UsageDimension.KEY: func.nullif(col(UsageHour.key_id), NO_KEY)}
    chosen: ColumnElement[Any] = columns[dimension]
    return chosen


def hour_window(filters: UsageFilters) -> tuple[datetime | None, datetime | None]:
    """The hours `since` and `until` select: from the start of since's hour to the end of until's (usage is kept
    by hour)."""
    since = hour_of(_utc(filters.since)) if filters.since is not None else None
    until = _utc(filters.until) if filters.until is not None else None
    if until is not None and until != hour_of(until):
        until = hour_of(until) + timedelta(hours=1)
    return since, until


def _utc(moment: datetime) -> datetime:
    """An aware UTC datetime (a time without a zone is UTC)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


async def usage(session: AsyncSession, *, group_by: list[UsageDimension], filters: UsageFilters, limit: int,
                offset: int) -> tuple[list[dict[str, Any]], int]:
    """One page of groups (newest period first, then by name) with rows, tokens and cost; and how many groups."""
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    dimensions = list(dict.fromkeys(group_by))  # each once, in the order asked
    columns = [_column(d, dialect).label(d.value) for d in dimensions]
    since, until = hour_window(filters)
    conditions: list[ColumnElement[bool]] = []
    if since is not None:
        conditions.append(col(UsageHour.hour) >= since)
    if until is not None:
        conditions.append(col(UsageHour.hour) < until)
    if filters.workflow is not None:
        conditions.append(col(UsageHour.workflow_name) == filters.workflow)
    if filters.model is not None:
        conditions.append(col(UsageHour.model) == filters.model)
    if filters.key_id is not None:
        conditions.append(col(UsageHour.key_id) == filters.key_id)
    sums = [func.sum(UsageHour.results).label("rows"), func.sum(UsageHour.tokens_in).label("tokens_in"),
            func.sum(UsageHour.tokens_out).label("tokens_out"), func.sum(UsageHour.cost).label("cost")]
    grouped = select(*columns, *sums).where(*conditions).group_by(*columns)
    order = [c.desc() if d in (UsageDimension.DAY, UsageDimension.HOUR) else c.asc()
             for d, c in zip(dimensions, columns, strict=True)]
    page = grouped.order_by(*order).limit(limit).offset(offset)
    rows = [dict(row._mapping) for row in (await session.exec(page)).all()]  # type: ignore[call-overload]
    if 0 < len(rows) < limit or (not rows and offset == 0):  # the last page: the groups are counted already
        return rows, offset + len(rows)
    total = (await session.exec(select(func.count()).select_from(grouped.subquery()))).one()[0]  # type: ignore[call-overload]
    return rows, int(total)
