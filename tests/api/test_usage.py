"""GET /api/v1/usage: jobs' spend and tokens added up by period, model, workflow and key."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx

from core.db import Database
from core.usage_rollup import UsageSubject
from engine.results.store import RowResult, RowStatus
from tests.support.records import make_job, make_workflow
from worker.store import DbResultStore

ROWS = [  # (job, model, finished at, tokens in, tokens out, cost)
    (0, "small", datetime(2026, 11, 28, 9, 30, tzinfo=UTC), 100, 10, 0.001),
    (0, "small", datetime(2026, 11, 28, 9, 45, tzinfo=UTC), 100, 20, 0.002),
    (0, "big", datetime(2026, 11, 28, 10, 5, tzinfo=UTC), 200, 30, 0.03),
    (1, "small", datetime(2026, 11, 29, 14, 0, tzinfo=UTC), 50, 5, 0.0005),
]


async def spent(client: httpx.AsyncClient, database: Database) -> list[int]:
    """Two workflows, a job each, and the job rows above, stored as a worker stores them."""
    await make_workflow(client, "triage")
    await make_workflow(client, "summaries")
    jobs = [await make_job(client, "triage"), await make_job(client, "summaries")]
    for i, (job, model, at, tokens_in, tokens_out, cost) in enumerate(ROWS):
        store = DbResultStore(database, job_id=jobs[job]["id"], workflow_version_id=1, prompt_hash="x",
                              usage=UsageSubject(jobs[job]["workflow_name"], jobs[job]["created_by"]),
                              clock=lambda at=at: at)
        await store.write([RowResult(key=i, status=RowStatus.DONE, model=model, attempts=1, tokens_in=tokens_in,
                                     tokens_out=tokens_out, cost=cost)])
    return [job["id"] for job in jobs]


async def test_usage_adds_up_by_day_model_workflow_and_key(client: httpx.AsyncClient, database: Database) -> None:
    await spent(client, database)
    by_day = (await client.get("/api/v1/usage")).json()
    assert [(g["day"], g["rows"], g["tokens_in"], g["cost"]) for g in by_day["items"]] == [
        ("2026-11-29", 1, 50, 0.0005), ("2026-11-28", 3, 400, 0.033)]  # newest first
    by_hour_model = (await client.get("/api/v1/usage", params={"group_by": "hour,model"})).json()
    assert [(g["hour"], g["model"], g["rows"]) for g in by_hour_model["items"]] == [
        ("2026-11-29 14", "small", 1), ("2026-11-28 10", "big", 1), ("2026-11-28 09", "small", 2)]
    by_workflow = (await client.get("/api/v1/usage", params={"group_by": ["workflow", "key"]})).json()
    assert [(g["workflow"], g["tokens_out"], g["key"] is not None) for g in by_workflow["items"]] == [
        ("summaries", 5, True), ("triage", 60, True)]  # the key that triggered the jobs


async def test_usage_filters_and_pages(client: httpx.AsyncClient, database: Database) -> None:
    await spent(client, database)
    since = (await client.get("/api/v1/usage", params={"group_by": "model", "since": "2026-11-28T10:00:00Z",
                                                      "until": "2026-11-29"})).json()
    assert [(g["model"], g["rows"]) for g in since["items"]] == [("big", 1)]
    within = (await client.get("/api/v1/usage", params={"group_by": "model", "since": "2026-11-28T09:40:00+00:00",
                                                       "until": "2026-11-28T10:05:00Z"})).json()
    assert (within["since"], within["until"]) == ("2026-11-28T09:00:00Z", "2026-11-28T11:00:00Z")  # whole hours
    assert [(g["model"], g["rows"]) for g in within["items"]] == [("big", 1), ("small", 2)]
    zoned = (await client.get("/api/v1/usage", params={"since": "2026-11-29T15:30:00+02:00"})).json()
    assert zoned["since"] == "2026-11-29T13:00:00Z" and [g["rows"] for g in zoned["items"]] == [1]
    one_workflow = (await client.get("/api/v1/usage", params={"group_by": "model", "workflow": "triage",
                                                             "model": "small"})).json()
    assert [(g["model"], g["rows"], g["cost"]) for g in one_workflow["items"]] == [("small", 2, 0.003)]
    page = (await client.get("/api/v1/usage", params={"group_by": "hour", "limit": 1, "offset": 1})).json()
    assert page["total"] == 3 and [g["hour"] for g in page["items"]] == ["2026-11-28 10"]
    last = (await client.get("/api/v1/usage", params={"group_by": "hour", "limit": 2, "offset": 2})).json()
    past = (await client.get("/api/v1/usage", params={"group_by": "hour", "offset": 5})).json()
    assert (last["total"], len(last["items"]), past["total"], past["items"]) == (3, 1, 3, [])


async def test_bad_usage_queries_name_the_parameter(client: httpx.AsyncClient) -> None:
    for params, field in (({"group_by": "week"}, "group_by"), ({"since": "12345"}, "since"),
                          ({"limit": 0}, "limit"), ({"colour": "red"}, "colour")):
        answer = await client.get("/api/v1/usage", params=params)
        assert answer.status_code == 422, params
        assert field in answer.text
