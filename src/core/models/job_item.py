"""Job items: each finished row of a job (its answer or its error, and what it cost): the results store."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Double, ForeignKey, Index, String
from sqlmodel import Field, SQLModel

from core.db.types import BigIntId, LongText, UtcDateTime, utcnow

MAX_ROW_KEY = 255


class JobItem(SQLModel, table=True):
    """One row's result, or one of its step results (`step`, and `target` for a fan-out's model). `row_key` is the
    lookup form of the key (with the step and target); `key_json` the row's key itself."""

    __tablename__ = "job_items"
    __table_args__ = (Index(None, "job_id", "status", "row_key"),)

    job_id: int = Field(sa_column=Column(BigIntId, ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True))
    row_key: str = Field(sa_type=String(MAX_ROW_KEY), primary_key=True)
    key_json: str = Field(sa_type=LongText)
    step: str = Field(default="", sa_column_kwargs={"server_default": ""}, sa_type=String(64))
    target: str = Field(default="", sa_column_kwargs={"server_default": ""}, sa_type=String(128))
    status: str = Field(sa_type=String(16))
    outputs: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    error_class: str | None = Field(default=None, sa_type=String(16))
    error: str | None = Field(default=None, sa_type=LongText)
    model: str | None = Field(default=None, sa_type=String(128))
    attempts: int = 0
    latency_s: float = Field(default=0.0, sa_type=Double)
    tokens_in: int = Field(default=0, sa_type=BigInteger)
    tokens_out: int = Field(default=0, sa_type=BigInteger)
    cost: float = Field(default=0.0, sa_type=Double)
    cached: bool = False  # answered from the answer cache: no request was sent
    workflow_version_id: int | None = Field(default=None, sa_type=BigIntId)
    prompt_hash: str | None = Field(default=None, sa_type=String(64))
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)


class JobItemPublic(SQLModel):
    """One finished row: its key, outcome, answer or error, and cost (all attempts, retries included)."""

    key: Any = Field(description="The row's key: its key column's value, or its 0-based position.")
    step: str = Field(description="The step this result is of; empty: the row's own result (all its steps).")
    target: str = Field(description="The model a fan-out step asked, as the step lists it; empty otherwise.")
    status: str = Field(description="done or failed")
    outputs: dict[str, Any]
    error_class: str | None = Field(description="api_error, content_error or system_error (failed rows).")
    error: str | None
    model: str | None
    attempts: int
    latency_s: float
    tokens_in: int
    tokens_out: int
    cost: float
    cached: bool = Field(description="Answered from the answer cache (an identical request answered before): "
                                     "no request was sent, `cost` is 0.")
    workflow_version_id: int | None
    prompt_hash: str | None = Field(description="sha256 of what decided the answer: prompt, columns, answer "
                                                "contract and model choice.")
    updated_at: datetime
