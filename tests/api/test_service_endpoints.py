"""/health, /ping and the OpenAPI docs."""

from __future__ import annotations

import httpx

from api_server.main import create_app
from core.db import Database
from core.settings import Settings
from tests.support.keys import bearer, new_key
from tests.support.private_services import free_port
from tests.support.services import redis_url


async def test_health_checks_the_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"]["ok"] is True
    assert "redis" not in body["checks"]
    assert (await client.get("/ping")).json() == {"ping": "pong"}


async def _health(settings: Settings, database: Database) -> httpx.Response:
    app = create_app(settings, database)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        return await http.get("/health", headers=bearer(await new_key(database)))


async def test_health_checks_redis_when_configured(settings: Settings, database: Database) -> None:
    response = await _health(settings.model_copy(update={"redis_url": redis_url()}), database)
    assert response.status_code == 200
    assert response.json()["checks"]["redis"]["ok"] is True


async def test_health_is_503_when_redis_is_down(settings: Settings, database: Database) -> None:
    response = await _health(settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"}), database)
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "degraded"
    assert body["checks"]["redis"]["ok"] is False and body["checks"]["database"]["ok"] is True


async def test_docs_describe_every_route_with_summary_and_errors(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert (await client.get("/docs")).status_code == 200
    assert (await client.get("/redoc")).status_code == 200
    operations = [(path, method, op) for path, ops in spec["paths"].items() for method, op in ops.items()]
    assert len(operations) >= 18
    for path, method, op in operations:
        assert op.get("summary"), (method, path)
        assert len(op["summary"]) <= 100, (method, path)
        assert op["summary"].endswith(".") and op["summary"].count("(") == op["summary"].count(")"), \
            f"{method} {path}: the summary is not a whole sentence: {op['summary']!r}"  # not cut at a line end
        if path.startswith("/api/"):
            assert any(code.startswith("4") for code in op["responses"]), (method, path)
    create = spec["paths"]["/api/v1/workflows"]["post"]["requestBody"]["content"]
    assert {"application/json", "application/yaml"} <= set(create)
    assert create["application/json"]["schema"]["examples"]
    assert spec["components"]["schemas"]["JobCreate"]["examples"]


async def test_health_is_503_degraded_when_a_key_cannot_be_checked_for_the_database_being_away(
        settings: Settings) -> None:
    """A key not yet in the server's cache needs the database to be checked; with the database away, /health still
    answers `degraded` (without the checks a key would see), not an error."""
    away = f"mysql+asyncmy://root@127.0.0.1:{free_port()}/test"
    database = Database(away)
    app = create_app(settings.model_copy(update={"database_url": away}), database)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
            response = await http.get("/health", headers={"Authorization": "Bearer rl_not_cached_yet"})
    finally:
        await database.dispose()
    assert response.status_code == 503
    assert response.json() == {"status": "degraded", "checks": None}
