"""The gateway router over two or more fake upstreams on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import math
import socket
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from engine.errors import SpecError
from engine.gateway import (
    RateLimited,
    RequestRejected,
    UpstreamConnectionError,
    UpstreamError,
    UpstreamUnavailable,
)
from engine.gateway.config import load_gateway
from engine.gateway.openai_client import OpenAIClient, encode_body
from engine.gateway.router import Router, usage_total
from engine.gateway.types import ChatRequest
from tests.support.fake_upstream import FakeUpstream, busiest_second, gateway_yaml


def ask(i: int, model: str = "auto", **fields: Any) -> ChatRequest:
    return ChatRequest(model=model, messages=[{"role": "user", "content": f"question {i}"}], **fields)


async def test_weights_are_respected(tmp_path: Path) -> None:
    async with FakeUpstream() as a, FakeUpstream() as b:
        router = Router(load_gateway(gateway_yaml(a, b, extra={"m0": "weight: 3", "m1": "weight: 1"})),
                        env={"KEY": "k"}, seed=1)
        results = await asyncio.gather(*(router.chat(ask(i)) for i in range(400)))
        await router.aclose()
    share = Counter(r.model for r in results)["m0"] / 400
    sigma = math.sqrt(0.75 * 0.25 / 400)
    assert abs(share - 0.75) < 4 * sigma
    assert a.stats.requests + b.stats.requests == 400


async def test_failing_and_hanging_deployments_cool_down_and_traffic_moves() -> None:
    async with FakeUpstream(faults=lambda *_: "500") as broken, FakeUpstream(faults=lambda *_: "hang", hang_s=10) \
            as hanging, FakeUpstream() as healthy:
        config = gateway_yaml(broken, hanging, healthy, extra={"m1": "timeout: 0.3"})
        router = Router(load_gateway(config), env={"KEY": "k"}, seed=2)
        results = [await router.chat(ask(i)) for i in range(30)]
        states = router.deployments
        assert states["m0"].cooldown.until > router.clock() and states["m1"].cooldown.until > router.clock()
        await router.aclose()
    assert {r.model for r in results} == {"m2"}  # every request ended on the healthy one, failing over
    assert broken.stats.requests == 1 and hanging.stats.requests == 1  # then both were cooling down
    assert healthy.stats.requests == 30


@pytest.mark.parametrize("fault", ["500", "hang"])
async def test_requests_failing_together_count_as_one_failure(fault: str) -> None:
    """20 requests in flight fail (a burst of 500s, or hung requests timing out): one failure, a 2 s cool-down.

    Counted one by one they would escalate it to the 60 s maximum, and hung requests timing out after the
    cool-down began would keep a deployment that answers most requests cooling down.
    """
    async with FakeUpstream(latency_s=0.2, faults=lambda *_: fault, hang_s=10) as up:
        router = Router(load_gateway(gateway_yaml(up, extra={"m0": "timeout: 0.5"})), env={"KEY": "k"})
        outcomes = await asyncio.gather(*(router.chat(ask(i)) for i in range(20)), return_exceptions=True)
        state = router.deployments["m0"]
        assert all(isinstance(outcome, UpstreamError) for outcome in outcomes)
        assert up.stats.requests == state.failed == 20
        assert state.cooldown.failures == 1 and 1.0 < state.cooldown.until - router.clock() <= 2.0
        state.cooldown.failed(router.clock())  # the next one counts: the back-off doubles
        assert state.cooldown.failures == 2 and 3.0 < state.cooldown.until - router.clock() <= 4.0
        await router.aclose()


async def test_a_refused_connection_is_a_connection_error_not_a_timeout() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = OpenAIClient(f"http://127.0.0.1:{port}/v1", timeout_s=30)
    with pytest.raises(UpstreamConnectionError, match="cannot connect"):
        await client.chat(ask(1))
    with pytest.raises(UpstreamConnectionError, match="cannot connect"):
        async for _ in client.stream(ask(2)):
            pass
    await client.aclose()


async def test_retry_after_is_honoured_and_a_later_deadline_wins() -> None:
    async with FakeUpstream(faults=lambda *_: "429", retry_after="5") as limited, FakeUpstream() as other:
        router = Router(load_gateway(gateway_yaml(limited, other)), env={"KEY": "k"}, seed=3)
        with pytest.raises(RateLimited) as caught:
            await router.chat(ask(1, model="m0"))  # the only candidate: its 429 is the answer
        assert caught.value.retry_after_s == 5
        state = router.deployments["m0"]
        assert state.cooldown.until - router.clock() > 4  # Retry-After (5 s) beat the first back-off (2 s)
        until = state.cooldown.until
        state.cooldown.failed(router.clock(), retry_after_s=0)  # a shorter deadline must not shorten it
        assert state.cooldown.until == until
        with pytest.raises(RateLimited) as waited:
            await router.chat(ask(2, model="m0", timeout_s=0.3))  # cooling down longer than it may wait
        assert (waited.value.retry_after_s or 0) > 3
        result = await router.chat(ask(3))  # auto: the other deployment answers
        await router.aclose()
    assert result.model == "m1" and limited.stats.requests == 1 and other.stats.requests == 1


async def test_a_request_error_is_returned_not_retried_or_failed_over() -> None:
    async with FakeUpstream(faults=lambda *_: "400") as a, FakeUpstream(faults=lambda *_: "400") as b:
        router = Router(load_gateway(gateway_yaml(a, b)), env={"KEY": "k"})
        with pytest.raises(RequestRejected):
            await router.chat(ask(1))
        await router.aclose()
    assert a.stats.requests + b.stats.requests == 1


async def test_safe_rps_holds_at_the_upstream() -> None:
    rate, count = 20, 100
    async with FakeUpstream() as up:
        router = await asyncio.create_subprocess_exec(sys.executable, "-m", "tests.support.router_process",
                                                      up.base_url.removesuffix("/v1"), "-", "-", str(rate), str(count))
        assert await asyncio.wait_for(router.wait(), timeout=60) == 0
    arrivals = sorted(up.stats.arrivals)
    assert len(arrivals) == count
    assert busiest_second(arrivals) <= rate  # any 1 s at the upstream, edges included
    assert arrivals[-1] - arrivals[0] >= count / rate - 1  # the fifth window's requests wait for the first four


async def test_every_candidate_cooling_down_fails_with_429_after_waiting() -> None:
    async with FakeUpstream(faults=lambda *_: "500") as a:
        router = Router(load_gateway(gateway_yaml(a)), env={"KEY": "k"})
        with pytest.raises(UpstreamUnavailable):
            await router.chat(ask(1))  # the one deployment fails: its error is returned
        with pytest.raises(RateLimited) as caught:
            await router.chat(ask(2, timeout_s=0.2))  # now cooling down 2 s: longer than the request may wait
        await router.aclose()
    assert caught.value.status == 429 and 1.0 < (caught.value.retry_after_s or 0) <= 2.0


async def test_unsupported_parameters_are_dropped_and_cost_adds_up() -> None:
    async with FakeUpstream(keep_bodies=True) as up:
        config = gateway_yaml(up, extra={"m0": "supports_json_schema: false, supports_advanced_params: false, "
                                           "price: {input: 1.0, output: 2.0}"})
        router = Router(load_gateway(config), env={"KEY": "k"})
        result = await router.chat(ask(1, temperature=0.5, response_format={"type": "json_object"}))
        total = usage_total(router)
        await router.aclose()
    body = up.stats.bodies[0]
    assert "response_format" not in body and "temperature" not in body and body["model"] == "fake-0"
    expected = (result.usage.prompt_tokens * 1.0 + result.usage.completion_tokens * 2.0) / 1e6
    assert result.usage.cost == pytest.approx(expected) and total.cost == pytest.approx(expected)


async def test_groups_and_unknown_models() -> None:
    async with FakeUpstream() as a, FakeUpstream() as b:
        router = Router(load_gateway(gateway_yaml(a, b, groups="groups: {cheap: [m1]}")), env={"KEY": "k"})
        assert {(await router.chat(ask(i, model="cheap"))).model for i in range(5)} == {"m1"}
        with pytest.raises(RequestRejected, match="unknown model 'gpt-9'"):
            await router.chat(ask(1, model="gpt-9"))
        await router.aclose()


def test_config_errors_name_the_field_and_never_print_secrets() -> None:
    with pytest.raises(SpecError, match=r"line 2, column 49: models\.0\.wieght: unknown field; did you mean 'weight'"):
        load_gateway("models:\n  - {name: a, model: x, channel: c, api_key: k, wieght: 2}\n"
                     "channels: {c: {base_url: 'http://127.0.0.1:1'}}\n")
    # Cross-field errors are placed too.
    with pytest.raises(SpecError, match=r"line 1, column 39: models\.0\.channel: 'nope' is not a channel"):
        load_gateway("models: [{name: a, model: x, channel: nope}]\nchannels: {}\n")
    with pytest.raises(SpecError, match=r"line 1, column 54: models\.1\.name: .*repeated: a"):
        load_gateway("models: [{name: a, model: x, provider: mock}, {name: a, model: y, provider: mock}]\n")
    with pytest.raises(SpecError, match=r"line 4, column 10: groups\.g\.1: unknown model 'b'"):
        load_gateway("models:\n  - {name: a, model: x, provider: mock}\ngroups:\n  g: [a, b]\n")
    config = load_gateway("models: [{name: a, model: x, channel: c, api_key: 'sk-${SECRET_PART}'}]\n"
                          "channels: {c: {base_url: 'http://127.0.0.1:1'}}\n")
    with pytest.raises(SpecError) as caught:
        Router(config, env={})
    assert "SECRET_PART is not set" in str(caught.value) and "sk-" not in str(caught.value)


async def test_mock_deployments_need_no_network() -> None:
    router = Router(load_gateway("models: [{name: local, model: mock, provider: mock}]\n"))
    result = await router.chat(ask(1, response_format={"type": "json_schema", "json_schema": {"schema": {
        "type": "object", "properties": {"category": {"enum": ["a", "b"]}}}}}))
    await router.aclose()
    assert result.model == "local" and result.content.startswith('{"category": "')


def test_the_shipped_example_config_loads() -> None:
    config = load_gateway((Path(__file__).parents[2] / "examples" / "gateway.yaml").read_text(encoding="utf-8"))
    assert [m.name for m in config.models] == ["mock-fast", "mock-slow"]
    assert config.groups == {"cheap": ["mock-fast"]}


async def test_mock_embeddings_are_deterministic_unit_vectors() -> None:
    router = Router(load_gateway("models: [{name: local, model: mock, provider: mock}]\n"))
    first = await router.embed(["a", "b"], model="auto")
    again = await router.embed(["a"], model="local")
    await router.aclose()
    assert first.vectors[0] == again.vectors[0] and first.vectors[0] != first.vectors[1]
    assert abs(sum(v * v for v in first.vectors[1]) - 1.0) < 1e-9


@pytest.mark.parametrize("body", [{"model": "m", "messages": [{"role": "user", "content": "ça ✓ 中文"}]},
                                  {"model": "m", "seed": 2**70, "temperature": 0.25}])
def test_request_bodies_encode_to_the_json_they_were(body: dict[str, Any]) -> None:
    assert json.loads(encode_body(body)) == body  # orjson, or json for integers beyond 64 bits


@pytest.mark.parametrize("reported", [
    {"prompt_tokens": 1000, "completion_tokens": 100, "prompt_tokens_details": {"cached_tokens": 800}},  # OpenAI
    {"prompt_tokens": 200, "completion_tokens": 100, "cache_read_input_tokens": 800},  # Anthropic-style, apart
])
async def test_cached_prompt_tokens_are_recorded_and_priced_at_the_cached_rate(reported: dict[str, Any]) -> None:
    async with FakeUpstream(count_usage=lambda *_: reported) as up:
        prices = {"m0": "price: {input: 2.0, cached_input: 0.5, output: 8.0}"}
        router = Router(load_gateway(gateway_yaml(up, extra=prices)), env={"KEY": "k"})
        result = await router.chat(ask(1))
        await router.aclose()
    assert (result.usage.prompt_tokens, result.usage.cached_tokens, result.usage.completion_tokens) == (1000, 800, 100)
    assert result.usage.cost == pytest.approx((200 * 2.0 + 800 * 0.5 + 100 * 8.0) / 1e6)
