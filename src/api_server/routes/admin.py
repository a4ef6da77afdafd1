"""/admin: the gateway's deployments and their health (never a key)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response, status

from api_server.deps import RouterDep
from api_server.gateway import snapshot

router = APIRouter(prefix="/admin", tags=["admin"])


@router.get("/models")
async def admin_models(gateway: RouterDep) -> dict[str, Any]:
    """Every deployment: weight, health, cool-down, capacity left, in flight, counters, latency, cost."""
    return {"models": snapshot(gateway), "groups": gateway.config.groups}


@router.get("/health")
async def admin_health(gateway: RouterDep, response: Response) -> dict[str, Any]:
    """Healthy deployments; 503 when none is."""
    models = snapshot(gateway)
    healthy = [m["name"] for m in models if m["healthy"] and m["weight"] > 0]
    if not healthy:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return {"status": "ok" if healthy else "down", "healthy": healthy,
            "cooling_down": [m["name"] for m in models if not m["healthy"]]}
