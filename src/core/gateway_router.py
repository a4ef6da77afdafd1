"""The process's gateway router, built from settings: the API's /v1 routes and every job send requests through it."""

from __future__ import annotations

from core.redis_retry import API_PATIENCE_S
from core.settings import Settings
from core.shared_limits import SharedLimits
from engine.gateway import Router, load_gateway

DEFAULT_GATEWAY = "models:\n  - {name: mock, model: mock, provider: mock, batch: {poll_s: 1, mock_delay_s: 2}}\n"


def process_router(settings: Settings, *, trace_upstream: bool = False,
                redis_patience_s: float | None = API_PATIENCE_S) -> Router:
    """The router from GATEWAY_CONFIG (or one local mock model); limits shared in Redis if REDIS_URL is set (a
    call waits out a Redis outage for `redis_patience_s`, None: for ever)."""
    text = settings.gateway_config.read_text(encoding="utf-8") if settings.gateway_config else DEFAULT_GATEWAY
    shared = SharedLimits.from_url(settings.redis_url, patience_s=redis_patience_s) if settings.redis_url else None
    return Router(load_gateway(text), shared=shared, trace_upstream=trace_upstream)
