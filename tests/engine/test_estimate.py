"""Estimates before a run: rows, tokens by the model's own tokenizer, cost and time; no model is called."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.db import Database
from core.settings import Settings
from engine.gateway.config import load_gateway
from engine.gateway.router import Router, usage_total
from engine.results.answer_cache import CachedAnswer, SqliteAnswerCache
from engine.results.sqlite_store import SqliteResultStore
from engine.run import run_spec
from engine.run.estimate import Estimate, estimate_run, estimated_step
from engine.run.estimate_rows import CachedRows, EstimateMemo, counted_batches
from engine.run.prompts import PromptRenderer
from engine.run.tokens import count_messages, count_text, tokenizer_name
from engine.sources import open_source
from engine.sources.mysql_connection import Connections
from engine.spec.paths import PathPolicy
from engine.spec.secrets import Secrets
from tests.support.engine_helpers import make_spec, tickets
from tests.support.fake_upstream import FakeUpstream, marker
from tests.support.keys import bearer
from tests.support.records import make_workflow

MODEL = "gpt-4o-mini"


class VaryingAnswers(FakeUpstream):
    """Answers of 1 to 60 words, by the prompt; usage counted by the model's tokenizer, as OpenAI bills it."""

    def __init__(self) -> None:
        super().__init__(count_usage=lambda body, content: {
            "prompt_tokens": count_messages(body["messages"], MODEL), "completion_tokens": count_text(content, MODEL)})

    @staticmethod
    def answer(body: dict[str, Any], prompt: str, *, bad_enum: bool = False) -> dict[str, Any]:
        answer = FakeUpstream.answer(body, prompt, bad_enum=bad_enum)
        answer["summary"] = " ".join(["word"] * (int(marker(prompt), 16) % 60 + 1))
        return answer


def gateway(up: FakeUpstream) -> str:
    return (f"models: [{{name: m, model: {MODEL}, channel: c, price: {{input: 0.15, output: 0.6}}}}]\n"
            f"channels: {{c: {{base_url: '{up.base_url.removesuffix('/v1')}', api_path: /v1/chat/completions}}}}\n")


def test_openai_models_are_counted_by_their_own_tokenizer_and_others_approximately() -> None:
    assert [tokenizer_name(m) for m in ("gpt-4o-mini", "gpt-4.1", "o3-mini", "gpt-4", "llama-3")] == \
        ["o200k_base", "o200k_base", "o200k_base", "cl100k_base", "approximate"]
    assert count_text("Hello world", "gpt-4o-mini") == 2 and count_text("12345678", "llama-3") == 2


async def test_the_estimate_is_within_15_percent_of_what_a_run_costs(tmp_path: Path) -> None:
    spec = make_spec(source="{kind: csv, path: in.csv, key: id}", sink="{kind: csv, path: out.csv}", in_flight=32)
    async with VaryingAnswers() as up:
        config = load_gateway(gateway(up))
        tickets(200).write_csv(tmp_path / "in.csv")  # an earlier run: its answers set the expected length
        first = Router(config)
        await run_spec(spec, client=first, base_dir=tmp_path, work_dir=tmp_path / "first")
        await first.aclose()
        store = SqliteResultStore(tmp_path / "first" / "results.sqlite")
        earlier = await store.mean_tokens_out()
        await store.close()

        tickets(1000).write_csv(tmp_path / "in.csv")
        source = await open_source(spec, paths=PathPolicy(tmp_path), connections=Connections(Secrets({})))
        estimate = await estimate_run(spec, source=source, deployments=config.members(spec.model.name),
                                      earlier_output_tokens=earlier)
        await source.close()
        sent_before = up.stats.requests
        assert sent_before == 180  # the estimate called no model

        router = Router(config)
        outcome = await run_spec(spec, client=router, base_dir=tmp_path, work_dir=tmp_path / "second")
        actual = usage_total(router)
        await router.aclose()
    assert estimate.rows_total == 1000 and estimate.rows_skipped == 100 and estimate.rows_to_send == 900
    assert outcome.progress.done == 900 and up.stats.requests - sent_before == 900
    assert estimate.input_tokens == actual.prompt_tokens  # every prompt rendered and counted as it was billed
    assert abs(estimate.cost_expected - actual.cost) <= 0.15 * actual.cost
    assert estimate.cost_low <= actual.cost <= estimate.cost_high
    assert estimate.models[0].tokenizer == "o200k_base"


