"""Budgets: limits on what requests may cost, per platform, workflow and API key, in total, per day and per hour.

Every request's maximum cost is reserved before it is sent and its real cost settled after (`guard`), against
counters kept in Redis when configured and in the database otherwise (`ledger`).
"""

from __future__ import annotations

from core.budgets.guard import BudgetGuard
from core.budgets.ledger import DbLedger, Ledger
from core.budgets.redis_ledger import RedisLedger
from core.db import Database
from core.redis_retry import API_PATIENCE_S
from core.settings import Settings
from engine.gateway import GatewayConfig


def open_guard(settings: Settings, database: Database, gateway: GatewayConfig, *, holder: str,
               redis_patience_s: float | None = API_PATIENCE_S) -> BudgetGuard:
    """The process's guard: counters in Redis when REDIS_URL is set (its calls wait out an outage for
    `redis_patience_s`, None: for ever), in the database otherwise (not started)."""
    ledger: Ledger = (RedisLedger.from_url(settings.redis_url, prefix=settings.budget_redis_prefix,
                                           patience_s=redis_patience_s)
                      if settings.redis_url else DbLedger(database))
    return BudgetGuard(database, ledger, holder=holder, lease_s=settings.job_lease_s, zone=settings.budget_zone,
                       gateway=gateway, default_output_tokens=settings.budget_output_tokens)
