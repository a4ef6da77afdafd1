"""The FastAPI application factory."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute

from api_server.body_limit import BodySizeLimit
from api_server.db import Database
from api_server.errors import install_error_handlers
from api_server.routes import admin, health, jobs, openai_compat, workflows
from api_server.settings import Settings, get_settings
from engine.gateway.config import load_gateway
from engine.gateway.router import Router
from engine.gateway.shared import SharedLimits

DESCRIPTION = """Rowloom runs LLM workflows over tables.

Store a workflow as versioned YAML (`/api/v1/workflows`), trigger jobs of it (`/api/v1/jobs`), and
follow each job's status, counts and usage. Every error has one shape:
`{"error": {"status", "code", "message", "field", "details": [{"field", "message", "line", "column"}]}}`.
"""


DEFAULT_GATEWAY = "models:\n  - {name: mock, model: mock, provider: mock}\n"


def open_router(settings: Settings) -> Router:
    """The gateway router from GATEWAY_CONFIG (or one local mock model); limits shared in Redis if set."""
    text = settings.gateway_config.read_text(encoding="utf-8") if settings.gateway_config else DEFAULT_GATEWAY
    shared = SharedLimits.from_url(settings.redis_url) if settings.redis_url else None
    return Router(load_gateway(text), shared=shared)


def create_app(settings: Settings | None = None, database: Database | None = None,
               router: Router | None = None) -> FastAPI:
    """Build the app; the database and router come from settings unless injected (tests)."""
    settings = settings or get_settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = database is None
        app.state.database = database or Database(settings.database_url, echo=settings.db_echo)
        app.state.router = router or open_router(settings)
        try:
            yield
        finally:
            if owned:
                await app.state.database.dispose()
            if router is None:
                await app.state.router.aclose()

    app = FastAPI(title="Rowloom", version="0.1.0", description=DESCRIPTION, lifespan=lifespan)
    app.state.settings = settings
    if database is not None:  # usable without running the lifespan (httpx's ASGI transport skips it)
        app.state.database = database
    if router is not None:
        app.state.router = router
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    install_error_handlers(app)
    # The gateway routes first: they are the hot path, and routes are matched in order.
    for routes in (openai_compat.router, health.router, workflows.router, jobs.router, admin.router):
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
