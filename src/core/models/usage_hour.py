"""Usage by hour: what jobs' results spent, added up as they are stored, so a usage query reads hours, not rows."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Double, Index, String
from sqlmodel import Field, SQLModel

from core.db.types import UtcDateTime

NO_MODEL = ""  # a result no model answered (skipped by a filter, failed before a send)
NO_KEY = 0  # a job no API key triggered (auth off, or `rowloom run`)


class UsageHour(SQLModel, table=True):
    """One UTC hour's results of one workflow's jobs, answered by one model, triggered by one API key."""

    __tablename__ = "usage_hours"
    # Usage by day (the default view) reads this index alone, in order: no sort, no table rows.
    __table_args__ = (Index(None, "day", "results", "tokens_in", "tokens_out", "cost"),)

    hour: datetime = Field(sa_type=UtcDateTime, primary_key=True)
    workflow_name: str = Field(sa_type=String(128), primary_key=True)
    model: str = Field(sa_type=String(128), primary_key=True)
    key_id: int = Field(sa_type=BigInteger, primary_key=True)
    day: str = Field(sa_type=String(10))  # the hour's UTC day, `2026-11-29`
    results: int = Field(default=0, sa_type=BigInteger)  # results stored (shown as `rows`)
    tokens_in: int = Field(default=0, sa_type=BigInteger)
    tokens_out: int = Field(default=0, sa_type=BigInteger)
    cost: float = Field(default=0.0, sa_type=Double)
