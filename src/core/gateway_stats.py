"""Gateway statistics: each deployment described (health, capacity, counters), and published to Redis by
workers so that one /metrics shows the whole fleet."""

from __future__ import annotations

import json
import statistics
from typing import Any

from redis.asyncio import Redis

from engine.gateway import DeploymentState, Router

STATS_PREFIX = "rowloom:stats:"
STATS_TTL_S = 60  # a worker that stops publishing drops out of /metrics after this long


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
        "weight": config.weight, "price": config.price.model_dump(), "healthy": not cooling,
        "cooldown_s": round(state.cooldown.until - now, 3) if cooling else 0.0,
        "consecutive_failures": state.cooldown.failures,
        "requests_left": round(state.requests.level(now), 2) if state.requests else None,  # in the current window
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


async def publish_stats(redis: Redis, *, process: str, models: list[dict[str, Any]]) -> None:
    """Store one process's per-deployment counters (as `/admin/models` shows them)."""
    await redis.set(STATS_PREFIX + process, json.dumps(models), ex=STATS_TTL_S)


async def fleet_stats(redis: Redis) -> dict[str, list[dict[str, Any]]]:
    """Every publishing process's per-deployment counters."""
    stats: dict[str, list[dict[str, Any]]] = {}
    async for key in redis.scan_iter(match=STATS_PREFIX + "*"):
        raw = await redis.get(key)
        if raw is not None:
            name = key.decode() if isinstance(key, bytes) else str(key)
            stats[name.removeprefix(STATS_PREFIX)] = json.loads(raw)
    return stats
