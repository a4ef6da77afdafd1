"""The gateway router the API's /v1 routes (and workers) send requests through, built from settings."""

from __future__ import annotations

import statistics
from typing import Any

from api_server.settings import Settings
from engine.gateway.config import load_gateway
from engine.gateway.router import DeploymentState, Router
from engine.gateway.shared import SharedLimits

DEFAULT_GATEWAY = "models:\n  - {name: mock, model: mock, provider: mock}\n"


def open_router(settings: Settings, *, trace_upstream: bool = False) -> Router:
    """The router from GATEWAY_CONFIG (or one local mock model); limits shared in Redis if REDIS_URL is set."""
    text = settings.gateway_config.read_text(encoding="utf-8") if settings.gateway_config else DEFAULT_GATEWAY
    shared = SharedLimits.from_url(settings.redis_url) if settings.redis_url else None
    return Router(load_gateway(text), shared=shared, trace_upstream=trace_upstream)


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
