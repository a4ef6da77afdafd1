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
from tests.support.fake_upstream import FakeUpstream, busiest_second
from tests.support.services import redis_url

pytestmark = pytest.mark.redis


async def test_two_router_processes_stay_within_safe_rps_together() -> None:
    url, prefix, rate, each = redis_url(), f"test:{uuid.uuid4().hex}", 10, 30
    async with FakeUpstream() as up:
        base = up.base_url.removesuffix("/v1")
        processes = [await asyncio.create_subprocess_exec(sys.executable, "-m", "tests.support.router_process", base,
                                                          url, prefix, str(rate), str(each)) for _ in range(2)]
        codes = await asyncio.wait_for(asyncio.gather(*(p.wait() for p in processes)), timeout=60)
    assert codes == [0, 0]
    arrivals = sorted(up.stats.arrivals)
    assert len(arrivals) == 2 * each
    assert busiest_second(arrivals) <= rate  # the two together, in any 1 s at the upstream, edges included
    assert arrivals[-1] - arrivals[0] >= 2 * each / rate - 1


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


async def test_admin_shows_the_shared_cool_down_and_window_levels() -> None:
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
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost") as http:
            await http.get("/admin/health")  # FastAPI prepares a router on its first request: not between take and read
            with pytest.raises(RateLimited):  # one request recorded in the windows, then a 5 s cool-down
                await sender.chat(ChatRequest(model="m", timeout_s=0.5, messages=[{"role": "user", "content": "hi"}]))
            [model] = (await http.get("/admin/models")).json()["models"]
            health = await http.get("/admin/health")
        await sender.aclose()
        await watcher.aclose()
    assert model["healthy"] is False and 4 < model["cooldown_s"] <= 5  # set by the other router
    assert model["requests_left"] == 9  # 10 in any second, one sent by the other router
    assert model["tokens_left"] is not None and model["tokens_left"] <= 6000  # a tiny request's estimate held
    assert health.status_code == 503 and health.json()["cooling_down"] == ["m"]


async def test_two_routers_keep_tpm_together_and_settle_to_real_usage() -> None:
    prefix, tpm = f"test:{uuid.uuid4().hex}", 600
    async with FakeUpstream() as up:
        text = (f"models: [{{name: m, model: fake, channel: c, tpm: {tpm}}}]\n"
                f"channels: {{c: {{base_url: '{up.base_url.removesuffix('/v1')}', api_path: /v1/chat/completions}}}}\n")
        routers = [Router(load_gateway(text), shared=SharedLimits.from_url(redis_url(), prefix=prefix))
                   for _ in range(2)]
        requests = [ChatRequest(model="m", timeout_s=1.0, max_tokens=50,  # estimate ~52 tokens, real ~20
                                messages=[{"role": "user", "content": f"question {i}"}]) for i in range(80)]
        outcomes = await asyncio.gather(*(routers[i % 2].chat(r) for i, r in enumerate(requests)),
                                        return_exceptions=True)
        levels = await routers[0].shared.levels("m", rps=None, tpm=tpm) if routers[0].shared else None
        for router in routers:
            await router.aclose()
    answered = [o for o in outcomes if not isinstance(o, BaseException)]
    refused = [o for o in outcomes if isinstance(o, RateLimited)]
    used = sum(o.usage.prompt_tokens + o.usage.completion_tokens for o in answered)
    assert len(answered) + len(refused) == 80 and refused
    assert used <= tpm  # within the first minute: the two routers together, by real usage
    assert len(answered) > tpm // 53  # settled estimates made room for more than the estimates alone allow
    assert levels is not None and levels.tokens == tpm - used
