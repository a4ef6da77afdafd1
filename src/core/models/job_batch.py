"""A job's provider batches (batch mode): each batch, the requests it holds, and the lines it returned. Written
before a batch is submitted, so any worker can follow it after a crash."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Double, ForeignKey, Index, Integer, String
from sqlmodel import Field, SQLModel

from core.db.types import BigIntId, LongText

LABEL = 32  # a batch's label: 32 hex digits


class JobBatch(SQLModel, table=True):
    """One provider batch of a job (see engine.BatchRecord)."""

    __tablename__ = "job_batches"

    label: str = Field(sa_type=String(LABEL), primary_key=True)
    job_id: int = Field(sa_column=Column(BigIntId, ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False,
                                         index=True))
    seq: int = Field(sa_type=BigInteger)  # the order planned
    deployment: str = Field(sa_type=String(128))
    state: str = Field(sa_type=String(16))
    requests: int = 0
    max_cost: float = Field(default=0.0, sa_type=Double)
    file_id: str | None = Field(default=None, sa_type=String(128))
    batch_id: str | None = Field(default=None, sa_type=String(128))
    status: str | None = Field(default=None, sa_type=String(32))
    completed: int = 0
    failed: int = 0
    cost: float = Field(default=0.0, sa_type=Double)
    saved: float = Field(default=0.0, sa_type=Double)
    created_at: float = Field(sa_type=Double)
    ended_at: float | None = Field(default=None, sa_type=Double)


class JobBatchRequest(SQLModel, table=True):
    """A request in a batch: its custom_id, and which line of which request it asks for."""

    __tablename__ = "job_batch_requests"

    label: str = Field(sa_column=Column(String(LABEL), ForeignKey("job_batches.label", ondelete="CASCADE"),
                                        primary_key=True))
    position: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    custom_id: str = Field(sa_type=LongText)
    line_id: str = Field(sa_type=LongText)
    request: str = Field(sa_type=String(64))
    ask: int = 0


class JobBatchLine(SQLModel, table=True):
    """A line a job's batch returned: the reply to one ask of one request."""

    __tablename__ = "job_batch_lines"
    __table_args__ = (Index(None, "job_id", "row_hash"),)

    job_id: int = Field(sa_column=Column(BigIntId, ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True))
    line_hash: str = Field(sa_type=String(64), primary_key=True)  # of (line_id, request, ask)
    line_id: str = Field(sa_type=LongText)
    request: str = Field(sa_type=String(64))
    ask: int = 0
    row_hash: str = Field(sa_type=String(64))  # of the key of the row whose request it answers
    status: int = 0
    body: str = Field(sa_type=LongText)
    deployment: str = Field(sa_type=String(128))
    cost: float = Field(default=0.0, sa_type=Double)
