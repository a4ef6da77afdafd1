"""Limits shared through Redis: several routers together keep one model's limits (real Redis)."""

from __future__ import annotations

import asyncio
import sys
import uuid

import pytest

from core.shared_limits import SharedLimits
from engine.gateway import RateLimited
from engine.gateway.config import load_gateway
from engine.gateway.router import Router
from engine.gateway.types import ChatRequest
from tests.fake_upstream import FakeUpstream
from tests.services import redis_url

pytestmark = pytest.mark.redis


async def test_two_router_processes_stay_within_safe_rps_together() -> None:
    url, prefix, rate, each = redis_url(), f"test:{uuid.uuid4().hex}", 10, 30
    async with FakeUpstream() as up:
        base = up.base_url.removesuffix("/v1")
        processes = [await asyncio.create_subprocess_exec(sys.executable, "-m", "tests.router_process", base, url,
                                                          prefix, str(rate), str(each)) for _ in range(2)]
        codes = await asyncio.wait_for(asyncio.gather(*(p.wait() for p in processes)), timeout=60)
    assert codes == [0, 0]
    arrivals = sorted(up.stats.arrivals)
    assert len(arrivals) == 2 * each
    for i, first in enumerate(arrivals):  # any 1 s window: the burst (2R), R refilled, slack for transit
        assert sum(1 for t in arrivals[i:] if t < first + 1.0) <= 3 * rate + rate // 4
    steady = [t for t in arrivals if t >= arrivals[0] + 1.0]
    for i, first in enumerate(steady):  # after the burst, the two together: R a second (+1 at the edge)
        assert sum(1 for t in steady[i:] if t < first + 1.0) <= rate + 1
    assert arrivals[-1] - arrivals[0] >= (2 * each - 2 * rate) / rate * 0.9


async def test_a_cool_down_set_by_one_router_holds_for_another() -> None:
    prefix = f"test:{uuid.uuid4().hex}"
    async with FakeUpstream(faults=lambda *_: "429", retry_after="5") as up:
        text = (f"models: [{{name: m, model: fake, channel: c}}]\n"
                f"channels: {{c: {{base_url: '{up.base_url.removesuffix('/v1')}', api_path: /v1/chat/completions}}}}\n")
        first = Router(load_gateway(text), shared=SharedLimits.from_url(redis_url(), prefix=prefix))
        second = Router(load_gateway(text), shared=SharedLimits.from_url(redis_url(), prefix=prefix))
        request = ChatRequest(model="m", timeout_s=0.5, messages=[{"role": "user", "content": "hi"}])
        with pytest.raises(RateLimited):
            await first.chat(request)  # the upstream's 429 with Retry-After: 5
        with pytest.raises(RateLimited) as caught:
            await second.chat(request)  # never sent: the shared cool-down says wait ~5 s
        await first.aclose()
        await second.aclose()
    assert up.stats.requests == 1
    assert 4 < (caught.value.retry_after_s or 0) <= 5


async def test_admin_shows_the_shared_cool_down_and_bucket_levels() -> None:
    import httpx

    from api_server.main import create_app
    from core.settings import Settings

    prefix = f"test:{uuid.uuid4().hex}"
    async with FakeUpstream(faults=lambda *_: "429", retry_after="5") as up:
        text = (f"models: [{{name: m, model: fake, channel: c, safe_rps: 10, tpm: 6000}}]\n"
                f"channels: {{c: {{base_url: '{up.base_url.removesuffix('/v1')}'}}}}\n")
        sender = Router(load_gateway(text), shared=SharedLimits.from_url(redis_url(), prefix=prefix))
        watcher = Router(load_gateway(text), shared=SharedLimits.from_url(redis_url(), prefix=prefix))
        app = create_app(Settings(redis_url=None, auth_required=False), router=watcher)  # no database: no keys
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
            await http.get("/admin/health")  # FastAPI prepares a router on its first request: not between take and read
            with pytest.raises(RateLimited):  # one request taken from the buckets, then a 5 s cool-down
                await sender.chat(ChatRequest(model="m", timeout_s=0.5, messages=[{"role": "user", "content": "hi"}]))
            [model] = (await http.get("/admin/models")).json()["models"]
            health = await http.get("/admin/health")
        await sender.aclose()
        await watcher.aclose()
    assert model["healthy"] is False and 4 < model["cooldown_s"] <= 5  # set by the other router
    assert 18 <= model["requests_left"] < 20  # capacity 2 x 10, one taken by the other router (plus refill)
    assert model["tokens_left"] is not None and model["tokens_left"] <= 6000  # a tiny request, refilled at once
    assert health.status_code == 503 and health.json()["cooling_down"] == ["m"]
