"""/health and /ping."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response, status
from pydantic import BaseModel
from sqlalchemy import text

from api_server.auth import Caller, caller_if_reachable
from api_server.deps import DatabaseDep, SettingsDep

router = APIRouter(tags=["health"])


class Check(BaseModel):
    """One dependency's state."""

    ok: bool
    latency_ms: float | None = None
    detail: str | None = None


class Health(BaseModel):
    """`ok` when every configured dependency answers, else `degraded` (with 503). The checks are shown only to
    a caller with an API key."""

    status: str
    checks: dict[str, Check] | None = None


async def _timed(probe: Any) -> Check:
    started = time.perf_counter()
    try:
        await probe()
    except Exception as exc:  # a health check reports any failure rather than raising it
        return Check(ok=False, detail=f"{type(exc).__name__}: {exc}"[:300])
    return Check(ok=True, latency_ms=round((time.perf_counter() - started) * 1000, 2))


@router.get("/health", response_model=Health, responses={503: {"model": Health, "description": "Degraded"}})
async def health(database: DatabaseDep, settings: SettingsDep, response: Response,
                 caller: Annotated[Caller | None, Depends(caller_if_reachable)]) -> Health:
    """Check the database, and Redis when REDIS_URL is set; 503 if any is down.

    Without an API key only the status is shown; with one, each dependency's check and latency (while the
    database is away a key cannot be checked: only the status is shown).
    """

    async def database_probe() -> None:
        async with database.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    checks = {"database": await _timed(database_probe)}
    if settings.redis_url:
        from redis.asyncio import Redis

        async def redis_probe() -> None:
            client = Redis.from_url(settings.redis_url or "", socket_connect_timeout=2, socket_timeout=2)
            try:
                await client.ping()
            finally:
                await client.aclose()

        checks["redis"] = await _timed(redis_probe)
    healthy = all(check.ok for check in checks.values())
    if not healthy:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return Health(status="ok" if healthy else "degraded", checks=checks if caller is not None else None)


@router.get("/ping")
async def ping() -> dict[str, str]:
    """Liveness: answers without touching any dependency."""
    return {"ping": "pong"}
