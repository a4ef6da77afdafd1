"""The gateway over HTTP: the official `openai` client against /v1, and /admin."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
import pytest

from api_server.main import create_app
from core.db import Database
from core.settings import Settings
from engine.gateway.config import load_gateway
from engine.gateway.router import Router
from tests.support.fake_upstream import FakeUpstream, gateway_yaml, marker
from tests.support.keys import bearer
from tests.support.served import served

SECRET = "sk-test-never-shown"


@pytest.fixture
async def upstreams() -> AsyncIterator[tuple[FakeUpstream, FakeUpstream]]:
    async with FakeUpstream() as a, FakeUpstream(faults=lambda *_: None) as b:
        yield a, b


@pytest.fixture
async def app_router(upstreams: tuple[FakeUpstream, FakeUpstream], settings: Settings,
                     database: Database) -> AsyncIterator[tuple[Any, Router]]:
    router = Router(load_gateway(gateway_yaml(*upstreams, extra={"m0": "price: {input: 2.0, output: 4.0}"},
                                         groups="groups: {pair: [m0, m1]}")), env={"KEY": SECRET}, seed=5)
    yield create_app(settings, database, router), router
    await router.aclose()


@pytest.fixture
async def client(app_router: tuple[Any, Router], admin_key: str) -> AsyncIterator[openai.AsyncOpenAI]:
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app_router[0]), base_url="http://rowloom.test",
                                 headers=bearer(admin_key))
    async with openai.AsyncOpenAI(base_url="http://rowloom.test/v1", api_key=admin_key, http_client=http,
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
                                                         upstreams: tuple[FakeUpstream, FakeUpstream],
                                                         admin_key: str) -> None:
    app, router = app_router
    for state in router.deployments.values():
        state.cooldown.failed(router.clock(), retry_after_s=90)  # longer than a request waits (60 s)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t",
                                 headers=bearer(admin_key)) as http:
        response = await http.post("/v1/chat/completions", json={"model": "auto", "messages": [
            {"role": "user", "content": "x"}]})
        health = await http.get("/admin/health")
    assert response.status_code == 429 and 85 <= int(response.headers["retry-after"]) <= 90
    assert response.json()["error"]["code"] == "rate_limited"
    assert health.status_code == 503 and health.json()["cooling_down"] == ["m0", "m1"]
    assert sum(up.stats.requests for up in upstreams) == 0


async def test_admin_models_counts_without_secrets(app_router: tuple[Any, Router],
                                                   client: openai.AsyncOpenAI, admin_key: str) -> None:
    for i in range(6):
        await client.chat.completions.create(model="m0", messages=[{"role": "user", "content": f"q{i}"}])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app_router[0]), base_url="http://t",
                                 headers=bearer(admin_key)) as http:
        response = await http.get("/admin/models")
    assert SECRET not in response.text and "api_key" not in response.text
    m0 = next(m for m in response.json()["models"] if m["name"] == "m0")
    assert (m0["requests_ok"], m0["requests_failed"], m0["healthy"], m0["in_flight"]) == (6, 0, True, 0)
    assert m0["latency_p50_ms"] is not None and m0["tokens_in"] > 0
    assert m0["cost"] == pytest.approx((m0["tokens_in"] * 2.0 + m0["tokens_out"] * 4.0) / 1e6)


@pytest.fixture
async def live(app_router: tuple[Any, Router], admin_key: str) -> AsyncIterator[openai.AsyncOpenAI]:
    """The app served by uvicorn on 127.0.0.1 (the in-process ASGI transport buffers whole bodies)."""
    async with served(app_router[0]) as base_url, \
            openai.AsyncOpenAI(base_url=f"{base_url}/v1", api_key=admin_key, max_retries=0) as ai:
        yield ai


async def test_a_stream_arrives_chunk_by_chunk_with_usage(live: openai.AsyncOpenAI,
                                                          upstreams: tuple[FakeUpstream, FakeUpstream]) -> None:
    client = live
    for up in upstreams:
        up.stream_gap_s = 0.1
    arrivals: list[float] = []
    pieces: list[str] = []
    usage = None
    stream = await client.chat.completions.create(model="m0", stream=True, stream_options={"include_usage": True},
                                                  messages=[{"role": "user", "content": "stream me"}])
    async for chunk in stream:
        arrivals.append(asyncio.get_running_loop().time())
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
        usage = chunk.usage or usage
    assert len(pieces) >= 3
    assert json.loads("".join(pieces)) == {"answer": f"answer:{marker('stream me')}"}
    assert arrivals[-1] - arrivals[0] >= 0.3  # passed through as they came, not buffered to the end
    assert usage is not None and usage.completion_tokens > 0


async def test_stream_errors_before_the_first_chunk_are_http_errors(
        live: openai.AsyncOpenAI, upstreams: tuple[FakeUpstream, FakeUpstream]) -> None:
    client = live
    upstreams[0].faults = lambda *_: "500"
    stream = await client.chat.completions.create(model="auto", stream=True,
                                                  messages=[{"role": "user", "content": "x"}])
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text.startswith("{")  # m0 failed before its first piece: the stream came from m1
    upstreams[1].faults = lambda *_: "500"
    with pytest.raises(openai.InternalServerError) as failed:  # both fail before a first piece: a 502
        await client.chat.completions.create(model="auto", stream=True, messages=[{"role": "user", "content": "y"}])
    assert failed.value.status_code == 502


async def test_official_client_embeddings(client: openai.AsyncOpenAI) -> None:
    result = await client.embeddings.create(model="m0", input=["alpha", "beta"])
    assert [item.index for item in result.data] == [0, 1]
    assert result.data[0].embedding == [int(marker("alpha")[j:j + 2], 16) / 255 for j in range(0, 8, 2)]
    assert result.model == "m0" and result.usage.prompt_tokens == 2
    single = await client.embeddings.create(model="auto", input="gamma")
    assert len(single.data) == 1


async def test_what_the_fast_path_does_not_take_still_gets_the_route_and_its_errors(
        app_router: tuple[Any, Router], admin_key: str) -> None:
    app, router = app_router
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://rowloom.test",
                                 headers=bearer(admin_key)) as http:
        fast = await http.post("/v1/chat/completions", json={"model": "auto", "messages": [
            {"role": "user", "content": "hi"}]})
        invalid = await http.post("/v1/chat/completions", json={"model": "auto", "messages": []})
        not_json = await http.post("/v1/chat/completions", content=b"model=auto",
                                   headers={"Content-Type": "application/x-www-form-urlencoded"})
        broken = await http.post("/v1/chat/completions", content=b"{not json",
                                 headers={"Content-Type": "application/json"})
    assert fast.status_code == 200 and fast.json()["object"] == "chat.completion"
    assert fast.json()["usage"]["total_tokens"] > 0
    assert invalid.status_code == 422 and invalid.json()["error"]["details"][0]["field"] == "messages"
    assert not_json.status_code in (415, 422) and "error" in not_json.json()
    assert broken.status_code == 422 and broken.json()["error"]["details"][0]["field"] == "body"
    assert sum(state.ok for state in router.deployments.values()) == 1
