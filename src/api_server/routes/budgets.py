"""/api/v1/budgets: limits on what requests may cost, per platform, workflow and API key, and their figures."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from api_server.auth import AdminKey, ReadKey
from api_server.deps import BudgetsDep, DatabaseDep, QueueDep, SessionDep
from api_server.http_errors import error_responses
from api_server.query_params import NoQueryDep
from api_server.services import budgets as service
from core.budgets.resume import resume_for_budgets
from core.db.types import MAX_ID
from core.models.budget import BudgetPublic, BudgetSet

BudgetId = Annotated[int, Path(ge=1, le=MAX_ID, description="The budget's id.")]

router = APIRouter(prefix="/api/v1/budgets", tags=["budgets"], responses=error_responses(401, 403))


@router.get("", response_model=list[BudgetPublic])
async def list_budgets(session: SessionDep, guard: BudgetsDep, _caller: ReadKey) -> list[BudgetPublic]:
    """List every budget with its current window's figures.

    Each shows what is spent, what is reserved (requests in flight, and the credit a busy worker holds for its
    next requests), what remains, and when it resets. These are the figures requests are admitted on: a
    request goes only if its maximum cost fits in what remains of every budget it counts toward (the
    platform's, its workflow's and its API key's).
    """
    return [service.budget_public(f) for f in await guard.figures(await service.list_budgets(session))]


@router.put("", response_model=BudgetPublic, status_code=status.HTTP_200_OK,
            responses={201: {"model": BudgetPublic, "description": "The budget was created"},
                       **error_responses(413, 422)})
async def set_budget(data: BudgetSet, response: Response, session: SessionDep, database: DatabaseDep,
                     queue: QueueDep, guard: BudgetsDep, caller: AdminKey, _: NoQueryDep) -> BudgetPublic:
    """Set the limit of a scope and period (create it, or replace its limit).

    `scope`: `platform` (no target), `workflow` (target: its name) or `key` (target: the key's id). `period`:
    `total`, `day` or `hour`; days and hours follow BUDGET_TIMEZONE. Jobs a budget paused resume at once when
    it is raised enough for their next request; every worker sees the new limit within a few seconds.
    """
    budget, created = await service.set_budget(session, data=data, created_by=caller.key_id)
    if created:
        response.status_code = status.HTTP_201_CREATED
    await guard.reload()
    await resume_for_budgets(database, queue, guard)
    return service.budget_public((await guard.figures([budget]))[0])


@router.get("/{budget_id}", response_model=BudgetPublic, responses=error_responses(404, 422))
async def get_budget(budget_id: BudgetId, session: SessionDep, guard: BudgetsDep, _caller: ReadKey) -> BudgetPublic:
    """Read one budget with its current window's figures."""
    budget = await service.get_budget(session, budget_id=budget_id)
    return service.budget_public((await guard.figures([budget]))[0])


@router.delete("/{budget_id}", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(404, 422))
async def delete_budget(budget_id: BudgetId, session: SessionDep, database: DatabaseDep, queue: QueueDep,
                        guard: BudgetsDep, _caller: AdminKey) -> Response:
    """Remove a budget; jobs it paused resume. What was spent stays counted should it be set again."""
    await service.delete_budget(session, budget_id=budget_id)
    await guard.reload()
    await resume_for_budgets(database, queue, guard)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
