"""Budgets as a job's provider batches use them: a batch's maximum cost held when it is submitted, its lines' cost
settled when they are collected."""

from __future__ import annotations

from collections.abc import Sequence

from core.budgets.guard import BudgetGuard, Hold
from core.budgets.windows import Subject


class BatchBudgets:
    """The engine's BatchBudget over a worker's budget guard, for one job's subjects."""

    def __init__(self, guard: BudgetGuard, subjects: Sequence[Subject]) -> None:
        self.guard = guard
        self.subjects = subjects
        self.output_tokens = guard.default_output_tokens
        self._holds: dict[str, Hold] = {}

    async def hold(self, label: str, amount: float) -> None:
        """Hold the batch's maximum against every budget of the job; BudgetExceeded when one has no room."""
        self._holds[label] = await self.guard.reserve(self.subjects, amount)

    async def settle(self, label: str, held: float, cost: float) -> None:
        """Count the lines' cost; a batch held by a process that has since stopped (its hold ended with its lease)
        is counted without a hold."""
        hold = self._holds.pop(label, None) or await self.guard.reserve(self.subjects, 0.0)
        self.guard.settle(hold, cost)
