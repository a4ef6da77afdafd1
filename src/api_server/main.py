"""The FastAPI application factory."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.routing import APIRoute
from fastapi_offline import FastAPIOffline

from api_server.auth import KeyRing
from api_server.body_limit import BodySizeLimit
from api_server.chat_fast_path import ChatFastPath
from api_server.cross_site import CrossSiteGuard
from api_server.docs_policy import DocsPolicy
from api_server.http_errors import install_error_handlers
from api_server.key_limits import KeyLimits
from api_server.routes import (
    admin,
    budgets,
    dashboard,
    health,
    job_results,
    jobs,
    keys,
    metrics,
    openai_compat,
    schemas,
    usage,
    workflows,
)
from api_server.services.estimate_runner import EstimateRunner
from api_server.telemetry import fastapi_telemetry
from api_server.trusted_hosts import TrustedHosts
from core.db import Database
from core.gateway_router import process_router
from core.logs import configure_logging
from core.queue import JobQueue, NoQueue, queue_for
from core.settings import Settings, get_settings
from core.shared_limits import SharedLimits
from core.spec_policy import spec_checks
from engine.gateway import Router

DESCRIPTION = """Rowloom runs LLM workflows over tables.

Store a workflow as versioned YAML (`/api/v1/workflows`), trigger jobs of it (`/api/v1/jobs`), and
follow each job's status, counts and usage. Every error has one shape:
`{"error": {"status", "code", "message", "field", "details": [{"field", "message", "line", "column"}]}}`.
"""


QueueFactory = Callable[[Database, Router, Settings], JobQueue]
BackgroundTask = Callable[[], Coroutine[Any, Any, None]]


def create_app(settings: Settings | None = None, database: Database | None = None,
               router: Router | None = None, queue_factory: QueueFactory | None = None,
               trace_upstream: bool = False, background: BackgroundTask | None = None) -> FastAPI:
    """Build the app; the database and router come from settings unless injected (tests).

    Jobs go to arq when REDIS_URL is set; `queue_factory` replaces that (the CLI's in-process runner).
    `background` runs beside the app once it starts, and is cancelled when it stops (the CLI's demo).
    """
    settings = settings or get_settings()
    configure_logging(settings)  # no log line carries a secret a job resolved
    # Swagger UI and ReDoc from the installed package's own files: the docs work with no network at all.
    app = FastAPIOffline(title="Rowloom", version="0.1.0", description=DESCRIPTION,
                         lifespan=_lifespan(settings, database, router, queue_factory, trace_upstream, background),
                         telemetry=fastapi_telemetry())
    _set_state(app, settings, database, router)
    _add_middleware(app, settings)
    install_error_handlers(app)
    _include_routes(app)
    return app


def _lifespan(settings: Settings, database: Database | None, router: Router | None,
              queue_factory: QueueFactory | None, trace_upstream: bool,
              background: BackgroundTask | None) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Open what the app serves with (database, router, queue, keys, limits) at start, and close it at the end."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = database is None
        app.state.database = database or Database(settings.database_url, echo=settings.db_echo)
        app.state.router = router or process_router(settings, trace_upstream=trace_upstream)
        app.state.queue = (queue_factory(app.state.database, app.state.router, settings) if queue_factory
                           else queue_for(settings.redis_url, settings.queue_name))
        app.state.keys = KeyRing(app.state.database, redis_url=settings.redis_url, required=settings.auth_required)
        app.state.key_limits = KeyLimits(SharedLimits.from_url(settings.redis_url) if settings.redis_url else None)
        await app.state.keys.start()
        await app.state.queue.start()
        task = asyncio.create_task(background()) if background is not None else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
            await app.state.queue.aclose()
            await app.state.keys.aclose()
            await app.state.key_limits.aclose()
            if getattr(app.state, "budgets", None) is not None:
                await app.state.budgets.aclose()
                app.state.budgets = None
            app.state.estimates.close()
            if owned:
                await app.state.database.dispose()
            if router is None:
                await app.state.router.aclose()

    return lifespan


def _set_state(app: FastAPI, settings: Settings, database: Database | None, router: Router | None) -> None:
    """What the dependencies read, usable before the lifespan runs (httpx's ASGI transport skips it)."""
    app.state.settings = settings
    app.state.spec_checks = spec_checks(settings)
    app.state.queue = NoQueue()  # until the lifespan attaches the real one (in-process tests skip it)
    app.state.key_limits = KeyLimits()
    app.state.budgets = None  # made on first use (api_server.deps.budget_guard)
    app.state.estimates = EstimateRunner(settings)  # its processes start with the first estimate
    app.state.keys = KeyRing(database, required=settings.auth_required)
    if database is not None:
        app.state.database = database
    if router is not None:
        app.state.router = router


def _add_middleware(app: FastAPI, settings: Settings) -> None:
    """The middleware, innermost first: the chat fast path, the body limit, the cross-site guard, the docs policy,
    CORS (when origins are listed), and outermost the trusted hosts."""
    app.add_middleware(ChatFastPath)  # inside the body limit: added first, so it wraps the app more closely
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(CrossSiteGuard, allowed_origins=settings.cors_origins)
    app.add_middleware(DocsPolicy, paths=frozenset({"/docs", "/redoc"}))
    if settings.cors_origins:  # off unless origins are listed: a page elsewhere cannot read the API's answers
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_credentials=False,
                           allow_methods=["*"], allow_headers=["Authorization", "Content-Type", "Idempotency-Key"])
    # Outermost: a request for another name (DNS rebinding) is refused before anything else sees it.
    app.add_middleware(TrustedHosts, trusted=settings.trusted_hosts, local_only=not settings.auth_required)


def _include_routes(app: FastAPI) -> None:
    """Every resource's router; the gateway's first: it is the hot path, and routes are matched in order."""
    for routes in (openai_compat.router, health.router, workflows.router, jobs.router, job_results.router,
                   usage.router, budgets.router, admin.router, keys.router, metrics.router, schemas.router,
                   dashboard.router):
        _summaries_from_docstrings(routes)
        app.include_router(routes)


def _summaries_from_docstrings(router: APIRouter) -> None:
    """Swagger shows each route's docstring: first line as summary, the rest as description."""
    for route in router.routes:
        if isinstance(route, APIRoute) and route.endpoint.__doc__:
            first, _, rest = route.endpoint.__doc__.strip().partition("\n")
            route.summary = first.strip()
            route.description = "\n".join(line.strip() for line in rest.splitlines()).strip() or first.strip()
