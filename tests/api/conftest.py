"""Fixtures of the API's tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.support.records import make_job, make_workflow


async def snapshot(client: httpx.AsyncClient) -> tuple[Any, Any, Any]:
    """The workflows, the jobs and the versions of ticket-triage, as the API lists them."""
    workflows = (await client.get("/api/v1/workflows", params={"offset": 0})).json()
    jobs = (await client.get("/api/v1/jobs", params={"offset": 0})).json()
    versions = (await client.get("/api/v1/workflows/ticket-triage/versions")).json()
    return workflows, jobs, versions


@pytest.fixture
async def stored(client: httpx.AsyncClient) -> AsyncIterator[tuple[Any, Any, Any]]:
    """One workflow and one job exist; the test checks they are untouched afterwards."""
    await make_workflow(client)
    await make_job(client)
    before = await snapshot(client)
    yield before
    assert await snapshot(client) == before
