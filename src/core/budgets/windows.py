"""Period windows and the counters that add up what was spent in them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

from core.models import BudgetPeriod, BudgetScope

WINDOW_KEEP_S = {BudgetPeriod.HOUR: 3 * 86_400, BudgetPeriod.DAY: 62 * 86_400}  # how long past counters stay


@dataclass(frozen=True)
class Subject:
    """Whose spending a request counts toward: the platform, a workflow, or an API key."""

    scope: BudgetScope
    target: str = ""


@dataclass(frozen=True)
class Window:
    """One period window: its counter key part and bounds (no bounds for total)."""

    period: BudgetPeriod
    name: str
    start: datetime | None
    end: datetime | None


def subjects_of(*, workflow: str | None = None, key_id: int | None = None) -> tuple[Subject, ...]:
    """The subjects a request of this workflow and key counts toward (the platform's always)."""
    found = [Subject(BudgetScope.PLATFORM)]
    if workflow is not None:
        found.append(Subject(BudgetScope.WORKFLOW, workflow))
    if key_id is not None:
        found.append(Subject(BudgetScope.KEY, str(key_id)))
    return tuple(found)


def window(period: BudgetPeriod, now: datetime, zone: tzinfo) -> Window:
    """The window of `period` that holds `now` (aware), in `zone`."""
    period = BudgetPeriod(period)  # as read from the database: its text
    if period is BudgetPeriod.TOTAL:
        return Window(period, "all", None, None)
    local = now.astimezone(zone)
    if period is BudgetPeriod.DAY:
        start = local.replace(hour=0, minute=0, second=0, microsecond=0)
        end = (start + timedelta(days=1, hours=2)).replace(hour=0)  # a day of 23 or 25 hours ends at midnight
        return Window(period, start.date().isoformat(), start, end)
    start = local.replace(minute=0, second=0, microsecond=0)
    # The name carries the offset: the two 01:00 hours of a fall-back night are two windows.
    end = (start.astimezone(UTC) + timedelta(hours=1)).astimezone(zone)  # an hour of real time, DST or not
    return Window(period, start.isoformat(timespec="hours"), start, end)


def counter(subject: Subject, current: Window) -> str:
    """The key of the counter of `subject` in this window."""
    return f"{subject.scope}:{subject.target}:{current.period}:{current.name}"


def keep_s(period: BudgetPeriod) -> int:
    """Seconds a window's counter is kept (0: for ever)."""
    return WINDOW_KEEP_S.get(period, 0)
