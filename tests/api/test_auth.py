"""API keys: every route needs one with its scope; keys are hashed, shown once, revoked at once, and recorded."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from sqlmodel import select

from api_server.main import create_app
from core.db import Database
from core.gateway_router import process_router
from core.models import ApiKey, Scope
from core.settings import Settings
from tests.support.keys import bearer, new_key
from tests.support.records import make_job, make_workflow, migrate, spec_text
from tests.support.served import served

OPEN = {"/ping", "/health", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json",
        "/api/v1/schemas/{kind}"}


def routes(app: Any) -> list[tuple[str, str, str]]:
    """(method, path with its parameters filled, operation) for every documented route."""
    found = []
    for path, operations in app.openapi()["paths"].items():
        if path not in OPEN:
            found += [(method.upper(), re.sub(r"\{[^}]+\}", "1", path), operation["operationId"])
                      for method, operation in operations.items()]
    return found


@pytest.fixture
async def app(settings: Settings, database: Database) -> AsyncIterator[Any]:
    """The app with the default gateway (one mock model)."""
    router = process_router(settings)
    yield create_app(settings, database, router)
    await router.aclose()


@pytest.fixture
async def client(app: Any, admin_key: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
                                 base_url="http://t", headers=bearer(admin_key)) as http:
        yield http


async def test_every_route_without_a_key_is_401(app: Any) -> None:
    listed = routes(app)
    assert len(listed) >= 30 and ("POST", "/v1/chat/completions") in [(m, p) for m, p, _ in listed]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        for headers in ({}, bearer("rlk_not-a-key"), {"Authorization": "Basic YTpi"}, {"Authorization": "Bearer"}):
            for method, path, _ in listed:
                body = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]} if method == "POST" else None
                response = await http.request(method, path, json=body, headers=headers)
                assert response.status_code == 401, (method, path, headers, response.text)
                assert response.json()["error"]["code"] == "unauthenticated"
                assert response.headers["www-authenticate"] == "Bearer"
        assert (await http.get("/ping")).status_code == 200
        health = await http.get("/health")
        assert health.json() == {"status": "ok", "checks": None}  # no details without a key


WRITES = [("POST", "/api/v1/workflows"), ("PATCH", "/api/v1/workflows/ticket-triage"),
          ("PATCH", "/api/v1/workflows/ticket-triage/versions/1"), ("POST", "/api/v1/jobs"),
          ("POST", "/api/v1/jobs/1/cancel"), ("POST", "/api/v1/jobs/1/pause"), ("POST", "/api/v1/jobs/1/resume"),
          ("POST", "/api/v1/jobs/1/retry")]
ADMIN = [("DELETE", "/api/v1/workflows/ticket-triage"), ("DELETE", "/api/v1/jobs/1"), ("GET", "/admin/models"),
         ("GET", "/admin/health"), ("GET", "/admin/keys"), ("POST", "/admin/keys"), ("DELETE", "/admin/keys/1"),
         ("GET", "/metrics")]
READS = [("GET", "/api/v1/workflows"), ("GET", "/api/v1/workflows/ticket-triage"), ("GET", "/api/v1/jobs"),
         ("GET", "/api/v1/jobs/1"), ("GET", "/api/v1/jobs/1/items"), ("GET", "/api/v1/jobs/1/events")]
GATEWAY = [("GET", "/v1/models"), ("POST", "/v1/chat/completions"), ("POST", "/v1/embeddings")]


async def test_each_scope_opens_its_routes_and_no_others(client: httpx.AsyncClient, database: Database) -> None:
    await make_workflow(client)
    await make_job(client)
    keys = {scope: await new_key(database, scope, name=scope.value) for scope in Scope}
    expected = {Scope.READ: READS, Scope.WRITE: READS + WRITES, Scope.GATEWAY: GATEWAY,
                Scope.ADMIN: READS + WRITES + ADMIN + GATEWAY}
    for scope, key in keys.items():
        for method, path in READS + WRITES + ADMIN + GATEWAY:
            body = {"model": "auto", "messages": [{"role": "user", "content": "x"}], "input": "x"} \
                if path.startswith("/v1") else {}
            response = await client.request(method, path, json=body if method in {"POST", "PATCH"} else None,
                                             headers=bearer(key))
            forbidden = response.status_code == 403
            assert forbidden is ((method, path) not in expected[scope]), (scope, method, path, response.text)
            if forbidden:
                assert response.json()["error"]["code"] == "forbidden"
            else:
                assert response.status_code != 401


async def test_a_revoked_key_stops_working_at_once(client: httpx.AsyncClient, database: Database) -> None:
    created = await client.post("/admin/keys", json={"name": "temp", "scopes": ["read"]})
    assert created.status_code == 201
    key = created.json()
    assert key["secret"].startswith("rlk_") and key["prefix"] == key["secret"][:12]
    assert (await client.get("/api/v1/jobs", headers=bearer(key["secret"]))).status_code == 200  # cached now
    listed = (await client.get("/admin/keys")).json()
    assert key["id"] in [k["id"] for k in listed] and all("secret" not in k for k in listed)
    assert (await client.delete(f"/admin/keys/{key['id']}")).json()["revoked_at"] is not None
    assert (await client.get("/api/v1/jobs", headers=bearer(key["secret"]))).status_code == 401
    assert key["id"] not in [k["id"] for k in (await client.get("/admin/keys")).json()]
    assert (await client.delete(f"/admin/keys/{key['id']}")).status_code == 409
    async with database.session() as session:  # only a hash is stored
        stored = (await session.exec(select(ApiKey).where(ApiKey.id == key["id"]))).one()
    assert key["secret"] not in stored.model_dump_json() and stored.secret_sha256 != key["secret"]


async def test_the_key_behind_each_write_is_recorded(client: httpx.AsyncClient, database: Database) -> None:
    secret = await new_key(database, Scope.WRITE, name="writer")
    writer = (await client.get("/admin/keys")).json()[-1]["id"]
    headers = bearer(secret)
    stored = await client.post("/api/v1/workflows", json={"yaml": spec_text()}, headers=headers)
    assert stored.json()["version"]["created_by"] == writer
    job = await client.post("/api/v1/jobs", json={"workflow": "ticket-triage"}, headers=headers)
    assert job.json()["created_by"] == writer
    await client.post(f"/api/v1/jobs/{job.json()['id']}/cancel")  # by the admin key of the client fixture
    events = (await client.get(f"/api/v1/jobs/{job.json()['id']}/events")).json()["items"]
    assert [(e["kind"], e["key_id"] == writer) for e in events] == [("created", True), ("cancelled", False)]
    assert events[1]["key_id"] is not None


async def test_the_openai_sdk_sends_its_api_key_as_the_bearer(app: Any, database: Database) -> None:
    gateway_key = await new_key(database, Scope.GATEWAY, name="sdk")
    read_key = await new_key(database, Scope.READ, name="reader")
    async with served(app) as base_url:
        async with openai.AsyncOpenAI(base_url=f"{base_url}/v1", api_key=gateway_key, max_retries=0) as ai:
            answer = await ai.chat.completions.create(model="auto", messages=[{"role": "user", "content": "hi"}])
            assert answer.choices[0].message.content
        for key, error in ((read_key, openai.PermissionDeniedError), ("rlk_wrong", openai.AuthenticationError)):
            async with openai.AsyncOpenAI(base_url=f"{base_url}/v1", api_key=key, max_retries=0) as ai:
                with pytest.raises(error):
                    await ai.chat.completions.create(model="auto", messages=[{"role": "user", "content": "hi"}])


async def test_swagger_offers_the_authorize_button(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    create = schema["paths"]["/api/v1/jobs"]["post"]
    assert {"HTTPBearer": []} in create["security"] and {"401", "403"} <= set(create["responses"])


def test_the_cli_creates_lists_and_revokes_keys(tmp_path: Any) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/keys.db"
    asyncio.run(migrate(url, fresh=False))
    env = {"DATABASE_URL": url, "PATH": ""}

    def rowloom(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "rowloom", "keys", *args], env=env, capture_output=True,
                              text=True, timeout=60)

    made = rowloom("create", "--name", "ci", "--scope", "write", "--quiet")
    assert made.returncode == 0, made.stderr
    secret = made.stdout.strip()
    assert secret.startswith("rlk_") and len(secret) > 40
    listed = rowloom("list")
    assert "ci" in listed.stdout and secret[:12] in listed.stdout and secret not in listed.stdout
    key_id = listed.stdout.split()[0]
    assert rowloom("revoke", key_id).returncode == 0
    assert "ci" not in rowloom("list").stdout
    again = rowloom("revoke", key_id)
    assert again.returncode == 1 and "already revoked" in again.stderr
    bad = rowloom("create", "--name", "x", "--scope", "root")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr


def test_auth_off_is_refused_on_a_network_address(tmp_path: Any) -> None:
    env = {"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/x.db", "AUTH_REQUIRED": "false", "PATH": ""}
    result = subprocess.run([sys.executable, "-m", "rowloom", "serve", "--host", "0.0.0.0", "--no-migrate"],
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "AUTH_REQUIRED=false is refused on 0.0.0.0" in result.stderr


async def test_a_revocation_made_outside_the_server_is_seen_within_a_second(settings: Settings,
                                                                           database: Database) -> None:
    """`rowloom keys revoke` writes the database directly: a running server's key watch drops its cache."""
    from api_server.services.keys import revoke_key
    from tests.support.worker_helpers import wait_for

    app = create_app(settings, database)
    secret = await new_key(database, Scope.READ, name="to revoke")
    async with app.router.lifespan_context(app), \
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        assert (await http.get("/api/v1/jobs", headers=bearer(secret))).status_code == 200  # now cached
        async with database.session() as session:
            [key] = [k for k in (await session.exec(select(ApiKey))).all() if k.name == "to revoke"]
            assert key.id is not None
            await revoke_key(session, key_id=key.id)

        async def refused() -> bool:
            return (await http.get("/api/v1/jobs", headers=bearer(secret))).status_code == 401

        await wait_for(refused, within_s=5, what="the revoked key to be refused")


