"""Job events: what happened to a job, in order (claimed, paused for API errors, output written, ...)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, ForeignKey, Index, String
from sqlmodel import Field, SQLModel

from core.db.types import BigIntId, LongText, UtcDateTime, utcnow
from engine import RunEvent


class JobEventKind(StrEnum):
    """What happened in a job's life: made, claimed, stopped, resumed, ended (the platform's own events)."""

    CREATED = "created"
    CLAIMED = "claimed"
    CANCEL_REQUESTED = "cancel_requested"
    CANCELLED = "cancelled"
    PAUSED = "paused"
    RESUMED = "resumed"
    RETRIED = "retried"
    REQUEUED = "requeued"
    WAITING = "waiting"  # its requests are out in provider batches
    BATCHES_BACK = "batches_back"  # its provider batches ended: its rows go on
    COMPLETED = "completed"
    FAILED = "failed"


EventKind = JobEventKind | RunEvent  # a job event is of its life or of what one of its runs reported


class JobEvent(SQLModel, table=True):
    """One event of one job."""

    __tablename__ = "job_events"
    __table_args__ = (Index(None, "job_id", "id"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=BigIntId)
    job_id: int = Field(sa_column=Column(BigIntId, ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    kind: str = Field(sa_type=String(32))
    message: str = Field(sa_type=LongText)
    data: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    key_id: int | None = Field(default=None, sa_type=BigIntId)  # the API key behind it (None: a worker)


class JobEventPublic(SQLModel):
    """One job event."""

    id: int
    created_at: datetime
    kind: EventKind
    message: str
    data: dict[str, Any]
    key_id: int | None = Field(description="The API key that caused the event; null for a worker's own.")
