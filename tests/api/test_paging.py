"""List paging: cursor walks are exact under concurrent inserts and ties; offset paging counts right."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from core.db import Database
from core.models import Job, JobStatus, Priority
from tests.support.records import make_job, make_workflow

BASE = datetime(2026, 1, 1, tzinfo=UTC)


async def seed_jobs(database: Database, workflow: dict[str, Any], count: int, *, seed: int = 7) -> list[Job]:
    """Insert jobs directly, with repeated created_at values (ties) and some NULL started_at."""
    rng = random.Random(seed)
    jobs = []
    for i in range(count):
        created = BASE + timedelta(seconds=rng.randrange(count // 3 + 1))  # about 3 jobs per second: ties
        started = None if rng.random() < 0.4 else created + timedelta(seconds=rng.randrange(5))
        jobs.append(Job(workflow_id=workflow["workflow"]["id"], workflow_version_id=workflow["version"]["id"],
                        workflow_name=workflow["workflow"]["name"], version=1, name=f"job-{i:04d}",
                        status=rng.choice([JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.COMPLETED]),
                        priority=rng.choice(list(Priority)), created_at=created, updated_at=created,
                        started_at=started))
    async with database.session() as session:
        session.add_all(jobs)
        await session.commit()
    return jobs


async def walk(client: httpx.AsyncClient, params: dict[str, Any], *, between: Any = None) -> list[dict[str, Any]]:
    """Follow `next` to the end, calling `between()` after each page."""
    seen: list[dict[str, Any]] = []
    after = None
    for _ in range(1000):
        response = await client.get("/api/v1/jobs", params={**params, **({"after": after} if after else {})})
        assert response.status_code == 200, response.text
        page = response.json()
        assert page["total"] is None  # cursor mode does not count
        seen += page["items"]
        if not page["has_more"]:
            assert page["next"] is None
            return seen
        after = page["next"]
        if between is not None:
            await between()
    raise AssertionError("cursor walk did not end")


def expected_order(jobs: list[Job], field: str, descending: bool) -> list[int]:
    """The ordering the API promises: by field then id; NULLs first ascending, last descending."""
    def rank(job: Job) -> Any:
        value = getattr(job, field)
        return (list(Priority).index(value) if field == "priority" else value), job.id

    present = sorted((j for j in jobs if getattr(j, field) is not None), key=rank, reverse=descending)
    missing = sorted((j for j in jobs if getattr(j, field) is None), key=lambda j: j.id, reverse=descending)
    ordered = present + missing if descending else missing + present
    return [j.id for j in ordered if j.id is not None]


@pytest.mark.parametrize("order_by", ["created_at desc", "created_at asc", "started_at desc", "started_at asc",
                                      "priority desc", "name asc"])
async def test_cursor_walk_matches_the_full_ordering(client: httpx.AsyncClient, database: Database,
                                                     order_by: str) -> None:
    workflow = await make_workflow(client)
    jobs = await seed_jobs(database, workflow, 90)
    field, direction = order_by.split()
    seen = await walk(client, {"order_by": order_by, "limit": 7})
    assert [j["id"] for j in seen] == expected_order(jobs, field, direction == "desc")


async def test_cursor_visits_each_match_once_while_jobs_are_inserted(client: httpx.AsyncClient,
                                                                     database: Database) -> None:
    workflow = await make_workflow(client)
    jobs = await seed_jobs(database, workflow, 120)
    matching = {j.id for j in jobs if j.status in (JobStatus.QUEUED, JobStatus.RUNNING)}
    inserted: list[int] = []

    async def insert_two() -> None:
        for _ in range(2):
            inserted.append((await make_job(client))["id"])  # new queued jobs: they match the filter

    for order_by in ("created_at desc", "created_at asc"):
        seen = await walk(client, {"status": "queued,running", "order_by": order_by, "limit": 9},
                          between=insert_two)
        ids = [j["id"] for j in seen]
        assert len(ids) == len(set(ids)), "a job was visited twice"
        assert matching <= set(ids), "a job that matched before the walk was missed"
        assert set(ids) <= matching | set(inserted)
        assert {j["status"] for j in seen} <= {"queued", "running"}
    assert inserted


async def test_offset_paging_reports_total_and_pages_in_order(client: httpx.AsyncClient,
                                                              database: Database) -> None:
    workflow = await make_workflow(client)
    jobs = await seed_jobs(database, workflow, 60)
    running = sorted((j for j in jobs if j.status == JobStatus.RUNNING), key=lambda j: (j.created_at, j.id))
    collected = []
    for offset in range(0, len(running) + 10, 10):
        page = (await client.get("/api/v1/jobs", params={"status": "running", "order_by": "created_at",
                                                         "limit": 10, "offset": offset})).json()
        assert page["total"] == len(running)
        assert page["offset"] == offset
        collected += page["items"]
    assert [j["id"] for j in collected] == [j.id for j in running]


async def test_list_items_are_small_and_filters_combine(client: httpx.AsyncClient, database: Database) -> None:
    workflow = await make_workflow(client)
    jobs = await seed_jobs(database, workflow, 40)
    page = (await client.get("/api/v1/jobs", params={"limit": 1000, "status": "completed", "priority": "high",
                                                     "name": "job-00", "offset": 0})).json()
    expected = {j.id for j in jobs if j.status == JobStatus.COMPLETED and j.priority == Priority.HIGH
                and "job-00" in j.name}
    assert {j["id"] for j in page["items"]} == expected
    assert page["total"] == len(expected)
    for item in page["items"]:
        assert "params" not in item and "error" not in item
    window = (await client.get("/api/v1/jobs", params={
        "created_after": (BASE + timedelta(seconds=3)).isoformat(),
        "created_before": (BASE + timedelta(seconds=6)).isoformat(), "limit": 1000})).json()
    assert {j["id"] for j in window["items"]} == {
        j.id for j in jobs if BASE + timedelta(seconds=3) <= j.created_at < BASE + timedelta(seconds=6)}
    by_workflow = (await client.get("/api/v1/jobs", params={"workflow": "ticket-triage", "version": 1,
                                                            "offset": 0})).json()
    assert by_workflow["total"] == 40


async def test_cursor_from_another_query_is_refused(client: httpx.AsyncClient, database: Database) -> None:
    workflow = await make_workflow(client)
    await seed_jobs(database, workflow, 12)
    page = (await client.get("/api/v1/jobs", params={"limit": 5, "status": "queued,running,completed"})).json()
    other = await client.get("/api/v1/jobs", params={"limit": 5, "status": "queued", "after": page["next"]})
    assert other.status_code == 422
    assert other.json()["error"]["field"] == "after"
    forged = await client.get("/api/v1/jobs", params={"after": "not-a-cursor"})
    assert forged.status_code == 422
    both = await client.get("/api/v1/jobs", params={"after": page["next"], "offset": 5,
                                                    "status": "queued,running,completed"})
    assert both.status_code == 422
