"""FastAPI dependencies as `Annotated` aliases (async: a sync dependency costs a thread-pool hop per request)."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator, Sequence
from functools import partial
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlmodel.ext.asyncio.session import AsyncSession

from api_server.key_limits import KeyLimits
from api_server.services.estimate_runner import EstimateRunner
from core.budgets import open_guard
from core.budgets.guard import BudgetGuard
from core.db import Database
from core.queue import JobQueue
from core.settings import Settings
from core.spec_policy import model_name_errors
from engine import SpecCheck
from engine.gateway import Router


async def get_database(request: Request) -> Database:
    """The app's Database (created by the lifespan or injected by tests)."""
    database: Database = request.app.state.database
    return database


async def get_session(database: Annotated[Database, Depends(get_database)]) -> AsyncIterator[AsyncSession]:
    """One session per request."""
    async with database.session() as session:
        yield session


async def get_app_settings(request: Request) -> Settings:
    """The settings the app was created with."""
    settings: Settings = request.app.state.settings
    return settings


async def get_router(request: Request) -> Router:
    """The app's gateway router."""
    router: Router = request.app.state.router
    return router


async def get_queue(request: Request) -> JobQueue:
    """Where queued jobs are offered to workers."""
    queue: JobQueue = request.app.state.queue
    return queue


async def get_key_limits(request: Request) -> KeyLimits:
    """The API keys' limits on the gateway routes."""
    limits: KeyLimits = request.app.state.key_limits
    return limits


def budget_guard(app: Any) -> BudgetGuard:
    """The app's budget guard, made on first use (it starts itself when first asked)."""
    guard: BudgetGuard | None = getattr(app.state, "budgets", None)
    if guard is None:
        settings: Settings = app.state.settings
        router: Router = app.state.router
        guard = app.state.budgets = open_guard(settings, app.state.database, router.config,
                                               holder=f"api@{socket.gethostname()}:{os.getpid()}")
    return guard


async def get_budgets(request: Request) -> BudgetGuard:
    """The budgets in force and their counters."""
    return budget_guard(request.app)


async def get_estimates(request: Request) -> EstimateRunner:
    """Where estimates are made: off the event loop."""
    runner: EstimateRunner = request.app.state.estimates
    return runner


async def get_spec_checks(request: Request) -> Sequence[SpecCheck]:
    """What every stored workflow and job must pass besides the spec itself: paths, secrets, and model names
    the gateway knows."""
    router: Router = request.app.state.router
    checks: Sequence[SpecCheck] = request.app.state.spec_checks
    return (*checks, partial(model_name_errors, config=router.config))


DatabaseDep = Annotated[Database, Depends(get_database)]
QueueDep = Annotated[JobQueue, Depends(get_queue)]
RouterDep = Annotated[Router, Depends(get_router)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
KeyLimitsDep = Annotated[KeyLimits, Depends(get_key_limits)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
BudgetsDep = Annotated[BudgetGuard, Depends(get_budgets)]
EstimatesDep = Annotated[EstimateRunner, Depends(get_estimates)]
SpecChecksDep = Annotated[Sequence[SpecCheck], Depends(get_spec_checks)]
