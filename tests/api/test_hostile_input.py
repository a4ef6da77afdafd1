"""Hostile bodies: a billion-laughs YAML, nesting 20,000 levels deep, a second SQL statement, cross-site writes.
Each is a 4xx in the one error shape, quickly, while the server keeps answering, and nothing is stored."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api_server.main import create_app
from core.db import Database
from core.gateway_router import process_router
from core.settings import Settings
from engine.gateway.router import Router
from tests.support.fake_upstream import FakeUpstream
from tests.support.records import error_of, spec_text
from tests.support.served import served
from tests.support.services import mysql_fields, write_connections
from tests.support.worker_helpers import job_of, platform, wait_for, write_tickets


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """The operator names one connection, `warehouse`; bodies up to the default 1 MiB."""
    return Settings(database_url=database_url, redis_url=None,
                    connections_file=write_connections(tmp_path / "connections.yaml", warehouse=mysql_fields()))


@pytest.fixture
async def router(settings: Settings) -> AsyncIterator[Router]:
    """The default gateway (one mock model)."""
    gateway = process_router(settings)
    yield gateway
    await gateway.aclose()


LAUGHS = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi", strict=True))
DEEP_YAML = "[" * 20_000 + "]" * 20_000
DEEP_BLOCK = "- " * 20_000 + "x\n"
DEEP_JSON = '{"a": ' * 20_000 + "1" + "}" * 20_000


@pytest.mark.parametrize(("body", "where"), [(LAUGHS, "aliases"), (DEEP_YAML, "nested"), (DEEP_BLOCK, "nested")],
                         ids=["billion-laughs", "deep-flow", "deep-block"])
async def test_hostile_yaml_is_a_422_naming_where(client: httpx.AsyncClient, stored: Any, body: str,
                                                  where: str) -> None:
    for request in ({"content": body, "headers": {"Content-Type": "application/yaml"}}, {"json": {"yaml": body}}):
        error = error_of(await client.post("/api/v1/workflows", **request), 422)
        [detail] = error["details"]
        assert error["field"] == "yaml" and where in detail["message"]
        assert detail["line"] >= 1 and detail["column"] >= 1


async def test_deep_json_bodies_are_a_4xx(client: httpx.AsyncClient, stored: Any) -> None:
    headers = {"Content-Type": "application/json"}
    for path in ("/api/v1/workflows", "/api/v1/jobs", "/api/v1/workflows/ticket-triage"):
        method = "PATCH" if path.endswith("triage") else "POST"
        response = await client.request(method, path, content=DEEP_JSON, headers=headers)
        assert 400 <= response.status_code < 500, response.text
        assert response.json()["error"]["status"] == response.status_code
    params = {"workflow": "ticket-triage", "params": {"source": _nested(100)}}
    error = error_of(await client.post("/api/v1/jobs", json=params), 422)
    assert error["field"].startswith("params")


def _nested(depth: int) -> dict[str, Any]:
    node: dict[str, Any] = {"x": 1}
    for _ in range(depth):
        node = {"x": node}
    return node


async def test_billion_laughs_is_refused_within_a_second_while_ping_answers(settings: Settings, database: Database,
                                                                           admin_key: str, router: Router) -> None:
    """Over real HTTP: the hostile posts and a stream of /ping run at once; every ping is answered meanwhile."""
    app = create_app(settings, database, router)
    async with served(app) as base_url, httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        headers = {"Authorization": f"Bearer {admin_key}", "Content-Type": "application/yaml"}
        pings: list[float] = []
        done = asyncio.Event()

        async def ping() -> None:
            while not done.is_set():
                started = time.perf_counter()
                assert (await http.get("/ping")).status_code == 200
                pings.append(time.perf_counter() - started)

        pinger = asyncio.create_task(ping())
        timings = []
        for body in (LAUGHS, DEEP_YAML, DEEP_BLOCK) * 2:
            started = time.perf_counter()
            response = await http.post("/api/v1/workflows", content=body, headers=headers)
            timings.append(time.perf_counter() - started)
            assert response.status_code == 422, response.text
        done.set()
        await pinger
    assert max(timings) < 1.0, timings
    assert len(pings) >= len(timings)  # pings went on between and during the posts


@pytest.mark.parametrize("where", ["1=1; DROP TABLE tickets", "id > 0 -- everything", "id > 0 # rest",
                                   "id > 0 /*! UNION */", "name = 'open", "id > 0 UNION SELECT password FROM users",
                                   "extractvalue(1, concat(0x7e, (SELECT LOAD_FILE('/etc/passwd'))))",
                                   "id IN (SELECT id FROM other)", "id = sleep(5)", "id = other_column"])
async def test_a_mysql_where_is_one_condition(client: httpx.AsyncClient, where: str) -> None:
    yaml = spec_text().replace("source: {kind: csv, path: tickets.csv, key: id}", (
        "source:\n  kind: mysql\n  connection: {database: test}\n  table: tickets\n  key: id\n"
        f"  where: {where!r}"))
    error = error_of(await client.post("/api/v1/workflows", json={"yaml": yaml}), 422)
    assert error["details"][0]["field"] == "source.where"
    assert error["details"][0]["line"] is not None
    assert "functions, subqueries and UNION are not allowed" in error["details"][0]["message"]


async def test_a_where_with_quotes_and_percent_is_accepted(client: httpx.AsyncClient) -> None:
    yaml = spec_text().replace("source: {kind: csv, path: tickets.csv, key: id}", (
        "source:\n  kind: mysql\n  connection: warehouse\n  table: tickets\n  key: id\n"
        "  where: \"subject LIKE 'a;b%' AND body <> '--' AND (id IN (1, 2) OR id BETWEEN 5 AND 9) AND NOT x IS "
        "NULL\""))
    assert (await client.post("/api/v1/workflows", json={"yaml": yaml})).status_code == 201


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", "text/plain; charset=utf-8"])
async def test_writes_a_browser_could_send_cross_site_are_refused(client: httpx.AsyncClient, stored: Any,
                                                                  content_type: str) -> None:
    for path in ("/api/v1/workflows", "/api/v1/jobs", "/api/v1/jobs/1/cancel", "/v1/chat/completions"):
        response = await client.post(path, content=spec_text().encode(), headers={"Content-Type": content_type})
        assert error_of(response, 415)["field"] == "Content-Type"


async def test_writes_from_another_sites_page_are_refused(client: httpx.AsyncClient, stored: Any) -> None:
    evil = {"Origin": "https://evil.example"}
    error_of(await client.post("/api/v1/jobs", json={"workflow": "ticket-triage"}, headers=evil), 403)
    error_of(await client.post("/api/v1/jobs", json={"workflow": "ticket-triage"},
                               headers={"Sec-Fetch-Site": "cross-site"}), 403)
    error_of(await client.post("/api/v1/jobs", json={"workflow": "ticket-triage"}, headers={"Origin": "null"}), 403)
    same = await client.get("/api/v1/jobs", headers=evil)  # reads are not refused, but no CORS header lets a page read
    assert same.status_code == 200 and "access-control-allow-origin" not in same.headers


async def test_cors_is_off_unless_an_origin_is_listed(settings: Settings, database: Database, admin_key: str,
                                                      router: Router) -> None:
    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization,content-type"}
    for origins, allowed in (([], False), (["https://app.example"], True)):
        app = create_app(settings.model_copy(update={"cors_origins": origins}), database, router)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
            answer = await http.options("/api/v1/jobs", headers=preflight)
            write = await http.post("/api/v1/jobs", json={"workflow": "none"},
                                    headers={"Origin": "https://app.example", "Authorization": f"Bearer {admin_key}"})
        assert (answer.headers.get("access-control-allow-origin") == "https://app.example") is allowed
        assert write.status_code == (422 if allowed else 403)  # an allowed origin's write reaches the route


async def test_a_fenced_answer_of_spaces_does_not_hold_the_server(database_url: str, tmp_path: Path) -> None:
    """Every answer is ``` and 25,000 spaces: the job fails its rows, and /ping answers promptly throughout (the
    in-process runner shares the server's event loop, so a slow parse would hold every ping)."""
    write_tickets(tmp_path, 6)
    async with FakeUpstream(reply=lambda _: "```" + " " * 25_000 + "x") as upstream, \
            platform(database_url=database_url, data_dir=tmp_path, upstream_url=upstream.base_url) as p:
        job_id = await p.start_job()
        pings: list[float] = []

        async def finished() -> dict[str, Any] | None:
            started = time.perf_counter()
            assert (await p.http.get("/ping")).status_code == 200
            pings.append(time.perf_counter() - started)
            job = await job_of(p.http, job_id)
            return job if job["status"] in ("completed", "failed") else None

        job = await wait_for(finished, within_s=60, what="the job to end")
    assert job["counts"]["failed"] == 6 and upstream.stats.requests == 12  # each row asked twice (one re-ask)
    assert max(pings) < 1.0, max(pings)


async def test_a_workflow_has_at_most_64_steps_and_bounded_templates(client: httpx.AsyncClient) -> None:
    """Ten thousand filter steps cost seconds of CPU to check: they are refused at the 65th."""
    steps = "".join(f"  - {{id: f{i}, kind: filter, column: a, equals: x}}\n" for i in range(10_000))
    started = time.perf_counter()
    response = await client.post("/api/v1/workflows", content="name: many\nsource: {kind: inline, rows: [{a: x}]}\n"
                                 "steps:\n" + steps, headers={"Content-Type": "application/yaml"})
    took = time.perf_counter() - started
    [detail] = error_of(response, 422)["details"]
    assert (detail["field"], detail["message"], detail["line"]) == ("steps", "at most 64 items", 68)
    assert took < 1.0, took
    huge = spec_text().replace('template: "', 'template: "' + "x" * 100_001)
    [detail] = error_of(await client.post("/api/v1/workflows", json={"yaml": huge}), 422)["details"]
    assert detail["field"] == "prompt.template" and "at most 100000 characters" in detail["message"]
