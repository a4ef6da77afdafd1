"""Gateway statistics that worker processes publish to Redis, so one /metrics shows the whole fleet."""

from __future__ import annotations

import json
from typing import Any

from redis.asyncio import Redis

STATS_PREFIX = "rowloom:stats:"
STATS_TTL_S = 60  # a worker that stops publishing drops out of /metrics after this long


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
