"""The FastAPI application factory."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute

from api_server.body_limit import BodySizeLimit
from api_server.chat_fast_path import ChatFastPath
from api_server.db import Database
from api_server.demo import run_demo
from api_server.errors import install_error_handlers
from api_server.gateway import open_router
from api_server.queue import JobQueue, NoQueue, queue_for
from api_server.routes import admin, health, job_results, jobs, metrics, openai_compat, workflows
from api_server.settings import Settings, get_settings
from api_server.telemetry import fastapi_telemetry
from engine.gateway.router import Router

DESCRIPTION = """Rowloom runs LLM workflows over tables.

Store a workflow as versioned YAML (`/api/v1/workflows`), trigger jobs of it (`/api/v1/jobs`), and
follow each job's status, counts and usage. Every error has one shape:
`{"error": {"status", "code", "message", "field", "details": [{"field", "message", "line", "column"}]}}`.
"""


QueueFactory = Callable[[Database, Router, Settings], JobQueue]


def create_app(settings: Settings | None = None, database: Database | None = None,
               router: Router | None = None, queue_factory: QueueFactory | None = None,
               trace_upstream: bool = False, demo_url: str | None = None) -> FastAPI:
    """Build the app; the database and router come from settings unless injected (tests).

    Jobs go to arq when REDIS_URL is set; `queue_factory` replaces that (the CLI's in-process runner).
    """
    settings = settings or get_settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per upstream call drowns everything

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = database is None
        app.state.database = database or Database(settings.database_url, echo=settings.db_echo)
        app.state.router = router or open_router(settings, trace_upstream=trace_upstream)
        app.state.queue = (queue_factory(app.state.database, app.state.router, settings) if queue_factory
                           else queue_for(settings.redis_url, settings.queue_name))
        await app.state.queue.start()
        demo = asyncio.create_task(run_demo(demo_url, settings)) if demo_url else None
        try:
            yield
        finally:
            if demo is not None:
                demo.cancel()
            await app.state.queue.aclose()
            if owned:
                await app.state.database.dispose()
            if router is None:
                await app.state.router.aclose()

    app = FastAPI(title="Rowloom", version="0.1.0", description=DESCRIPTION, lifespan=lifespan,
                  telemetry=fastapi_telemetry())
    app.state.settings = settings
    app.state.queue = NoQueue()  # until the lifespan attaches the real one (in-process tests skip it)
    if database is not None:  # usable without running the lifespan (httpx's ASGI transport skips it)
        app.state.database = database
    if router is not None:
        app.state.router = router
    app.add_middleware(ChatFastPath)  # inside the body limit: added first, so it wraps the app more closely
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    install_error_handlers(app)
    # The gateway routes first: they are the hot path, and routes are matched in order.
    for routes in (openai_compat.router, health.router, workflows.router, jobs.router, job_results.router,
                   admin.router, metrics.router):
        _summaries_from_docstrings(routes)
        app.include_router(routes)
    return app


def _summaries_from_docstrings(router: APIRouter) -> None:
    """Swagger shows each route's docstring: first line as summary, the rest as description."""
    for route in router.routes:
        if isinstance(route, APIRoute) and route.endpoint.__doc__:
            first, _, rest = route.endpoint.__doc__.strip().partition("\n")
            route.summary = route.summary or first.strip()
            route.description = "\n".join(line.strip() for line in rest.splitlines()).strip() or first.strip()
