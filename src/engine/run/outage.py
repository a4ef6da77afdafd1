"""Stopping a run whose upstream is down: rows failing with API errors, one after another, none finishing."""

from __future__ import annotations

from collections.abc import Iterable

from engine.errors import UpstreamDown
from engine.results.store import ErrorClass, RowResult, RowStatus


class OutageWatch:
    """Counts rows that failed with API errors since the last row that finished; `limit` of them is an outage.

    Every such row already used its API-error retries (and the router its failover and cool-downs), so a
    streak of them means every further row would fail too. Stopping keeps those rows unsent: a retry of
    the job (or running the spec again) sends them, and the failed rows, once the model is back.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.streak = 0
        self.last_reason = ""

    def saw(self, results: Iterable[RowResult]) -> UpstreamDown | None:
        """Count these finished rows, in order; the error to stop the run with, once the streak reaches the limit."""
        for result in results:
            if result.status is RowStatus.DONE:
                self.streak = 0
            elif result.error_class is ErrorClass.API:
                self.streak += 1
                self.last_reason = result.error or ""
        if not self.limit or self.streak < self.limit:
            return None
        return UpstreamDown(f"stopped after {self.streak} rows in a row failed with API errors and none finished "
                            f"(the last: {self.last_reason}); when the model is reachable again, retry: failed "
                            f"and unsent rows are sent, finished rows are not")
