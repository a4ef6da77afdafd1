"""FastAPI dependencies as `Annotated` aliases (async: a sync dependency costs a thread-pool hop per request)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import Database
from core.queue import JobQueue
from core.settings import Settings
from engine.gateway.router import Router


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


DatabaseDep = Annotated[Database, Depends(get_database)]
QueueDep = Annotated[JobQueue, Depends(get_queue)]
RouterDep = Annotated[Router, Depends(get_router)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
