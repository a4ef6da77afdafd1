"""/admin: the gateway's deployments and their health (never a key)."""

from __future__ import annotations

import statistics
from typing import Any

from fastapi import APIRouter, Response, status

from api_server.deps import RouterDep
from engine.gateway.router import DeploymentState, Router

router = APIRouter(prefix="/admin", tags=["admin"])


def _percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000, 2)


def describe(state: DeploymentState, now: float) -> dict[str, Any]:
    """One deployment's settings, health, capacity and counters."""
    config = state.config
    latencies = list(state.latencies)
    cooling = state.cooldown.until > now
    return {
        "name": config.name, "model": config.model, "provider": config.provider, "channel": config.channel,
        "weight": config.weight, "healthy": not cooling,
        "cooldown_s": round(state.cooldown.until - now, 3) if cooling else 0.0,
        "consecutive_failures": state.cooldown.failures,
        "requests_left": round(state.requests.level(now), 2) if state.requests else None,
        "tokens_left": round(state.tokens.level(now)) if state.tokens else None,
        "in_flight": state.in_flight, "max_in_flight": config.max_in_flight,
        "requests_ok": state.ok, "requests_failed": state.failed,
        "latency_p50_ms": _percentile(latencies, 0.5), "latency_p95_ms": _percentile(latencies, 0.95),
        "latency_mean_ms": round(statistics.fmean(latencies) * 1000, 2) if latencies else None,
        "tokens_in": state.tokens_in, "tokens_out": state.tokens_out, "cost": round(state.cost, 6),
    }


def snapshot(gateway: Router) -> list[dict[str, Any]]:
    """Every deployment, described."""
    now = gateway.clock()
    return [describe(state, now) for state in gateway.deployments.values()]


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
