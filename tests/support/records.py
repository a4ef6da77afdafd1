"""Records the API tests start from: a valid spec, a workflow and a job made through the API; a migrated database;
the one error shape checked."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import text

from api_server.routes.workflows import EXAMPLE_YAML
from core.db import Database
from core.db.migrate import upgrade
from core.models import metadata


async def migrate(url: str, *, fresh: bool) -> None:
    """Upgrade the database at `url` to the newest schema (from nothing, when `fresh`)."""
    database = Database(url)
    try:
        if fresh:
            async with database.engine.begin() as connection:
                await connection.run_sync(metadata.drop_all)
                await connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
        await upgrade(database.engine)
    finally:
        await database.dispose()


SPEC = EXAMPLE_YAML  # the example Swagger shows: the tests keep it valid


def spec_text(name: str = "ticket-triage", *, note: str = "") -> str:
    """A valid workflow spec; `note` changes its text (and so its sha256) without changing meaning."""
    return SPEC.replace("name: ticket-triage", f"name: {name}") + (f"# {note}\n" if note else "")


async def make_workflow(client: httpx.AsyncClient, name: str = "ticket-triage", **extra: Any) -> dict[str, Any]:
    """POST a workflow and return the response body."""
    response = await client.post("/api/v1/workflows", json={"yaml": spec_text(name), **extra})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def make_job(client: httpx.AsyncClient, workflow: str = "ticket-triage", **extra: Any) -> dict[str, Any]:
    """POST a job and return the response body."""
    response = await client.post("/api/v1/jobs", json={"workflow": workflow, **extra})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    """The error of a response of `status`, in the one shape, with a message and no traceback."""
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["status"] == status and error["message"]
    assert "Traceback" not in response.text
    return error
