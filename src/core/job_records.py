"""Writing what a job leaves behind besides its record: its events (what happened, in order)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db.types import utcnow
from core.models import JobEvent
from core.models.job_event import EventKind


def event_row(job_id: int, kind: EventKind, message: str, *, key_id: int | None = None, **data: Any) -> dict[str, Any]:
    """One job_events row as values for an insert; `key_id` is the API key behind it, if any."""
    return {"job_id": job_id, "created_at": utcnow(), "kind": str(kind), "message": message, "data": data,
            "key_id": key_id}


async def add_events(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Append events (built with `event_row`) in the session's transaction; the caller commits."""
    if rows:
        await session.exec(insert(JobEvent), params=list(rows))
