"""The gateway over HTTP: the official `openai` client against /v1, and /admin."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
import pytest

from api_server.db import Database
from api_server.main import create_app
from api_server.settings import Settings
from engine.gateway.config import load_gateway
from engine.gateway.router import Router
from tests.fake_upstream import FakeUpstream
from tests.test_gateway_router import gateway

SECRET = "sk-test-never-shown"


@pytest.fixture
async def upstreams() -> AsyncIterator[tuple[FakeUpstream, FakeUpstream]]:
    async with FakeUpstream() as a, FakeUpstream(faults=lambda *_: None) as b:
        yield a, b


@pytest.fixture
async def app_router(upstreams: tuple[FakeUpstream, FakeUpstream], settings: Settings,
                     database: Database) -> AsyncIterator[tuple[Any, Router]]:
    router = Router(load_gateway(gateway(*upstreams, extra={"m0": "price: {input: 2.0, output: 4.0}"},
                                         groups="groups: {pair: [m0, m1]}")), env={"KEY": SECRET}, seed=5)
    yield create_app(settings, database, router), router
    await router.aclose()


@pytest.fixture
async def client(app_router: tuple[Any, Router]) -> AsyncIterator[openai.AsyncOpenAI]:
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app_router[0]), base_url="http://rowloom.test")
    async with openai.AsyncOpenAI(base_url="http://rowloom.test/v1", api_key="unused", http_client=http,
                                  max_retries=0) as ai:
        yield ai


async def test_official_client_chat_and_models(client: openai.AsyncOpenAI,
                                               upstreams: tuple[FakeUpstream, FakeUpstream]) -> None:
    schema = {"type": "object", "properties": {"category": {"enum": ["a", "b"]}}, "required": ["category"]}
    reply = await client.chat.completions.create(
        model="pair", messages=[{"role": "system", "content": "Sort."}, {"role": "user", "content": "row 1"}],
        response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}, temperature=0.2)
    assert reply.object == "chat.completion" and reply.model in ("m0", "m1")
    assert json.loads(reply.choices[0].message.content or "")["category"] in ("a", "b")
    assert reply.usage is not None and reply.usage.total_tokens > 0
    ids = [m.id async for m in client.models.list()]
    assert ids == ["auto", "pair", "m0", "m1"]
    assert sum(up.stats.requests for up in upstreams) == 1


async def test_upstream_rejection_reaches_the_client_as_400(client: openai.AsyncOpenAI,
                                                            upstreams: tuple[FakeUpstream, FakeUpstream]) -> None:
    for up in upstreams:
        up.faults = lambda *_: "400"
    with pytest.raises(openai.BadRequestError):
        await client.chat.completions.create(model="auto", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.NotFoundError, match="unknown model"):
        await client.chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": "x"}])


async def test_busy_gateway_answers_429_with_retry_after(app_router: tuple[Any, Router],
                                                         upstreams: tuple[FakeUpstream, FakeUpstream]) -> None:
    app, router = app_router
    for state in router.deployments.values():
        state.cooldown.failed(router.clock(), retry_after_s=90)  # longer than a request waits (60 s)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        response = await http.post("/v1/chat/completions", json={"model": "auto", "messages": [
            {"role": "user", "content": "x"}]})
        health = await http.get("/admin/health")
    assert response.status_code == 429 and 85 <= int(response.headers["retry-after"]) <= 90
    assert response.json()["error"]["code"] == "rate_limited"
    assert health.status_code == 503 and health.json()["cooling_down"] == ["m0", "m1"]
    assert sum(up.stats.requests for up in upstreams) == 0


async def test_admin_models_counts_without_secrets(app_router: tuple[Any, Router],
                                                   client: openai.AsyncOpenAI) -> None:
    for i in range(6):
        await client.chat.completions.create(model="m0", messages=[{"role": "user", "content": f"q{i}"}])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app_router[0]), base_url="http://t") as http:
        response = await http.get("/admin/models")
    assert SECRET not in response.text and "api_key" not in response.text
    m0 = next(m for m in response.json()["models"] if m["name"] == "m0")
    assert (m0["requests_ok"], m0["requests_failed"], m0["healthy"], m0["in_flight"]) == (6, 0, True, 0)
    assert m0["latency_p50_ms"] is not None and m0["tokens_in"] > 0
    assert m0["cost"] == pytest.approx((m0["tokens_in"] * 2.0 + m0["tokens_out"] * 4.0) / 1e6)
