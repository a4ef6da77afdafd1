"""/admin: the gateway's deployments and their health (never a key)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response, status

from api_server.auth import require
from api_server.deps import RouterDep
from api_server.http_errors import error_responses
from core.gateway_stats import snapshot
from core.models import Scope
from engine.gateway import Router

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[require(Scope.ADMIN)],
                   responses=error_responses(401, 403))


@router.get("/models")
async def admin_models(gateway: RouterDep) -> dict[str, Any]:
    """Every deployment: weight, health, cool-down, capacity left, in flight, counters, latency, cost.

    With REDIS_URL, cool-downs and window levels are the shared ones every process sees; counters, latency
    and in flight are this process's.
    """
    return {"models": await shared_view(gateway, snapshot(gateway)), "groups": gateway.config.groups}


async def shared_view(gateway: Router, models: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The snapshot with cool-downs and window levels read from Redis when the limits live there."""
    if gateway.shared is None:
        return models
    for model in models:
        config = gateway.deployments[model["name"]].config
        shared = await gateway.shared.levels(config.name, rps=config.safe_rps, tpm=config.tpm)
        cooling = max(model["cooldown_s"], shared.cooldown_s)
        model |= {"healthy": cooling == 0, "cooldown_s": round(cooling, 3),
                  "requests_left": round(shared.requests, 2) if shared.requests is not None else None,
                  "tokens_left": round(shared.tokens) if shared.tokens is not None else None}
    return models


@router.get("/health")
async def admin_health(gateway: RouterDep, response: Response) -> dict[str, Any]:
    """Healthy deployments (cool-downs shared through Redis count); 503 when none is."""
    models = await shared_view(gateway, snapshot(gateway))
    healthy = [m["name"] for m in models if m["healthy"] and m["weight"] > 0]
    if not healthy:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return {"status": "ok" if healthy else "down", "healthy": healthy,
            "cooling_down": [m["name"] for m in models if not m["healthy"]]}
