"""Reading what a job left behind besides its record: its events and its items (each finished row)."""

from __future__ import annotations

import base64
import binascii
import json

from sqlalchemy import func, or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api_server.query_params import ItemStatus, ListPage
from api_server.services.errors import InvalidInput
from api_server.services.paging import check_one_mode
from core.models import JobEvent, JobItem
from core.models.job import shown_cost
from core.models.job_event import JobEventPublic
from core.models.job_item import JobItemPublic


async def list_events(session: AsyncSession, *, job_id: int, after: int | None, limit: int) -> ListPage[JobEventPublic]:
    """A job's events, oldest first, `limit` at a time."""
    query = select(JobEvent).where(col(JobEvent.job_id) == job_id)
    if after is not None:
        query = query.where(col(JobEvent.id) > after)
    rows = list((await session.exec(query.order_by(col(JobEvent.id)).limit(limit + 1))).all())
    more = len(rows) > limit
    items = [JobEventPublic.model_validate(row, from_attributes=True) for row in rows[:limit]]
    return ListPage[JobEventPublic](items=items, limit=limit, has_more=more,
                                    next=str(items[-1].id) if more else None)


async def list_items(session: AsyncSession, *, job_id: int, status: ItemStatus | None, after: str | None,
                     limit: int, offset: int | None = None, step: str | None = None,
                     model: str | None = None) -> ListPage[JobItemPublic]:
    """A job's finished rows (or one step's results) ordered by key (as stored), `limit` at a time: after a cursor,
    or at an offset (with the total), as every list pages."""
    check_one_mode(offset=offset, after=after)
    conditions = [col(JobItem.job_id) == job_id, col(JobItem.step) == (step or "")]
    if model is not None:
        conditions.append(or_(col(JobItem.target) == model, col(JobItem.model) == model))
    if status is not None:
        conditions.append(col(JobItem.status) == status.value)
    query = select(JobItem).where(*conditions)
    if after is not None:
        query = query.where(col(JobItem.row_key) > _decode_cursor(after))
    query = query.order_by(col(JobItem.row_key)).limit(limit + 1)
    if offset:
        query = query.offset(offset)
    rows = list((await session.exec(query)).all())
    more = len(rows) > limit
    items = [item_public(row) for row in rows[:limit]]
    next_cursor = base64.urlsafe_b64encode(rows[limit - 1].row_key.encode()).decode() if more else None
    total = None
    if offset is not None:
        total = (await session.exec(select(func.count()).select_from(JobItem).where(*conditions))).one()
    return ListPage[JobItemPublic](items=items, limit=limit, offset=offset, total=total, has_more=more,
                                   next=next_cursor)


def item_public(row: JobItem) -> JobItemPublic:
    """The API view of a stored row result."""
    return JobItemPublic.model_validate({**row.model_dump(), "key": json.loads(row.key_json),
                                         "cost": shown_cost(row.cost)})


def _decode_cursor(cursor: str) -> str:
    try:
        return base64.urlsafe_b64decode(cursor.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidInput("after: not a cursor returned by this list", field="after") from None
