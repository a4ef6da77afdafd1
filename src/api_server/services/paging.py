"""List paging shared by every resource: limit/offset with a total, or an opaque keyset cursor."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import Select, SelectOfScalar

from api_server.services.errors import InvalidInput


@dataclass(frozen=True)
class Sortable:
    """A column a list may be ordered by; `parse` turns a cursor's JSON value back into its type."""

    column: Any  # a mapped column (sqlmodel.col(Model.field))
    nullable: bool = False
    parse: Callable[[Any], Any] = lambda value: value


def sortable_time(column: Any, *, nullable: bool = False) -> Sortable:
    """A datetime column (cursor values travel as ISO 8601)."""
    return Sortable(column, nullable, datetime.fromisoformat)


@dataclass(frozen=True)
class Order:
    """A validated `order_by`: field name and direction."""

    field: str
    descending: bool

    def __str__(self) -> str:
        return f"{self.field} {'desc' if self.descending else 'asc'}"


def parse_order(value: str, allowed: Mapping[str, Sortable]) -> Order:
    """Parse `field`, `field asc|desc` or `-field`; unknown fields are a 422 naming order_by."""
    text = value.strip()
    descending = text.startswith("-")
    parts = text.lstrip("-").replace(":", " ").split()
    if len(parts) == 2 and parts[1].lower() in {"asc", "desc"} and not descending:
        descending = parts[1].lower() == "desc"
    elif len(parts) != 1:
        raise InvalidInput(f"order_by {value!r}: use 'field', 'field asc', 'field desc' or '-field'",
                           field="order_by")
    if parts[0] not in allowed:
        raise InvalidInput(f"order_by: unknown field {parts[0]!r}; allowed: {', '.join(allowed)}",
                           field="order_by")
    return Order(parts[0], descending)


@dataclass(frozen=True)
class PageRequest:
    """How the caller wants to page: offset mode when `offset` is set, else cursor mode."""

    limit: int
    offset: int | None
    after: str | None
    order: Order
    fingerprint: str  # of the filters: a cursor only continues the query it came from


@dataclass
class Page:
    """One page of rows and how to get the next one."""

    rows: Sequence[Any]
    limit: int
    offset: int | None
    total: int | None
    next: str | None
    has_more: bool


def fingerprint(filters: Mapping[str, Any]) -> str:
    """A short stable hash of a list's filters, bound into its cursors."""
    canonical = json.dumps(filters, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def check_one_mode(*, offset: int | None, after: str | None) -> None:
    """A page is asked for by offset or after a cursor, never both."""
    if offset is not None and after is not None:
        raise InvalidInput("use either offset or after, not both", field="after")


async def fetch_page(session: AsyncSession, *, query: Select[Any] | SelectOfScalar[Any],
                     conditions: Sequence[ColumnElement[bool]], id_column: Any,
                     sortables: Mapping[str, Sortable], request: PageRequest) -> Page:
    """Run a filtered list query for one page, in either paging mode."""
    check_one_mode(offset=request.offset, after=request.after)
    sortable = sortables[request.order.field]
    key = sortable.column
    direction = "desc" if request.order.descending else "asc"
    ordering = [getattr(key, direction)(), getattr(id_column, direction)()]
    where = list(conditions)
    if request.after is not None:
        value, last_id = _decode(request.after, request, sortable)
        where.append(_after(sortable, id_column, request.order.descending, value, last_id))
    stmt = query.where(*where).order_by(*ordering).limit(request.limit + 1)
    if request.offset:
        stmt = stmt.offset(request.offset)
    rows = list((await session.exec(stmt)).all())
    has_more = len(rows) > request.limit
    rows = rows[: request.limit]
    total = None
    if request.offset is not None:
        total = (await session.exec(
            select(func.count()).select_from(query.where(*conditions).order_by(None).subquery())
        )).one()
    next_cursor = _encode(rows[-1], request) if has_more and rows else None
    return Page(rows, request.limit, request.offset, total, next_cursor, has_more)


def _after(sortable: Sortable, id_column: Any, descending: bool,
           value: Any, last_id: int) -> ColumnElement[bool]:
    """Rows strictly after (value, id) in the ordering; NULLs sort first ascending, last descending."""
    key = sortable.column
    if value is None:  # only nullable columns: we are inside the block of NULLs
        if descending:
            return and_(key.is_(None), id_column < last_id)
        return or_(and_(key.is_(None), id_column > last_id), key.is_not(None))
    if descending:
        # The redundant `key <= value` lets the database seek the index instead of scanning it.
        condition = and_(key <= value, or_(key < value, id_column < last_id))
        return or_(condition, key.is_(None)) if sortable.nullable else condition
    return and_(key >= value, or_(key > value, id_column > last_id))


def _encode(row: Any, request: PageRequest) -> str:
    value = getattr(row, request.order.field)
    if isinstance(value, datetime):
        value = value.isoformat()
    elif hasattr(value, "value"):  # a str enum
        value = value.value
    payload = {"o": str(request.order), "q": request.fingerprint, "v": value, "i": row.id}
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(token: str, request: PageRequest, sortable: Sortable) -> tuple[Any, int]:
    try:
        payload = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        order, query, value, last_id = payload["o"], payload["q"], payload["v"], int(payload["i"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise InvalidInput("after: not a cursor this API returned", field="after") from None
    if order != str(request.order) or query != request.fingerprint:
        raise InvalidInput("after: this cursor belongs to a list with other filters or order_by; "
                           "repeat the same query to continue it", field="after")
    try:
        return (None if value is None else sortable.parse(value)), last_id
    except (ValueError, TypeError):
        raise InvalidInput("after: not a cursor this API returned", field="after") from None
