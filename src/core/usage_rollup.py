"""Usage rollups: each batch of results stored adds its rows, tokens and cost to its UTC hour (`usage_hours`), in
the batch's own transaction, so usage is never ahead of or behind the results."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Dialect

from core.db.upserts import CompiledUpsert, adding_upsert
from core.models.usage_hour import NO_KEY, NO_MODEL, UsageHour
from engine import RowResult

HOURS = UsageHour.__table__  # type: ignore[attr-defined]
KEYS = ("hour", "workflow_name", "model", "key_id")
ADDED = ("results", "tokens_in", "tokens_out", "cost")
_compiled: dict[str, CompiledUpsert] = {}


def hour_of(moment: datetime) -> datetime:
    """The start of the moment's hour."""
    return moment.replace(minute=0, second=0, microsecond=0)


@dataclass(frozen=True)
class UsageSubject:
    """Whose usage a job's results are: its workflow and the API key that triggered it."""

    workflow_name: str
    key_id: int | None

    def added(self, results: Sequence[RowResult], *, at: datetime, dialect: Dialect
              ) -> tuple[str, list[tuple[Any, ...]]]:
        """The upsert adding `results` (stored at `at`) to their hour, one row per model, in key order (so concurrent
        writers lock the same rows in the same order)."""
        by_model: dict[str, dict[str, Any]] = {}
        hour = hour_of(at)
        day = hour.strftime("%Y-%m-%d")
        for result in results:
            model = result.model or NO_MODEL
            group = by_model.get(model)
            if group is None:
                group = by_model[model] = {"hour": hour, "day": day, "workflow_name": self.workflow_name,
                                           "model": model, "key_id": self.key_id or NO_KEY, "results": 0,
                                           "tokens_in": 0, "tokens_out": 0, "cost": 0.0}
            group["results"] += 1
            group["tokens_in"] += result.tokens_in
            group["tokens_out"] += result.tokens_out
            group["cost"] += result.cost
        upsert = _compiled.get(dialect.name)
        if upsert is None:
            upsert = _compiled[dialect.name] = adding_upsert(HOURS, dialect, keys=KEYS, replaced=(), added=ADDED)
        return upsert.sql, upsert.params([by_model[m] for m in sorted(by_model)])