async def test_without_keys_only_localhost_is_served(settings: Settings, database: Database) -> None:
    """DNS rebinding: a page of rebind.example resolves its name to 127.0.0.1 and calls the API; its requests
    still say `Host: rebind.example`, and a server without keys refuses them (it minted an admin key before)."""
    app = create_app(settings.model_copy(update={"auth_required": False}), database)
    async with served(app) as base_url, httpx.AsyncClient(base_url=base_url) as http:
        port = base_url.rsplit(":", 1)[1]
        answers = {host: await http.post("/admin/keys", json={"name": "rebound", "scopes": ["admin"]},
                                          headers={"Host": host})
                   for host in (f"rebind.example:{port}", "rebind.example", f"localhost:{port}",
                                f"127.0.0.1:{port}", f"[::1]:{port}", "127.0.0.1.rebind.example")}
    refused = {host for host, answer in answers.items() if answer.status_code == 400}
    assert refused == {f"rebind.example:{port}", "rebind.example", "127.0.0.1.rebind.example"}
    error = answers["rebind.example"].json()["error"]
    assert error["field"] == "Host" and "only localhost is served" in error["message"]
    assert all(answers[h].status_code == 201 for h in answers if h not in refused)


async def test_trusted_hosts_narrow_any_deployment_to_its_names(settings: Settings, database: Database,
                                                               admin_key: str) -> None:
    app = create_app(settings.model_copy(update={"trusted_hosts": ["api.example.com", "*.rowloom.example"]}),
                     database)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), headers=bearer(admin_key)) as http:
        codes = {host: (await http.get(f"http://{host}/api/v1/jobs")).status_code
                 for host in ("api.example.com", "eu.rowloom.example", "rowloom.example", "evil.example",
                              "api.example.com.evil.example")}
    assert codes == {"api.example.com": 200, "eu.rowloom.example": 200, "rowloom.example": 400, "evil.example": 400,
                     "api.example.com.evil.example": 400}


