"""Budgets: set (create or replace), list, read and remove; a job of an exhausted budget is refused."""

from __future__ import annotations

from collections.abc import Sequence

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api_server.services.errors import InvalidInput, NotFound, OverBudget
from core.budgets.guard import BudgetFigures, BudgetGuard
from core.budgets.windows import subjects_of
from core.db.types import utcnow
from core.models import ApiKey, Budget, BudgetScope, Job, JobStatus, Workflow
from core.models.budget import BudgetPublic, BudgetSet


async def set_budget(session: AsyncSession, *, data: BudgetSet, created_by: int | None = None) -> tuple[Budget, bool]:
    """Create the budget of a scope and period, or replace its limit; returns (budget, created)."""
    target = await _target(session, data)
    budget = (await session.exec(select(Budget).where(
        col(Budget.scope) == data.scope, col(Budget.target) == target,
        col(Budget.period) == data.period))).one_or_none()
    created = budget is None
    if budget is None:
        budget = Budget(scope=data.scope, target=target, period=data.period, limit_usd=data.limit_usd,
                        created_by=created_by)
        session.add(budget)
    else:
        budget.limit_usd = data.limit_usd
        budget.updated_at = utcnow()
    await session.commit()
    await session.refresh(budget)
    return budget, created


async def _target(session: AsyncSession, data: BudgetSet) -> str:
    """The stored target: "" for the platform, an existing workflow's name, or an existing key's id."""
    if data.scope is BudgetScope.PLATFORM:
        if data.target is not None:
            raise InvalidInput("a platform budget has no target", field="target")
        return ""
    if data.target is None:
        raise InvalidInput(f"a {data.scope} budget needs a target (a workflow's name or a key's id)", field="target")
    if data.scope is BudgetScope.WORKFLOW:
        if (await session.exec(select(Workflow.id).where(col(Workflow.name) == data.target))).first() is None:
            raise InvalidInput(f"no workflow is named {data.target!r}", field="target")
        return data.target
    if not data.target.isdigit() or await session.get(ApiKey, int(data.target)) is None:
        raise InvalidInput(f"no API key has the id {data.target!r}", field="target")
    return str(int(data.target))


async def list_budgets(session: AsyncSession) -> Sequence[Budget]:
    """Every budget, by scope, target and period."""
    return (await session.exec(select(Budget).order_by(col(Budget.scope), col(Budget.target),
                                                       col(Budget.period)))).all()


async def get_budget(session: AsyncSession, *, budget_id: int) -> Budget:
    """One budget; NotFound if there is none with this id."""
    budget = await session.get(Budget, budget_id)
    if budget is None:
        raise NotFound(f"budget {budget_id} not found", field="budget_id")
    return budget


async def delete_budget(session: AsyncSession, *, budget_id: int) -> None:
    """Remove a budget (what was spent stays counted, should it be set again)."""
    await session.delete(await get_budget(session, budget_id=budget_id))
    await session.commit()


def budget_public(figures: BudgetFigures) -> BudgetPublic:
    """A budget with the figures of its current window."""
    b = figures.budget
    assert b.id is not None
    return BudgetPublic(
        id=b.id, scope=b.scope, target=b.target or None, period=b.period, limit_usd=b.limit_usd,
        spent_usd=round(figures.spent, 10), reserved_usd=round(figures.held, 10),
        remaining_usd=round(max(0.0, b.limit_usd - figures.spent - figures.held), 10),
        window_start=figures.window.start, resets_at=figures.window.end, created_at=b.created_at,
        updated_at=b.updated_at)


async def check_room(session: AsyncSession, guard: BudgetGuard, *, workflow: str, key_id: int | None) -> None:
    """OverBudget if a budget a new job of `workflow` by `key_id` counts toward has nothing left, or less than a
    request it has already refused (a job it paused) needed."""
    pauses = (await session.exec(select(Job.budget_pause).where(
        col(Job.status) == JobStatus.PAUSED, col(Job.budget_pause).is_not(None)))).all()
    needed: dict[tuple[int | None, str], float] = {}
    for pause in pauses:
        if pause:
            at = (pause.get("budget_id"), str(pause.get("window")))
            needed[at] = max(needed.get(at, 0.0), float(pause.get("needed_usd") or 0.0))
    exhausted = await guard.exhausted(subjects_of(workflow=workflow, key_id=key_id), needed=needed)
    if exhausted is not None:
        raise OverBudget(str(exhausted), retry_after_s=exhausted.retry_after_s)
