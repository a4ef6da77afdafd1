"""Budgets: a spending limit per scope (the platform, a workflow, an API key) and period (total, day, hour).

The ledger tables hold what was spent in each period window and what is reserved by requests in flight;
they are used when no Redis is configured (with Redis, the same figures live there).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import ConfigDict, StrictFloat
from sqlalchemy import Double, Index, String, UniqueConstraint
from sqlmodel import Field, SQLModel

from core.db.types import BigIntId, UtcDateTime, utcnow

MAX_COUNTER = 191  # the longest key MySQL's utf8mb4 indexes in full


class BudgetScope(StrEnum):
    """Whose spending a budget limits."""

    PLATFORM = "platform"
    WORKFLOW = "workflow"
    KEY = "key"


class BudgetPeriod(StrEnum):
    """The window a budget's limit applies to; day and hour follow BUDGET_TIMEZONE."""

    TOTAL = "total"
    DAY = "day"
    HOUR = "hour"


class Budget(SQLModel, table=True):
    """A limit on the cost of one scope's requests within each period window."""

    __tablename__ = "budgets"
    __table_args__ = (UniqueConstraint("scope", "target", "period"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=BigIntId)
    scope: BudgetScope = Field(sa_type=String(16))
    target: str = Field(default="", sa_type=String(128))  # a workflow's name or a key's id; "" for the platform
    period: BudgetPeriod = Field(sa_type=String(16))
    limit_usd: float = Field(sa_type=Double)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    created_by: int | None = Field(default=None, sa_type=BigIntId)


class BudgetSpend(SQLModel, table=True):
    """What was spent in one period window of one scope (`counter`: scope, target and window)."""

    __tablename__ = "budget_spend"

    counter: str = Field(sa_type=String(MAX_COUNTER), primary_key=True)
    spent: float = Field(default=0.0, sa_type=Double)


class BudgetHold(SQLModel, table=True):
    """What one process has reserved against a counter for its requests in flight; void after `expires_at`."""

    __tablename__ = "budget_holds"
    __table_args__ = (Index(None, "holder"),)

    counter: str = Field(sa_type=String(MAX_COUNTER), primary_key=True)
    holder: str = Field(sa_type=String(128), primary_key=True)
    amount: float = Field(default=0.0, sa_type=Double)
    expires_at: float = Field(sa_type=Double)  # Unix seconds; the holder renews it while alive


# --- API schemas --------------------------------------------------------------------------------


class BudgetSet(SQLModel):
    """Set (create or replace) the limit of one scope and period."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [  # type: ignore[assignment]
        {"scope": "workflow", "target": "ticket-triage", "period": "day", "limit_usd": 25.0}]})

    scope: BudgetScope
    target: str | None = Field(default=None, min_length=1, max_length=128,
                               description="A workflow's name (scope workflow) or an API key's id (scope key); "
                                           "none for the platform.")
    period: BudgetPeriod
    limit_usd: StrictFloat = Field(ge=0, le=1e12,
                             description="The most its requests may cost in each period window, in the prices' "
                                         "currency.")


class BudgetPublic(SQLModel):
    """A budget with its current window: the figures that decide whether a request may go."""

    id: int
    scope: BudgetScope
    target: str | None
    period: BudgetPeriod
    limit_usd: float
    spent_usd: float = Field(description="Settled cost of requests in the current window.")
    reserved_usd: float = Field(description="The maximum cost of requests in flight, held until they settle.")
    remaining_usd: float
    window_start: datetime | None = Field(description="When the current window began (none for total).")
    resets_at: datetime | None = Field(description="When the next window begins (none for total).")
    created_at: datetime
    updated_at: datetime