async def test_revoking_a_key_ends_its_open_streams(database_url: str, tmp_path: Path) -> None:
    """A progress stream and a jobs watch opened with a key end once the key is revoked (the revocation
    arrives through the API, and through the database as `rowloom keys revoke` writes it)."""
    from tests.support.fake_upstream import FakeUpstream
    from tests.support.worker_helpers import platform, write_tickets

    write_tickets(tmp_path, 400)
    async with FakeUpstream(latency_s=0.5) as upstream, \
            platform(database_url=database_url, data_dir=tmp_path, upstream_url=upstream.base_url) as p, \
            served(p.app) as base_url:
        await p.app.state.keys.start()  # the revocation watch, as the served app's lifespan starts it
        job_id = await p.start_job()
        ended: dict[str, float] = {}
        opened: dict[str, asyncio.Event] = {}

        async def follow(name: str, path: str, secret: str) -> None:
            first = opened[name]
            async with httpx.AsyncClient(base_url=base_url, headers=bearer(secret), timeout=60) as http, \
                    http.stream("GET", path) as stream:
                assert stream.status_code == 200
                async for _ in stream.aiter_lines():
                    first.set()
            ended[name] = time.monotonic()

        by_api, by_cli = [await new_key(p.database, Scope.READ, name=n) for n in ("api", "cli")]
        opened.update({f"{who} {kind}": asyncio.Event() for who in ("api", "cli") for kind in ("progress", "changes")})
        streams = [asyncio.create_task(follow(f"{who} {kind}", path, secret))
                   for who, secret in (("api", by_api), ("cli", by_cli))
                   for kind, path in (("progress", f"/api/v1/jobs/{job_id}/progress"),
                                      ("changes", f"/api/v1/jobs/changes?ids={job_id}"))]
        async with p.database.session() as session:
            keys = {k.name: k.id for k in (await session.exec(select(ApiKey))).all()}
        await asyncio.wait_for(asyncio.gather(*(event.wait() for event in opened.values())), timeout=30)
        revoked_at = time.monotonic()
        assert (await p.http.delete(f"/admin/keys/{keys['api']}")).status_code in (200, 204)
        async with p.database.session() as session:  # as the CLI does: the database only
            from api_server.services.keys import revoke_key

            await revoke_key(session, key_id=keys["cli"])
        await asyncio.wait_for(asyncio.gather(*streams), timeout=30)
        running = (await p.http.get(f"/api/v1/jobs/{job_id}")).json()["status"]
        await p.app.state.keys.aclose()
    assert running == "running"  # the streams ended for the key, not because the job did
    assert max(ended.values()) - revoked_at < 1.0, {k: v - revoked_at for k, v in ended.items()}
