"""Budgets: routes, a job paused mid-run and resumed, two workers sharing one, a crashed holder, /v1 keys."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC
from pathlib import Path
from typing import Any

import httpx
import pytest

from api_server.deps import budget_guard
from core.budgets.client import BudgetedClient
from core.budgets.guard import BudgetGuard
from core.budgets.ledger import DbLedger, Ledger
from core.budgets.redis_ledger import RedisLedger
from core.budgets.resume import resume_for_budgets
from core.budgets.windows import subjects_of
from core.db import Database
from core.models import Budget, BudgetPeriod, BudgetScope, Job, Scope
from engine.gateway import BudgetExceeded, ChatRequest
from engine.gateway.config import load_gateway
from engine.gateway.router import Router
from tests.support.fake_upstream import FakeUpstream
from tests.support.keys import bearer, new_key
from tests.support.records import make_workflow
from tests.support.services import redis_url
from tests.support.worker_helpers import all_pages, platform, wait_for, wait_status, write_tickets

PRICE = (100.0, 400.0)  # per 1M tokens
ROOT = Path(__file__).resolve().parents[2]


async def test_budgets_are_set_read_and_removed_with_clear_errors(client: httpx.AsyncClient) -> None:
    await make_workflow(client)
    created = await client.put("/api/v1/budgets", json={"scope": "workflow", "target": "ticket-triage",
                                                        "period": "day", "limit_usd": 5})
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["scope"], body["target"], body["period"], body["limit_usd"]) == ("workflow", "ticket-triage",
                                                                                 "day", 5)
    assert (body["spent_usd"], body["reserved_usd"], body["remaining_usd"]) == (0, 0, 5)
    assert body["window_start"] < body["resets_at"]
    replaced = await client.put("/api/v1/budgets", json={"scope": "workflow", "target": "ticket-triage",
                                                         "period": "day", "limit_usd": 7.5})
    assert replaced.status_code == 200 and replaced.json()["id"] == body["id"]
    platform_total = await client.put("/api/v1/budgets", json={"scope": "platform", "period": "total",
                                                               "limit_usd": 100})
    assert platform_total.json()["resets_at"] is None and platform_total.json()["target"] is None
    listed = (await client.get("/api/v1/budgets")).json()
    assert [(b["scope"], b["limit_usd"]) for b in listed] == [("platform", 100), ("workflow", 7.5)]
    bad = {
        "platform with a target": ({"scope": "platform", "target": "x", "period": "day", "limit_usd": 1}, "target"),
        "unknown workflow": ({"scope": "workflow", "target": "nope", "period": "day", "limit_usd": 1}, "target"),
        "key that is no id": ({"scope": "key", "target": "abc", "period": "hour", "limit_usd": 1}, "target"),
        "workflow without target": ({"scope": "workflow", "period": "day", "limit_usd": 1}, "target"),
        "negative limit": ({"scope": "platform", "period": "day", "limit_usd": -1}, "limit_usd"),
        "unknown period": ({"scope": "platform", "period": "week", "limit_usd": 1}, "period"),
    }
    for what, (payload, field) in bad.items():
        answer = await client.put("/api/v1/budgets", json=payload)
        assert answer.status_code == 422 and answer.json()["error"]["field"] == field, (what, answer.text)
    assert len((await client.get("/api/v1/budgets")).json()) == 2  # nothing stored by a refused request
    assert (await client.get(f"/api/v1/budgets/{body['id']}")).json()["limit_usd"] == 7.5
    assert (await client.delete(f"/api/v1/budgets/{body['id']}")).status_code == 204
    missing = await client.get(f"/api/v1/budgets/{body['id']}")
    assert missing.status_code == 404 and missing.json()["error"]["field"] == "budget_id"
    assert (await client.get("/api/v1/budgets/99999999999999999999")).status_code == 422


async def test_a_daily_budget_pauses_a_job_mid_run_and_raising_it_resumes_the_job(database_url: str,
                                                                                 tmp_path: Path) -> None:
    write_tickets(tmp_path, 300)
    limit = 0.8  # room for about a third of the rows
    async with FakeUpstream() as upstream, \
            platform(database_url=database_url, data_dir=tmp_path, upstream_url=upstream.base_url,
                     price=PRICE) as p:
        await p.http.post("/api/v1/workflows", json={"yaml": _workflow()})
        budget = (await p.http.put("/api/v1/budgets", json={"scope": "workflow", "target": "triage",
                                                            "period": "day", "limit_usd": limit})).json()
        job_id = await p.start_job(yaml=_workflow())
        paused = await wait_status(p.http, job_id, "paused", within_s=60)
        figures = await _settled(p.http, budget["id"], paused["usage"]["cost"])
        refused = await p.http.post("/api/v1/jobs", json={"workflow": "triage"})
        events = await all_pages(p.http, f"/api/v1/jobs/{job_id}/events")
        sent_before = upstream.stats.requests
        raised = await p.http.put("/api/v1/budgets", json={"scope": "workflow", "target": "triage",
                                                           "period": "day", "limit_usd": 100})
        done = await wait_status(p.http, job_id, "completed", within_s=60)
        final = await _settled(p.http, budget["id"], done["usage"]["cost"])
    pause = paused["budget_pause"]
    assert 0 < paused["counts"]["done"] < 270 and paused["counts"]["failed"] == 0
    assert (pause["scope"], pause["target"], pause["period"], pause["limit_usd"]) == ("workflow", "triage",
                                                                                      "day", limit)
    # Every request held its maximum cost (max_tokens is set) before it went: nothing spent past the limit.
    assert paused["usage"]["cost"] <= limit and figures["spent_usd"] <= limit
    assert figures["remaining_usd"] < pause["needed_usd"]  # it paused only when the next request could not fit
    assert figures["reserved_usd"] == 0  # nothing left held once the job stopped
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "over_budget"
    message = refused.json()["error"]["message"]
    assert "daily budget of workflow 'triage'" in message and "resets at" in message and f"{limit:.6g}" in message
    assert "Retry-After" in refused.headers
    assert any(e["kind"] == "paused_for_budget" for e in events)
    assert raised.status_code == 200
    assert done["counts"]["done"] == 270 and done["budget_pause"] is None
    assert upstream.stats.requests == 270 and sent_before < 270  # each row bought once, none twice
    assert final["spent_usd"] == pytest.approx(done["usage"]["cost"], abs=1e-9)  # the figure that blocks is reported


def _workflow() -> str:
    from tests.support.worker_helpers import workflow_yaml

    return workflow_yaml().replace("model: {name: fake}", "model: {name: fake, max_tokens: 60}")


async def _settled(http: httpx.AsyncClient, budget_id: int, cost: float) -> dict[str, Any]:
    """The budget once its spend counts every settled request of `cost` (settlements are sent in batches)."""
    async def probe() -> dict[str, Any] | None:
        body: dict[str, Any] = (await http.get(f"/api/v1/budgets/{budget_id}")).json()
        return body if abs(body["spent_usd"] - cost) < 1e-9 and body["reserved_usd"] == 0 else None

    return await wait_for(probe, what=f"budget {budget_id} to have settled {cost}")


@contextlib.asynccontextmanager
async def ledgers(kind: str, database: Database, count: int) -> AsyncIterator[list[Ledger]]:
    """`count` ledgers on one store, as separate processes would have (Redis: each its own connection)."""
    if kind == "redis":
        prefix = f"rowloom-test:{uuid.uuid4().hex[:8]}:"
        made: list[Ledger] = [RedisLedger.from_url(redis_url(), prefix=prefix) for _ in range(count)]
    else:
        made = [DbLedger(database) for _ in range(count)]
    yield made


def _guard(database: Database, ledger: Ledger, router: Router, name: str, lease_s: float = 30.0) -> BudgetGuard:
    return BudgetGuard(database, ledger, holder=name, lease_s=lease_s, zone=UTC, gateway=router.config,
                       default_output_tokens=100)


async def _budget(database: Database, limit: float) -> None:
    async with database.session() as session:
        session.add(Budget(scope=BudgetScope.PLATFORM, target="", period=BudgetPeriod.TOTAL, limit_usd=limit))
        await session.commit()


def _router(upstream: FakeUpstream) -> Router:
    root = upstream.base_url.removesuffix("/v1")
    return Router(load_gateway(f"channels: {{c: {{base_url: '{root}'}}}}\nmodels:\n"
                               f"  - {{name: fake, model: fake, channel: c, price: {{input: 100, output: 400}}}}\n"))


@pytest.mark.parametrize("kind", ["redis", "database"])
async def test_two_workers_sharing_a_budget_never_exceed_it_together(kind: str, database: Database) -> None:
    limit = 0.1  # room for about 20 of the 300 requests
    await _budget(database, limit)
    async with FakeUpstream(latency_s=0.005) as upstream, ledgers(kind, database, 2) as (first, second):
        router = _router(upstream)
        guards = [_guard(database, first, router, "worker-a"), _guard(database, second, router, "worker-b")]
        answered: list[float] = []
        refused: list[BudgetExceeded] = []

        async def ask(guard: BudgetGuard, i: int) -> None:
            client = BudgetedClient(router, guard, subjects_of())
            try:
                result = await client.chat(ChatRequest(model="fake", max_tokens=30, messages=[
                    {"role": "user", "content": f"{guard.holder} asks question number {i} of many"}]))
            except BudgetExceeded as exc:
                refused.append(exc)
            else:
                answered.append(result.usage.cost)

        try:
            await asyncio.gather(*(ask(g, i) for g in guards for i in range(150)))
            for guard in guards:
                await guard.aclose()  # sends what is settled
            reader = _figure_ledger(kind, database, first)
            spent, held = (await reader.figures(["platform::total:all"]))["platform::total:all"]
            await reader.aclose()
        finally:
            await router.aclose()
    assert answered and refused  # some fit, the rest were refused
    assert sum(answered) <= limit and spent == pytest.approx(sum(answered), abs=1e-12) and held == 0
    assert upstream.stats.requests == len(answered)
    assert refused[0].details["spent_usd"] + refused[0].details["needed_usd"] > limit


def _figure_ledger(kind: str, database: Database, used: Ledger) -> Ledger:
    if kind == "redis":
        assert isinstance(used, RedisLedger)
        return RedisLedger.from_url(redis_url(), prefix=used.prefix)
    return DbLedger(database)


@pytest.mark.parametrize("kind", ["redis", "database"])
async def test_a_killed_workers_holds_are_released_within_a_lease(kind: str, database: Database,
                                                                  database_url: str) -> None:
    lease_s, counter, limit = 1.0, "platform::total:all", 1.0
    async with ledgers(kind, database, 1) as (ledger,):
        where = f"{redis_url()}#{ledger.prefix}" if isinstance(ledger, RedisLedger) else database_url
        holder = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.support.budget_holder_process", where, counter, str(limit), "0.8",
            str(lease_s),
            cwd=ROOT, stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"})
        try:
            assert holder.stdout is not None and (await holder.stdout.readline()).strip() == b"held"
            alive_until = time.monotonic() + 2 * lease_s  # it renews: its hold outlives a lease while it lives
            while time.monotonic() < alive_until:
                assert (await ledger.figures([counter]))[counter] == (0.0, pytest.approx(0.8))
                await asyncio.sleep(0.1)
        finally:
            holder.kill()
            await holder.wait()
        killed = time.monotonic()

        async def released() -> bool:
            return (await ledger.figures([counter]))[counter][1] == 0.0

        await wait_for(released, within_s=lease_s + 5, what="the dead holder's hold to stop counting")
        assert time.monotonic() - killed <= lease_s + 5
        await ledger.aclose()


async def test_a_key_over_its_budget_gets_429_on_v1(database_url: str, tmp_path: Path) -> None:
    write_tickets(tmp_path, 1)
    async with FakeUpstream() as upstream, \
            platform(database_url=database_url, data_dir=tmp_path, upstream_url=upstream.base_url,
                     price=PRICE) as p:
        secret = await new_key(p.database, Scope.GATEWAY, name="spender")
        key_id = next(k["id"] for k in (await p.http.get("/admin/keys")).json() if k["name"] == "spender")
        budget = (await p.http.put("/api/v1/budgets", json={"scope": "key", "target": str(key_id),
                                                            "period": "hour", "limit_usd": 0})).json()
        body = {"model": "fake", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
        over = await p.http.post("/v1/chat/completions", json=body, headers=bearer(secret))
        streamed = await p.http.post("/v1/chat/completions", json=body | {"stream": True}, headers=bearer(secret))
        others = await p.http.post("/v1/chat/completions", json=body)  # the admin key has no budget
        await p.http.put("/api/v1/budgets", json={"scope": "key", "target": str(key_id), "period": "hour",
                                                  "limit_usd": 1})
        fine = await p.http.post("/v1/chat/completions", json=body, headers=bearer(secret))
        figures = await _settled(p.http, budget["id"], _cost(fine.json()["usage"]))
    assert over.status_code == 429 and over.json()["error"]["code"] == "over_budget"
    assert f"hourly budget of API key {key_id}" in over.json()["error"]["message"] and "Retry-After" in over.headers
    assert streamed.status_code == 429
    assert others.status_code == 200 and fine.status_code == 200
    assert upstream.stats.requests == 2 and figures["spent_usd"] > 0


def _cost(usage: dict[str, int]) -> float:
    return (usage["prompt_tokens"] * PRICE[0] + usage["completion_tokens"] * PRICE[1]) / 1e6


async def test_a_job_paused_by_a_budget_resumes_when_its_window_resets(database_url: str, tmp_path: Path) -> None:
    write_tickets(tmp_path, 20)
    async with FakeUpstream() as upstream, \
            platform(database_url=database_url, data_dir=tmp_path, upstream_url=upstream.base_url,
                     price=PRICE) as p:
        budget = (await p.http.put("/api/v1/budgets", json={"scope": "platform", "period": "hour",
                                                            "limit_usd": 0})).json()
        await p.http.post("/api/v1/workflows", json={"yaml": _workflow()})
        refused = await p.http.post("/api/v1/jobs", json={"workflow": "triage"})
        await p.http.put("/api/v1/budgets", json={"scope": "platform", "period": "hour", "limit_usd": 1e-9})
        job_id = await p.start_job(yaml=_workflow())
        paused = await wait_status(p.http, job_id, "paused")
        # The same pause, as if it had been made in the hour before this one: its window has reset.
        async with p.database.session() as session:
            job = await session.get(Job, job_id)
            assert job is not None and job.budget_pause is not None
            job.budget_pause = {**job.budget_pause, "window": "2000-01-01T00+00:00"}
            await session.commit()
        resumed = await resume_for_budgets(p.database, p.queue, budget_guard(p.app))
        events = await all_pages(p.http, f"/api/v1/jobs/{job_id}/events")
    assert refused.status_code == 429 and "hourly budget of the platform" in refused.json()["error"]["message"]
    assert paused["budget_pause"]["budget_id"] == budget["id"] and paused["counts"]["done"] == 0
    assert resumed == [job_id]
    assert any(e["kind"] == "resumed" and "window reset" in e["message"] for e in events)