@pytest.fixture
async def estimating(tmp_path: Path, database_url: str, database: Database,
                     admin_key: str) -> AsyncIterator[httpx.AsyncClient]:
    """The app with a gateway of two priced models (weights 3:1, limits) and a data folder."""
    from api_server.main import create_app
    from core.gateway_router import process_router

    (tmp_path / "gateway.yaml").write_text(
        "models:\n"
        "  - {name: small, model: gpt-4o-mini, provider: mock, weight: 3, safe_rps: 30,\n"
        "     price: {input: 0.15, output: 0.6}}\n"
        "  - {name: big, model: gpt-4.1, provider: mock, weight: 1, safe_rps: 10, price: {input: 2, output: 8}}\n",
        encoding="utf-8")
    tickets(400).write_csv(tmp_path / "tickets.csv")
    settings = Settings(database_url=database_url, redis_url=None, data_dir=tmp_path,
                        gateway_config=tmp_path / "gateway.yaml", estimate_processes=1)
    router = process_router(settings)
    transport = httpx.ASGITransport(app=create_app(settings, database, router), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://rowloom.test",
                                 headers=bearer(admin_key)) as http:
        yield http
    await router.aclose()


async def test_the_api_estimates_a_job_without_making_one(estimating: httpx.AsyncClient) -> None:
    await make_workflow(estimating)
    answer = await estimating.post("/api/v1/jobs/estimate", json={"workflow": "ticket-triage"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["rows_total"], body["rows_skipped"], body["rows_to_send"]) == (400, 40, 360)
    small, big = body["models"]
    assert (small["name"], small["share"], big["share"]) == ("small", 0.75, 0.25)
    assert small["tokenizer"] == big["tokenizer"] == "o200k_base"
    assert body["cost_low"] < body["cost_expected"] < body["cost_high"]
    assert body["seconds"] == pytest.approx(360 / 40)  # the two safe_rps together
    assert (await estimating.get("/api/v1/jobs")).json()["items"] == []  # no job was made
    changed = await estimating.post("/api/v1/jobs/estimate", json={
        "workflow": "ticket-triage", "params": {"model": {"name": "big"}}})
    assert [m["name"] for m in changed.json()["models"]] == ["big"]
    assert changed.json()["cost_expected"] > body["cost_expected"]


async def test_an_estimate_names_what_stops_it(estimating: httpx.AsyncClient) -> None:
    await make_workflow(estimating)
    missing = await estimating.post("/api/v1/jobs/estimate", json={
        "workflow": "ticket-triage", "params": {"source": {"path": "nope.csv"}}})
    unknown = await estimating.post("/api/v1/jobs/estimate", json={"workflow": "no-such-flow"})
    outside = await estimating.post("/api/v1/jobs/estimate", json={
        "workflow": "ticket-triage", "params": {"source": {"path": "/etc/passwd"}}})
    assert missing.status_code == 422 and "nope.csv" in json.dumps(missing.json())
    assert unknown.status_code == 422 and unknown.json()["error"]["field"] == "workflow"
    assert outside.status_code == 422 and "passwd" not in json.dumps(outside.json()).replace("/etc/passwd", "")


async def test_a_repeated_estimate_counts_from_memory_and_still_asks_the_cache(tmp_path: Path) -> None:
    """The same file and spec: the same estimate from the memo, with the rows the cache answers by now; a
    changed file is counted afresh."""
    spec = make_spec(source="{kind: csv, path: in.csv, key: id}", in_flight=8)
    deployments = load_gateway("models:\n  - {name: m, model: gpt-4o-mini, provider: mock}\n").members("m")
    tickets(300).write_csv(tmp_path / "in.csv")
    cache = SqliteAnswerCache(tmp_path / "answers.sqlite", scope="test")
    memo = EstimateMemo()

    async def estimate(*, with_memo: bool) -> Estimate:
        source = await open_source(spec, paths=PathPolicy(tmp_path), connections=Connections(Secrets({})))
        try:
            return await estimate_run(spec, source=source, deployments=deployments, cache=cache,
                                      memo=memo if with_memo else None)
        finally:
            await source.close()

    first = await estimate(with_memo=True)
    step = estimated_step(spec)
    source = await open_source(spec, paths=PathPolicy(tmp_path), connections=Connections(Secrets({})))
    batches = counted_batches(source, spec, None, PromptRenderer(step.step.prompt), CachedRows(step, spec, cache),
                              {"o200k_base": "gpt-4o-mini"})
    keys = [key async for batch in batches for key in batch.keys or []][:25]
    await source.close()
    for key in keys:  # answers stored since: the repeat must not count those rows as sent
        await cache.put(key, CachedAnswer("{}", "m", 1, 1, 0.0, 1.0))
    repeat, fresh = await estimate(with_memo=True), await estimate(with_memo=False)
    tickets(310).write_csv(tmp_path / "in.csv")  # another file under the same name
    changed, changed_fresh = await estimate(with_memo=True), await estimate(with_memo=False)
    await cache.close()
    assert first.rows_cached == 0 and repeat.rows_cached == len(keys) == 25
    assert repeat == fresh and repeat.input_tokens < first.input_tokens
    assert changed.rows_total == 310 and changed == changed_fresh
    assert memo.hits == 1  # the repeat alone
