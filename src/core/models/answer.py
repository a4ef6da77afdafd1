"""Answers kept by request (the answer cache shared by every job and worker)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Double, String
from sqlmodel import Field, SQLModel

from core.db.types import LongText


class StoredAnswer(SQLModel, table=True):
    """One answer that passed its workflow's checks, under the sha256 of everything that decided it."""

    __tablename__ = "answers"

    key: str = Field(sa_type=String(64), primary_key=True)
    content: str = Field(sa_type=LongText)
    model: str = Field(sa_type=String(128))
    tokens_in: int = Field(default=0, sa_type=BigInteger)
    tokens_out: int = Field(default=0, sa_type=BigInteger)
    cost: float = Field(default=0.0, sa_type=Double)
    stored_at: float = Field(sa_type=Double)  # Unix seconds: TTLs compare against the wall clock
